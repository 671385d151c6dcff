// The transparent unit's DNS responder (dns-responder.ts) on real sockets:
// asked by Node's resolver (c-ares), by dig, by hand-made packets, and by
// glibc itself (getent, Python) inside a network namespace whose
// resolv.conf names it. The upstreams it forwards to are small real DNS
// servers started here: one that answers, one that never does, one that
// truncates over UDP.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as dgram from 'node:dgram';
import { promises as dnsPromises } from 'node:dns';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import * as dnsPacket from 'dns-packet';
import { startDnsResponder, type DnsResponder, type DnsResponderOptions } from '../../src/run/transparent/dns-responder';
import { MeshNames, unitResolvConf } from '../../src/run/transparent/mesh-names';
import { silentLogger } from '../../src/observe/log';
import { multiHostSkip, multiHostUnavailable } from '../helpers/hosts';
import { freePort } from '../helpers/ports';
import { seeded } from '../helpers/prng';

const HOST = '127.0.0.1';

// ---- the responder under test ----

function meshNames(): MeshNames {
  const names = new MeshNames({ namespace: 'default', searchSuffixes: ['corp.example'] });
  names.set([
    { name: 'backend', namespace: 'default', vip: '240.0.0.1' },
    { name: 'payments', namespace: 'shop', vip: '240.0.0.2' },
  ]);
  return names;
}

const open: DnsResponder[] = [];
after(async () => {
  await Promise.all(open.map((r) => r.close()));
  await Promise.all(upstreams.map((u) => u.close()));
});

async function responder(opts: Partial<DnsResponderOptions> = {}): Promise<DnsResponder> {
  const names = meshNames();
  const r = await startDnsResponder({ address: HOST, port: 0, lookup: (n) => names.lookup(n), upstreams: [], log: silentLogger, ...opts });
  open.push(r);
  return r;
}

function resolverFor(port: number): dnsPromises.Resolver {
  const r = new dnsPromises.Resolver({ timeout: 3000, tries: 1 });
  r.setServers([`${HOST}:${port}`]);
  return r;
}

// ---- small real upstream DNS servers ----

type Via = 'udp' | 'tcp';
/** What an upstream sends back for a query: raw packets, in order (none: it stays silent). */
type Behaviour = (q: dnsPacket.DecodedPacket, via: Via) => Buffer[];

interface Upstream {
  port: number;
  seen: { via: Via; id: number; name: string }[];
  close(): Promise<void>;
}

const upstreams: Upstream[] = [];

function answerA(q: dnsPacket.DecodedPacket, addresses: string[], extraFlags = 0): Buffer {
  const question = q.questions![0];
  return dnsPacket.encode({
    type: 'response',
    id: q.id,
    flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE | extraFlags,
    questions: [question],
    answers: extraFlags & dnsPacket.TRUNCATED_RESPONSE ? [] : addresses.map((data) => ({ type: 'A' as const, name: question.name, ttl: 60, data })),
  });
}

/** A DNS server on UDP and TCP (one port, as the responder expects of an upstream). */
async function startUpstream(behaviour: Behaviour): Promise<Upstream> {
  for (let attempt = 0; attempt < 10; attempt++) {
    const udp = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => udp.bind(0, HOST, () => resolve()));
    const port = udp.address().port;
    const tcp = net.createServer();
    const conns = new Set<net.Socket>();
    const ok = await new Promise<boolean>((resolve) => {
      tcp.once('error', () => resolve(false));
      tcp.listen(port, HOST, () => resolve(true));
    });
    if (!ok) {
      udp.close();
      continue;
    }
    const seen: Upstream['seen'] = [];
    udp.on('message', (msg, rinfo) => {
      let q: dnsPacket.DecodedPacket;
      try {
        q = dnsPacket.decode(msg);
      } catch {
        return; // the responder forwards only what it parsed; the fuzz test still must not crash here
      }
      seen.push({ via: 'udp', id: q.id!, name: q.questions![0]?.name });
      for (const out of behaviour(q, 'udp')) udp.send(out, rinfo.port, rinfo.address);
    });
    tcp.on('connection', (sock) => {
      conns.add(sock);
      sock.on('close', () => conns.delete(sock));
      sock.on('error', () => {});
      let buf = Buffer.alloc(0);
      sock.on('data', (chunk) => {
        buf = Buffer.concat([buf, chunk]);
        while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
          const q = dnsPacket.decode(buf.subarray(2, 2 + buf.readUInt16BE(0)));
          buf = buf.subarray(2 + buf.readUInt16BE(0));
          seen.push({ via: 'tcp', id: q.id!, name: q.questions![0].name });
          for (const out of behaviour(q, 'tcp')) {
            const len = Buffer.alloc(2);
            len.writeUInt16BE(out.length);
            sock.write(Buffer.concat([len, out]));
          }
        }
      });
    });
    const u: Upstream = {
      port,
      seen,
      close: async () => {
        for (const s of conns) s.destroy();
        await Promise.all([new Promise<void>((r) => udp.close(() => r())), new Promise<void>((r) => tcp.close(() => r()))]);
      },
    };
    upstreams.push(u);
    return u;
  }
  throw new Error('no port free for UDP and TCP at once after 10 tries');
}

