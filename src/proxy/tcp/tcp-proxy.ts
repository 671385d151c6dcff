// TCP proxying: bytes both ways, with half-close (one side's FIN is passed
// on while the other direction keeps flowing), an idle timeout, and a
// weighted choice of cluster per connection.
import * as net from 'node:net';
import type { Logger } from '../../observe/log';
import type { TcpNetworkFilter } from '../config/types';
import { pickWeightedCluster } from '../router/weighted';
import type { Runtime } from '../runtime';
import type { ProxyStats } from '../stats';

export function proxyTcp(downstream: net.Socket, filter: TcpNetworkFilter, runtime: Runtime, stats: ProxyStats, log: Logger): void {
  stats.tcpConnectionsTotal++;
  const name = filter.clusters.length === 1 ? filter.clusters[0].name : pickWeightedCluster(filter.clusters, filter.totalWeight, Math.random);
  const cluster = runtime.cluster(name);
  const endpoint = cluster?.lb.pick();
  if (!cluster || !endpoint) {
    log('debug', 'tcp connection refused', { cluster: name, flag: cluster ? 'UH' : 'NC' });
    downstream.destroy();
    return;
  }
  cluster.load.started(endpoint);
  const upstream = net.connect({ host: endpoint.address, port: endpoint.port, allowHalfOpen: true, noDelay: true });
  upstream.setTimeout(cluster.config.connectTimeoutMs, () => upstream.destroy(new Error('connect timeout')));
  upstream.once('connect', () => upstream.setTimeout(filter.idleTimeoutMs ?? 0));
  if (filter.idleTimeoutMs) downstream.setTimeout(filter.idleTimeoutMs, () => downstream.destroy());

  downstream.on('data', (chunk: Buffer) => {
    stats.tcpBytesIn += chunk.length;
    if (!upstream.write(chunk)) downstream.pause();
  });
  upstream.on('data', (chunk: Buffer) => {
    stats.tcpBytesOut += chunk.length;
    if (!downstream.write(chunk)) upstream.pause();
  });
  upstream.on('drain', () => downstream.resume());
  downstream.on('drain', () => upstream.resume());
  // Half-close: a FIN from one side ends only that direction.
  downstream.on('end', () => upstream.end());
  upstream.on('end', () => downstream.end());
  let done = false;
  const destroyBoth = () => {
    if (done) return;
    done = true;
    cluster.load.ended(endpoint);
    downstream.destroy();
    upstream.destroy();
  };
  downstream.on('error', destroyBoth);
  upstream.on('error', (err) => {
    log('debug', 'tcp upstream error', { cluster: name, endpoint: endpoint.key, error: err.message });
    destroyBoth();
  });
  // A side closed in both directions: finish the other gracefully (end() flushes what is queued).
  downstream.on('close', () => (upstream.destroyed ? destroyBoth() : upstream.end(() => destroyBoth())));
  upstream.on('close', () => (downstream.destroyed ? destroyBoth() : downstream.end(() => destroyBoth())));
}
