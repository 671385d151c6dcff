// The DNS server of `weft run --transparent`: it listens (UDP and TCP, same
// port) on the host side of the unit's veth pair, where the unit's
// resolv.conf points. Mesh names get their service's virtual IP, or
// NXDOMAIN at once (mesh-names.ts decides); every other name is relayed to
// the host's own nameservers, which the unit cannot reach by itself.
//
// It is on the path of every name an app looks up, so it must never hang a
// resolver: a forward has one deadline (then SERVFAIL), forwards in flight
// are bounded (SERVFAIL beyond), a malformed packet is dropped (UDP) or ends
// its connection (TCP) and nothing a client sends can throw out of here.
//
// Replies are built from the query's own header and question bytes, so the
// question goes back exactly as asked (resolvers compare it); records are
// encoded with dns-packet. Forwarded answers are relayed as the upstream
// sent them, only the id changed back to the client's.
import * as crypto from 'node:crypto';
import * as dgram from 'node:dgram';
import * as net from 'node:net';
import * as dnsPacket from 'dns-packet';
import type { Logger } from '../../observe/log';
import type { MeshAnswer } from './mesh-names';

export interface DnsResponderOptions {
  /** IPv4 (or IPv6) address to bind, e.g. the host side of the unit's veth: 169.254.3.1. */
  address: string;
  /** Default 53; 0 takes a free port (tests). UDP and TCP share it. */
  port?: number;
  lookup(qname: string): MeshAnswer;
  /** Where names that are not the mesh's go, in order: "ip" or "ip:port" ("[v6]:port"). */
  upstreams: string[];
  /** One deadline for a forwarded query, all upstreams together; then SERVFAIL. Default 2000. */
  upstreamTimeoutMs?: number;
  /** TTL of mesh answers. Default 5: a VIP can change when the table does. */
  ttlSeconds?: number;
  /** Forwards in flight at most; a query beyond gets SERVFAIL at once. Default 256. */
  maxInflightForwards?: number;
  /** A TCP client connection with nothing to read or write this long is closed. Default 10000. */
  tcpIdleTimeoutMs?: number;
  log: Logger;
}

export interface DnsResponderStats {
  /** Well-formed queries received. */
  queries: number;
  /** Answered from the mesh table (a VIP, or no data for a type other than A). */
  mesh: number;
  /** NXDOMAIN answered here, without asking upstream. */
  nxdomain: number;
  /** Answered by an upstream. */
  forwarded: number;
  /** SERVFAIL sent: upstreams failed or timed out, none configured, too many in flight. */
  failed: number;
  /** Packets dropped or connections closed because they did not parse as a DNS query. */
  malformed: number;
}

export interface DnsResponder {
  address: string;
  port: number;
  close(): Promise<void>;
  stats(): DnsResponderStats;
}

const MAX_TCP_CONNECTIONS = 256;
/** Bytes a TCP client may leave unread before we stop reading its queries. */
const TCP_WRITE_HIGH_WATER = 64 * 1024;
/** Our EDNS buffer size (the DNS flag day 2020 value). */
const EDNS_UDP_SIZE = 1232;

const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;
const TYPE_A = 1;
const TYPE_ANY = 255;
const CLASS_IN = 1;
const QR = 0x8000;

interface Upstream {
  host: string;
  port: number;
  family: 4 | 6;
}

/** A query that parsed; what a reply needs from it. */
interface Query {
  raw: Buffer;
  id: number;
  opcode: number;
  rd: boolean;
  qdcount: number;
  /** End of the (single) question: [12, qEnd) are its bytes. 12 when there is none. */
  qEnd: number;
  name: string;
  qtype: number;
  qclass: number;
  edns: boolean;
  /** Largest UDP reply the client takes. */
  maxUdp: number;
}

export function parseUpstream(spec: string): Upstream {
  const s = spec.trim();
  const kind = net.isIP(s);
  if (kind) return { host: s, port: 53, family: kind as 4 | 6 };
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(s) ?? /^([^:]+):(\d+)$/.exec(s);
  const port = m ? Number(m[2]) : NaN;
  const family = m ? net.isIP(m[1]) : 0;
  if (!m || !family || !(port > 0 && port < 65536)) throw new Error(`DNS upstream ${JSON.stringify(spec)}: expected "ip", "ip:port" or "[ipv6]:port"`);
  return { host: m[1], port, family: family as 4 | 6 };
}