const answering = (address = '192.0.2.10'): Behaviour => (q) => [answerA(q, [address])];
const silent: Behaviour = () => [];
/** 40 A records: over 512 bytes. Over UDP only a truncated reply. */
const MANY = Array.from({ length: 40 }, (_, i) => `198.51.100.${i + 1}`);
const truncating: Behaviour = (q, via) => [via === 'udp' ? answerA(q, [], dnsPacket.TRUNCATED_RESPONSE) : answerA(q, MANY)];

/** A UDP port nobody listens on (refused at once): below the ephemeral range, so no socket of another test takes it meanwhile. */
async function closedUdpPort(): Promise<number> {
  for (;;) {
    const port = await freePort();
    const s = dgram.createSocket('udp4');
    const free = await new Promise<boolean>((resolve) => {
      s.once('error', () => resolve(false));
      s.bind(port, HOST, () => resolve(true));
    });
    await new Promise<void>((resolve) => (free ? s.close(() => resolve()) : resolve()));
    if (free) return port;
  }
}

// ---- raw clients ----

function query(name: string, type: dnsPacket.RecordType = 'A', id = 0x1234, edns = false): Buffer {
  return dnsPacket.encode({
    type: 'query',
    id,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ type, name, class: 'IN' }],
    additionals: edns ? [{ type: 'OPT', name: '.', udpPayloadSize: 1232, extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: false, options: [] }] : [],
  });
}

interface Reply {
  packet: dnsPacket.DecodedPacket & { rcode?: string };
  raw: Buffer;
  ms: number;
}

/** Sends each packet from one UDP socket; resolves with the first `count` replies, in arrival order. */
async function udpAsk(port: number, packets: Buffer[], count = 1, timeoutMs = 5000): Promise<Reply[]> {
  const sock = dgram.createSocket('udp4');
  const start = Date.now();
  try {
    return await new Promise<Reply[]>((resolve, reject) => {
      const got: Reply[] = [];
      const timer = setTimeout(() => reject(new Error(`only ${got.length} of ${count} UDP replies within ${timeoutMs} ms`)), timeoutMs);
      sock.on('message', (raw) => {
        got.push({ packet: dnsPacket.decode(raw), raw, ms: Date.now() - start });
        if (got.length === count) {
          clearTimeout(timer);
          resolve(got);
        }
      });
      sock.connect(port, HOST, () => {
        for (const p of packets) sock.send(p);
      });
    });
  } finally {
    sock.close();
  }
}

function frame(p: Buffer): Buffer {
  const len = Buffer.alloc(2);
  len.writeUInt16BE(p.length);
  return Buffer.concat([len, p]);
}

/** A TCP connection to the responder: replies as they come, and its close. */
async function tcpConnect(port: number) {
  const sock = net.connect(port, HOST);
  await new Promise<void>((resolve, reject) => sock.once('connect', resolve).once('error', reject));
  const replies: Reply[] = [];
  const start = Date.now();
  let buf = Buffer.alloc(0);
  let wake = () => {};
  sock.on('data', (chunk) => {
    buf = Buffer.concat([buf, chunk]);
    while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
      const raw = buf.subarray(2, 2 + buf.readUInt16BE(0));
      buf = buf.subarray(2 + raw.length);
      replies.push({ packet: dnsPacket.decode(raw), raw, ms: Date.now() - start });
    }
    wake();
  });
  const closed = new Promise<void>((resolve) => sock.once('close', () => resolve()));
  sock.on('close', () => wake());
  sock.on('error', () => {});
  return {
    sock,
    closed,
    replies,
    /** Resolves when `n` replies have arrived. */
    async waitReplies(n: number, timeoutMs = 5000): Promise<Reply[]> {
      const deadline = Date.now() + timeoutMs;
      while (replies.length < n) {
        if (sock.destroyed && replies.length < n) throw new Error(`connection closed after ${replies.length} of ${n} replies`);
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`only ${replies.length} of ${n} TCP replies within ${timeoutMs} ms`);
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, left);
          wake = () => {
            clearTimeout(t);
            resolve();
          };
        });
      }
      return replies.slice(0, n);
    },
  };
}

