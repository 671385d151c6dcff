// Per node group snapshots and the watches streams hold on them. A group is
// created when its first node asks, regenerated on every refresh() while it
// lives, and dropped after it has had no watch for idleGroupTtlMs.
import type { NodeInfo, ResourceSet } from '../../translate/types';
import { nodeGroupKey } from '../node-info';
import { TYPE_SHORT_NAME, TYPE_URL, XDS_RESOURCE_TYPES, type XdsTypeUrl } from '../type-urls';
import { checkConsistency } from './consistency';
import { SnapshotError, SnapshotGenerateError, SnapshotInconsistentError } from './errors';
import { silentLogger, type Logger } from '../../observe/log';
import { buildSnapshot, withRemovalsHeld, type Snapshot } from './snapshot';
import {
  deltaAnswer,
  sotwAnswer,
  type DeltaResponse,
  type DeltaWatchRequest,
  type SotwResponse,
  type SotwWatchRequest,
  type WatchResult,
} from './watches';

/** A refresh pass yields to the event loop after about this long. */
const REFRESH_SLICE_MS = 10;

/**
 * Make before break (Envoy's ADS rule): a change that removes resources is
 * published in two generations. The first holds `next` plus every Cluster,
 * ClusterLoadAssignment, RouteConfiguration and Secret the previous snapshot
 * had and `next` lacks (kept at their previous content; listener removals go
 * out at once, since nothing refers to a listener). The second, `next`
 * itself, carries those removals. It is published once every stream of the
 * group holds the first generation's CDS, LDS and RDS (it was sent them, or
 * its watch found nothing new), so on each stream the responses of a change
 * come CDS (adds and updates), EDS, LDS, RDS, and only then the CDS/EDS/RDS
 * removals; or after REMOVAL_GRACE_MS, whichever comes first, so a stream
 * that stopped reading cannot hold removals back forever.
 */
const HELD_TYPES: readonly XdsTypeUrl[] = [TYPE_URL.Cluster, TYPE_URL.ClusterLoadAssignment, TYPE_URL.RouteConfiguration, TYPE_URL.Secret];
/** The types that refer to held resources: a stream must hold their first generation before removals go out. */
const REFERRING_TYPES: readonly XdsTypeUrl[] = [TYPE_URL.Cluster, TYPE_URL.Listener, TYPE_URL.RouteConfiguration];
const REMOVAL_GRACE_MS = 1000;

/** Whether a stream holds `snapshot`'s version of every referring type it subscribed to. */
function holdsAll(held: ReadonlyMap<XdsTypeUrl, string>, snapshot: Snapshot): boolean {
  return REFERRING_TYPES.every((t) => !held.has(t) || held.get(t) === snapshot.type(t).version);
}

export interface SnapshotCacheOptions {
  /** The resources for a node group; called with the group's first node. */
  generate(node: NodeInfo): ResourceSet;
  log?: Logger;
  /** How long a group with no watch is kept before it is dropped (default 60 s). */
  idleGroupTtlMs?: number;
  /** Clock in ms, for tests. */
  now?: () => number;
  /** The longest removals wait for streams to catch up with the first generation (default 1 s; see HELD_TYPES). */
  removalGraceMs?: number;
}

/** The removal generation of a change, waiting for the streams that do not hold its first generation yet. */
interface PendingRemoval {
  snapshot: Snapshot;
  lagging: Set<number>;
  timer: NodeJS.Timeout;
}

type PendingWatch =
  | { kind: 'sotw'; req: SotwWatchRequest; respond: (r: SotwResponse) => void }
  | { kind: 'delta'; req: DeltaWatchRequest; respond: (r: DeltaResponse) => void };

class NodeGroup {
  snapshot: Snapshot | undefined;
  error: SnapshotError | undefined;
  readonly watches = new Map<XdsTypeUrl, Set<PendingWatch>>(XDS_RESOURCE_TYPES.map((t) => [t, new Set()]));
  watchCount = 0;
  idleSince: number;
  /** streamId → the version of each referring type the stream holds (was sent, or found current). */
  readonly streams = new Map<number, Map<XdsTypeUrl, string>>();
  pending: PendingRemoval | undefined;