/** Where the first question ends, or -1 when its name runs past the packet. */
function questionEnd(buf: Buffer): number {
  let off = 12;
  for (;;) {
    if (off >= buf.length) return -1;
    const len = buf[off];
    if (len === 0) { off += 1; break; }
    if ((len & 0xc0) === 0xc0) { off += 2; break; }
    if (len & 0xc0) return -1;
    off += 1 + len;
  }
  off += 4;
  return off <= buf.length ? off : -1;
}

/** The header and question of a query, or undefined when it is not one (then it is dropped). */
function parseQuery(raw: Buffer): Query | undefined {
  if (raw.length < 12 || raw.readUInt16BE(2) & QR) return undefined;
  let packet: dnsPacket.DecodedPacket;
  try {
    packet = dnsPacket.decode(raw);
  } catch {
    return undefined;
  }
  const flags = raw.readUInt16BE(2);
  const qdcount = raw.readUInt16BE(4);
  const qEnd = qdcount === 1 ? questionEnd(raw) : 12;
  if (qEnd < 0) return undefined;
  const opt = packet.additionals?.find((a) => a.type === 'OPT') as dnsPacket.OptAnswer | undefined;
  return {
    raw,
    id: raw.readUInt16BE(0),
    opcode: (flags >> 11) & 0xf,
    rd: (flags & dnsPacket.RECURSION_DESIRED) !== 0,
    qdcount,
    qEnd,
    name: qdcount === 1 ? packet.questions![0].name : '',
    qtype: qdcount === 1 ? raw.readUInt16BE(qEnd - 4) : 0,
    qclass: qdcount === 1 ? raw.readUInt16BE(qEnd - 2) : 0,
    edns: opt !== undefined,
    maxUdp: opt ? Math.min(Math.max(opt.udpPayloadSize, 512), 4096) : 512,
  };
}

/** A reply of our own: the query's header and question, then these records. */
function reply(q: Query, rcode: number, authoritative: boolean, answers: dnsPacket.Answer[] = []): Buffer {
  let flags = dnsPacket.RECURSION_AVAILABLE | rcode;
  if (q.rd) flags |= dnsPacket.RECURSION_DESIRED;
  if (authoritative) flags |= dnsPacket.AUTHORITATIVE_ANSWER;
  const additionals: dnsPacket.Answer[] = q.edns
    ? [{ type: 'OPT', name: '.', udpPayloadSize: EDNS_UDP_SIZE, extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: false, options: [] }]
    : [];
  const body = dnsPacket.encode({ type: 'response', id: q.id, flags, questions: [], answers, additionals });
  const qLen = q.qEnd - 12;
  const out = Buffer.allocUnsafe(body.length + qLen);
  body.copy(out, 0, 0, 12);
  out.writeUInt16BE(qLen > 0 ? 1 : 0, 4);
  q.raw.copy(out, 12, 12, q.qEnd);
  body.copy(out, q.qEnd, 12);
  return out;
}

/** A reply too big for the client's UDP limit becomes its header and question with TC set: the client asks again over TCP. */
function fitUdp(answer: Buffer, q: Query): Buffer {
  if (answer.length <= q.maxUdp) return answer;
  const out = Buffer.from(answer.subarray(0, q.qEnd));
  out.writeUInt16BE(out.readUInt16BE(2) | dnsPacket.TRUNCATED_RESPONSE, 2);
  out.writeUInt16BE(0, 6);
  out.writeUInt16BE(0, 8);
  out.writeUInt16BE(0, 10);
  return out;
}

