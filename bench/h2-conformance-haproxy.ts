// HTTP/2 conformance, weft against HAProxy: the case list of
// test/helpers/h2-frames.py (malformed requests, flow-control abuse, floods)
// run against a weft sidecar's outbound listener and against HAProxy 2.6 as
// an h2c front (`bind … proto h2`), each to an HTTP/1.1 backend of its own
// that counts the requests that reach it complete, by x-case. Prints one row
// per case: what each server did (status, RST_STREAM code, GOAWAY code,
// closed) and whether the request was forwarded. Not a test: it asserts
// nothing, it shows the difference, with a note on each known one (NOTES).
// Its --markdown output is test/proxy/integration/h2-conformance.md.
//
//   npm run build && node dist/bench/h2-conformance-haproxy.js [--cases a,b] [--markdown]
import * as fs from 'node:fs';
import * as path from 'node:path';
import { arg, requireTool, startProcess, tempDir, waitForPort } from './peers';
import { docs, freePort, HttpUpstream, Mesh, serviceYaml } from '../test/helpers/proxy-harness';
import { describeOutcome, H2Frames, h2Request, toolMissing, type CaseOutcome, type FramesTarget } from '../test/helpers/h2-tools';

const SPACE = 'weft resets the stream (RFC 9113 §8.2.1: a value with whitespace at either end is malformed); HAProxy forwards it as it treats it.';
/** Why weft and HAProxy differ, case by case (a case not listed behaves the same on both). */
const NOTES: Record<string, string> = {
  conn_transfer_encoding: 'Both refuse; HAProxy also ends the connection, weft resets only the stream (RFC 9113 §8.1.1: a malformed request is a stream error).',
  cl_without_data: 'content-length 5 and END_STREAM on HEADERS: weft resets it (RFC 9113 §8.1.1: malformed), HAProxy forwards it.',
  name_empty: 'weft resets the stream (an empty name is malformed, §8.2.1); HAProxy ends the connection (COMPRESSION_ERROR).',
  value_leading_space: SPACE,
  value_trailing_space: SPACE,
  value_trailing_tab: SPACE,
  path_asterisk_get: 'weft resets `:path: *` on a GET (only OPTIONS may use it, §8.3.1); HAProxy forwards it.',
  host_differs: 'weft refuses a host that names another authority than :authority (400 DPE, RFC 9113 §8.3.1); HAProxy forwards it.',
  connect: 'weft answers 405 (it does not tunnel), then RST_STREAM(NO_ERROR) ends the request; HAProxy refuses the stream.',
  data_closed_stream: 'weft ignores DATA on a closed stream (RFC 9113 §5.1 allows either: it may have been in flight when weft reset the stream); HAProxy resets it with STREAM_CLOSED.',
  headers_lower_stream_id: 'weft applies its HPACK state and ignores it, as a late block on a stream it closed (§5.1.1 wants PROTOCOL_ERROR for a new stream numbered below one used); HAProxy ends the connection.',
  data_over_window: 'Not comparable: on weft the request goes to a route that holds its body (else the window weft grants as it reads makes the bytes legal); HAProxy reads the body and grants window, so the DATA was legal there.',
  settings_flood: 'Both queue the ACKs and serve on: 100,001 of them are 900 KB, under the 1 MiB of unread replies weft allows a connection.',
  ping_flood: 'weft ends a connection that leaves more than 1 MiB of PING ACKs unread (ENHANCE_YOUR_CALM); HAProxy serves on.',
  rapid_reset: 'weft routes a stream only after the read it came in: none reaches the backend, and resets beyond a burst of 1,000 end the connection (ENHANCE_YOUR_CALM). HAProxy forwards several hundred (the count varies run to run) and serves on.',
  continuation_flood: 'Both close early; weft stops at 8 CONTINUATION frames (ENHANCE_YOUR_CALM), HAProxy sends INTERNAL_ERROR.',
  huge_header_block: 'Both end the connection: weft for more than 8 CONTINUATION frames (ENHANCE_YOUR_CALM), HAProxy with INTERNAL_ERROR.',
  huge_single_header: 'weft answers 431 (the header list is over the 64 KiB it advertised) and serves on; HAProxy ends the connection (INTERNAL_ERROR).',
  many_small_headers: 'Both end the connection: weft past 8 CONTINUATION frames (ENHANCE_YOUR_CALM); HAProxy sends INTERNAL_ERROR.',
  client_goaway: 'Both complete the stream in flight; weft answers the client\'s GOAWAY with its own before closing.',
};

interface Side {
  name: string;
  target: FramesTarget;
  backend: HttpUpstream;
  probe(): Promise<number>;
}

function completedFor(u: HttpUpstream, tag: string): number {
  return u.seen.filter((s) => s.headers['x-case'] === tag).length;
}