  constructor(
    readonly key: string,
    /** The first node of the group: what the generator sees for every member. */
    readonly node: NodeInfo,
    now: number,
  ) {
    this.idleSince = now;
  }
}

export interface SnapshotErrorInfo {
  group: string;
  code: string;
  message: string;
  at: string;
  problems?: string[];
  /** What the group's nodes receive meanwhile. */
  serving: 'previous snapshot' | 'nothing yet';
}

export interface SnapshotCacheStats {
  groups: number;
  watches: number;
  refreshes: number;
  /** Duration of the last refresh, all groups included. */
  lastRefreshMs: number;
}

export class SnapshotCache {
  private readonly groups = new Map<string, NodeGroup>();
  private readonly generate: (node: NodeInfo) => ResourceSet;
  private readonly log: Logger;
  private readonly idleGroupTtlMs: number;
  private readonly now: () => number;
  private readonly removalGraceMs: number;
  private readonly sweepTimer: NodeJS.Timeout;
  private nextPassWaiters: (() => void)[] = [];
  private passRunning = false;
  private passQueued = false;
  private closed = false;
  private refreshes = 0;
  private lastRefreshMs = 0;

  constructor(options: SnapshotCacheOptions) {
    this.generate = options.generate;
    this.log = options.log ?? silentLogger;
    this.idleGroupTtlMs = options.idleGroupTtlMs ?? 60_000;
    this.now = options.now ?? Date.now;
    this.removalGraceMs = options.removalGraceMs ?? REMOVAL_GRACE_MS;
    this.sweepTimer = setInterval(() => this.dropIdleGroups(), Math.max(1000, this.idleGroupTtlMs / 2));
    this.sweepTimer.unref();
  }

  /**
   * Regenerates every live group, once for a burst of calls. The pass starts
   * on the next turn of the event loop and runs in slices of about
   * REFRESH_SLICE_MS, so the responses of the first groups go out (and their
   * ACKs come in) while later groups are generated, and the event loop never
   * stalls for a whole pass. A call during a pass queues one more pass.
   * Resolves when a pass that started after the call has completed.
   */
  refresh(): Promise<void> {
    return new Promise<void>((resolve) => {
      this.nextPassWaiters.push(resolve);
      if (this.passRunning) this.passQueued = true;
      else if (!this.passQueued) {
        this.passQueued = true;
        setImmediate(() => this.runPass());
      }
    });
  }

  /** Regenerates every live group now, in one synchronous pass. */
  refreshNow(): void {
    const started = performance.now();
    for (const group of [...this.groups.values()]) this.regenerate(group);
    this.passDone(started);
  }

  private runPass(): void {
    this.passQueued = false;
    if (this.closed) return;
    this.passRunning = true;
    const waiters = this.nextPassWaiters;
    this.nextPassWaiters = [];
    const groups = [...this.groups.values()];
    const started = performance.now();
    let next = 0;
    const slice = () => {
      const sliceEnd = performance.now() + REFRESH_SLICE_MS;
      while (next < groups.length && !this.closed) {
        const group = groups[next++];
        if (this.groups.get(group.key) === group) this.regenerate(group); // not dropped meanwhile
        if (performance.now() >= sliceEnd) break;
      }
      if (next < groups.length && !this.closed) {
        setImmediate(slice);
        return;
      }
      this.passRunning = false;
      this.passDone(started);
      for (const resolve of waiters) resolve();
      if (this.passQueued && !this.closed) setImmediate(() => this.runPass());
    };
    slice();
  }

  private passDone(started: number): void {
    this.refreshes++;
    this.lastRefreshMs = performance.now() - started;
    this.log('debug', 'snapshots refreshed', { groups: this.groups.size, ms: Math.round(this.lastRefreshMs) });
  }

  createWatch(req: SotwWatchRequest, respond: (r: SotwResponse) => void): WatchResult<SotwResponse> {
    const group = this.group(req.node);
    const snap = group.snapshot?.type(req.typeUrl);
    const response = snap && sotwAnswer(snap, req);
    if (snap) this.holds(group, req.streamId, req.typeUrl, snap.version);
    if (response) return { response };
    return { cancel: this.addWatch(group, req.typeUrl, { kind: 'sotw', req, respond }) };
  }

