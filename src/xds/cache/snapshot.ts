// One node group's published configuration: per resource type a version and
// the resources encoded once, each with a content hash. Response bodies are
// built from these bytes and memoized, so pushing a version to thousands of
// streams costs one encoding.
import { createHash } from 'node:crypto';
import { encodeMessage } from '../protos';
import { XDS_RESOURCE_TYPES, type XdsTypeUrl } from '../type-urls';
import type { ResourceSet, XdsResource } from '../../translate/types';
import { deltaResourceEntry, nextNonce, sotwResourceEntry, sotwResponseBody } from './response-bodies';

export interface EncodedResource {
  readonly name: string;
  /** The resource message itself. */
  readonly bytes: Buffer;
  /** Content hash: the resource's version in the delta protocol. */
  readonly hash: string;
  /** Pre-encoded DiscoveryResponse.resources entry. */
  readonly sotwEntry: Buffer;
  /** Pre-encoded DeltaDiscoveryResponse.resources entry. */
  readonly deltaEntry: Buffer;
}

/** A complete DiscoveryResponse, shared by every stream it is written to. */
export interface SotwMessage {
  bytes: Buffer;
  nonce: string;
}

function shortHash(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex').slice(0, 16);
}

/** Memoized named bodies per type version; beyond this many name sets the memo restarts. */
const NAMED_BODY_MEMO_LIMIT = 256;

export class TypeSnapshot {
  private wildcardMessage: SotwMessage | undefined;
  private readonly namedMessages = new Map<string, SotwMessage>();

  constructor(
    readonly typeUrl: XdsTypeUrl,
    /** Derived from the content: the same resources always give the same version. */
    readonly version: string,
    readonly resources: ReadonlyMap<string, EncodedResource>,
  ) {}

  /**
   * The DiscoveryResponse for a subscription: every resource when `names` is
   * undefined (wildcard), else only those named. `namesKey` identifies the
   * name set for the memo.
   */
  sotwMessage(names?: ReadonlySet<string>, namesKey?: string): SotwMessage {
    if (!names) {
      this.wildcardMessage ??= this.buildMessage([...this.resources.values()]);
      return this.wildcardMessage;
    }
    const key = namesKey ?? [...names].sort().join('\n');
    let message = this.namedMessages.get(key);
    if (!message) {
      const selected: EncodedResource[] = [];
      for (const name of names) {
        const r = this.resources.get(name);
        if (r) selected.push(r);
      }
      message = this.buildMessage(selected);
      if (this.namedMessages.size >= NAMED_BODY_MEMO_LIMIT) this.namedMessages.clear();
      this.namedMessages.set(key, message);
    }
    return message;
  }

  private buildMessage(resources: EncodedResource[]): SotwMessage {
    const nonce = nextNonce();
    const entries = resources.map((r) => r.sotwEntry);
    return { bytes: sotwResponseBody(this.typeUrl, this.version, entries, nonce), nonce };
  }
}

export class Snapshot {
  constructor(
    readonly types: ReadonlyMap<XdsTypeUrl, TypeSnapshot>,
    readonly createdAt: Date,
  ) {}

  /** A type absent from the generated set is published as an empty type (a valid, versioned answer). */
  type(typeUrl: XdsTypeUrl): TypeSnapshot {
    return this.types.get(typeUrl)!;
  }

  versions(): Record<string, string> {
    return Object.fromEntries([...this.types].map(([url, t]) => [url, t.version]));
  }
}

function encodeType(
  typeUrl: XdsTypeUrl,
  input: ReadonlyMap<string, XdsResource> | undefined,
  previous: TypeSnapshot | undefined,
): TypeSnapshot {
  const resources = new Map<string, EncodedResource>();
  const names = input ? [...input.keys()].sort() : [];
  for (const name of names) {
    const item = input!.get(name)!;
    if (item.name !== name) {
      throw new Error(`${typeUrl}: resource keyed "${name}" is named "${item.name}"`);
    }
    const bytes = encodeMessage(typeUrl, item.resource);
    const hash = shortHash(bytes);
    const prev = previous?.resources.get(name);
    // Reuse the previous encoding when unchanged: stable identity, less garbage.
    if (prev && prev.hash === hash) {
      resources.set(name, prev);
      continue;
    }
    resources.set(name, {
      name,
      bytes,
      hash,
      sotwEntry: sotwResourceEntry(typeUrl, bytes),
      deltaEntry: deltaResourceEntry(typeUrl, name, hash, bytes),
    });
  }
  const version = typeVersion(resources);
  if (previous && previous.version === version) return previous;
  return new TypeSnapshot(typeUrl, version, resources);
}

/** A type's version: a hash of its names and content hashes, so equal content has an equal version everywhere. */
function typeVersion(resources: ReadonlyMap<string, EncodedResource>): string {
  const names = [...resources.keys()].sort();
  return shortHash(names.map((n) => `${n}\0${resources.get(n)!.hash}`).join('\n'));
}

/**
 * `next` with, in the given types, the resources `previous` had and `next`
 * lacks kept at their previous content: the "make" generation of a change
 * whose removals are published afterwards. Returns `next` itself when
 * nothing is kept; a type whose result equals `previous`'s keeps its
 * TypeSnapshot (and version), so it is not pushed again.
 */
export function withRemovalsHeld(next: Snapshot, previous: Snapshot, typeUrls: readonly XdsTypeUrl[]): Snapshot {
  let held = false;
  const types = new Map(next.types);
  for (const typeUrl of typeUrls) {
    const before = previous.type(typeUrl);
    const after = next.type(typeUrl);
    const gone = [...before.resources.keys()].filter((name) => !after.resources.has(name));
    if (gone.length === 0) continue;
    held = true;
    const resources = new Map(after.resources);
    for (const name of gone) resources.set(name, before.resources.get(name)!);
    const version = typeVersion(resources);
    types.set(typeUrl, version === before.version ? before : new TypeSnapshot(typeUrl, version, resources));
  }
  return held ? new Snapshot(types, next.createdAt) : next;
}

/** Encodes a generated resource set; types whose content did not change keep their previous TypeSnapshot. */
export function buildSnapshot(set: ResourceSet, previous?: Snapshot): Snapshot {
  const types = new Map<XdsTypeUrl, TypeSnapshot>();
  for (const typeUrl of XDS_RESOURCE_TYPES) {
    types.set(typeUrl, encodeType(typeUrl, set.get(typeUrl), previous?.types.get(typeUrl)));
  }
  for (const typeUrl of set.keys()) {
    if (!types.has(typeUrl)) throw new Error(`unknown resource type ${typeUrl}`);
  }
  return new Snapshot(types, new Date());
}