/** Whether `answer` answers `sent` (same id, a response, the same question; case aside). */
function answers(answer: Buffer, sent: Buffer, qEnd: number): boolean {
  if (answer.length < qEnd || answer.readUInt16BE(0) !== sent.readUInt16BE(0)) return false;
  if (!(answer.readUInt16BE(2) & QR) || answer.readUInt16BE(4) !== 1) return false;
  for (let i = 12; i < qEnd; i++) {
    let a = answer[i];
    let b = sent[i];
    if (a >= 0x41 && a <= 0x5a) a |= 0x20;
    if (b >= 0x41 && b <= 0x5a) b |= 0x20;
    if (a !== b) return false;
  }
  return true;
}

function rcodeOf(packet: Buffer): number {
  return packet.readUInt16BE(2) & 0xf;
}

class Responder implements DnsResponder {
  private readonly counts: DnsResponderStats = { queries: 0, mesh: 0, nxdomain: 0, forwarded: 0, failed: 0, malformed: 0 };
  private readonly upstreams: Upstream[];
  private readonly timeoutMs: number;
  private readonly ttl: number;
  private readonly maxInflight: number;
  private readonly idleMs: number;
  private inflight = 0;
  /** Ends an upstream exchange at once (close()). */
  private readonly aborts = new Set<() => void>();
  private readonly conns = new Set<net.Socket>();
  private closed = false;

  constructor(
    private readonly opts: DnsResponderOptions,
    private readonly udp: dgram.Socket,
    private readonly tcp: net.Server,
    readonly address: string,
    readonly port: number,
  ) {
    this.upstreams = opts.upstreams
      .map(parseUpstream)
      // Our own address as an upstream would relay a query to ourselves until the deadline.
      .filter((u) => !(u.host === address && u.port === port));
    this.timeoutMs = opts.upstreamTimeoutMs ?? 2000;
    this.ttl = opts.ttlSeconds ?? 5;
    this.maxInflight = opts.maxInflightForwards ?? 256;
    this.idleMs = opts.tcpIdleTimeoutMs ?? 10_000;
    udp.on('message', (msg, rinfo) => this.onDatagram(msg, rinfo));
    udp.on('error', (err) => opts.log('warn', 'dns responder: UDP socket error', { error: err.message }));
    tcp.on('connection', (sock) => this.onConnection(sock));
    tcp.on('error', (err) => opts.log('warn', 'dns responder: TCP server error', { error: err.message }));
  }

