// The Store holds the mesh's resources and emits watch events. Backends:
// embedded (config directory + data directory) and, later, etcd. Everything
// above the store (registry, translator, API) sees only this interface.
import type { Kind, Resource } from '../config/kinds';

/** Where a resource came from: a file in the config directory, or the API. */
export type ResourceSource = { type: 'file'; file: string; document: number } | { type: 'api' };

export interface StoredResource<K extends Kind = Kind> {
  resource: Resource<K>;
  source: ResourceSource;
  /** Increases on every change of this resource (optimistic concurrency). */
  revision: number;
}

export type WatchEvent =
  | { type: 'put'; kind: Kind; key: string; item: StoredResource }
  | { type: 'delete'; kind: Kind; key: string };

export interface Store {
  list<K extends Kind>(kind: K): StoredResource<K>[];
  get<K extends Kind>(kind: K, namespace: string, name: string): StoredResource<K> | undefined;
  /** Validates the resource against the whole view before it is kept. */
  put(resource: Resource, source?: ResourceSource): Promise<StoredResource>;
  delete(kind: Kind, namespace: string, name: string): Promise<boolean>;
  /** Called for every change; returns a function that stops the watch. */
  watch(kind: Kind | '*', cb: (event: WatchEvent) => void): () => void;
  close(): Promise<void>;
}