const rcode = (r: Reply) => r.packet.rcode;
const addresses = (r: Reply) => (r.packet.answers ?? []).filter((a) => a.type === 'A').map((a) => (a as dnsPacket.StringAnswer).data);

// ---- mesh names ----

test('mesh names: A is the VIP with the TTL, AAAA is NODATA, unknown names NXDOMAIN (Node resolver, UDP)', { timeout: 20_000 }, async () => {
  const r = await responder({ ttlSeconds: 7 });
  const res = resolverFor(r.port);
  assert.deepEqual(await res.resolve4('backend'), ['240.0.0.1']);
  assert.deepEqual(await res.resolve4('backend.default.svc.cluster.local', { ttl: true }), [{ address: '240.0.0.1', ttl: 7 }]);
  assert.deepEqual(await res.resolve4('PAYMENTS.shop.svc.'), ['240.0.0.2']);
  assert.deepEqual(await res.resolve4('backend.corp.example'), ['240.0.0.1']);
  await assert.rejects(res.resolve6('backend'), { code: 'ENODATA' });
  await assert.rejects(res.resolveMx('backend.default'), { code: 'ENODATA' });
  const any = await res.resolveAny('backend.default');
  assert.deepEqual(any, [{ type: 'A', address: '240.0.0.1', ttl: 7 }]);
  await assert.rejects(res.resolve4('nosuch'), { code: 'ENOTFOUND' });
  await assert.rejects(res.resolve4('nosuch.shop'), { code: 'ENOTFOUND' });
  await assert.rejects(res.resolve4('x.y.svc.cluster.local'), { code: 'ENOTFOUND' });
  // No upstreams: a name that is not the mesh's fails at once rather than hanging.
  await assert.rejects(res.resolve4('example.com'), { code: 'ESERVFAIL' });
  assert.deepEqual(r.stats(), { queries: 11, mesh: 7, nxdomain: 3, forwarded: 0, failed: 1, malformed: 0 });
});

test('mesh replies: the question as asked, the client id, AA and RD/RA, EDNS answered with EDNS', { timeout: 20_000 }, async () => {
  const r = await responder();
  const [plain, withEdns, nx] = await udpAsk(r.port, [query('BackEnd.Default', 'A', 0xbeef), query('backend', 'A', 0x0102, true), query('nosuch', 'A', 7)], 3);
  const byId = new Map([plain, withEdns, nx].map((x) => [x.packet.id, x]));
  const a = byId.get(0xbeef)!;
  assert.equal(rcode(a), 'NOERROR');
  assert.equal(a.packet.questions![0].name, 'BackEnd.Default', 'question echoed byte for byte');
  assert.deepEqual(addresses(a), ['240.0.0.1']);
  assert.ok(a.packet.flag_aa && a.packet.flag_rd && a.packet.flag_ra && a.packet.flag_qr);
  assert.equal(a.packet.additionals!.length, 0, 'no OPT to a client that sent none');
  const e = byId.get(0x0102)!;
  assert.deepEqual(e.packet.additionals!.map((x) => x.type), ['OPT']);
  assert.equal(rcode(byId.get(7)!), 'NXDOMAIN');
  assert.equal(byId.get(7)!.packet.answers!.length, 0);
});

test('TCP: several queries per connection, pipelined and split across writes, then the idle timeout closes it', { timeout: 20_000 }, async () => {
  const r = await responder({ tcpIdleTimeoutMs: 300 });
  const c = await tcpConnect(r.port);
  // Three queries in one write, then one arriving a byte at a time in two writes.
  c.sock.write(Buffer.concat([frame(query('backend', 'A', 1)), frame(query('payments.shop', 'A', 2)), frame(query('nosuch', 'A', 3))]));
  await c.waitReplies(3);
  const fourth = frame(query('backend.default', 'AAAA', 4));
  c.sock.write(fourth.subarray(0, 1));
  c.sock.write(fourth.subarray(1, 9));
  c.sock.write(fourth.subarray(9));
  const replies = await c.waitReplies(4);
  const byId = new Map(replies.map((x) => [x.packet.id, x]));
  assert.deepEqual(addresses(byId.get(1)!), ['240.0.0.1']);
  assert.deepEqual(addresses(byId.get(2)!), ['240.0.0.2']);
  assert.equal(rcode(byId.get(3)!), 'NXDOMAIN');
  assert.equal(rcode(byId.get(4)!), 'NOERROR');
  assert.equal(byId.get(4)!.packet.answers!.length, 0);
  await c.closed; // the idle timeout (300 ms), nothing else closes it
  assert.equal(r.stats().queries, 4);
});

