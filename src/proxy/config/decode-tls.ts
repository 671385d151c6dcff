// mTLS fields of listeners, clusters and endpoints → the typed TLS configs
// the data plane enforces (tls/*.ts).
//
// Supported subset (anything else that changes behaviour is a NACK naming it):
//   Listener.listener_filters   exactly one: envoy.filters.listener.tls_inspector (TlsInspector {});
//                               listener_filters_timeout (default 15 s), continue_on_listener_filters_timeout
//   TransportSocket             name (any), typed_config DownstreamTlsContext (listeners) or
//                               UpstreamTlsContext (clusters)
//   DownstreamTlsContext        require_client_certificate (must be true), common_tls_context
//   UpstreamTlsContext          sni, common_tls_context
//   CommonTlsContext            tls_certificate_sds_secret_configs (exactly one), alpn_protocols, and
//                               validation_context_sds_secret_config or combined_validation_context
//                               {validation_context_sds_secret_config, default_validation_context
//                               {match_typed_subject_alt_names: URI SANs, exact | prefix}}
//   SdsSecretConfig             name, sds_config ads|self (secrets come from the sidecar's SecretStore)
//   Cluster.transport_socket_matches  name, match (string values), transport_socket
//   LbEndpoint.metadata         filter_metadata["envoy.transport_socket_match"] (string values)
// Not supported (NACK): inline certificates (tls_certificates, validation_context), tls_params,
// certificate providers, session tickets, require_sni, OCSP, custom handshakers, key_log,
// other SAN types and matchers, trusted_ca inline, CRLs, other listener filters.
import { TYPE_URL } from '../../xds/type-urls';
import { FieldPath, onlyFields } from './nack';
import { bool, durationMs, requireAdsConfigSource, unpackAny, type Obj } from './read-proto';
import type { DownstreamTlsConfig, SanMatcher, TlsCommonConfig, TransportSocketMatch, UpstreamTlsConfig } from './types';

const TLS = 'envoy.extensions.transport_sockets.tls.v3.';
export const TRANSPORT_SOCKET_MATCH_KEY = 'envoy.transport_socket_match';
/** Envoy's default listener_filters_timeout. */
const INSPECTOR_TIMEOUT_MS = 15_000;

export function decodeListenerFilters(at: FieldPath, msg: Obj): { timeoutMs: number; continueOnTimeout: boolean } | undefined {
  const filters: Obj[] = msg.listener_filters ?? [];
  if (filters.length === 0) return undefined;
  const here = at.field('listener_filters');
  if (filters.length > 1) here.index(1).unsupported('is not supported by weft proxy yet (one listener filter: tls_inspector)');
  const f = filters[0];
  onlyFields(here.index(0), 'envoy.config.listener.v3.ListenerFilter', f, ['name', 'typed_config']);
  const { msg: inspector } = unpackAny(here.index(0).field('typed_config'), f.typed_config, [TYPE_URL.TlsInspector]);
  onlyFields(here.index(0).field('typed_config'), 'envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector', inspector, []);
  return {
    timeoutMs: durationMs(at.field('listener_filters_timeout'), msg.listener_filters_timeout, INSPECTOR_TIMEOUT_MS),
    continueOnTimeout: msg.continue_on_listener_filters_timeout === true,
  };
}

export function decodeDownstreamTls(at: FieldPath, socket: Obj): DownstreamTlsConfig {
  onlyFields(at, 'envoy.config.core.v3.TransportSocket', socket, ['name', 'typed_config']);
  const config = at.field('typed_config');
  const { msg } = unpackAny(config, socket.typed_config, [TYPE_URL.DownstreamTlsContext]);
  onlyFields(config, `${TLS}DownstreamTlsContext`, msg, ['common_tls_context', 'require_client_certificate']);
  if (!bool(msg.require_client_certificate, false)) {
    config.field('require_client_certificate').unsupported('must be true: weft proxy terminates mutual TLS only');
  }
  return { ...common(config.field('common_tls_context'), msg.common_tls_context), requireClientCertificate: true };
}

export function decodeUpstreamTls(at: FieldPath, socket: Obj): UpstreamTlsConfig {
  onlyFields(at, 'envoy.config.core.v3.TransportSocket', socket, ['name', 'typed_config']);
  const config = at.field('typed_config');
  const { msg } = unpackAny(config, socket.typed_config, [TYPE_URL.UpstreamTlsContext]);
  onlyFields(config, `${TLS}UpstreamTlsContext`, msg, ['common_tls_context', 'sni']);
  return { ...common(config.field('common_tls_context'), msg.common_tls_context), sni: msg.sni ?? '' };
}

