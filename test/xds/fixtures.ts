// Shared by the xDS tests: a tiny generator producing real Envoy resources,
// a server on 127.0.0.1:0, and an ADS client with a queue of responses.
import * as grpc from '@grpc/grpc-js';
import { anyOf, decodeMessage } from '../../src/xds/protos';
import { TYPE_URL, type XdsTypeUrl } from '../../src/xds/type-urls';
import type { NodeInfo, ResourceSet, XdsResource } from '../../src/translate/types';
import { SnapshotCache } from '../../src/xds/cache/snapshot-cache';
import { XdsServer, type XdsServerOptions } from '../../src/xds/server/ads-server';
import { adsClientDefinition, ADS_PATHS } from '../../src/xds/server/ads-service';

export interface MeshState {
  /** cluster name → endpoint ports (every cluster is EDS with a CLA of the same name) */
  clusters: Map<string, number[]>;
  /** the cluster greeter-route sends to */
  routeTo: string;
  /** make the generator throw */
  fail?: boolean;
}

export function meshState(): MeshState {
  return { clusters: new Map([['backend', [19001]], ['other', [19101]]]), routeTo: 'backend' };
}

const ADS = { ads: {}, resource_api_version: 2 /* V3 */ };

function byName(items: XdsResource[]): Map<string, XdsResource> {
  return new Map(items.map((i) => [i.name, i]));
}

/** Generates Cluster + CLA per cluster, an api_listener "greeter:50051" with RDS, and its route table. */
export function generatorFor(state: MeshState): (node: NodeInfo) => ResourceSet {
  return () => {
    if (state.fail) throw new Error('generator broken on purpose');
    const clusters: XdsResource[] = [];
    const clas: XdsResource[] = [];
    for (const [name, ports] of state.clusters) {
      clusters.push({
        name,
        resource: { name, type: 3 /* EDS */, eds_cluster_config: { eds_config: ADS, service_name: name }, connect_timeout: { seconds: 1 } },
      });
      clas.push({
        name,
        resource: {
          cluster_name: name,
          endpoints: [
            {
              lb_endpoints: ports.map((port) => ({
                endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: port } } },
              })),
            },
          ],
        },
      });
    }
    const hcm = {
      stat_prefix: 'greeter',
      rds: { route_config_name: 'greeter-route', config_source: ADS },
      http_filters: [{ name: 'router', typed_config: anyOf(TYPE_URL.Router, {}) }],
    };
    const listener = { name: 'greeter:50051', api_listener: { api_listener: anyOf(TYPE_URL.HttpConnectionManager, hcm) } };
    const route = {
      name: 'greeter-route',
      virtual_hosts: [{ name: 'greeter', domains: ['*'], routes: [{ match: { prefix: '' }, route: { cluster: state.routeTo } }] }],
    };
    return new Map<XdsTypeUrl, Map<string, XdsResource>>([
      [TYPE_URL.Cluster, byName(clusters)],
      [TYPE_URL.ClusterLoadAssignment, byName(clas)],
      [TYPE_URL.Listener, byName([{ name: 'greeter:50051', resource: listener }])],
      [TYPE_URL.RouteConfiguration, byName([{ name: 'greeter-route', resource: route }])],
    ]);
  };
}

export interface Harness {
  state: MeshState;
  cache: SnapshotCache;
  server: XdsServer;
  port: number;
  logs: { level: string; msg: string; fields?: Record<string, unknown> }[];
  close(): Promise<void>;
}

export async function startHarness(extra: Partial<XdsServerOptions> = {}): Promise<Harness> {
  const state = meshState();
  const logs: Harness['logs'] = [];
  const log = (level: string, msg: string, fields?: Record<string, unknown>) => logs.push({ level, msg, fields });
  const cache = new SnapshotCache({ generate: generatorFor(state), log });
  const server = new XdsServer({ cache, log, ...extra });
  const port = await server.listen(0);
  return {
    state,
    cache,
    server,
    port,
    logs,
    close: async () => {
      await server.close(200);
      cache.close();
    },
  };
}