// ---- forwarding ----

test('forward: a name that is not the mesh\'s is relayed to the upstream, with our own id, and back with the client\'s', { timeout: 20_000 }, async () => {
  const up = await startUpstream(answering('192.0.2.10'));
  const r = await responder({ upstreams: [`${HOST}:${up.port}`] });
  assert.deepEqual(await resolverFor(r.port).resolve4('www.example.com'), ['192.0.2.10']);
  const [raw] = await udpAsk(r.port, [query('Example.COM', 'A', 0x4242)]);
  assert.equal(raw.packet.id, 0x4242);
  assert.equal(raw.packet.questions![0].name, 'Example.COM');
  assert.deepEqual(addresses(raw), ['192.0.2.10']);
  // Mesh names never reach the upstream; the names that did are exactly the forwarded ones.
  await resolverFor(r.port).resolve4('backend');
  await assert.rejects(resolverFor(r.port).resolve4('nosuch'), { code: 'ENOTFOUND' });
  assert.deepEqual(up.seen.map((s) => [s.via, s.name]), [['udp', 'www.example.com'], ['udp', 'Example.COM']]);
  assert.deepEqual(r.stats(), { queries: 4, mesh: 1, nxdomain: 1, forwarded: 2, failed: 0, malformed: 0 });
});

test('forward: an upstream that never answers is SERVFAIL within the deadline; a refused one costs nothing; the next one answers', { timeout: 20_000 }, async () => {
  const dead = await startUpstream(silent);
  const good = await startUpstream(answering('192.0.2.20'));
  const refused = await closedUdpPort();

  const only = await responder({ upstreams: [`${HOST}:${dead.port}`], upstreamTimeoutMs: 400 });
  const [fail] = await udpAsk(only.port, [query('example.com')]);
  assert.equal(rcode(fail), 'SERVFAIL');
  assert.ok(fail.ms >= 350 && fail.ms < 3000, `SERVFAIL after ${fail.ms} ms, deadline 400 ms`);
  assert.equal(only.stats().failed, 1);

  // Two upstreams share the deadline: the silent first one gets half, then the second answers.
  const two = await responder({ upstreams: [`${HOST}:${dead.port}`, `${HOST}:${good.port}`], upstreamTimeoutMs: 1000 });
  const [second] = await udpAsk(two.port, [query('example.com')]);
  assert.deepEqual(addresses(second), ['192.0.2.20']);
  assert.ok(second.ms >= 450 && second.ms < 3000, `answered after ${second.ms} ms (the first upstream's share is 500 ms)`);

  // Nobody listening on the first: ICMP port unreachable moves on at once, far within its share.
  const viaRefused = await responder({ upstreams: [`${HOST}:${refused}`, `${HOST}:${good.port}`], upstreamTimeoutMs: 4000 });
  const [fast] = await udpAsk(viaRefused.port, [query('example.com')]);
  assert.deepEqual(addresses(fast), ['192.0.2.20']);
  assert.ok(fast.ms < 2000, `answered after ${fast.ms} ms: the refused upstream held it for its whole 2000 ms share`);
});

test('forward: an upstream SERVFAIL or REFUSED moves on to the next; a spoofed answer (wrong id) is ignored', { timeout: 20_000 }, async () => {
  const failing = await startUpstream((q) => [dnsPacket.encode({ type: 'response', id: q.id, flags: 2, questions: q.questions })]);
  const refusing = await startUpstream((q) => [dnsPacket.encode({ type: 'response', id: q.id, flags: 5, questions: q.questions })]);
  const spoofed = await startUpstream((q) => [answerA({ ...q, id: (q.id! + 1) & 0xffff }, ['6.6.6.6']), answerA(q, ['192.0.2.30'])]);
  const r = await responder({ upstreams: [`${HOST}:${failing.port}`, `${HOST}:${refusing.port}`, `${HOST}:${spoofed.port}`] });
  assert.deepEqual(await resolverFor(r.port).resolve4('example.net'), ['192.0.2.30']);
  assert.equal(failing.seen.length, 1);
  assert.equal(refusing.seen.length, 1);
});