export function decodeTransportSocketMatches(at: FieldPath, matches: Obj[]): TransportSocketMatch[] {
  return matches.map((m, i) => {
    const here = at.index(i);
    onlyFields(here, 'envoy.config.cluster.v3.Cluster.TransportSocketMatch', m, ['name', 'match', 'transport_socket']);
    if (!m.transport_socket) here.field('transport_socket').invalid('is required');
    return { name: m.name ?? '', match: structStrings(here.field('match'), m.match), tls: decodeUpstreamTls(here.field('transport_socket'), m.transport_socket) };
  });
}

/** An LbEndpoint's metadata: the transport socket match values, when it has them. */
export function endpointSocketMatch(at: FieldPath, metadata: Obj | undefined): Record<string, string> | undefined {
  const struct = metadata?.filter_metadata?.[TRANSPORT_SOCKET_MATCH_KEY];
  return struct ? structStrings(at.field('filter_metadata').field(TRANSPORT_SOCKET_MATCH_KEY), struct) : undefined;
}

/** A google.protobuf.Struct whose values are all strings (protobufjs names Value's fields in camelCase). */
function structStrings(at: FieldPath, struct: Obj | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries<Obj>(struct?.fields ?? {})) {
    if (typeof value?.stringValue !== 'string') at.field(key).unsupported('is not a string, which is not supported by weft proxy yet');
    out[key] = value.stringValue;
  }
  return out;
}

function common(at: FieldPath, c: Obj | undefined): TlsCommonConfig {
  if (!c) at.invalid('is required');
  onlyFields(at, `${TLS}CommonTlsContext`, c, [
    'tls_certificate_sds_secret_configs',
    'validation_context_sds_secret_config',
    'combined_validation_context',
    'alpn_protocols',
  ]);
  const certs: Obj[] = c.tls_certificate_sds_secret_configs ?? [];
  if (certs.length !== 1) at.field('tls_certificate_sds_secret_configs').invalid(`needs exactly one SDS certificate, got ${certs.length}`);
  const certificateSecret = sdsName(at.field('tls_certificate_sds_secret_configs').index(0), certs[0]);
  let validationSecret: string;
  let sanMatchers: SanMatcher[] = [];
  if (c.validation_context_type === 'validation_context_sds_secret_config') {
    validationSecret = sdsName(at.field('validation_context_sds_secret_config'), c.validation_context_sds_secret_config);
  } else if (c.validation_context_type === 'combined_validation_context') {
    const here = at.field('combined_validation_context');
    const combined = c.combined_validation_context;
    onlyFields(here, `${TLS}CommonTlsContext.CombinedCertificateValidationContext`, combined, ['default_validation_context', 'validation_context_sds_secret_config']);
    validationSecret = sdsName(here.field('validation_context_sds_secret_config'), combined.validation_context_sds_secret_config);
    const dvc = combined.default_validation_context ?? {};
    const dvcAt = here.field('default_validation_context');
    onlyFields(dvcAt, `${TLS}CertificateValidationContext`, dvc, ['match_typed_subject_alt_names']);
    sanMatchers = (dvc.match_typed_subject_alt_names ?? []).map((m: Obj, i: number) => sanMatcher(dvcAt.field('match_typed_subject_alt_names').index(i), m));
  } else {
    return at.invalid('needs validation_context_sds_secret_config or combined_validation_context: peers are always verified');
  }
  const alpn: string[] = c.alpn_protocols ?? [];
  for (const [i, p] of alpn.entries()) if (p !== 'h2' && p !== 'http/1.1') at.field('alpn_protocols').index(i).unsupported(`"${p}" is not supported by weft proxy yet (h2, http/1.1)`);
  return { certificateSecret, validationSecret, sanMatchers, alpn };
}

function sdsName(at: FieldPath, sds: Obj | undefined): string {
  if (!sds) at.invalid('is required');
  onlyFields(at, `${TLS}SdsSecretConfig`, sds, ['name', 'sds_config']);
  if (!sds.name) at.field('name').invalid('is required');
  requireAdsConfigSource(at.field('sds_config'), sds.sds_config);
  return sds.name;
}

function sanMatcher(at: FieldPath, m: Obj): SanMatcher {
  onlyFields(at, `${TLS}SubjectAltNameMatcher`, m, ['san_type', 'matcher']);
  if (m.san_type !== 'URI') at.field('san_type').unsupported(`${m.san_type ?? 'SAN_TYPE_UNSPECIFIED'} is not supported by weft proxy yet (URI)`);
  const matcher = m.matcher ?? {};
  const here = at.field('matcher');
  onlyFields(here, 'envoy.type.matcher.v3.StringMatcher', matcher, ['exact', 'prefix']);
  if (matcher.match_pattern === 'exact' && matcher.exact) return { kind: 'exact', value: matcher.exact };
  if (matcher.match_pattern === 'prefix' && matcher.prefix) return { kind: 'prefix', value: matcher.prefix };
  return here.invalid('needs a non-empty exact or prefix');
}
