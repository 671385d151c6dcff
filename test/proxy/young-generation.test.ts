// The young generation held at its initial size through a start, and let grow
// once scavenges come as often as under traffic. V8's flags are per process, so
// each case runs in a child node.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';

const MODULE = path.join(__dirname, '../../src/proxy/young-generation.js');

/** Runs `body` in a child (with node `flags`) after holdYoungGeneration(); returns what it printed as JSON. */
function inChild(body: string, opts: { flags?: string[]; env?: NodeJS.ProcessEnv; idleMs?: number; timeoutMs?: number } = {}): Record<string, number> {
  const script = `
    const v8 = require('node:v8');
    const newSpace = () => v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size / 1048576;
    const young = require(${JSON.stringify(MODULE)}).holdYoungGeneration(${JSON.stringify({ idleMs: opts.idleMs })});
    // What a start does: objects that live on (here 300k, ~20 MiB).
    const kept = [];
    for (let i = 0; i < 3e5; i++) kept.push({ i, s: 'x' + i });
    const held = newSpace();
    ${body}
  `;
  const out = execFileSync(process.execPath, [...(opts.flags ?? []), '-e', script], { env: { ...process.env, NODE_OPTIONS: '', ...opts.env }, encoding: 'utf8', timeout: opts.timeoutMs ?? 30_000 });
  return JSON.parse(out) as Record<string, number>;
}

// Traffic: short-lived garbage with a few survivors, until the young generation grows (5 s at most).
const TRAFFIC = `
  young.releaseUnderLoad();
  const live = [];
  const deadline = Date.now() + 5000;
  const step = () => {
    for (let i = 0; i < 2e4; i++) { const o = { i, s: 'y' + i }; if (i % 50 === 0) { live.push(o); if (live.length > 2e4) live.shift(); } }
    if (newSpace() > held || Date.now() > deadline) return console.log(JSON.stringify({ held, loaded: newSpace() }));
    setImmediate(step);
  };
  step();
`;

test('a start leaves the young generation at its initial size (1 MiB semi-spaces) where V8 would grow it', () => {
  const { held } = inChild('console.log(JSON.stringify({ held }))');
  assert.ok(held <= 2, `new space ${held} MiB`);
  // Without the hold (a flag of the user's) the same allocations grow it.
  const { held: free } = inChild('console.log(JSON.stringify({ held }))', { flags: ['--semi-space-growth-factor=2'] });
  assert.ok(free > held, `new space ${free} MiB without the hold, ${held} MiB with it`);
});

test('under traffic (frequent scavenges) the young generation grows again', () => {
  const { held, loaded } = inChild(TRAFFIC);
  assert.ok(held <= 2, `new space ${held} MiB`);
  assert.ok(loaded > held, `still ${loaded} MiB after 5 s of scavenges`);
});

// Traffic as above until the young generation has grown, then none: how long until it is back at its held size (40 s at most).
const TRAFFIC_THEN_IDLE = `
  young.releaseUnderLoad();
  const live = [];
  const started = Date.now();
  const load = () => {
    for (let i = 0; i < 2e4; i++) { const o = { i, s: 'y' + i }; if (i % 50 === 0) { live.push(o); if (live.length > 2e4) live.shift(); } }
    if (newSpace() > held || Date.now() > started + 5000) return idle(newSpace(), Date.now());
    setImmediate(load);
  };
  const idle = (loaded, since) => {
    const check = setInterval(() => {
      if (newSpace() > held && Date.now() < since + 40_000) return;
      clearInterval(check);
      console.log(JSON.stringify({ held, loaded, after: newSpace(), idleFor: Date.now() - since }));
    }, 200);
  };
  load();
`;

test('once the traffic stops, the young generation is given back: held and shrunk to its initial size', () => {
  const { held, loaded, after, idleFor } = inChild(TRAFFIC_THEN_IDLE, { idleMs: 6000, timeoutMs: 60_000 });
  assert.ok(loaded > held, `still ${loaded} MiB after 5 s of scavenges`);
  assert.ok(after <= held, `new space ${after} MiB ${idleFor} ms after the traffic stopped (held: ${held} MiB, loaded: ${loaded} MiB)`);
});

test("a young-generation flag of the user's (node's flags or NODE_OPTIONS) is left alone", () => {
  const { held } = inChild('console.log(JSON.stringify({ held }))', { env: { NODE_OPTIONS: '--max-semi-space-size=4' } });
  assert.ok(held > 2, `new space ${held} MiB: held despite the user's flag`);
});
