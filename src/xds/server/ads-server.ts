// The xDS management server: the Aggregated Discovery Service (SotW and
// delta) on @grpc/grpc-js, serving the SnapshotCache's snapshots.
import * as grpc from '@grpc/grpc-js';
import * as os from 'node:os';
import type { SnapshotCache } from '../cache/snapshot-cache';
import { jsonLogger, type Logger } from '../../observe/log';
import { adsServerDefinition, type DeltaDiscoveryRequestMessage, type DiscoveryRequestMessage, type MalformedMessage } from './ads-service';
import type { AdsStream, StreamContext } from './ads-stream';
import { DeltaStream } from './delta-stream';
import type { NackEvent, NodeStatus, StatusChange } from './node-status';
import { SotwStream } from './sotw-stream';

export interface XdsServerOptions {
  cache: SnapshotCache;
  /** Defaults to JSON lines on stderr (info and above). */
  log?: Logger;
  /** Called for every NACK, after it is logged and recorded. */
  onNack?: (event: NackEvent) => void;
  /** Called when a stream connects, sends, is acknowledged or rejected, or disconnects. */
  onStatusChange?: (status: NodeStatus, change: StatusChange) => void;
  /** TLS for the port (outside dev mode); plaintext when absent. */
  credentials?: grpc.ServerCredentials;
  /** Extra @grpc/grpc-js server options. */
  grpcOptions?: grpc.ServerOptions;
  /**
   * This replica's identity among the control plane's replicas, reported
   * with every node's status (`weft status`: which replica a node is
   * connected to). Default: <hostname>:<bound xDS port>.
   */
  replicaId?: string;
  /** Outside --dev: who may open a stream for which node (the control plane checks join tokens). */
  authorize?: StreamContext['authorize'];
}

/** Thrown by listen() when the address cannot be bound. */
export class XdsListenError extends Error {
  readonly code = 'E_XDS_LISTEN';
}

export class XdsServer {
  private readonly server: grpc.Server;
  private readonly streams = new Set<AdsStream<any, any>>();
  private readonly ctx: StreamContext;
  private nextStreamId = 1;
  private readonly credentials: grpc.ServerCredentials;
  private replica: string;

  constructor(private readonly options: XdsServerOptions) {
    this.ctx = {
      cache: options.cache,
      log: options.log ?? jsonLogger(),
      onNack: options.onNack,
      onStatusChange: options.onStatusChange,
      onClosed: (stream) => this.streams.delete(stream),
      replica: () => this.replica,
      authorize: options.authorize,
    };
    this.replica = options.replicaId ?? os.hostname();
    this.credentials = options.credentials ?? grpc.ServerCredentials.createInsecure();
    this.server = new grpc.Server({
      // Channelz bookkeeping per connection costs memory and CPU that thousands of proxies multiply.
      'grpc.enable_channelz': 0,
      ...options.grpcOptions,
    });
    this.server.addService(adsServerDefinition(), {
      StreamAggregatedResources: (call: grpc.ServerDuplexStream<DiscoveryRequestMessage | MalformedMessage, Buffer>) => {
        this.streams.add(new SotwStream(this.nextStreamId++, call, this.ctx));
      },
      DeltaAggregatedResources: (call: grpc.ServerDuplexStream<DeltaDiscoveryRequestMessage | MalformedMessage, Buffer>) => {
        this.streams.add(new DeltaStream(this.nextStreamId++, call, this.ctx));
      },
    });
  }

  /** Serves another gRPC service on the same port (the rate limit service); call before listen(). */
  addService(definition: grpc.ServiceDefinition, handlers: grpc.UntypedServiceImplementation): void {
    this.server.addService(definition, handlers);
  }

  /** Binds host:port (0 for an ephemeral port) and resolves with the bound port. */
  listen(port: number, host = '127.0.0.1'): Promise<number> {
    const address = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
    return new Promise((resolve, reject) => {
      this.server.bindAsync(address, this.credentials, (err, bound) => {
        if (err) reject(new XdsListenError(`xDS server cannot listen on ${address}: ${err.message}`));
        else {
          if (this.options.replicaId === undefined) this.replica = `${os.hostname()}:${bound}`;
          this.ctx.log('info', 'xds server listening', { address: host, port: bound, replica: this.replica });
          resolve(bound);
        }
      });
    });
  }

  /** Ends every stream and stops the server (forcefully after graceMs). */
  close(graceMs = 1000): Promise<void> {
    for (const stream of [...this.streams]) stream.end();
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.server.forceShutdown(), graceMs);
      timer.unref();
      this.server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** This replica's identity (XdsServerOptions.replicaId, or <hostname>:<port> once listening). */
  get replicaId(): string {
    return this.replica;
  }

  /** One entry per identified stream. */
  status(): NodeStatus[] {
    const out: NodeStatus[] = [];
    for (const stream of this.streams) {
      const s = stream.status();
      if (s) out.push(s);
    }
    return out;
  }

  /** Streams open, identified or not. */
  get streamCount(): number {
    return this.streams.size;
  }
}