export const NODE = {
  id: 'node-1',
  user_agent_name: 'gRPC Node',
  metadata: { fields: { WEFT_SERVICE: { stringValue: 'client' } } },
  locality: { zone: 'z1' },
};

export type Response = Record<string, any>;

const AdsClient = grpc.makeGenericClientConstructor(adsClientDefinition(), 'AggregatedDiscoveryService');

/** An ADS stream with its responses queued, for step-by-step protocol tests. */
export class TestStream {
  private readonly client: grpc.Client;
  private readonly call: grpc.ClientDuplexStream<any, any>;
  private readonly queue: Response[] = [];
  private waiter: ((r: Response) => void) | undefined;
  /** The final status of the call. */
  readonly ended: Promise<grpc.StatusObject>;

  constructor(port: number, readonly mode: 'sotw' | 'delta' = 'sotw', rawRequests = false) {
    const Ctor = rawRequests ? RawAdsClient : AdsClient;
    this.client = new Ctor(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), {
      'grpc.use_local_subchannel_pool': 1,
    });
    const method = mode === 'sotw' ? 'StreamAggregatedResources' : 'DeltaAggregatedResources';
    this.call = (this.client as any)[method]();
    this.call.on('data', (r: Response) => {
      if (this.waiter) {
        const w = this.waiter;
        this.waiter = undefined;
        w(r);
      } else this.queue.push(r);
    });
    this.ended = new Promise((resolve) => this.call.on('status', resolve));
    this.call.on('error', () => {});
  }

  send(req: Record<string, unknown> | Buffer): void {
    this.call.write(req);
  }

  /** The next response, or a rejection after timeoutMs. */
  next(timeoutMs = 2000): Promise<Response> {
    const queued = this.queue.shift();
    if (queued) return Promise.resolve(queued);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = undefined;
        reject(new Error(`no response within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiter = (r) => {
        clearTimeout(timer);
        resolve(r);
      };
    });
  }

  /** Resolves true if no response arrives within ms. */
  async quiet(ms = 150): Promise<boolean> {
    try {
      const r = await this.next(ms);
      this.queue.unshift(r);
      return false;
    } catch {
      return true;
    }
  }

  close(): void {
    this.call.cancel();
    this.client.close();
  }
}

const rawDefinition = (() => {
  const def = adsClientDefinition() as Record<string, any>;
  const identity = (b: Buffer) => b;
  return {
    StreamAggregatedResources: { ...def.StreamAggregatedResources, path: ADS_PATHS.sotw, requestSerialize: identity },
    DeltaAggregatedResources: { ...def.DeltaAggregatedResources, path: ADS_PATHS.delta, requestSerialize: identity },
  } as grpc.ServiceDefinition;
})();
const RawAdsClient = grpc.makeGenericClientConstructor(rawDefinition, 'RawAggregatedDiscoveryService');

/** Resource names of a SotW response, decoded. */
export function resourcesOf(resp: Response): Record<string, any>[] {
  return resp.resources.map((any: { type_url: string; value: Buffer }) => decodeMessage(any.type_url, any.value));
}

/** Decoded resources of a delta response, with name and version. */
export function deltaResourcesOf(resp: Response): { name: string; version: string; resource: Record<string, any> }[] {
  return resp.resources.map((r: any) => ({
    name: r.name,
    version: r.version,
    resource: decodeMessage(r.resource.type_url, r.resource.value),
  }));
}

export function ack(resp: Response, names?: string[]): Record<string, unknown> {
  return {
    version_info: resp.version_info,
    response_nonce: resp.nonce,
    type_url: resp.type_url,
    ...(names ? { resource_names: names } : {}),
  };
}

export async function eventually(check: () => boolean, timeoutMs = 2000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}