test('forward: truncated over UDP is asked again over TCP; a UDP client gets TC and then the whole answer over TCP', { timeout: 20_000 }, async () => {
  const up = await startUpstream(truncating);
  const r = await responder({ upstreams: [`${HOST}:${up.port}`] });

  // Over TCP the client gets all 40 records at once.
  const c = await tcpConnect(r.port);
  c.sock.write(frame(query('big.example', 'A', 77)));
  const [overTcp] = await c.waitReplies(1);
  c.sock.destroy();
  assert.equal(overTcp.packet.id, 77);
  assert.deepEqual(addresses(overTcp), MANY);
  assert.deepEqual(up.seen.map((s) => s.via), ['udp', 'tcp']);

  // Over UDP without EDNS (512 bytes at most): TC, the question, no records.
  const [overUdp] = await udpAsk(r.port, [query('big.example', 'A', 78)]);
  assert.equal(overUdp.packet.id, 78);
  assert.ok(overUdp.packet.flag_tc, 'TC set');
  assert.equal(overUdp.packet.questions![0].name, 'big.example');
  assert.equal(overUdp.packet.answers!.length, 0);
  assert.ok(overUdp.raw.length <= 512);

  // A real resolver follows TC to TCP and gets everything.
  assert.deepEqual((await resolverFor(r.port).resolve4('big.example')).sort(), [...MANY].sort());
  assert.equal(r.stats().failed, 0);
});

test('forward: in-flight forwards are bounded, SERVFAIL at once beyond; close() ends pending ones without waiting for the deadline', { timeout: 20_000 }, async () => {
  const dead = await startUpstream(silent);
  const r = await responder({ upstreams: [`${HOST}:${dead.port}`], upstreamTimeoutMs: 60_000, maxInflightForwards: 1 });
  const sock = dgram.createSocket('udp4');
  const got: dnsPacket.DecodedPacket[] = [];
  sock.on('message', (m) => got.push(dnsPacket.decode(m)));
  await new Promise<void>((resolve) => sock.connect(r.port, HOST, () => resolve()));
  sock.send(query('one.example', 'A', 1));
  // The first is in flight once the upstream has seen it.
  await waitUntil(() => dead.seen.length === 1, 5000, 'the upstream to see the first query');
  sock.send(query('two.example', 'A', 2));
  sock.send(query('backend', 'A', 3)); // mesh names need no forward slot
  await waitUntil(() => got.length === 2, 5000, 'two replies');
  assert.deepEqual(got.map((p) => [p.id, (p as { rcode?: string }).rcode]).sort(), [[2, 'SERVFAIL'], [3, 'NOERROR']]);
  const start = Date.now();
  await r.close();
  assert.ok(Date.now() - start < 5000, 'close() waited for the 60 s deadline');
  assert.equal(dead.seen.length, 1, 'the second never reached the upstream');
  sock.close();
});

