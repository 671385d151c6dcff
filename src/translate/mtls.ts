// Mutual TLS between sidecars (MeshTLS), in Envoy's shapes:
//
//   MeshTLS mode            inbound listener (the service's own sidecar)
//   permissive (default)    listener_filters [tls_inspector]; per port a TLS chain
//                           (filter_chain_match {destination_port, transport_protocol "tls"},
//                           DownstreamTlsContext) and the plaintext chain; a port-less TLS
//                           chain and the plaintext default_filter_chain for connections made
//                           to the listener itself (the lowest port)
//   strict                  the same without any plaintext chain: plaintext is closed
//
//   outbound clusters (sidecars only): transport_socket_matches [{match {tlsMode: weft},
//   UpstreamTlsContext: SNI, ALPN by port protocol, SDS cert "default", validation "ROOTCA"
//   with the destination's SPIFFE ID as the only URI SAN accepted}] (Envoy's auto mTLS).
//   EDS endpoints registered by a sidecar (`weft run`) carry filter_metadata
//   ["envoy.transport_socket_match"] = {tlsMode: weft}; static endpoints have no sidecar
//   and stay plaintext. Proxyless gRPC clients get no transport socket (plaintext).
//
// Service-level MeshTLS wins over namespace-level; neither: permissive.
import { spiffeId } from '../ca/spiffe-id';
import { anyOf } from '../xds/protos';
import { TYPE_URL } from '../xds/type-urls';
import type { Service, ServicePort, TranslateContext } from './context';
import { isHttp2Port, isHttpPort } from './context';
import { msToProtoDuration } from '../config/duration';
import { adsConfigSource, ENUM, protoEnum } from './proto-values';
import type { Resource } from '../config/kinds';
import type { MeshView, NodeInfo } from './types';

type Obj = Record<string, unknown>;

export type MeshTlsMode = 'permissive' | 'strict';

/** Envoy's EDS metadata key the transport_socket_matches look at. */
export const TRANSPORT_SOCKET_MATCH_KEY = 'envoy.transport_socket_match';
/** The match of endpoints that have a weft sidecar in front of them. */
export const WEFT_TLS_MODE = { tlsMode: 'weft' } as const;
export const WORKLOAD_CERT = 'default';
export const TRUST_BUNDLE = 'ROOTCA';
export const TLS_TRANSPORT_SOCKET = 'envoy.transport_sockets.tls';
export const TLS_INSPECTOR = 'envoy.filters.listener.tls_inspector';
/** How long the inbound listener waits for a caller's first byte before treating it as plaintext (server-first protocols). */
export const INSPECT_TIMEOUT_MS = 5000;

/** A service's MeshTLS mode: its own MeshTLS, else its namespace's, else permissive. */
export function meshTlsMode(ctx: TranslateContext, service: Service): MeshTlsMode {
  return meshTlsOf(ctx.view, service.metadata.name, service.metadata.namespace)?.spec.mode ?? 'permissive';
}

/** The MeshTLS that applies to a service (its own, else its namespace's); none: permissive. */
export function meshTlsOf(view: Pick<MeshView, 'meshTls'>, name: string, namespace: string): Resource<'MeshTLS'> | undefined {
  let nsWide: Resource<'MeshTLS'> | undefined;
  for (const m of view.meshTls) {
    if (m.metadata.namespace !== namespace) continue;
    if (m.spec.targetRef?.name === name) return m;
    if (!m.spec.targetRef) nsWide ??= m;
  }
  return nsWide;
}

export function spiffeIdOf(ctx: TranslateContext, service: Service): string {
  return spiffeId(ctx.trustDomain, service.metadata.namespace, service.metadata.name);
}

/** The static cluster of an Envoy's local SDS server (`weft run --proxy envoy`, `weft bootstrap --envoy --sds-socket`). */
export const LOCAL_SDS_CLUSTER = 'weft_sds';

function sds(name: string): Obj {
  return { name, sds_config: adsConfigSource() };
}

/**
 * The workload certificate's SDS reference. The control plane never holds a
 * sidecar's key (sidecars send a CSR), so it cannot serve "default" over ADS;
 * a local-SDS node fetches it from the agent beside it (istio-agent's model).
 */
function workloadCertSds(node: NodeInfo): Obj {
  if (!node.localSds) return sds(WORKLOAD_CERT);
  return {
    name: WORKLOAD_CERT,
    sds_config: {
      api_config_source: {
        api_type: protoEnum('envoy.config.core.v3.ApiConfigSource.ApiType').GRPC,
        transport_api_version: ENUM.apiVersion().V3,
        grpc_services: [{ envoy_grpc: { cluster_name: LOCAL_SDS_CLUSTER } }],
      },
      resource_api_version: ENUM.apiVersion().V3,
    },
  };
}

function alpnFor(port: ServicePort): string[] {
  if (!isHttpPort(port)) return [];
  return isHttp2Port(port) ? ['h2'] : ['http/1.1'];
}

export function tlsInspectorFilter(): Obj {
  return { name: TLS_INSPECTOR, typed_config: anyOf(TYPE_URL.TlsInspector, {}) };
}

/** The inbound listener's fields for sniffing TLS. */
export function inspectorFields(): Obj {
  return {
    listener_filters: [tlsInspectorFilter()],
    listener_filters_timeout: msToProtoDuration(INSPECT_TIMEOUT_MS),
    continue_on_listener_filters_timeout: true,
  };
}

/** The server side of a caller's mTLS: our workload certificate, callers verified against the trust bundle. */
export function downstreamTlsSocket(node: NodeInfo): Obj {
  return {
    name: TLS_TRANSPORT_SOCKET,
    typed_config: anyOf(TYPE_URL.DownstreamTlsContext, {
      require_client_certificate: { value: true },
      common_tls_context: {
        tls_certificate_sds_secret_configs: [workloadCertSds(node)],
        validation_context_sds_secret_config: sds(TRUST_BUNDLE),
        alpn_protocols: ['h2', 'http/1.1'],
      },
    }),
  };
}

/** Auto mTLS of an outbound cluster: TLS to endpoints that have a sidecar, the destination's identity verified. */
export function transportSocketMatches(ctx: TranslateContext, service: Service, port: ServicePort): Obj[] {
  const alpn = alpnFor(port);
  const tls: Obj = {
    sni: `${service.metadata.name}.${service.metadata.namespace}`,
    common_tls_context: {
      tls_certificate_sds_secret_configs: [workloadCertSds(ctx.node)],
      combined_validation_context: {
        default_validation_context: { match_typed_subject_alt_names: [{ san_type: 'URI', matcher: { exact: spiffeIdOf(ctx, service) } }] },
        validation_context_sds_secret_config: sds(TRUST_BUNDLE),
      },
      ...(alpn.length ? { alpn_protocols: alpn } : {}),
    },
  };
  return [
    {
      name: 'tlsMode-weft',
      match: { fields: { tlsMode: { stringValue: WEFT_TLS_MODE.tlsMode } } },
      transport_socket: { name: TLS_TRANSPORT_SOCKET, typed_config: anyOf(TYPE_URL.UpstreamTlsContext, tls) },
    },
  ];
}

/** EDS metadata of an endpoint with a sidecar. */
export function sidecarEndpointMetadata(): Obj {
  return { filter_metadata: { [TRANSPORT_SOCKET_MATCH_KEY]: { fields: { tlsMode: { stringValue: WEFT_TLS_MODE.tlsMode } } } } };
}
