// Child process of bench/xds-convergence (--server synthetic): SnapshotCache +
// XdsServer with a generator shaped like the translator's sidecar output
// (an EDS cluster and assignment per service, an outbound listener with RDS,
// one route table with a virtual host per service). Isolates the cache and
// server from the translator and the store. A change (IPC {t:'change'} or
// SIGUSR2) moves an endpoint of svc-0: every group's EDS changes.
import { anyOf } from '../src/xds/protos';
import { TYPE_URL, type XdsTypeUrl } from '../src/xds/type-urls';
import { SnapshotCache } from '../src/xds/cache/snapshot-cache';
import { jsonLogger } from '../src/observe/log';
import { XdsServer } from '../src/xds/server/ads-server';
import type { ResourceSet, XdsResource } from '../src/translate/types';

const services = Number(process.argv[2] ?? 50);
let generation = 0;
const ADS = { ads: {}, resource_api_version: 2 };

function generate(): ResourceSet {
  const clusters = new Map<string, XdsResource>();
  const clas = new Map<string, XdsResource>();
  const vhosts: Record<string, unknown>[] = [];
  for (let i = 0; i < services; i++) {
    const name = `outbound|8080||svc-${i}.default`;
    clusters.set(name, {
      name,
      resource: { name, type: 3, eds_cluster_config: { eds_config: ADS, service_name: name }, connect_timeout: { seconds: 1 } },
    });
    const ports = i === 0 ? [20000 + generation, 21000] : [20000, 21000];
    clas.set(name, {
      name,
      resource: {
        cluster_name: name,
        endpoints: [
          {
            lb_endpoints: ports.map((port, j) => ({
              endpoint: { address: { socket_address: { address: `10.0.${i % 250}.${j + 1}`, port_value: port } } },
            })),
          },
        ],
      },
    });
    vhosts.push({
      name: `svc-${i}:8080`,
      domains: [`svc-${i}`, `svc-${i}:8080`, `svc-${i}.default`],
      routes: [{ match: { prefix: '/' }, route: { cluster: name, timeout: { seconds: 15 } } }],
    });
  }
  const hcm = {
    stat_prefix: 'outbound',
    rds: { route_config_name: 'outbound', config_source: ADS },
    http_filters: [{ name: 'envoy.filters.http.router', typed_config: anyOf(TYPE_URL.Router, {}) }],
  };
  const listener = {
    name: 'outbound',
    address: { socket_address: { address: '127.0.0.1', port_value: 15001 } },
    filter_chains: [{ filters: [{ name: 'envoy.filters.network.http_connection_manager', typed_config: anyOf(TYPE_URL.HttpConnectionManager, hcm) }] }],
  };
  return new Map<XdsTypeUrl, Map<string, XdsResource>>([
    [TYPE_URL.Cluster, clusters],
    [TYPE_URL.ClusterLoadAssignment, clas],
    [TYPE_URL.Listener, new Map([['outbound', { name: 'outbound', resource: listener }]])],
    [TYPE_URL.RouteConfiguration, new Map([['outbound', { name: 'outbound', resource: { name: 'outbound', virtual_hosts: vhosts } }]])],
  ]);
}

async function main(): Promise<void> {
  const log = jsonLogger('warn');
  const cache = new SnapshotCache({ generate, log });
  const server = new XdsServer({ cache, log });
  const port = await server.listen(0);
  const change = () => {
    generation++;
    void cache.refresh();
  };
  process.on('SIGUSR2', change);
  process.on('message', (m: { t: string }) => {
    if (m.t === 'change') change();
  });
  // Exit normally on either, so a --cpu-prof profile gets written.
  process.on('disconnect', () => process.exit(0));
  process.on('SIGTERM', () => process.exit(0));
  process.send!({ t: 'listening', port });
}

void main();