/** Polls a condition (for events without a callback, like a packet an upstream saw). */
async function waitUntil(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

// ---- malformed input ----

test('malformed UDP packets are dropped and counted; the responder keeps answering', { timeout: 20_000 }, async () => {
  const r = await responder();
  const asResponse = query('backend');
  asResponse.writeUInt16BE(asResponse.readUInt16BE(2) | 0x8000, 2);
  const truncatedName = query('backend').subarray(0, 16);
  const claimsTwo = query('backend');
  claimsTwo.writeUInt16BE(2, 4);
  const loop = Buffer.concat([query('backend').subarray(0, 12), Buffer.from([0xc0, 12, 0, 1, 0, 1])]);
  loop.writeUInt16BE(1, 4);
  const garbage = [Buffer.alloc(0), Buffer.from('hello'), Buffer.alloc(12, 0xff), asResponse, truncatedName, claimsTwo, loop, Buffer.alloc(600, 0x3f)];
  // Sent first, from the same socket: the one reply that comes is the valid query's.
  const [reply] = await udpAsk(r.port, [...garbage, query('backend', 'A', 99)]);
  assert.equal(reply.packet.id, 99);
  assert.deepEqual(addresses(reply), ['240.0.0.1']);
  assert.equal(r.stats().malformed, garbage.length);
  assert.equal(r.stats().queries, 1);
});

test('2000 mutated queries (UDP and TCP, seeded): every one answered or dropped, the responder still serving', { timeout: 30_000 }, async () => {
  const up = await startUpstream(answering());
  const r = await responder({ upstreams: [`${HOST}:${up.port}`], upstreamTimeoutMs: 500 });
  const rand = seeded(53);
  const bases = [query('backend', 'A', 1, true), query('www.example.com', 'AAAA', 2), query('payments.shop.svc.cluster.local', 'TXT', 3)];
  const mutate = () => {
    const p = Buffer.from(bases[Math.floor(rand() * bases.length)]);
    const flips = 1 + Math.floor(rand() * 4);
    for (let i = 0; i < flips; i++) p[Math.floor(rand() * p.length)] = Math.floor(rand() * 256);
    return rand() < 0.2 ? p.subarray(0, Math.floor(rand() * p.length)) : p;
  };
  const sock = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => sock.connect(r.port, HOST, () => resolve()));
  for (let i = 0; i < 1000; i++) sock.send(mutate());
  sock.close();
  // Over TCP a malformed frame ends the connection: one connection per frame.
  for (let i = 0; i < 1000; i += 50) {
    await Promise.all(Array.from({ length: 50 }, async () => {
      const c = await tcpConnect(r.port);
      c.sock.end(frame(mutate()));
      await c.closed;
    }));
  }
  const [ok] = await udpAsk(r.port, [query('backend', 'A', 4242)]);
  assert.deepEqual(addresses(ok), ['240.0.0.1']);
  const st = r.stats();
  assert.ok(st.queries + st.malformed >= 1001, JSON.stringify(st));
});

test('well-formed but unanswerable: no question is FORMERR, another opcode NOTIMP', { timeout: 20_000 }, async () => {
  const r = await responder();
  const none = dnsPacket.encode({ type: 'query', id: 5, flags: dnsPacket.RECURSION_DESIRED, questions: [] });
  const status = query('backend', 'A', 6);
  status.writeUInt16BE(status.readUInt16BE(2) | (2 << 11), 2); // opcode 2: STATUS
  const replies = await udpAsk(r.port, [none, status], 2);
  const byId = new Map(replies.map((x) => [x.packet.id, x]));
  assert.equal(rcode(byId.get(5)!), 'FORMERR');
  assert.equal(rcode(byId.get(6)!), 'NOTIMP');
});

test('a lookup that throws is SERVFAIL and a logged error, not a crash', { timeout: 20_000 }, async () => {
  const logged: string[] = [];
  const r = await responder({ lookup: () => { throw new Error('table broken'); }, log: (level, msg, fields) => logged.push(`${level} ${msg} ${JSON.stringify(fields)}`) });
  const [reply] = await udpAsk(r.port, [query('backend')]);
  assert.equal(rcode(reply), 'SERVFAIL');
  assert.ok(logged.some((l) => l.startsWith('error ') && l.includes('table broken')), logged.join('\n'));
  assert.equal(r.stats().failed, 1);
});

test('a malformed TCP frame closes that connection only; others keep being served', { timeout: 20_000 }, async () => {
  const r = await responder();
  const good = await tcpConnect(r.port);
  const bad = await tcpConnect(r.port);
  bad.sock.write(Buffer.concat([frame(query('backend', 'A', 1)), frame(Buffer.from('not dns at all'))]));
  await bad.closed;
  // A client that sends half a frame and goes away does no harm either.
  const half = await tcpConnect(r.port);
  half.sock.end(frame(query('backend')).subarray(0, 5));
  await half.closed;
  good.sock.write(frame(query('payments.shop', 'A', 2)));
  const [ok] = await good.waitReplies(1);
  assert.deepEqual(addresses(ok), ['240.0.0.2']);
  good.sock.destroy();
  assert.equal(r.stats().malformed, 1);
});

test('bad options are refused before anything binds', async () => {
  await assert.rejects(responder({ upstreams: ['dns.example'] }), /DNS upstream "dns.example": expected "ip", "ip:port"/);
  await assert.rejects(responder({ upstreams: ['10.0.0.1:99999'] }), /DNS upstream "10.0.0.1:99999"/);
  const r = await responder();
  await assert.rejects(startDnsResponder({ address: HOST, port: r.port, lookup: () => ({ kind: 'forward' }), upstreams: [], log: silentLogger }), new RegExp(`cannot bind UDP ${HOST}:${r.port}`));
  // "ip", "ip:port" and "[v6]:port" are all fine.
  const ok = await responder({ upstreams: ['10.0.0.1', '10.0.0.2:5353', '[::1]:53', 'fd00::53'] });
  assert.ok(ok.port > 0);
});

