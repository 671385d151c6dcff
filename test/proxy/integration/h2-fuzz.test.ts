// HTTP/2 frame fuzzing against a running sidecar: a bounded, seeded loop of
// raw connections (the preface, then a mix of valid and mutated frames:
// random types, flags, stream ids and lengths, truncated frames, random HPACK
// bytes, bit-flipped valid frames), a few in parallel. The sidecar must
// survive all of it: every CHECK_EVERY connections a well-formed request
// through it answers 200 (to an HTTP/1.1 and to an h2c upstream) and its
// admin port answers /ready; no error reaches the last-resort guard; every
// at the end no downstream connection is left counted once the fuzz clients
// have gone (with a TCP RST: a FIN alone is the subject of its own test).
//
// Reproduce a failure with the seed it prints: WEFT_FUZZ_SEED=<n>
// (WEFT_FUZZ_CONNECTIONS changes the count; the default keeps the file under ~20 s;
// WEFT_FUZZ_DUMP=<file> writes each connection's bytes there, hex, one line each).
import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import { admin, docs, exitGuard, HttpUpstream, Mesh, serviceYaml, T, waitFor, type Sidecar } from '../../helpers/proxy-harness';
import { seeded } from '../../helpers/prng';
import { Flag, frame, FrameType, h2Request, H2Upstream, literalBlock, PREFACE, settingsFrame, u32 } from '../../helpers/h2-tools';
import { uncaughtErrors } from '../../../src/proxy/last-resort';

const SEED = Number(process.env.WEFT_FUZZ_SEED ?? 0x2b1e5eed) >>> 0;
const CONNECTIONS = Number(process.env.WEFT_FUZZ_CONNECTIONS ?? 300);
const PARALLEL = 4;
const CHECK_EVERY = 25;
/** The most a connection waits for the server to react (bounds a server waiting for bytes that never come). */
const REACT_MS = 300;

let mesh: Mesh;
let sc: Sidecar;
let h1: HttpUpstream;
let h2: H2Upstream;

before(async () => {
  h1 = await HttpUpstream.start('h1');
  h2 = await H2Upstream.start('h2');
  mesh = await Mesh.start({
    'services.yaml': docs(serviceYaml({ name: 'h1svc', port: 80, endpoints: [h1.port] }), serviceYaml({ name: 'h2svc', port: 80, protocol: 'http2', endpoints: [h2.port] })),
  });
  sc = await mesh.sidecar({ nodeId: 'h2-fuzz' });
}, T);

after(async () => {
  exitGuard();
  await mesh.close();
  await Promise.all([h1.close(), h2.close()]);
}, T);

// ---- the generator ----

class Gen {
  private readonly rnd: () => number;
  constructor(seed: number) {
    this.rnd = seeded(seed);
  }
  int(n: number): number {
    return Math.floor(this.rnd() * n);
  }
  chance(p: number): boolean {
    return this.rnd() < p;
  }
  pick<X>(xs: readonly X[]): X {
    return xs[this.int(xs.length)];
  }
  bytes(n: number): Buffer {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }
  /** Mostly small odd client stream ids, sometimes anything (0, even, huge, reserved bit). */
  streamId(): number {
    if (this.chance(0.75)) return 1 + 2 * this.int(8);
    return this.pick([0, 2, 4, 0x7fffffff, 0xffffffff, this.int(2 ** 31)]);
  }
}

const AUTHORITIES = ['h1svc', 'h2svc', 'nowhere.example'];
const METHODS = ['GET', 'POST', 'HEAD', 'PUT', 'DELETE', 'OPTIONS', 'CONNECT', 'G E T'];

