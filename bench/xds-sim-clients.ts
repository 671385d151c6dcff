// Child process of bench/xds-convergence: simulated ADS (SotW) clients, each
// on its own HTTP/2 connection, that behave like a sidecar: CDS and LDS
// wildcard, EDS for the EDS clusters CDS names, RDS for the route tables LDS
// names, and an ACK for every response. Kept cheap on purpose: raw node:http2,
// responses parsed only at the top level, resources decoded once per version.
import * as http2 from 'node:http2';
import { messageType } from '../src/xds/protos';
import { TYPE_URL } from '../src/xds/type-urls';
import { bytesField, stringField } from '../src/xds/cache/wire';
import { ADS_PATHS } from '../src/xds/server/ads-service';
import { nowMs, type FromClients, type SimClientsConfig, type ToClients } from './xds-bench-protocol';

const WATCHED = [TYPE_URL.Cluster, TYPE_URL.ClusterLoadAssignment, TYPE_URL.Listener, TYPE_URL.RouteConfiguration];

// ---- wire helpers -------------------------------------------------------

function readVarint(buf: Buffer, pos: number): [number, number] {
  let result = 0;
  let shift = 0;
  for (;;) {
    const b = buf[pos++];
    result += (b & 0x7f) * 2 ** shift;
    if (b < 0x80) return [result, pos];
    shift += 7;
  }
}

interface ParsedResponse {
  version: string;
  typeUrl: string;
  nonce: string;
}

/** Calls fn(field, start, end) for each length-delimited top-level field. */
function eachField(buf: Buffer, fn: (field: number, start: number, end: number) => void): void {
  let pos = 0;
  while (pos < buf.length) {
    let key: number;
    [key, pos] = readVarint(buf, pos);
    if ((key & 7) === 0) {
      [, pos] = readVarint(buf, pos);
      continue;
    }
    let len: number;
    [len, pos] = readVarint(buf, pos);
    fn(key >>> 3, pos, pos + len);
    pos += len;
  }
}

/** version_info, type_url and nonce of a DiscoveryResponse; resources are left alone. */
function parseResponse(buf: Buffer): ParsedResponse {
  const out: ParsedResponse = { version: '', typeUrl: '', nonce: '' };
  eachField(buf, (field, start, end) => {
    if (field === 1) out.version = buf.toString('utf8', start, end);
    else if (field === 4) out.typeUrl = buf.toString('utf8', start, end);
    else if (field === 5) out.nonce = buf.toString('utf8', start, end);
  });
  return out;
}

function responseResources(buf: Buffer): Buffer[] {
  const out: Buffer[] = [];
  eachField(buf, (field, start, end) => {
    if (field === 2) out.push(buf.subarray(start, end));
  });
  return out;
}

/** The resource_names fields of a request, encoded once per subscription change. */
function encodeNames(names: readonly string[]): Buffer {
  return Buffer.concat(names.map((n) => stringField(3, n)));
}

function encodeRequest(r: { version: string; names: Buffer; typeUrl: string; nonce: string; node?: Buffer }): Buffer {
  const parts: Buffer[] = [];
  if (r.version) parts.push(stringField(1, r.version));
  if (r.node) parts.push(bytesField(2, r.node));
  parts.push(r.names);
  parts.push(stringField(4, r.typeUrl));
  if (r.nonce) parts.push(stringField(5, r.nonce));
  const length = parts.reduce((n, p) => n + p.length, 0);
  const frame = Buffer.allocUnsafe(5 + length);
  frame[0] = 0;
  frame.writeUInt32BE(length, 1);
  let pos = 5;
  for (const p of parts) pos += p.copy(frame, pos);
  return frame;
}

// ---- names the client must subscribe to, decoded once per version ----------

const Any = messageType('google.protobuf.Any');
const Cluster = messageType(TYPE_URL.Cluster);
const Listener = messageType(TYPE_URL.Listener);
const Hcm = messageType(TYPE_URL.HttpConnectionManager);
const namesMemo = new Map<string, string[]>();

function anyValue(bytes: Buffer): { type_url: string; value: Uint8Array } {
  return Any.decode(bytes) as unknown as { type_url: string; value: Uint8Array };
}

function edsNames(resources: Buffer[]): string[] {
  const names: string[] = [];
  for (const r of resources) {
    const c = Cluster.decode(anyValue(r).value) as any;
    if (c.type === 3) names.push(c.eds_cluster_config?.service_name || c.name);
  }
  return names.sort();
}