// ---- dig ----

/** Why dig tests cannot run here; under CI=true a missing dig is a failure, never a skip. */
function digSkip(): string | false {
  const res = spawnSync('dig', ['-v'], { encoding: 'utf8', timeout: 10_000 });
  if (!res.error && res.status === 0) return false;
  if (process.env.CI === 'true') return false; // the test runs and fails, naming the package
  return 'dig is not installed (Debian package dnsutils); with CI=true this fails instead';
}
const DIG_SKIP = digSkip();

function dig(port: number, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('dig', [`@${HOST}`, '-p', String(port), '+tries=1', '+time=3', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('error', (err) => reject(new Error(`dig failed to start (Debian package dnsutils): ${err.message}`)));
    child.on('close', () => resolve(out));
  });
}

test('dig over UDP and TCP: A, AAAA (NODATA), NXDOMAIN, forwarded, several questions on one TCP connection', { skip: DIG_SKIP, timeout: 30_000 }, async () => {
  const up = await startUpstream(answering('192.0.2.40'));
  const r = await responder({ upstreams: [`${HOST}:${up.port}`] });
  for (const transport of ['+notcp', '+tcp']) {
    const a = await dig(r.port, [transport, 'backend.default.svc.cluster.local', 'A']);
    assert.match(a, /status: NOERROR/, a);
    assert.match(a, /^backend\.default\.svc\.cluster\.local\.\s+5\s+IN\s+A\s+240\.0\.0\.1$/m, a);
    const aaaa = await dig(r.port, [transport, 'backend', 'AAAA']);
    assert.match(aaaa, /status: NOERROR/, aaaa);
    assert.match(aaaa, /ANSWER: 0,/, aaaa);
    const nx = await dig(r.port, [transport, 'nosuch.default', 'A']);
    assert.match(nx, /status: NXDOMAIN/, nx);
    const fwd = await dig(r.port, [transport, 'www.example.org', 'A']);
    assert.match(fwd, /^www\.example\.org\.\s+60\s+IN\s+A\s+192\.0\.2\.40$/m, fwd);
  }
  const many = await dig(r.port, ['+tcp', '+keepopen', '+short', 'backend', 'A', 'payments.shop', 'A', 'www.example.org', 'A']);
  assert.deepEqual(many.trim().split('\n'), ['240.0.0.1', '240.0.0.2', '192.0.2.40']);
});

// ---- glibc, in a network namespace whose resolv.conf names the responder ----

const NETNS_SKIP = multiHostSkip();
const DIST_TRANSPARENT = path.resolve(__dirname, '../../src/run/transparent');

