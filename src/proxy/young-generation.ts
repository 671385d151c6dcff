// A sidecar's start allocates ~14 MiB that lives on (modules, the proto set,
// its first config). V8 grows the young generation as objects survive it, so
// a start alone takes the semi-spaces to 8 MiB, which an idle sidecar then
// keeps committed (~10 MiB of RSS) while using a few hundred KB of them.
// Growth is held back through the start and, once the proxy is ready, until
// traffic shows up as frequent scavenges; then it grows in one step to V8's
// maximum, where a loaded sidecar's young generation ends up anyway: the same
// scavenges per request under load as without the hold (BENCHMARKS.md, issue 15).
//
// V8 never gives that young generation back on its own (its memory reducer
// only starts when the old generation has grown, which traffic through a
// sidecar does not do): after a burst, an idle sidecar kept +28 MiB for good.
// So when the scavenges stop, the hold comes back and one full GC lets V8
// shrink the young generation, which it does at a GC that sees a low
// allocation rate (under 1 MB/s over its last 5 s).
import { PerformanceObserver, constants, performance } from 'node:perf_hooks';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';

const FLAG = 'semi-space-growth-factor';
/**
 * The factor under load: one growth from the initial 1 MiB semi-spaces to V8's
 * maximum (16 MiB on 64-bit), which is where the default factor of 2 takes a
 * loaded sidecar too, only after seconds of extra scavenges.
 */
const LOAD_FACTOR = 16;
/**
 * Scavenges within one second that mean traffic (at 1 MiB semi-spaces: ~5 MiB/s
 * allocated, some hundreds of requests a second; an idle sidecar scavenged once
 * in the 20 s after its start).
 */
const LOAD_SCAVENGES_PER_SECOND = 5;
/**
 * No scavenge for this long means the traffic has stopped. Longer than the 5 s
 * over which V8 measures the allocation rate it decides the shrinking on, so
 * that the rate it sees is the idle one.
 */
const IDLE_MS = 10_000;

export interface YoungGeneration {
  /** Called once the proxy is ready: from then on, traffic grows the young generation and idleness shrinks it back. */
  releaseUnderLoad(): void;
}

/**
 * Holds the young generation at its initial size; `releaseUnderLoad()`, called
 * once the proxy is ready, lets it grow when scavenges come
 * LOAD_SCAVENGES_PER_SECOND a second (a start scavenges as often) and holds it
 * again, shrunk, after `idleMs` without one. A no-op when the user set the young
 * generation's size or growth in NODE_OPTIONS or node's flags.
 */
export function holdYoungGeneration(opts: { idleMs?: number } = {}): YoungGeneration {
  const userFlags = [...process.execArgv, process.env.NODE_OPTIONS ?? ''].join(' ');
  if (/semi[-_]space/.test(userFlags)) return { releaseUnderLoad: () => {} };
  v8.setFlagsFromString(`--${FLAG}=1`);
  const heldSize = newSpaceSize();
  const idleMs = opts.idleMs ?? IDLE_MS;
  return { releaseUnderLoad: () => followTraffic(heldSize, idleMs) };
}

function followTraffic(heldSize: number, idleMs: number): void {
  let grown = false;
  let lastScavenge = performance.now();
  const recent: number[] = [];
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      if ((entry as unknown as { detail?: { kind?: number } }).detail?.kind !== constants.NODE_PERFORMANCE_GC_MINOR) continue;
      lastScavenge = entry.startTime;
      if (grown) continue;
      recent.push(entry.startTime);
      while (recent.length > 0 && recent[0] < entry.startTime - 1000) recent.shift();
      if (recent.length >= LOAD_SCAVENGES_PER_SECOND) {
        recent.length = 0;
        grown = true;
        v8.setFlagsFromString(`--${FLAG}=${LOAD_FACTOR}`);
      }
    }
  });
  observer.observe({ entryTypes: ['gc'] });
  // Checked five times per idle period; unref'd: it never keeps a stopping process alive.
  setInterval(() => {
    if (!grown || performance.now() - lastScavenge < idleMs) return;
    v8.setFlagsFromString(`--${FLAG}=1`);
    fullGc();
    // Not shrunk (the allocation rate V8 saw was not low yet): tried again after the next idle period.
    if (newSpaceSize() <= heldSize) grown = false;
    else lastScavenge = performance.now();
  }, idleMs / 5).unref();
}

let collect: (() => void) | undefined;

/** A full GC; `gc` is exposed only to a context made after --expose-gc is set, so one is made for it, once. */
function fullGc(): void {
  if (!collect) {
    v8.setFlagsFromString('--expose-gc');
    collect = vm.runInNewContext('gc') as () => void;
  }
  collect();
}

function newSpaceSize(): number {
  return v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')?.space_size ?? 0;
}
