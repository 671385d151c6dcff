// What the client holds per resource type: the accepted resources (raw and
// decoded) with their versions, the names it subscribes to, the names the
// server said do not exist, and the outcome of the last response.
import type { ResourceType } from './resource-types';

export interface HeldResource<T> {
  name: string;
  /** The resource version from the server (sent back in initial_resource_versions on reconnect). */
  version: string;
  /** The resource message as received, for /config_dump. */
  bytes: Uint8Array;
  value: T;
}

export interface NackRecord {
  /** The system version of the rejected response. */
  version: string;
  message: string;
  at: Date;
}

export class TypeState<T> {
  readonly resources = new Map<string, HeldResource<T>>();
  /** Subscribed names the server said do not exist: nothing to wait for. */
  readonly absent = new Set<string>();
  /** Names warming stopped waiting for (timed out, or rejected before one was held) until one arrives. */
  readonly givenUp = new Set<string>();
  /** Names subscribed to (RDS, EDS); LDS and CDS are wildcards. */
  subscribed = new Set<string>();
  /** system_version_info of the last response applied in full. */
  version: string | undefined;
  /** A response of this type arrived since the client started. */
  received = false;
  /** Warming stopped waiting for the first response (timed out). */
  firstWaitedOut = false;
  /** Whether the latest response was rejected (in whole or in part). */
  nacked = false;
  lastNack: NackRecord | undefined;

  constructor(readonly type: ResourceType<T>) {}

  get kind(): ResourceType<T>['kind'] {
    return this.type.kind;
  }

  /** name → version of what is held, for a reconnecting stream's initial_resource_versions. */
  initialVersions(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [name, r] of this.resources) out[name] = r.version;
    return out;
  }

  /** Whether a config still waits for this (wildcard) type's first response. */
  awaitingFirst(): boolean {
    return !this.received && !this.firstWaitedOut;
  }

  /** Whether a subscribed name still needs an answer before a config can be emitted. */
  awaiting(name: string): boolean {
    return !this.resources.has(name) && !this.absent.has(name) && !this.givenUp.has(name);
  }

  /** Stops tracking names no longer subscribed; returns whether a held resource was dropped. */
  forget(names: Iterable<string>): boolean {
    let dropped = false;
    for (const name of names) {
      dropped = this.resources.delete(name) || dropped;
      this.absent.delete(name);
      this.givenUp.delete(name);
    }
    return dropped;
  }
}