test('glibc resolves mesh names through the responder: getent and Python in a namespace, no waiting on AAAA or unknown names', { skip: NETNS_SKIP, timeout: 60_000 }, async (t) => {
  const why = multiHostUnavailable();
  assert.ok(!why, `network namespaces: ${why}`);
  const ns = `wdns${process.pid}`;
  const etcDir = `/etc/netns/${ns}`;
  const cleanup = () => {
    spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
    fs.rmSync(etcDir, { recursive: true, force: true });
  };
  process.on('exit', cleanup);
  t.after(() => {
    cleanup();
    process.off('exit', cleanup);
  });
  cleanup(); // a namespace left by an earlier run of this pid
  const run = (args: string[]) => {
    const res = spawnSync('ip', args, { encoding: 'utf8', timeout: 10_000 });
    if (res.status !== 0) throw new Error(`ip ${args.join(' ')}: ${res.stderr || res.error?.message}`);
  };
  run(['netns', 'add', ns]);
  run(['-n', ns, 'link', 'set', 'lo', 'up']);
  // A veth pair inside the namespace, addressed like a unit's: getaddrinfo with AI_ADDRCONFIG (getent's
  // ahosts, most programs) asks nothing at all where only loopback has an IPv4 address.
  run(['-n', ns, 'link', 'add', 'unit0', 'type', 'veth', 'peer', 'name', 'host0']);
  run(['-n', ns, 'addr', 'add', '169.254.53.1/30', 'dev', 'host0']);
  run(['-n', ns, 'addr', 'add', '169.254.53.2/30', 'dev', 'unit0']);
  run(['-n', ns, 'link', 'set', 'host0', 'up']);
  run(['-n', ns, 'link', 'set', 'unit0', 'up']);
  fs.mkdirSync(etcDir, { recursive: true });
  fs.writeFileSync(path.join(etcDir, 'resolv.conf'), unitResolvConf('169.254.53.1', ['corp.example']));

  // The responder runs inside the namespace, on port 53 of the veth's far end; it prints its stats when its stdin ends.
  const script = `
    const { startDnsResponder } = require(${JSON.stringify(path.join(DIST_TRANSPARENT, 'dns-responder.js'))});
    const { MeshNames } = require(${JSON.stringify(path.join(DIST_TRANSPARENT, 'mesh-names.js'))});
    const names = new MeshNames({ namespace: 'default', searchSuffixes: ['corp.example'] });
    names.set([{ name: 'backend', namespace: 'default', vip: '240.0.0.1' }, { name: 'payments', namespace: 'shop', vip: '240.0.0.2' }]);
    startDnsResponder({ address: '169.254.53.1', port: 53, lookup: (n) => names.lookup(n), upstreams: [], log: () => {} }).then((r) => {
      console.log('ready ' + r.port);
      process.stdin.resume();
      process.stdin.on('end', async () => { console.log('stats ' + JSON.stringify(r.stats())); await r.close(); });
    }, (err) => { console.error(err.message); process.exit(1); });`;
  const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', script], { stdio: ['pipe', 'pipe', 'pipe'] });
  t.after(() => child.kill('SIGKILL'));
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  await Promise.race([
    waitUntil(() => /^ready 53$/m.test(out), 15_000, 'the responder in the namespace'),
    exited.then((code) => { throw new Error(`the responder exited (${code}): ${out}`); }),
  ]);

  const inNs = (cmd: string[]) => {
    const start = Date.now();
    const res = spawnSync('ip', ['netns', 'exec', ns, ...cmd], { encoding: 'utf8', timeout: 15_000 });
    return { code: res.status, out: res.stdout + res.stderr, ms: Date.now() - start };
  };
  // resolv.conf says timeout:2, so a question the responder left unanswered would cost at least 2 s.
  const quick = (r: { ms: number; out: string }, what: string) => assert.ok(r.ms < 1900, `${what} took ${r.ms} ms: ${r.out}`);

  for (const name of ['backend', 'backend.default', 'backend.default.svc.cluster.local', 'backend.corp.example']) {
    const r = inNs(['getent', 'ahostsv4', name]);
    assert.equal(r.code, 0, `getent ahostsv4 ${name}: ${r.out}`);
    assert.match(r.out, /^240\.0\.0\.1\s+STREAM/m, r.out);
    quick(r, `getent ahostsv4 ${name}`);
  }
  const shop = inNs(['getent', 'ahostsv4', 'payments.shop']);
  assert.match(shop.out, /^240\.0\.0\.2\s+STREAM/m, shop.out);
  // Both families asked at once (A and AAAA): AAAA gets NODATA at once, only the VIP comes back.
  const both = inNs(['getent', 'ahosts', 'backend']);
  assert.equal(both.code, 0, both.out);
  assert.deepEqual([...new Set(both.out.trim().split('\n').map((l) => l.split(/\s+/)[0]))], ['240.0.0.1'], both.out);
  quick(both, 'getent ahosts backend');
  // Unknown names fail, and fast.
  const nx = inNs(['getent', 'ahostsv4', 'nosuch.default']);
  assert.equal(nx.code, 2, nx.out);
  quick(nx, 'getent ahostsv4 nosuch.default');

  const py = inNs(['python3', '-c', "import socket; print(socket.gethostbyname('backend')); print(socket.getaddrinfo('payments.shop', 80, proto=socket.IPPROTO_TCP)[0][4][0])"]);
  assert.equal(py.code, 0, py.out);
  assert.deepEqual(py.out.trim().split('\n'), ['240.0.0.1', '240.0.0.2']);

  child.stdin.end();
  await waitUntil(() => /^stats /m.test(out), 10_000, 'the responder\'s stats');
  const stats = JSON.parse(/^stats (.*)$/m.exec(out)![1]);
  assert.equal(stats.malformed, 0);
  assert.ok(stats.mesh >= 8 && stats.nxdomain >= 1, JSON.stringify(stats));
  assert.equal(await exited, 0);
});
