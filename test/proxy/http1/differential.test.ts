// Differential test: weft's parser against Node's llhttp-based node:http
// server, on a corpus of valid and smuggling/malformed requests plus seeded
// random mutations of it. Fails when weft accepts a message (head and body
// framing) that node:http rejects or cannot finish, or when both accept but
// disagree on method, target or body length. weft rejecting what node:http
// accepts is allowed (weft is stricter) and is summarised in the diagnostics.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { ChunkedScanner } from '../../../src/proxy/http1/chunked';
import { HttpParseError } from '../../../src/proxy/http1/errors';
import { parseRequestHead } from '../../../src/proxy/http1/head-parser';
import { mutate, prng } from './mutate';
import { NodeHttpOracle, type Verdict } from './node-http-oracle';
import { bytes } from './support';

const CORPUS: { name: string; raw: string }[] = JSON.parse(
  fs.readFileSync(path.resolve(__dirname, '../../../../test/fixtures/http1/corpus.json'), 'utf8'),
);
// Other seeds and counts explore further: HTTP1_DIFF_SEED=7 HTTP1_DIFF_MUTANTS=50000 node --test dist/test/proxy/http1/differential.test.js
const SEED = Number(process.env.HTTP1_DIFF_SEED ?? 0x5eed);
const MUTANTS = Number(process.env.HTTP1_DIFF_MUTANTS ?? 5000);
const CONCURRENCY = 16;

/** weft's verdict on the first message in `buf`, in the oracle's terms. */
function weftVerdict(buf: Buffer): Verdict {
  try {
    const head = parseRequestHead(buf);
    if (!head) return { kind: 'incomplete' };
    const accepted = (bodyLength: number, tunnel = false): Verdict => ({ kind: 'accepted', method: head.method, target: head.target, bodyLength, tunnel });
    if (head.upgrade !== undefined) return accepted(0, true);
    const rest = buf.length - head.headLength;
    switch (head.body.kind) {
      case 'length':
        return rest >= head.body.length ? accepted(head.body.length) : { kind: 'incomplete' };
      case 'chunked': {
        const scanner = new ChunkedScanner();
        return scanner.scan(buf, head.headLength, buf.length) < 0 ? { kind: 'incomplete' } : accepted(scanner.dataLength);
      }
      default:
        return accepted(0);
    }
  } catch (err) {
    if (err instanceof HttpParseError) return { kind: 'rejected', code: err.code };
    throw err;
  }
}

/** Why a pair of verdicts breaks the rule, or undefined when it does not. */
function disagreement(weft: Verdict, node: Verdict): string | undefined {
  if (weft.kind !== 'accepted') return undefined;
  if (node.kind === 'rejected') return `weft accepts, node:http rejects (${node.code})`;
  if (node.kind === 'incomplete') return 'weft accepts, node:http waits for more bytes (framing differs)';
  if (weft.method !== node.method || weft.target !== node.target) return `method/target differ: weft ${weft.method} ${weft.target}, node ${node.method} ${node.target}`;
  if (!weft.tunnel && !node.tunnel && weft.bodyLength !== node.bodyLength) return `body length differs: weft ${weft.bodyLength}, node ${node.bodyLength}`;
  return undefined;
}

async function mapLimited<T, R>(items: T[], limit: number, fn: (x: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]);
    }
  };
  await Promise.all(Array.from({ length: limit }, lane));
  return out;
}

const oracle = new NodeHttpOracle();
before(() => oracle.start());
after(() => oracle.close());

interface Case {
  name: string;
  raw: string;
}

async function runCases(t: { diagnostic(msg: string): void }, cases: Case[]): Promise<void> {
  const verdicts = await mapLimited(cases, CONCURRENCY, (c) => oracle.judge(bytes(c.raw)));
  const problems: string[] = [];
  const stricter = new Map<string, { count: number; example: string }>();
  const tally = { bothAccept: 0, bothRefuse: 0, weftStricter: 0, problems: 0 };
  cases.forEach((c, i) => {
    const weft = weftVerdict(bytes(c.raw));
    const node = verdicts[i];
    const why = disagreement(weft, node);
    if (why) {
      tally.problems++;
      problems.push(`${c.name}: ${why}\n    ${JSON.stringify(c.raw)}`);
    } else if (weft.kind === 'accepted') {
      tally.bothAccept++;
    } else if (node.kind === 'accepted') {
      tally.weftStricter++;
      const key = weft.kind === 'rejected' ? weft.code : 'incomplete';
      const entry = stricter.get(key) ?? { count: 0, example: JSON.stringify(c.raw).slice(0, 160) };
      entry.count++;
      stricter.set(key, entry);
    } else {
      tally.bothRefuse++;
    }
  });
  t.diagnostic(`${cases.length} cases: ${JSON.stringify(tally)}`);
  for (const [code, { count, example }] of [...stricter].sort((a, b) => b[1].count - a[1].count)) {
    t.diagnostic(`weft refuses, node:http accepts: ${code} x${count}, e.g. ${example}`);
  }
  assert.deepEqual(problems, [], `${problems.length} messages weft accepts against node:http's verdict`);
}