function rdsNames(resources: Buffer[]): string[] {
  const names = new Set<string>();
  for (const r of resources) {
    const l = Listener.decode(anyValue(r).value) as any;
    for (const chain of l.filter_chains ?? []) {
      for (const f of chain.filters ?? []) {
        if (f.typed_config?.type_url !== TYPE_URL.HttpConnectionManager) continue;
        const hcm = Hcm.decode(f.typed_config.value) as any;
        if (hcm.rds?.route_config_name) names.add(hcm.rds.route_config_name);
      }
    }
  }
  return [...names].sort();
}

function dependentNames(typeUrl: string, version: string, body: Buffer): string[] {
  const key = `${typeUrl}|${version}`;
  let names = namesMemo.get(key);
  if (!names) {
    const resources = responseResources(body);
    names = typeUrl === TYPE_URL.Cluster ? edsNames(resources) : rdsNames(resources);
    namesMemo.set(key, names);
  }
  return names;
}

// ---- one simulated client ---------------------------------------------------

interface TypeState {
  version: string;
  nonce: string;
  names: string[];
  namesBytes: Buffer;
  /** Version at the last mark. */
  baseline: string;
  changedSinceMark: boolean;
}

class SimClient {
  private session!: http2.ClientHttp2Session;
  private stream!: http2.ClientHttp2Stream;
  private pending: Buffer | undefined;
  readonly types = new Map<string, TypeState>(
    WATCHED.map((t) => [t, { version: '', nonce: '', names: [], namesBytes: Buffer.alloc(0), baseline: '', changedSinceMark: false }]),
  );
  lastChangeAckAt = 0;
  typesChanged = 0;
  failed = false;

  constructor(
    private readonly id: string,
    private readonly service: string,
    private readonly hooks: { onAck(isChange: boolean, firstChangeOfClient: boolean): void; onSynced(): void; onFailed(): void },
  ) {}

  get synced(): boolean {
    for (const st of this.types.values()) if (!st.nonce) return false;
    return true;
  }

  start(port: number): void {
    this.session = http2.connect(`http://127.0.0.1:${port}`, { settings: { enablePush: false } });
    this.session.on('error', () => this.fail());
    this.stream = this.session.request(
      { ':method': 'POST', ':path': ADS_PATHS.sotw, 'content-type': 'application/grpc', te: 'trailers' },
      { endStream: false },
    );
    this.stream.on('data', (chunk: Buffer) => this.onData(chunk));
    this.stream.on('error', () => this.fail());
    this.stream.on('close', () => {
      if (!this.closing) this.fail();
    });
    const node = messageType('envoy.config.core.v3.Node');
    const nodeBytes = Buffer.from(
      node
        .encode(
          node.fromObject({
            id: this.id,
            user_agent_name: 'weft-bench',
            metadata: { fields: { WEFT_SERVICE: { stringValue: this.service }, WEFT_ROLE: { stringValue: 'sidecar' } } },
          }),
        )
        .finish(),
    );
    const none = Buffer.alloc(0);
    this.stream.write(encodeRequest({ version: '', names: none, typeUrl: TYPE_URL.Cluster, nonce: '', node: nodeBytes }));
    this.stream.write(encodeRequest({ version: '', names: none, typeUrl: TYPE_URL.Listener, nonce: '' }));
  }

  private closing = false;

  close(): void {
    this.closing = true;
    this.session?.destroy();
  }

  private fail(): void {
    if (this.failed || this.closing) return;
    this.failed = true;
    this.hooks.onFailed();
  }

  mark(): void {
    this.typesChanged = 0;
    this.lastChangeAckAt = 0;
    for (const st of this.types.values()) {
      st.baseline = st.version;
      st.changedSinceMark = false;
    }
  }

  private onData(chunk: Buffer): void {
    let buf = this.pending ? Buffer.concat([this.pending, chunk]) : chunk;
    this.pending = undefined;
    while (buf.length >= 5) {
      const len = buf.readUInt32BE(1);
      if (buf.length < 5 + len) break;
      this.onMessage(buf.subarray(5, 5 + len));
      buf = buf.subarray(5 + len);
    }
    if (buf.length > 0) this.pending = Buffer.from(buf);
  }