function requestBlock(g: Gen, i: number): Buffer {
  const fields: [string, string][] = [
    [':method', g.pick(METHODS)],
    [':scheme', g.pick(['http', 'https', 'ftp'])],
    [':authority', g.pick(AUTHORITIES)],
    [':path', g.pick([`/fuzz/${i}`, '/', '*', '', 'x', `/a b/${i}`])],
  ];
  for (let k = g.int(4); k > 0; k--) fields.push(g.pick<[string, string]>([['x-fuzz', String(i)], ['content-length', String(g.int(20))], ['te', g.pick(['trailers', 'gzip'])], ['connection', 'close'], ['X-Up', 'v'], ['x-bad', 'a\r\nb'], ['host', g.pick(AUTHORITIES)]]));
  if (g.chance(0.2)) fields.splice(g.int(fields.length), 1); // a pseudo-header or field missing
  if (g.chance(0.2)) fields.reverse(); // pseudo-headers after regular ones
  let block = literalBlock(fields);
  // Indexed static fields (:method GET, :path /, :scheme http) and random HPACK bytes.
  if (g.chance(0.2)) block = Buffer.concat([Buffer.from([0x82, 0x84, 0x86]), block]);
  if (g.chance(0.15)) block = Buffer.concat([block, g.bytes(1 + g.int(40))]);
  if (g.chance(0.1)) block = g.bytes(1 + g.int(60));
  return block;
}

/** One frame, valid in shape or not. */
function oneFrame(g: Gen, i: number): Buffer {
  const sid = g.streamId();
  switch (g.int(13)) {
    case 0:
      return settingsFrame(Array.from({ length: g.int(4) }, () => [1 + g.int(8), g.pick([0, 1, 2, 100, 16384, 16383, 2 ** 24, 2 ** 31, 2 ** 32 - 1, g.int(2 ** 32)])] as [number, number]), g.chance(0.2));
    case 1:
      return frame(FrameType.PING, g.chance(0.2) ? Flag.ACK : 0, g.chance(0.9) ? 0 : sid, g.bytes(g.chance(0.9) ? 8 : g.int(16)));
    case 2:
      return frame(FrameType.WINDOW_UPDATE, 0, g.chance(0.5) ? 0 : sid, u32(g.pick([0, 1, 65535, 2 ** 31 - 1, 2 ** 31, g.int(2 ** 32)])));
    case 3:
      return frame(FrameType.RST_STREAM, 0, sid, u32(g.int(16)));
    case 4:
      return frame(FrameType.PRIORITY, 0, sid, Buffer.concat([u32(g.chance(0.3) ? sid : g.int(2 ** 32)), Buffer.from([g.int(256)])]));
    case 5:
      return frame(FrameType.GOAWAY, 0, g.chance(0.9) ? 0 : sid, Buffer.concat([u32(g.int(2 ** 31)), u32(g.int(16)), g.bytes(g.int(8))]));
    case 6:
    case 7: {
      let flags = Flag.END_HEADERS | (g.chance(0.6) ? Flag.END_STREAM : 0);
      let payload = requestBlock(g, i);
      if (g.chance(0.15)) flags &= ~Flag.END_HEADERS;
      if (g.chance(0.1)) {
        flags |= Flag.PADDED;
        const pad = g.int(300);
        payload = Buffer.concat([Buffer.from([pad & 0xff]), payload, Buffer.alloc(g.chance(0.5) ? pad & 0xff : g.int(4))]);
      }
      if (g.chance(0.1)) {
        flags |= Flag.PRIORITY;
        payload = Buffer.concat([u32(g.chance(0.5) ? sid : g.int(2 ** 32)), Buffer.from([g.int(256)]), payload]);
      }
      return frame(FrameType.HEADERS, flags, sid, payload);
    }
    case 8:
      return frame(FrameType.CONTINUATION, g.chance(0.5) ? Flag.END_HEADERS : 0, sid, requestBlock(g, i));
    case 9: {
      let flags = g.chance(0.5) ? Flag.END_STREAM : 0;
      let payload = g.bytes(g.int(g.chance(0.9) ? 64 : 17000));
      if (g.chance(0.1)) {
        flags |= Flag.PADDED;
        payload = Buffer.concat([Buffer.from([g.int(256)]), payload]);
      }
      return frame(FrameType.DATA, flags, sid, payload);
    }
    case 10:
      return frame(FrameType.PUSH_PROMISE, Flag.END_HEADERS, sid, Buffer.concat([u32(2 + 2 * g.int(10)), requestBlock(g, i)]));
    case 11:
      return frame(10 + g.int(246), g.int(256), sid, g.bytes(g.int(32))); // an unknown type: must be ignored
    default:
      return frame(g.int(10), g.int(256), sid, g.bytes(g.int(48))); // any type, flags and payload
  }
}