test('the oracle reads node:http right: accepted with body length, rejected, incomplete, tunnel', async () => {
  const judge = (raw: string) => oracle.judge(bytes(raw));
  const ok = (method: string, target: string, bodyLength: number, tunnel = false) => ({ kind: 'accepted', method, target, bodyLength, tunnel });
  assert.deepEqual(await judge('GET /a?b HTTP/1.1\r\nHost: a\r\n\r\n'), ok('GET', '/a?b', 0));
  assert.deepEqual(await judge('POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc'), ok('POST', '/', 3));
  assert.deepEqual(await judge('POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n1\r\nc\r\n0\r\n\r\n'), ok('POST', '/', 3));
  assert.deepEqual(await judge('GET / HTTP/1.1\r\nHost: a\r\n\r\nBAD\x00 / HTTP/1.1\r\n'), ok('GET', '/', 0), 'an error in the next message is not this one\'s');
  assert.deepEqual(await judge('CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n'), ok('CONNECT', 'a:443', 0, true));
  assert.deepEqual(await judge('POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'), { kind: 'rejected', code: 'HPE_INVALID_TRANSFER_ENCODING' });
  assert.deepEqual(await judge('GET / HTTP/1.1\r\n\r\n'), { kind: 'rejected', code: 'CLOSED_BY_NODE_HTTP' }, 'node:http refuses a missing Host itself');
  assert.deepEqual(await judge('POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc'), { kind: 'incomplete' });
  assert.deepEqual(await judge('GET / HTTP/1.1\r\nHost: a\r\n'), { kind: 'incomplete' });
});

test('corpus: weft never accepts what node:http rejects, and agrees on what both accept', async (t) => {
  await runCases(t, CORPUS);
});

test(`${MUTANTS} seeded mutations of the corpus (seed ${SEED})`, async (t) => {
  const rand = prng(SEED);
  const cases: Case[] = [];
  for (let i = 0; i < MUTANTS; i++) {
    const base = CORPUS[Math.floor(rand() * CORPUS.length)];
    cases.push({ name: `mutant ${i} of "${base.name}"`, raw: mutate(base.raw, rand) });
  }
  await runCases(t, cases);
});

/** Positions where a single byte decides between parsers: each gets all 256 byte values. */
const BYTE_SLOTS: [string, (ch: string) => string][] = [
  ['method', (ch) => `G${ch}ET / HTTP/1.1\r\nHost: a\r\n\r\n`],
  ['target start', (ch) => `GET ${ch}a HTTP/1.1\r\nHost: a\r\n\r\n`],
  ['target', (ch) => `GET /a${ch}b HTTP/1.1\r\nHost: a\r\n\r\n`],
  ['absolute-form host', (ch) => `GET http://a${ch}b/ HTTP/1.1\r\nHost: a\r\n\r\n`],
  ['version', (ch) => `GET / HTTP/1.${ch}\r\nHost: a\r\n\r\n`],
  ['header name', (ch) => `GET / HTTP/1.1\r\nHost: a\r\nX${ch}Y: 1\r\n\r\n`],
  ['header value', (ch) => `GET / HTTP/1.1\r\nHost: a\r\nX: a${ch}b\r\n\r\n`],
  ['header value start', (ch) => `GET / HTTP/1.1\r\nHost: a\r\nX: ${ch}b\r\n\r\n`],
  ['header value end', (ch) => `GET / HTTP/1.1\r\nHost: a\r\nX: b${ch}\r\n\r\n`],
  ['Host', (ch) => `GET / HTTP/1.1\r\nHost: a${ch}b\r\n\r\n`],
  ['Content-Length', (ch) => `POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1${ch}\r\n\r\nxxxxxxxxxxxxxxxxxxxx`],
  ['Transfer-Encoding', (ch) => `POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked${ch}\r\n\r\n0\r\n\r\n`],
  ['chunk size', (ch) => `POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1${ch}\r\nx\r\n0\r\n\r\n`],
  ['chunk extension name', (ch) => `POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1;a${ch}\r\nx\r\n0\r\n\r\n`],
  ['quoted chunk extension value', (ch) => `POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1;a="${ch}"\r\nx\r\n0\r\n\r\n`],
  ['chunk data end', (ch) => `POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx${ch}\n0\r\n\r\n`],
  ['trailer field', (ch) => `POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX${ch}: a${ch}\r\n\r\n`],
];

test('every byte value in each position where one byte decides', async (t) => {
  const cases: Case[] = [];
  for (const [slot, make] of BYTE_SLOTS) {
    for (let b = 0; b < 256; b++) cases.push({ name: `${slot}, byte 0x${b.toString(16).padStart(2, '0')}`, raw: make(String.fromCharCode(b)) });
  }
  await runCases(t, cases);
});

test('the corpus keeps its purpose: valid messages both accept, smuggling attempts weft refuses', () => {
  const accepted = CORPUS.filter((c) => weftVerdict(bytes(c.raw)).kind === 'accepted').map((c) => c.name);
  for (const name of ['POST chunked', 'chunked with extensions and trailers', 'absolute-form', 'CONNECT', 'pipelined requests']) assert.ok(accepted.includes(name), name);
  for (const name of ['CL.TE', 'TE.CL', 'TE with space before the colon', 'TE folded', 'duplicate equal Content-Length', 'chunk size overflow']) assert.ok(!accepted.includes(name), name);
});
