// A sidecar's start allocates ~14 MiB that lives on (modules, the proto set,
// its first config). V8 grows the young generation as objects survive it, so
// a start alone takes the semi-spaces to 8 MiB, which an idle sidecar then
// keeps committed (~10 MiB of RSS) while using a few hundred KB of them.
// Growth is held back through the start and, once the proxy is ready, until
// traffic shows up as frequent scavenges; then it grows in one step to V8's
// maximum, where a loaded sidecar's young generation ends up anyway: the same
// scavenges per request under load as without the hold (BENCHMARKS.md, issue 15).
import { PerformanceObserver, constants } from 'node:perf_hooks';
import * as v8 from 'node:v8';

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
 * Holds the young generation at its initial size; the returned function, called
 * once the proxy is ready, lets it grow again when scavenges come
 * LOAD_SCAVENGES_PER_SECOND a second (a start scavenges as often). A no-op when
 * the user set the young generation's size or growth in NODE_OPTIONS or node's flags.
 */
export function holdYoungGeneration(): { releaseUnderLoad(): void } {
  const userFlags = [...process.execArgv, process.env.NODE_OPTIONS ?? ''].join(' ');
  if (/semi[-_]space/.test(userFlags)) return { releaseUnderLoad: () => {} };
  v8.setFlagsFromString(`--${FLAG}=1`);
  return { releaseUnderLoad: () => releaseUnderLoad() };
}

function releaseUnderLoad(): void {
  const recent: number[] = [];
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      if ((entry as unknown as { detail?: { kind?: number } }).detail?.kind !== constants.NODE_PERFORMANCE_GC_MINOR) continue;
      recent.push(entry.startTime);
      while (recent.length > 0 && recent[0] < entry.startTime - 1000) recent.shift();
      if (recent.length >= LOAD_SCAVENGES_PER_SECOND) {
        observer.disconnect();
        v8.setFlagsFromString(`--${FLAG}=${LOAD_FACTOR}`);
        return;
      }
    }
  });
  observer.observe({ entryTypes: ['gc'] });
}
