// The Store holds the mesh's resources and emits watch events. Backends:
// embedded (config directory + data directory) and, later, etcd. Everything
// above the store (registry, translator, API) sees only this interface.
import type { Kind, Resource } from '../config/kinds';
import type { ConfigError } from '../config/errors';

/** Where a resource came from: a file in the config directory, or the API. */
export type ResourceSource = { type: 'file'; file: string; document: number } | { type: 'api' };

/** Where a resource being applied was written (a request body's document, a file). */
export interface ResourceOrigin {
  file?: string;
  document?: number;
}

export interface StoredResource<K extends Kind = Kind> {
  resource: Resource<K>;
  source: ResourceSource;
  /** The store revision of this resource's last change. */
  revision: number;
}

export type WatchEvent =
  | { type: 'put'; kind: Kind; key: string; item: StoredResource }
  | { type: 'delete'; kind: Kind; key: string };

/** Thrown by apply/delete when the change would make the mesh config invalid; nothing was changed. */
export class ConfigRejectedError extends Error {
  readonly code = 'E_CONFIG_REJECTED';
  constructor(readonly errors: ConfigError[]) {
    super(errors.map((e) => e.message).join('\n'));
  }
}

/** A write refused because the store (etcd) cannot be reached; the replica keeps serving what it has. */
export class StoreUnavailableError extends Error {
  readonly code = 'E_STORE_UNAVAILABLE';
}

export interface Store {
  list<K extends Kind>(kind: K): StoredResource<K>[];
  get<K extends Kind>(kind: K, namespace: string, name: string): StoredResource<K> | undefined;
  /**
   * Creates or replaces resources as one change, validated against the whole
   * mesh; all or nothing. `origins[i]` says where resources[i] came from, for errors.
   */
  apply(resources: Resource[], origins?: ResourceOrigin[]): Promise<StoredResource[]>;
  delete(kind: Kind, namespace: string, name: string): Promise<boolean>;
  /** Errors of the config sources that are currently rejected (the last good config keeps serving). */
  configErrors(): ConfigError[];
  /** The revision of the latest change. */
  revision(): number;
  /** Called for every change; returns a function that stops the watch. */
  watch(kind: Kind | '*', cb: (event: WatchEvent) => void): () => void;
  close(): Promise<void>;
}
