// The part of Envoy's protos a sidecar can meet, as a protobufjs JSON
// descriptor: every resource and typed config the proxy decodes, the protocol
// messages it exchanges, and every type they reference (about 470 of the 560
// types protos.ts loads), without options. Parsing the .proto text at every
// start cost a sidecar ~14 MiB of heap and ~0.4 s; this set loads from JSON in
// about half the memory and a quarter of the time.
//
// The descriptor is derived from the protos in node_modules, never checked in:
// `npm run build` writes it next to this module, and a sidecar that finds it
// missing or stale (other protos, protobufjs, type list or code) has a child
// process write it, so that the parse's garbage never grows its own heap.
import { execFileSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as protobuf from 'protobufjs';
import { TYPE_URL } from './type-urls';

/** Messages a sidecar encodes or decodes outside resources: ADS, SDS, the metrics stream, the rate-limit service. */
export const SIDECAR_PROTOCOL_MESSAGES = [
  'envoy.service.discovery.v3.DiscoveryRequest',
  'envoy.service.discovery.v3.DiscoveryResponse',
  'envoy.service.discovery.v3.DeltaDiscoveryRequest',
  'envoy.service.discovery.v3.DeltaDiscoveryResponse',
  'envoy.service.metrics.v3.StreamMetricsMessage',
  'envoy.service.metrics.v3.StreamMetricsResponse',
  'envoy.service.ratelimit.v3.RateLimitRequest',
  'envoy.service.ratelimit.v3.RateLimitResponse',
  'envoy.type.v3.StatusCode',
] as const;

/** The roots of the sidecar's set: every type URL weft knows (resources and the typed configs inside their Anys) and the protocol messages. */
export function sidecarRootTypes(): string[] {
  const fromUrls = Object.values(TYPE_URL).map((url) => url.slice(url.lastIndexOf('/') + 1));
  return [...new Set([...fromUrls, ...SIDECAR_PROTOCOL_MESSAGES])];
}

/**
 * A JSON descriptor of `names` and every type their fields reach, looked up in
 * `full`. Options are dropped (validation rules, deprecation marks: protobufjs
 * only codes by `packed`, which is kept), and so are types nothing reaches.
 */
export function pruneDescriptor(full: protobuf.Root, names: readonly string[]): protobuf.INamespace {
  const reached = new Set<protobuf.Type | protobuf.Enum>();
  const visit = (t: protobuf.ReflectionObject): void => {
    if (!(t instanceof protobuf.Type || t instanceof protobuf.Enum) || reached.has(t)) return;
    reached.add(t);
    if (t instanceof protobuf.Type) for (const f of t.fieldsArray) visit(f.resolve().resolvedType!);
  };
  for (const name of names) {
    const t = full.lookup(name);
    if (!t) throw new Error(`${name} is not in the loaded protos`);
    visit(t);
  }
  const out: protobuf.INamespace = {};
  // Sorted, so that the descriptor is the same whatever order the walk took.
  for (const t of [...reached].sort((a, b) => (a.fullName < b.fullName ? -1 : 1))) {
    let ns = out;
    for (const part of t.fullName.slice(1).split('.')) {
      ns.nested ??= {};
      ns = (ns.nested[part] ??= {}) as protobuf.INamespace;
    }
    // A parent message not reached itself stays a bare namespace for its nested types.
    Object.assign(ns, withoutOptions(t.toJSON({ keepComments: false })), { nested: ns.nested });
    if (!ns.nested) delete ns.nested;
  }
  return out;
}

function withoutOptions(value: unknown): any {
  if (Array.isArray(value)) return value.map(withoutOptions);
  if (typeof value !== 'object' || value === null) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    if (k === 'nested') continue; // nested types are added only when reached
    if (k === 'options') {
      const packed = (v as Record<string, unknown> | undefined)?.packed;
      if (packed !== undefined) out.options = { packed };
      continue;
    }
    out[k] = withoutOptions(v);
  }
  return out;
}

/** Where the descriptor is kept: beside the compiled module (dist/src/xds/). */
export const DESCRIPTOR_FILE = path.join(__dirname, 'sidecar-protos.json');

interface DescriptorFile {
  key: string;
  descriptor: protobuf.INamespace;
}

/** What the descriptor was derived from: when any of it changes, the file is stale. */
function descriptorKey(): string {
  const version = (pkg: string) => (JSON.parse(fs.readFileSync(require.resolve(`${pkg}/package.json`), 'utf8')) as { version: string }).version;
  const h = crypto.createHash('sha256');
  h.update(JSON.stringify([version('@grpc/grpc-js-xds'), version('protobufjs'), sidecarRootTypes()]));
  // The code that loads and prunes the protos (PROTO_FILES, the Prometheus model, this file).
  for (const mod of ['./protos', './prometheus-model', './sidecar-protos']) h.update(fs.readFileSync(require.resolve(mod)));
  return h.digest('hex').slice(0, 32);
}

/** Loads every proto (protos.ts), prunes, and writes the file (best effort: a read-only install still gets the result). */
export function writeDescriptor(key = descriptorKey()): DescriptorFile {
  // Required here, not imported: protos.ts imports this module, and only the writer needs the full set.
  const { protoRoot } = require('./protos') as typeof import('./protos');
  const file: DescriptorFile = { key, descriptor: pruneDescriptor(protoRoot(), sidecarRootTypes()) };
  const tmp = `${DESCRIPTOR_FILE}.${process.pid}.tmp`;
  try {
    fs.writeFileSync(tmp, JSON.stringify(file));
    fs.renameSync(tmp, DESCRIPTOR_FILE);
  } catch {
    fs.rmSync(tmp, { force: true });
  }
  return file;
}

function readDescriptor(key: string): DescriptorFile | undefined {
  try {
    const file = JSON.parse(fs.readFileSync(DESCRIPTOR_FILE, 'utf8')) as DescriptorFile;
    return file.key === key ? file : undefined;
  } catch {
    return undefined;
  }
}

let root: protobuf.Root | undefined;

/** The sidecar's Root, loaded once from the descriptor file (written first if missing or stale). */
export function sidecarRoot(): protobuf.Root {
  if (root) return root;
  const key = descriptorKey();
  let file = readDescriptor(key);
  if (!file) {
    try {
      const out = execFileSync(process.execPath, [__filename, 'write'], { maxBuffer: 64 << 20, stdio: ['ignore', 'pipe', 'pipe'] });
      file = JSON.parse(out.toString('utf8')) as DescriptorFile;
    } catch {
      // No child process to be had (or it failed): derive it here, at the memory cost this file avoids.
      file = writeDescriptor(key);
    }
  }
  const r = protobuf.Root.fromJSON(file.descriptor);
  r.resolveAll();
  root = r;
  return r;
}

/** A message type of the sidecar's set, or undefined for one outside it. */
export function sidecarMessageType(fullName: string): protobuf.Type | undefined {
  return (sidecarRoot().lookup(fullName, [protobuf.Type]) as protobuf.Type | null) ?? undefined;
}

// `node dist/src/xds/sidecar-protos.js write`: writes the file and prints it (npm run build, and sidecarRoot()'s child).
if (require.main === module && process.argv[2] === 'write') {
  process.stdout.write(JSON.stringify(writeDescriptor()));
}