async function runSide(frames: H2Frames, side: Side, name: string, override: Partial<FramesTarget>): Promise<string> {
  const before = completedFor(side.backend, name);
  let o: CaseOutcome;
  try {
    o = await frames.run(name, { ...side.target, ...override });
  } catch (err) {
    return `driver failed: ${(err as Error).message.slice(0, 80)}`;
  }
  const alive = await side.probe().catch(() => 0);
  const forwarded = completedFor(side.backend, name) - before;
  const extra: string[] = [];
  if (o.followup !== null) extra.push(`next on conn ${o.followup}`);
  if (o.goaways.length > 1) extra.push(`GOAWAYs ${o.goaways.join(',')}`);
  for (const k of ['advertised', 'refused', 'other_status', 'settings_acks', 'responses', 'bytes_sent', 'closed_ms_after_goaway']) if (o.info[k] !== undefined && o.info[k] !== null) extra.push(`${k} ${o.info[k]}`);
  if (alive !== 200) extra.push(`PROBE ${alive || 'failed'}`);
  return `${describeOutcome(o)}; fwd ${forwarded ? `yes (${forwarded})` : 'no'}${extra.length ? `; ${extra.join(', ')}` : ''}`;
}

async function main(): Promise<void> {
  const haproxy = requireTool('haproxy');
  const missing = toolMissing('python3-h2');
  if (missing) throw new Error(missing);
  const dir = tempDir('weft-h2-conformance-');
  const weftBackend = await HttpUpstream.start('weft-backend');
  const haBackend = await HttpUpstream.start('haproxy-backend');
  // weft: the cases' authority routes to weftBackend; `held` delays requests in its fault filter,
  // so data_over_window meets a server that reads none of the body (see the conformance test).
  const mesh = await Mesh.start({
    'services.yaml': docs(serviceYaml({ name: 'h1svc', port: 80, endpoints: [weftBackend.port] }), serviceYaml({ name: 'held', port: 80, endpoints: [weftBackend.port] })),
    'held.yaml': `apiVersion: weft.dev/v1
kind: TrafficPolicy
metadata: { name: held }
spec:
  targetRef: { name: held }
  fault: { delay: { fixed: 10s } }
`,
  });
  const sc = await mesh.sidecar({ nodeId: 'bench-h2' });
  const haPort = await freePort();
  const cfg = `global
  nbthread 1
  maxconn 4096
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  option http-keep-alive
frontend fe
  bind 127.0.0.1:${haPort} proto h2
  default_backend be
backend be
  server s1 127.0.0.1:${haBackend.port}
`;
  fs.writeFileSync(path.join(dir, 'haproxy-h2c.cfg'), cfg);
  const ha = startProcess('haproxy-h2c', haproxy, ['-f', path.join(dir, 'haproxy-h2c.cfg'), '-db']);
  await waitForPort(haPort);
  const frames = await H2Frames.start();
  const sides: Side[] = [
    {
      name: 'weft',
      target: { port: sc.outboundPort, authority: 'h1svc' },
      backend: weftBackend,
      probe: async () => (await h2Request(`http://127.0.0.1:${sc.outboundPort}`, { ':authority': 'h1svc', ':path': '/probe' })).status,
    },
    {
      name: 'HAProxy 2.6',
      target: { port: haPort, authority: 'h1svc' },
      backend: haBackend,
      probe: async () => (await h2Request(`http://127.0.0.1:${haPort}`, { ':authority': 'h1svc', ':path': '/probe' })).status,
    },
  ];
  const only = arg('cases', '');
  const names = only ? only.split(',') : frames.cases;
  const rows: string[][] = [];
  try {
    for (const name of names) {
      const row = [name];
      const note = NOTES[name] ?? 'Same.';
      for (const side of sides) {
        const override: Partial<FramesTarget> = name === 'data_over_window' && side.name === 'weft' ? { authority: 'held', followup_authority: 'h1svc' } : {};
        row.push(await runSide(frames, side, name, override));
      }
      row.push(note);
      rows.push(row);
      process.stderr.write(`${name}\n`);
    }
  } finally {
    await frames.close();
    await ha.stop();
    await mesh.close().catch(() => {});
    await Promise.all([weftBackend.close(), haBackend.close()]);
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const header = ['case', ...sides.map((s) => s.name), 'note'];
  if (process.argv.includes('--markdown')) {
    console.log(`| ${header.join(' | ')} |\n|${header.map(() => '---').join('|')}|`);
    for (const r of rows) console.log(`| ${r.join(' | ')} |`);
  } else {
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
    const line = (r: string[]) => r.map((c, i) => c.padEnd(widths[i])).join(' | ');
    console.log(line(header));
    console.log(widths.map((w) => '-'.repeat(w)).join('-|-'));
    for (const r of rows) console.log(line(r));
  }
  console.log('\noutcome: status | RST <code> | GOAWAY <code> | closed | ignored; fwd: a request of the case completed at the backend; "next on conn": a well-formed request on the same connection afterwards');
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