/** A valid frame, sometimes damaged: bits flipped, the length, type or flags rewritten. */
function mutated(g: Gen, f: Buffer): Buffer {
  if (!g.chance(0.3)) return f;
  const out = Buffer.from(f);
  switch (g.int(4)) {
    case 0:
      for (let k = 1 + g.int(4); k > 0; k--) out[g.int(out.length)] ^= 1 << g.int(8);
      break;
    case 1:
      out.writeUIntBE(g.pick([0, 1, 8, out.length - 9 + 1, 16385, 2 ** 24 - 1, g.int(2 ** 24)]) & 0xffffff, 0, 3);
      break;
    case 2:
      out[3] = g.int(256);
      break;
    default:
      out[4] = g.int(256);
  }
  return out;
}

interface Plan {
  bytes: Buffer;
  /** The client ends with TCP RST instead of FIN. */
  reset: boolean;
  /** A short summary for failure messages. */
  summary: string;
}

function plan(g: Gen, i: number): Plan {
  const parts: Buffer[] = [];
  const kinds: string[] = [];
  const preface = g.int(20);
  if (preface === 0) parts.push(mutated(g, Buffer.concat([PREFACE, Buffer.alloc(9)])).subarray(0, PREFACE.length)), kinds.push('bad-preface');
  else if (preface === 1) kinds.push('no-settings'), parts.push(PREFACE);
  else parts.push(PREFACE, settingsFrame([[2, 0]]));
  for (let n = 1 + g.int(12); n > 0; n--) {
    const f = mutated(g, oneFrame(g, i));
    kinds.push(`${f[3]}/${f[4].toString(16)}/${f.readUInt32BE(5)}/${f.readUIntBE(0, 3)}`);
    parts.push(f);
  }
  if (g.chance(0.5)) parts.push(frame(FrameType.PING, 0, 0, Buffer.from('fuzzping'))), kinds.push('ping');
  let bytes = Buffer.concat(parts);
  if (g.chance(0.1)) {
    bytes = bytes.subarray(0, PREFACE.length + g.int(bytes.length - PREFACE.length)); // truncated mid-frame
    kinds.push(`truncated@${bytes.length}`);
  }
  return { bytes, reset: g.chance(0.2), summary: kinds.join(' ') };
}

interface Ran {
  /** How the server reacted before the client went away. */
  reaction: 'closed' | 'goaway' | 'ping-ack' | 'silent' | 'client-reset';
  gotBytes: number;
}

/**
 * One fuzz connection: writes the plan in 1-3 pieces, then waits for the server's reaction
 * (its close, a GOAWAY, or the ACK of the plan's final PING), at most REACT_MS (a server
 * still waiting for the rest of a truncated frame says nothing), and resets the connection.
 * Plans marked `reset` go away with a TCP RST right after writing.
 */
