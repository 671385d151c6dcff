// Clusters: one EDS cluster per port of every service in scope, and for a
// sidecar one STATIC cluster per port of its own service (to the local app).
import type { TrafficPolicySpec } from '../config/kinds';
import { anyOf } from '../xds/protos';
import { TYPE_URL } from '../xds/type-urls';
import type { Service, ServicePort, TranslateContext } from './context';
import { isHttp2Port, isHttpPort, keyOf } from './context';
import { inboundClusterName, outboundClusterName } from './names';
import { clusterPolicyFields, commonHttpProtocolOptions } from './policy';
import { adsConfigSource, ENUM, EXTENSION_NAME, wrap } from './proto-values';
import { transportSocketMatches } from './mtls';

type Obj = Record<string, unknown>;

/** The address the sidecar reaches its app on. */
export const LOCAL_APP_ADDRESS = '127.0.0.1';

export function outboundCluster(ctx: TranslateContext, service: Service, port: ServicePort): Obj {
  const name = outboundClusterName(service.metadata.name, service.metadata.namespace, port.port);
  const policy = ctx.policies.get(keyOf(service));
  const cluster: Obj = {
    name,
    type: ENUM.discoveryType().EDS,
    eds_cluster_config: { eds_config: adsConfigSource(), service_name: name },
    ...clusterPolicyFields(policy, ctx.node.role),
  };
  const protocol = protocolOptions(port, policy);
  if (protocol) cluster.typed_extension_protocol_options = protocol;
  // Auto mTLS to endpoints with a sidecar (mtls.ts); proxyless gRPC stays plaintext.
  if (ctx.node.role === 'sidecar') cluster.transport_socket_matches = transportSocketMatches(ctx, service, port);
  // An HTTP check's Host defaults to the cluster name, whose '|' is no valid authority: a callee's sidecar answers 400.
  const httpCheck = (cluster.health_checks as Obj[] | undefined)?.[0]?.http_health_check as Obj | undefined;
  if (httpCheck) httpCheck.host = `${service.metadata.name}.${service.metadata.namespace}`;
  return cluster;
}

/**
 * The sidecar's cluster to its app: 127.0.0.1 (or the node's appAddress: a
 * transparent unit's address) at the port's targetPort (or port); the node's
 * appPort, when its bootstrap says one, for its lowest port.
 */
export function inboundCluster(port: ServicePort, appPort?: number, appAddress = LOCAL_APP_ADDRESS): Obj {
  const name = inboundClusterName(port.port);
  const cluster: Obj = {
    name,
    type: ENUM.discoveryType().STATIC,
    lb_policy: ENUM.lbPolicy().ROUND_ROBIN,
    load_assignment: {
      cluster_name: name,
      endpoints: [
        {
          locality: {},
          load_balancing_weight: wrap(1),
          lb_endpoints: [
            {
              endpoint: { address: { socket_address: { address: appAddress, port_value: appPort ?? port.targetPort ?? port.port } } },
              health_status: ENUM.healthStatus().HEALTHY,
            },
          ],
        },
      ],
    },
  };
  const protocol = protocolOptions(port, undefined);
  if (protocol) cluster.typed_extension_protocol_options = protocol;
  return cluster;
}

/**
 * HttpProtocolOptions of an HTTP-capable port: the upstream protocol said
 * explicitly (HTTP/2 for grpc and http2 ports, HTTP/1.1 for http) and the
 * policy's idle timeout and requests per connection. TCP ports have none.
 */
function protocolOptions(port: ServicePort, policy: TrafficPolicySpec | undefined): Obj | undefined {
  if (!isHttpPort(port)) return undefined;
  const options: Obj = {};
  const common = commonHttpProtocolOptions(policy);
  if (common) options.common_http_protocol_options = common;
  options.explicit_http_config = isHttp2Port(port) ? { http2_protocol_options: {} } : { http_protocol_options: {} };
  return { [EXTENSION_NAME.httpProtocolOptions]: anyOf(TYPE_URL.HttpProtocolOptions, options) };
}
