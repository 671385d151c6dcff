// The control plane's end of StreamMetrics (Envoy's MetricsService): each
// sidecar connected to this replica streams its metrics report here; the
// latest one per node is kept, turned into edge counters for the mesh
// observer and the endpoints the sidecar took out of load balancing for
// `weft status`. The first message names the node; outside --dev the call
// must carry the node's join token (the check the ADS stream makes).
//
// Memory is bounded: one report per node, of at most MAX_SERIES series; a
// report with more ends the stream (RESOURCE_EXHAUSTED), and a node's report
// leaves when its stream ends.
import * as grpc from '@grpc/grpc-js';
import type { Logger } from '../log';
import type { NodeInfo } from '../../translate/types';
import { nodeInfoFromXdsNode } from '../../xds/node-info';
import { XdsProtocolError } from '../../xds/server/errors';
import { edgeCountersFromFamilies, type EdgeCounters } from '../mesh-metrics';
import { metricsServiceDefinition, type MetricFamily, type StreamMetricsMessage } from './telemetry-protocol';

/** Series (metrics of every family) one report may hold. */
export const MAX_SERIES = 20_000;
const UNHEALTHY_FAMILY = 'weft_endpoint_unhealthy';

export interface EndpointVerdict {
  cluster: string;
  endpoint: string;
  reason: string;
  detail: string;
}

export interface NodeReport {
  node: NodeInfo;
  /** When this replica received the report (epoch ms). */
  receivedAt: number;
  edges: EdgeCounters[];
  unhealthy: EndpointVerdict[];
}

export type StreamAuthorizer = (metadata: grpc.Metadata, node: NodeInfo) => void;

export class MetricsIntake {
  private readonly reports = new Map<string, NodeReport>();
  /** Open streams per node: a reconnecting sidecar's old stream may end after its new one began. */
  private readonly streams = new Map<string, number>();
  reportsReceived = 0;
  /** Ends each open stream (close()). */
  private readonly open = new Set<() => void>();

  constructor(private readonly opts: { authorize?: StreamAuthorizer; log: Logger }) {}

  /** The latest report of each node whose stream is open. */
  all(): NodeReport[] {
    return [...this.reports.values()];
  }

  get(nodeId: string): NodeReport | undefined {
    return this.reports.get(nodeId);
  }

  service(): { definition: grpc.ServiceDefinition; handlers: grpc.UntypedServiceImplementation } {
    return { definition: metricsServiceDefinition(), handlers: { StreamMetrics: (call: grpc.ServerReadableStream<StreamMetricsMessage, unknown>, done: grpc.sendUnaryData<unknown>) => this.stream(call, done) } };
  }

  private stream(call: grpc.ServerReadableStream<StreamMetricsMessage, unknown>, done: grpc.sendUnaryData<unknown>): void {
    let node: NodeInfo | undefined;
    let finished = false;
    const finish = (err?: { code: grpc.status; details: string }) => {
      if (finished) return;
      finished = true;
      this.open.delete(endOk);
      if (node) {
        const left = (this.streams.get(node.id) ?? 1) - 1;
        if (left > 0) this.streams.set(node.id, left);
        else {
          this.streams.delete(node.id);
          this.reports.delete(node.id);
        }
      }
      if (err) {
        done(err);
        call.destroy();
      } else done(null, {});
    };
    const endOk = () => finish();
    this.open.add(endOk);
    call.on('data', (msg: StreamMetricsMessage) => {
      if (finished) return;
      try {
        if (!node) {
          const announced = msg.identifier?.node;
          if (!announced) throw new XdsProtocolError('E_XDS_MISSING_NODE', 'the first StreamMetricsMessage must carry identifier.node');
          const info = nodeInfoFromXdsNode(announced);
          this.opts.authorize?.(call.metadata, info);
          node = info;
          this.streams.set(info.id, (this.streams.get(info.id) ?? 0) + 1);
        }
        this.accept(node, msg.envoy_metrics ?? []);
      } catch (err) {
        const code = err instanceof XdsProtocolError ? err.grpcCode : (err as { code?: string }).code === 'E_XDS_INVALID_NODE' ? grpc.status.INVALID_ARGUMENT : grpc.status.RESOURCE_EXHAUSTED;
        finish({ code, details: (err as Error).message });
      }
    });
    call.on('end', () => finish());
    call.on('error', () => finish());
    call.on('close', () => finish());
  }

  /** Ends every stream (the control plane is stopping): the server need not wait for them. */
  close(): void {
    for (const end of [...this.open]) end();
  }

  private accept(node: NodeInfo, families: MetricFamily[]): void {
    let series = 0;
    for (const f of families) series += f.metric?.length ?? 0;
    if (series > MAX_SERIES) throw new Error(`a report of ${series} series is over the limit of ${MAX_SERIES}`);
    const self = `${node.service ?? node.id}.${node.namespace}`;
    const unhealthy: EndpointVerdict[] = [];
    for (const f of families) {
      if (f.name !== UNHEALTHY_FAMILY) continue;
      for (const m of f.metric ?? []) {
        const l = Object.fromEntries((m.label ?? []).map((p) => [p.name, p.value]));
        unhealthy.push({ cluster: l.cluster ?? '', endpoint: l.endpoint ?? '', reason: l.reason ?? '', detail: l.detail ?? '' });
      }
    }
    this.reports.set(node.id, { node, receivedAt: Date.now(), edges: edgeCountersFromFamilies(families, self), unhealthy });
    this.reportsReceived++;
  }
}