  stats(): DnsResponderStats {
    return { ...this.counts };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const abort of [...this.aborts]) abort();
    for (const sock of this.conns) sock.destroy();
    await Promise.all([
      new Promise<void>((resolve) => this.udp.close(() => resolve())),
      new Promise<void>((resolve) => this.tcp.close(() => resolve())),
    ]);
  }

  private onDatagram(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    const q = parseQuery(msg);
    if (!q) {
      this.counts.malformed++;
      return;
    }
    this.resolve(q).then((res) => {
      if (!this.closed) this.udp.send(fitUdp(res, q), rinfo.port, rinfo.address, () => {});
    }, (err) => this.internalError(err));
  }

  private onConnection(sock: net.Socket): void {
    if (this.closed || this.conns.size >= MAX_TCP_CONNECTIONS) {
      sock.destroy();
      return;
    }
    this.conns.add(sock);
    sock.on('close', () => this.conns.delete(sock));
    sock.on('error', () => {});
    sock.setNoDelay(true);
    sock.setTimeout(this.idleMs, () => sock.destroy());
    let pending: Buffer | undefined;
    sock.on('data', (chunk: Buffer) => {
      let buf = pending ? Buffer.concat([pending, chunk]) : chunk;
      pending = undefined;
      while (buf.length >= 2) {
        const len = buf.readUInt16BE(0);
        if (buf.length < 2 + len) break;
        // A copy: the chunk may be reused, and the query lives until its answer.
        const q = parseQuery(Buffer.from(buf.subarray(2, 2 + len)));
        buf = buf.subarray(2 + len);
        if (!q) {
          this.counts.malformed++;
          sock.destroy();
          return;
        }
        this.resolve(q).then((res) => {
          if (sock.destroyed) return;
          const frame = Buffer.allocUnsafe(2 + res.length);
          frame.writeUInt16BE(res.length, 0);
          res.copy(frame, 2);
          if (!sock.write(frame) && sock.writableLength > TCP_WRITE_HIGH_WATER && !sock.isPaused()) {
            sock.pause();
            sock.once('drain', () => sock.resume());
          }
        }, (err) => this.internalError(err));
      }
      if (buf.length > 0) pending = Buffer.from(buf);
    });
  }

  private internalError(err: unknown): void {
    this.opts.log('error', 'dns responder: internal error', { error: err instanceof Error ? err.message : String(err) });
  }

  private async resolve(q: Query): Promise<Buffer> {
    this.counts.queries++;
    if (q.opcode !== 0) return reply(q, RCODE.NOTIMP, false);
    if (q.qdcount !== 1) return reply(q, RCODE.FORMERR, false);
    let answer: MeshAnswer;
    try {
      answer = this.opts.lookup(q.name);
    } catch (err) {
      this.internalError(err);
      this.counts.failed++;
      return reply(q, RCODE.SERVFAIL, false);
    }
    switch (answer.kind) {
      case 'vip': {
        this.counts.mesh++;
        // Only A has data: AAAA and the rest get NOERROR with no answer (NODATA), so a resolver asking both falls back to A at once.
        const a = q.qclass === CLASS_IN && (q.qtype === TYPE_A || q.qtype === TYPE_ANY);
        return reply(q, RCODE.NOERROR, true, a ? [{ type: 'A', name: q.name, ttl: this.ttl, data: answer.address }] : []);
      }
      case 'nxdomain':
        this.counts.nxdomain++;
        return reply(q, RCODE.NXDOMAIN, true);
      case 'forward':
        return this.forward(q);
    }
  }

  private async forward(q: Query): Promise<Buffer> {
    if (this.upstreams.length === 0 || this.inflight >= this.maxInflight) {
      this.counts.failed++;
      return reply(q, RCODE.SERVFAIL, false);
    }
    this.inflight++;
    let got: Buffer | undefined;
    try {
      got = await this.askUpstreams(q);
    } finally {
      this.inflight--;
    }
    if (!got) {
      this.counts.failed++;
      return reply(q, RCODE.SERVFAIL, false);
    }
    this.counts.forwarded++;
    got.writeUInt16BE(q.id, 0);
    return got;
  }

  /** The upstreams in order, within one deadline; each gets an equal share of the time left. */
  private async askUpstreams(q: Query): Promise<Buffer | undefined> {
    const deadline = Date.now() + this.timeoutMs;
    // Our own id towards the upstreams: the client's ids are not random enough to trust an answer by.
    const sent = Buffer.from(q.raw);
    const n = this.upstreams.length;
    for (let i = 0; i < n && !this.closed; i++) {
      const left = deadline - Date.now();
      if (left <= 0) break;
      const up = this.upstreams[i];
      sent.writeUInt16BE(crypto.randomInt(0x10000), 0);
      const res = await this.exchange(up, sent, q.qEnd, left / (n - i));
      if (res && rcodeOf(res) !== RCODE.SERVFAIL && rcodeOf(res) !== RCODE.REFUSED) return res;
      this.opts.log('debug', 'dns responder: upstream gave no usable answer', { upstream: `${up.host}:${up.port}`, name: q.name, rcode: res ? rcodeOf(res) : undefined });
    }
    return undefined;
  }

  /** One question to one upstream over UDP, then over TCP when the answer is truncated. */
  private async exchange(up: Upstream, sent: Buffer, qEnd: number, budgetMs: number): Promise<Buffer | undefined> {
    const start = Date.now();
    const res = await this.exchangeUdp(up, sent, qEnd, budgetMs);
    if (!res || !(res.readUInt16BE(2) & dnsPacket.TRUNCATED_RESPONSE)) return res;
    const left = budgetMs - (Date.now() - start);
    return left > 0 ? this.exchangeTcp(up, sent, qEnd, left) : undefined;
  }

  /** Settles once with `finish`; the deadline, close() and errors all end in it. */
  private bounded<T>(budgetMs: number, run: (finish: (v: T | undefined) => void) => () => void): Promise<T | undefined> {
    return new Promise((resolve) => {
      let done = false;
      let cleanup: () => void = () => {};
      const finish = (v: T | undefined) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        this.aborts.delete(abort);
        cleanup();
        resolve(v);
      };
      const abort = () => finish(undefined);
      const timer = setTimeout(abort, budgetMs);
      this.aborts.add(abort);
      cleanup = run(finish);
      if (done) cleanup();
    });
  }

  private exchangeUdp(up: Upstream, sent: Buffer, qEnd: number, budgetMs: number): Promise<Buffer | undefined> {
    return this.bounded(budgetMs, (finish) => {
      // A socket per exchange: a fresh random source port, and only the upstream's packets reach it (connect).
      const sock = dgram.createSocket(up.family === 6 ? 'udp6' : 'udp4');
      sock.on('error', () => finish(undefined)); // ECONNREFUSED (nobody listens there) moves on at once
      sock.on('message', (msg) => {
        if (answers(msg, sent, qEnd)) finish(msg);
      });
      let closed = false;
      sock.connect(up.port, up.host, () => {
        // The deadline or close() may have closed it first: send() would throw.
        if (!closed) sock.send(sent, (err) => err && finish(undefined));
      });
      return () => {
        closed = true;
        try {
          sock.close();
        } catch {
          // already closed
        }
      };
    });
  }

  private exchangeTcp(up: Upstream, sent: Buffer, qEnd: number, budgetMs: number): Promise<Buffer | undefined> {
    return this.bounded(budgetMs, (finish) => {
      const sock = net.connect({ host: up.host, port: up.port });
      let buf = Buffer.alloc(0);
      sock.on('error', () => finish(undefined));
      sock.on('close', () => finish(undefined));
      sock.on('connect', () => {
        const frame = Buffer.allocUnsafe(2 + sent.length);
        frame.writeUInt16BE(sent.length, 0);
        sent.copy(frame, 2);
        sock.write(frame);
      });
      sock.on('data', (chunk: Buffer) => {
        buf = Buffer.concat([buf, chunk]);
        while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
          const msg = Buffer.from(buf.subarray(2, 2 + buf.readUInt16BE(0)));
          buf = buf.subarray(2 + msg.length);
          if (answers(msg, sent, qEnd)) return finish(msg);
        }
      });
      return () => sock.destroy();
    });
  }
}

