// Golden signals over time: a bounded ring of the observer's topology
// samples, read back as the dashboard's charts (/api/v1/history). One sample
// is kept per step (2 s by default, whatever the observer's own interval:
// its signals are sliding 10 s windows, so a finer step would show nothing
// more), and 450 samples hold 15 minutes.
//
// Memory is fixed by two numbers: `capacity` samples × at most `maxSeries`
// series (services and edges), each series a Float64Array of 4 values per
// sample (rps, success rate, p50, p99; NaN where it had none): 450 × 500 ×
// 32 bytes ≈ 7 MB at the defaults. When the cap is reached, series seen for
// the first time are not kept (counted in `droppedSeries`); services come
// before edges, so they are the last to go. A series absent from every
// sample in the ring is forgotten, which frees its place.
//
// Samples taken before the observer has a window (windowSeconds 0: its first
// scrape) hold no rates and are skipped rather than drawn as zeros.
import type { HistoryAll, SignalColumns, SignalPoint, SignalSeries, Signals, Topology } from './topology';

export interface SignalHistoryOptions {
  /** Samples kept (default 450: 15 minutes at one sample every 2 s). */
  capacity?: number;
  /** Services + edges kept (default 500). */
  maxSeries?: number;
  /** Least time between two samples kept; ticks that come sooner are skipped (default 2). */
  stepSeconds?: number;
}

const FIELDS = 4; // rps, successRate, p50Ms, p99Ms

interface Series {
  values: Float64Array;
  /** Index (in samples added) of the last sample that had this series. */
  lastSeen: number;
}

export function edgeKey(source: string, destination: string): string {
  return `${source} -> ${destination}`;
}

export class SignalHistory {
  readonly capacity: number;
  readonly maxSeries: number;
  readonly stepSeconds: number;
  private readonly times: Float64Array;
  /** Samples added since the start; the next one goes to slot `added % capacity`. */
  private added = 0;
  private lastAt = -Infinity;
  private readonly services = new Map<string, Series>();
  private readonly edges = new Map<string, Series>();
  /** Series of the latest sample that were not kept (the cap was reached). */
  private dropped = 0;

  constructor(opts: SignalHistoryOptions = {}) {
    this.capacity = opts.capacity ?? 450;
    this.maxSeries = opts.maxSeries ?? 500;
    this.stepSeconds = opts.stepSeconds ?? 2;
    if (!(this.capacity >= 1) || !(this.maxSeries >= 1)) throw new Error(`signal history: capacity (${this.capacity}) and maxSeries (${this.maxSeries}) must be at least 1`);
    this.times = new Float64Array(this.capacity);
  }

  /** Number of series kept now. */
  get size(): number {
    return this.services.size + this.edges.size;
  }

  /** Series of the latest sample not kept because the cap was reached. */
  get droppedSeries(): number {
    return this.dropped;
  }

  add(t: Topology): void {
    if (!(t.windowSeconds > 0)) return;
    const at = Date.parse(t.at);
    // A tick early by up to a quarter of the step still counts (timers drift).
    if (Number.isNaN(at) || at - this.lastAt < this.stepSeconds * 750) return;
    this.lastAt = at;
    const index = this.added++;
    const slot = index % this.capacity;
    this.times[slot] = at;
    // A series whose last point is in the slot being overwritten is gone from the ring: forgotten
    // first, so its place can go to a new one (if it is in this sample, it starts again).
    for (const map of [this.services, this.edges]) {
      for (const [key, s] of map) if (index - s.lastSeen >= this.capacity) map.delete(key);
    }
    const seen = new Set<Series>();
    this.dropped = 0;
    for (const s of t.services) this.put(this.services, s.name, s, index, slot, seen);
    for (const e of t.edges) this.put(this.edges, edgeKey(e.source, e.destination), e, index, slot, seen);
    // Series not in this sample: a gap at this slot.
    for (const map of [this.services, this.edges]) {
      for (const s of map.values()) if (!seen.has(s)) s.values.fill(NaN, slot * FIELDS, slot * FIELDS + FIELDS);
    }
  }

  private put(map: Map<string, Series>, key: string, sig: Signals, index: number, slot: number, seen: Set<Series>): void {
    let s = map.get(key);
    if (!s) {
      if (this.size >= this.maxSeries) {
        this.dropped++;
        return;
      }
      s = { values: new Float64Array(this.capacity * FIELDS).fill(NaN), lastSeen: index };
      map.set(key, s);
    }
    s.lastSeen = index;
    seen.add(s);
    const o = slot * FIELDS;
    s.values[o] = sig.rps;
    s.values[o + 1] = sig.successRate ?? NaN;
    s.values[o + 2] = sig.p50Ms ?? NaN;
    s.values[o + 3] = sig.p99Ms ?? NaN;
  }

  /** Slots of the samples taken at or after `since` (epoch ms), oldest first. */
  private slots(since: number): number[] {
    const n = Math.min(this.added, this.capacity);
    const out: number[] = [];
    for (let i = this.added - n; i < this.added; i++) {
      const slot = i % this.capacity;
      if (this.times[slot] >= since) out.push(slot);
    }
    return out;
  }

  /** One service's samples since `since`, oldest first; samples where it was absent are left out. */
  service(name: string, since = 0): SignalSeries {
    return this.series(this.services.get(name), since);
  }

  edge(source: string, destination: string, since = 0): SignalSeries {
    return this.series(this.edges.get(edgeKey(source, destination)), since);
  }

  private series(s: Series | undefined, since: number): SignalSeries {
    const points: SignalPoint[] = [];
    if (s) {
      for (const slot of this.slots(since)) {
        const o = slot * FIELDS;
        if (Number.isNaN(s.values[o])) continue;
        const p: SignalPoint = { at: this.times[slot], rps: s.values[o] };
        if (!Number.isNaN(s.values[o + 1])) p.successRate = s.values[o + 1];
        if (!Number.isNaN(s.values[o + 2])) p.p50Ms = s.values[o + 2];
        if (!Number.isNaN(s.values[o + 3])) p.p99Ms = s.values[o + 3];
        points.push(p);
      }
    }
    return { stepSeconds: this.stepSeconds, series: points };
  }

  /** Every series since `since`, column-wise over one time axis. */
  all(since = 0): HistoryAll {
    const slots = this.slots(since);
    const columns = (s: Series): SignalColumns => {
      const col = (f: number) => slots.map((slot) => {
        const v = s.values[slot * FIELDS + f];
        return Number.isNaN(v) ? null : v;
      });
      return { rps: col(0), successRate: col(1), p50Ms: col(2), p99Ms: col(3) };
    };
    const pick = (map: Map<string, Series>) => Object.fromEntries([...map].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([k, s]) => [k, columns(s)]));
    return { stepSeconds: this.stepSeconds, at: slots.map((slot) => this.times[slot]), services: pick(this.services), edges: pick(this.edges), droppedSeries: this.droppedSeries };
  }
}