  createDeltaWatch(req: DeltaWatchRequest, respond: (r: DeltaResponse) => void): WatchResult<DeltaResponse> {
    const group = this.group(req.node);
    const snap = group.snapshot?.type(req.typeUrl);
    const response = snap && deltaAnswer(snap, req);
    if (snap) this.holds(group, req.streamId, req.typeUrl, snap.version);
    if (response) return { response };
    return { cancel: this.addWatch(group, req.typeUrl, { kind: 'delta', req, respond }) };
  }

  /** A stream went away: it no longer holds back removals. */
  streamClosed(node: NodeInfo, streamId: number): void {
    const group = this.groups.get(nodeGroupKey(node));
    if (!group) return;
    group.streams.delete(streamId);
    if (group.pending?.lagging.delete(streamId)) this.maybePublishRemovals(group);
  }

  /** The published snapshot of the node's group (created on first use). */
  snapshotFor(node: NodeInfo): Snapshot | undefined {
    return this.groups.get(nodeGroupKey(node))?.snapshot;
  }

  /** The published snapshot of a group, if the group is live. */
  snapshot(groupKey: string): Snapshot | undefined {
    return this.groups.get(groupKey)?.snapshot;
  }

  /** Why the group's latest generation was not published (cleared by the next successful one). */
  lastError(groupKey: string): SnapshotError | undefined {
    return this.groups.get(groupKey)?.error;
  }

  /** Every live group whose latest generation was not published, as plain records (for the API). */
  errors(): SnapshotErrorInfo[] {
    const out: SnapshotErrorInfo[] = [];
    for (const group of this.groups.values()) {
      const e = group.error;
      if (!e) continue;
      out.push({
        group: e.groupKey,
        code: e.code,
        message: e.message,
        at: e.at.toISOString(),
        ...(e instanceof SnapshotInconsistentError ? { problems: e.problems } : {}),
        serving: group.snapshot ? 'previous snapshot' : 'nothing yet',
      });
    }
    return out;
  }

  groupKeys(): string[] {
    return [...this.groups.keys()];
  }

  stats(): SnapshotCacheStats {
    let watches = 0;
    for (const g of this.groups.values()) watches += g.watchCount;
    return { groups: this.groups.size, watches, refreshes: this.refreshes, lastRefreshMs: this.lastRefreshMs };
  }

  /** Drops groups that have had no watch for idleGroupTtlMs; runs on a timer, callable by tests. */
  dropIdleGroups(): void {
    const now = this.now();
    for (const [key, group] of this.groups) {
      if (group.watchCount === 0 && now - group.idleSince >= this.idleGroupTtlMs) {
        if (group.pending) clearTimeout(group.pending.timer);
        this.groups.delete(key);
        this.log('debug', 'node group dropped', { group: key });
      }
    }
  }

  /** Stops the idle sweep and any refresh pass; pending refresh() promises resolve. */
  close(): void {
    this.closed = true;
    clearInterval(this.sweepTimer);
    for (const group of this.groups.values()) if (group.pending) clearTimeout(group.pending.timer);
    for (const resolve of this.nextPassWaiters.splice(0)) resolve();
  }

  private group(node: NodeInfo): NodeGroup {
    const key = nodeGroupKey(node);
    let group = this.groups.get(key);
    if (!group) {
      group = new NodeGroup(key, { ...node }, this.now());
      this.groups.set(key, group);
      this.regenerate(group);
    }
    return group;
  }

  private addWatch(group: NodeGroup, typeUrl: XdsTypeUrl, watch: PendingWatch): () => void {
    const set = group.watches.get(typeUrl)!;
    set.add(watch);
    group.watchCount++;
    return () => {
      if (set.delete(watch)) this.watchGone(group);
    };
  }

  private watchGone(group: NodeGroup): void {
    if (--group.watchCount === 0) group.idleSince = this.now();
  }