function runOne(p: Plan, g: Gen): Promise<Ran> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port: sc.outboundPort });
    let got = Buffer.alloc(0);
    let reaction: Ran['reaction'] = p.reset ? 'client-reset' : 'silent';
    let timer: NodeJS.Timeout | undefined;
    const done = () => {
      clearTimeout(timer);
      if (!s.destroyed) s.resetAndDestroy();
    };
    s.on('data', (c: Buffer) => {
      got = Buffer.concat([got, c]);
      for (let at = 0; at + 9 <= got.length; ) {
        const len = got.readUIntBE(at, 3);
        if (at + 9 + len > got.length) break;
        const type = got[at + 3];
        if (type === FrameType.GOAWAY) reaction = 'goaway';
        else if (type === FrameType.PING && got[at + 4] & Flag.ACK && got.subarray(at + 9, at + 17).toString('latin1') === 'fuzzping') reaction = 'ping-ack';
        at += 9 + len;
      }
      if (reaction === 'goaway' || reaction === 'ping-ack') done();
    });
    s.on('error', () => {});
    s.once('end', () => {
      if (reaction === 'silent') reaction = 'closed';
      done();
    });
    s.once('close', () => {
      clearTimeout(timer);
      resolve({ reaction, gotBytes: got.length });
    });
    s.once('connect', () => {
      const cuts = [0, ...Array.from({ length: g.int(3) }, () => g.int(p.bytes.length)).sort((a, b) => a - b), p.bytes.length];
      for (let k = 0; k + 1 < cuts.length; k++) if (cuts[k + 1] > cuts[k]) s.write(p.bytes.subarray(cuts[k], cuts[k + 1]));
      if (p.reset) return s.resetAndDestroy();
      timer = setTimeout(done, REACT_MS);
    });
  });
}

async function probe(where: string): Promise<void> {
  for (const authority of ['h1svc', 'h2svc']) {
    const r = await h2Request(`http://127.0.0.1:${sc.outboundPort}`, { ':authority': authority, ':path': `/probe/${encodeURIComponent(where)}` }).catch((err: Error) => {
      throw new Error(`${where}: a well-formed request to ${authority} failed: ${err.message}`);
    });
    assert.equal(r.status, 200, `${where}: a well-formed request to ${authority} answers 200 (got ${r.status} ${r.body.slice(0, 200)})`);
  }
  assert.equal((await admin(sc, '/ready')).status, 200, `${where}: /ready`);
}

test(`h2 fuzz: ${CONNECTIONS} connections of random and mutated frames (seed ${SEED}); the sidecar serves on`, { timeout: 60_000 }, async (t) => {
  t.diagnostic(`WEFT_FUZZ_SEED=${SEED} WEFT_FUZZ_CONNECTIONS=${CONNECTIONS}`);
  const g = new Gen(SEED);
  const guard = uncaughtErrors();
  const active = sc.proxy.stats.downstreamConnectionsActive;
  const started = Date.now();
  const recent: string[] = [];
  const reactions: Record<string, number> = {};
  try {
    await probe('start');
    for (let i = 0; i < CONNECTIONS; i += PARALLEL) {
      const batch = Array.from({ length: Math.min(PARALLEL, CONNECTIONS - i) }, (_, k) => plan(g, i + k));
      batch.forEach((p, k) => recent.push(`#${i + k}: ${p.summary}${p.reset ? ' RST' : ' FIN'}`));
      if (process.env.WEFT_FUZZ_DUMP) for (const p of batch) fs.appendFileSync(process.env.WEFT_FUZZ_DUMP, `${p.bytes.toString('hex')} ${p.reset ? 'RST' : 'FIN'}\n`);
      recent.splice(0, Math.max(0, recent.length - 3 * PARALLEL));
      const results = await Promise.all(batch.map((p) => runOne(p, g)));
      for (const r of results) reactions[r.reaction] = (reactions[r.reaction] ?? 0) + 1;
      assert.equal(uncaughtErrors() - guard, 0, 'an error escaped every handler of the proxy (the last-resort guard caught it)');
      if ((i / PARALLEL) % Math.ceil(CHECK_EVERY / PARALLEL) === 0) await probe(`after connection ${i}`);
    }
    await probe('end');
    t.diagnostic(`${CONNECTIONS} connections in ${Date.now() - started} ms; the server's reactions: ${JSON.stringify(reactions)}`);
    await waitFor(() => sc.proxy.stats.downstreamConnectionsActive === active, 5000, `the downstream connections gauge back to ${active} (now ${sc.proxy.stats.downstreamConnectionsActive})`);
  } catch (err) {
    throw new Error(`${(err as Error).message}\nreproduce with WEFT_FUZZ_SEED=${SEED}; the last connections:\n  ${recent.join('\n  ')}`, { cause: err });
  }
});