  private onMessage(body: Buffer): void {
    const r = parseResponse(body);
    const st = this.types.get(r.typeUrl);
    if (!st) return;
    const wasSynced = this.synced;
    st.version = r.version;
    st.nonce = r.nonce;
    this.stream.write(encodeRequest({ version: r.version, names: st.namesBytes, typeUrl: r.typeUrl, nonce: r.nonce }));
    // An ACK of a version other than the one held at the mark is an ACK of the change.
    const isChange = st.baseline !== '' && r.version !== st.baseline;
    let firstChangeOfClient = false;
    if (isChange) {
      this.lastChangeAckAt = nowMs();
      if (!st.changedSinceMark) {
        st.changedSinceMark = true;
        firstChangeOfClient = this.typesChanged++ === 0;
      }
    }
    // A new CDS (LDS) may change the EDS (RDS) names to ask for, as Envoy does.
    if (r.typeUrl === TYPE_URL.Cluster || r.typeUrl === TYPE_URL.Listener) {
      const dependent = this.types.get(r.typeUrl === TYPE_URL.Cluster ? TYPE_URL.ClusterLoadAssignment : TYPE_URL.RouteConfiguration)!;
      const names = dependentNames(r.typeUrl, r.version, body);
      if (names.length !== dependent.names.length || names.some((n, i) => n !== dependent.names[i])) {
        dependent.names = names;
        dependent.namesBytes = encodeNames(names);
        const typeUrl = r.typeUrl === TYPE_URL.Cluster ? TYPE_URL.ClusterLoadAssignment : TYPE_URL.RouteConfiguration;
        this.stream.write(encodeRequest({ version: dependent.version, names: dependent.namesBytes, typeUrl, nonce: dependent.nonce }));
      }
    }
    this.hooks.onAck(isChange, firstChangeOfClient);
    if (!wasSynced && this.synced) this.hooks.onSynced();
  }
}

// ---- the process ------------------------------------------------------------

function main(): void {
  const config = JSON.parse(process.argv[2]) as SimClientsConfig;
  const send = (m: FromClients) => process.send!(m);
  const clients: SimClient[] = [];
  let synced = 0;
  let failed = 0;
  let acks = 0;
  let changedClients = 0;
  let lastChangeAt = 0;
  let progressTimer: NodeJS.Timeout | undefined;
  let cpuAtMark = process.cpuUsage();

  const started = nowMs();
  let nextIndex = 0;
  let inFlight = 0;
  const rampUp = () => {
    while (inFlight < config.rampBatch && nextIndex < config.count) {
      const i = config.first + nextIndex++;
      inFlight++;
      let settled = false;
      const settle = () => {
        if (settled) return;
        settled = true;
        inFlight--;
        rampUp();
        if (synced + failed === config.count) send({ t: 'ready', synced, failed, connectMs: nowMs() - started });
      };
      const client = new SimClient(`bench-${i}`, `svc-${i % config.services}`, {
        onAck: (isChange, firstChangeOfClient) => {
          acks++;
          if (isChange) lastChangeAt = client.lastChangeAckAt;
          if (firstChangeOfClient) changedClients++;
        },
        onSynced: () => {
          synced++;
          settle();
        },
        onFailed: () => {
          failed++;
          settle();
        },
      });
      clients.push(client);
      client.start(config.port);
    }
  };
  rampUp();

  process.on('message', (m: ToClients) => {
    if (m.t === 'mark') {
      for (const c of clients) c.mark();
      changedClients = 0;
      lastChangeAt = 0;
      acks = 0;
      cpuAtMark = process.cpuUsage();
      clearInterval(progressTimer);
      progressTimer = setInterval(() => send({ t: 'progress', changed: changedClients, lastChangeAt, acks }), 50);
      send({ t: 'marked' });
    } else if (m.t === 'collect') {
      clearInterval(progressTimer);
      const cpu = process.cpuUsage(cpuAtMark);
      const latencies = clients.filter((c) => c.lastChangeAckAt > 0).map((c) => c.lastChangeAckAt - m.t0);
      const typesChanged = Math.max(0, ...clients.map((c) => c.typesChanged));
      send({ t: 'result', latencies, typesChanged, cpuMs: (cpu.user + cpu.system) / 1000 });
    } else if (m.t === 'stop') {
      clearInterval(progressTimer);
      for (const c of clients) c.close();
      setTimeout(() => process.exit(0), 100).unref();
    }
  });
  process.on('disconnect', () => process.exit(0));
}

if (require.main === module) main();