  /** Generates, checks and publishes one group; on failure the previous snapshot stays. */
  private regenerate(group: NodeGroup): void {
    let next: Snapshot;
    try {
      const set = this.generate(group.node);
      const problems = checkConsistency(set);
      if (problems.length > 0) throw new SnapshotInconsistentError(group.key, problems);
      next = buildSnapshot(set, group.snapshot);
    } catch (err) {
      const error = err instanceof SnapshotError ? err : new SnapshotGenerateError(group.key, err);
      group.error = error;
      this.log('error', 'snapshot not published; the previous one keeps serving', {
        group: group.key,
        code: error.code,
        error: error.message,
        ...(error instanceof SnapshotInconsistentError ? { problems: error.problems } : {}),
      });
      return;
    }
    group.error = undefined;
    const previous = group.snapshot;
    if (group.pending) {
      // Superseded: the new change holds whatever the first generation still held.
      clearTimeout(group.pending.timer);
      group.pending = undefined;
    }
    const first = previous ? withRemovalsHeld(next, previous, HELD_TYPES) : next;
    this.publish(group, first);
    if (first === next) return;
    const lagging = new Set<number>();
    for (const [streamId, held] of group.streams) {
      if (!holdsAll(held, first)) lagging.add(streamId);
    }
    const timer = setTimeout(() => {
      if (group.pending !== pending) return;
      this.log('debug', 'removals published after the grace period', { group: group.key, lagging: pending.lagging.size });
      this.publishRemovals(group);
    }, this.removalGraceMs);
    timer.unref();
    const pending: PendingRemoval = { snapshot: next, lagging, timer };
    group.pending = pending;
    // Every stream already holds the first generation: its responses are written, removals may follow now.
    if (lagging.size === 0) this.publishRemovals(group);
  }

  /** Records that a stream holds (was just sent, or found current) a version of a referring type. */
  private holds(group: NodeGroup, streamId: number | undefined, typeUrl: XdsTypeUrl, version: string): void {
    if (streamId === undefined || !REFERRING_TYPES.includes(typeUrl)) return;
    let held = group.streams.get(streamId);
    if (!held) group.streams.set(streamId, (held = new Map()));
    held.set(typeUrl, version);
    const pending = group.pending;
    if (!pending?.lagging.has(streamId)) return;
    const snapshot = group.snapshot!;
    if (holdsAll(held, snapshot)) {
      pending.lagging.delete(streamId);
      this.maybePublishRemovals(group);
    }
  }

  private maybePublishRemovals(group: NodeGroup): void {
    const pending = group.pending;
    if (!pending || pending.lagging.size > 0) return;
    // On the next turn: the caller may be a watch whose response the stream has not written yet.
    setImmediate(() => {
      if (group.pending === pending && !this.closed) this.publishRemovals(group);
    });
  }

  private publishRemovals(group: NodeGroup): void {
    const pending = group.pending!;
    clearTimeout(pending.timer);
    group.pending = undefined;
    this.publish(group, pending.snapshot);
  }

  private publish(group: NodeGroup, next: Snapshot): void {
    const previous = group.snapshot;
    group.snapshot = next;
    // Types in XDS_RESOURCE_TYPES order, so every stream gets CDS before EDS and LDS before RDS.
    for (const typeUrl of XDS_RESOURCE_TYPES) {
      const snap = next.type(typeUrl);
      if (previous?.type(typeUrl) === snap) continue;
      this.notify(group, typeUrl);
      if (previous) {
        this.log('debug', 'snapshot type changed', { group: group.key, type: TYPE_SHORT_NAME[typeUrl], version: snap.version });
      }
    }
  }

  private notify(group: NodeGroup, typeUrl: XdsTypeUrl): void {
    const set = group.watches.get(typeUrl)!;
    const snap = group.snapshot!.type(typeUrl);
    // Iterate a copy: callbacks may cancel watches or open new ones on this set.
    for (const watch of [...set]) {
      if (!set.has(watch)) continue;
      try {
        // Answered or not, the stream holds this version once the loop has passed it.
        this.holds(group, watch.req.streamId, typeUrl, snap.version);
        if (watch.kind === 'sotw') {
          const response = sotwAnswer(snap, watch.req);
          if (!response) continue;
          set.delete(watch);
          this.watchGone(group);
          watch.respond(response);
        } else {
          const response = deltaAnswer(snap, watch.req);
          if (!response) continue;
          set.delete(watch);
          this.watchGone(group);
          watch.respond(response);
        }
      } catch (err) {
        this.log('error', 'watch callback failed', { group: group.key, error: (err as Error).message });
      }
    }
  }
}