async function bindUdp(address: string, port: number): Promise<dgram.Socket> {
  const sock = dgram.createSocket(net.isIPv6(address) ? 'udp6' : 'udp4');
  await new Promise<void>((resolve, reject) => {
    sock.once('error', reject);
    sock.bind({ address, port, exclusive: true }, () => {
      sock.off('error', reject);
      resolve();
    });
  });
  return sock;
}

async function listenTcp(address: string, port: number): Promise<net.Server> {
  const server = net.createServer({ pauseOnConnect: false });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: address, port, exclusive: true }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return server;
}

export async function startDnsResponder(opts: DnsResponderOptions): Promise<DnsResponder> {
  opts.upstreams.forEach(parseUpstream); // a bad upstream is an error before anything binds
  const wanted = opts.port ?? 53;
  // Port 0: the UDP port the kernel picks may be taken for TCP (an outgoing connection's local port); pick again.
  for (let attempt = 1; ; attempt++) {
    let udp: dgram.Socket;
    try {
      udp = await bindUdp(opts.address, wanted);
    } catch (err) {
      throw new Error(`DNS responder: cannot bind UDP ${opts.address}:${wanted}: ${(err as Error).message}`);
    }
    const port = udp.address().port;
    try {
      const tcp = await listenTcp(opts.address, port);
      opts.log('info', 'DNS responder listening', { address: opts.address, port, upstreams: opts.upstreams });
      return new Responder(opts, udp, tcp, opts.address, port);
    } catch (err) {
      udp.close();
      if (wanted !== 0 || (err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || attempt >= 10) {
        throw new Error(`DNS responder: cannot listen on TCP ${opts.address}:${port}: ${(err as Error).message}`);
      }
    }
  }
}
