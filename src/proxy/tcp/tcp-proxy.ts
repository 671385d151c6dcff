// TCP proxying: bytes both ways, with half-close (one side's FIN is passed
// on while the other direction keeps flowing), an idle timeout, and a
// weighted choice of cluster per connection.
import * as net from 'node:net';
import * as tls from 'node:tls';
import type { Logger } from '../../observe/log';
import type { RequestRecord } from '../../observe/request-record';
import type { TcpNetworkFilter } from '../config/types';
import { pickWeightedCluster } from '../router/weighted';
import type { Runtime } from '../runtime';
import type { ProxyStats, TcpStats } from '../stats';
import { networkRbacAllows } from './network-rbac';

export function proxyTcp(
  downstream: net.Socket,
  filter: TcpNetworkFilter,
  runtime: Runtime,
  stats: ProxyStats,
  log: Logger,
  direction = 'outbound',
  /** The caller's service.namespace when the connection came over mTLS (the metrics' source). */
  peerSource?: string,
  /** The caller's SPIFFE ID when the connection came over mTLS (RBAC principals). */
  peerPrincipal?: string,
): void {
  const started = performance.now();
  const name = filter.clusters.length === 1 ? filter.clusters[0].name : pickWeightedCluster(filter.clusters, filter.totalWeight, Math.random);
  const tcp = stats.forTcp(direction, name, peerSource);
  tcp.connections++;
  // RBAC first: a denied connection is closed before anything is read or any upstream is dialled.
  if (filter.rbac && !networkRbacAllows(filter.rbac, downstream, peerPrincipal, runtime)) {
    if (stats.records.active) stats.records.emit(tcpRecord(downstream, stats, tcp, direction, name, '', 'RBAC', started));
    downstream.destroy();
    return;
  }
  const cluster = runtime.cluster(name);
  const endpoint = cluster?.lb.pick();
  if (!cluster || !endpoint) {
    const flag = cluster ? 'UH' : 'NC';
    log('debug', 'tcp connection refused', { cluster: name, flag });
    if (stats.records.active) stats.records.emit(tcpRecord(downstream, stats, tcp, direction, name, '', flag, started));
    downstream.destroy();
    return;
  }
  tcp.active++;
  let received = 0;
  let sent = 0;
  let upstreamFailed = false;
  cluster.load.started(endpoint);
  // Auto mTLS: an endpoint with a sidecar gets TLS ('secureConnect' once the peer is verified).
  const tlsOptions = runtime.tls?.upstream(cluster.config, endpoint);
  const upstream: net.Socket = tlsOptions
    ? runtime.tls!.connect({ ...tlsOptions, allowHalfOpen: true } as tls.ConnectionOptions)
    : net.connect({ host: endpoint.address, port: endpoint.port, allowHalfOpen: true, noDelay: true });
  if (tlsOptions) upstream.setNoDelay(true);
  upstream.setTimeout(cluster.config.connectTimeoutMs, () => upstream.destroy(new Error('connect timeout')));
  upstream.once(tlsOptions ? 'secureConnect' : 'connect', () => upstream.setTimeout(filter.idleTimeoutMs ?? 0));
  if (filter.idleTimeoutMs) downstream.setTimeout(filter.idleTimeoutMs, () => downstream.destroy());

  downstream.on('data', (chunk: Buffer) => {
    tcp.received += chunk.length;
    received += chunk.length;
    if (!upstream.write(chunk)) downstream.pause();
  });
  upstream.on('data', (chunk: Buffer) => {
    tcp.sent += chunk.length;
    sent += chunk.length;
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
    tcp.active--;
    cluster.load.ended(endpoint);
    if (stats.records.active) {
      const flag = upstreamFailed ? (sent === 0 ? 'UF' : 'UC') : '';
      stats.records.emit({ ...tcpRecord(downstream, stats, tcp, direction, name, endpoint.key, flag, started), requestBytes: received, responseBytes: sent });
    }
    downstream.destroy();
    upstream.destroy();
  };
  downstream.on('error', destroyBoth);
  upstream.on('error', (err) => {
    log((err as NodeJS.ErrnoException).code === 'ERR_TLS_PEER_IDENTITY' ? 'warn' : 'debug', 'tcp upstream error', { cluster: name, endpoint: endpoint.key, error: err.message });
    upstreamFailed = true;
    destroyBoth();
  });
  // A side closed in both directions: finish the other gracefully (end() flushes what is queued).
  downstream.on('close', () => (upstream.destroyed ? destroyBoth() : upstream.end(() => destroyBoth())));
  upstream.on('close', () => (downstream.destroyed ? destroyBoth() : downstream.end(() => destroyBoth())));
}

/** The RequestRecord of a TCP connection, at its end. */
function tcpRecord(downstream: net.Socket, stats: ProxyStats, tcp: TcpStats, direction: string, cluster: string, upstream: string, flags: string, started: number): RequestRecord {
  return {
    time: performance.timeOrigin + started,
    durationMs: performance.now() - started,
    direction,
    protocol: 'tcp',
    method: '',
    authority: '',
    path: '',
    route: '',
    cluster,
    upstream,
    status: 0,
    flags,
    requestBytes: 0,
    responseBytes: 0,
    sourceAddress: `${downstream.remoteAddress}:${downstream.remotePort}`,
    source: tcp.source,
    destination: tcp.destination,
    attempts: 1,
  };
}
