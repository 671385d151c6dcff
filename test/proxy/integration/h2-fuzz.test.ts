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
import { Flag, FrameType, h2Request, H2Upstream } from '../../helpers/h2-tools';
import { Gen, plan, type Plan } from '../../helpers/h2-fuzz-corpus';
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
