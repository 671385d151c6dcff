// RequestAuthentication → Envoy's jwt_authn filter on the callee's inbound
// HttpConnectionManager, first of its HTTP filters (before RBAC and rate
// limits), so AuthorizationPolicy can read the verified claims.
//
//   every RequestAuthentication of the service's namespace whose targetRef is
//   absent or names the service, ordered by name; each jwtRules[i] is provider
//   "<policy>/<i>" of JwtAuthentication.providers:
//   issuer                 issuer
//   audiences              audiences
//   jwks.file              local_jwks.filename
//   jwks.inline            local_jwks.inline_string
//   jwks.service/port/path remote_jwks {http_uri {uri "http://<svc>.<ns>:<port><path>",
//                          cluster outbound|<port>||<svc>.<ns>, timeout 5s}, cache_duration (cacheDuration, 5m)}
//   clockSkew              clock_skew_seconds (rounded up)
//   fromHeaders            from_headers {name, value_prefix}; default Authorization "Bearer "
//   forwardOriginalToken   forward
//   (always)               payload_in_metadata "payload": the claims in dynamic metadata
//                          envoy.filters.http.jwt_authn, where RBAC reads them
//   rules: one, prefix "/", requires_any [every provider, allow_missing]: a request
//   without a token goes on (an AuthorizationPolicy may require one), a request with
//   a token no provider verifies gets 401.
// The JWKS services' clusters reach the callee's sidecar through scope.ts.
import type { Resource } from '../config/kinds';
import { durationToMs } from '../config/duration';
import { anyOf } from '../xds/protos';
import { TYPE_URL } from '../xds/type-urls';
import type { Service, TranslateContext } from './context';
import { outboundClusterName, serviceHost, serviceKey } from './names';
import { compareStrings, duration } from './proto-values';

type Obj = Record<string, unknown>;
type RequestAuthentication = Resource<'RequestAuthentication'>;
type JwtRule = RequestAuthentication['spec']['jwtRules'][number];

export const JWT_AUTHN_FILTER = 'envoy.filters.http.jwt_authn';
/** The key of the verified claims inside the filter's metadata (the contract with RBAC). */
export const JWT_PAYLOAD_KEY = 'payload';
const JWKS_FETCH_TIMEOUT = { seconds: 5, nanos: 0 };
const DEFAULT_JWKS_CACHE = '5m';

/** The RequestAuthentications that apply to `own`, ordered by name. */
export function requestAuthenticationsFor(ctx: TranslateContext, own: Service): RequestAuthentication[] {
  const { name, namespace } = own.metadata;
  return ctx.view.requestAuthentications
    .filter((r) => r.metadata.namespace === namespace && (!r.spec.targetRef || r.spec.targetRef.name === name))
    .sort((a, b) => compareStrings(a.metadata.name, b.metadata.name));
}

/** Services whose JWKS `own`'s sidecar fetches: it needs their clusters. */
export function jwksServices(ctx: TranslateContext, own: Service | undefined): Service[] {
  if (!own) return [];
  const out: Service[] = [];
  for (const ra of requestAuthenticationsFor(ctx, own)) {
    for (const rule of ra.spec.jwtRules) {
      const { service, namespace } = rule.jwks;
      const svc = service === undefined ? undefined : ctx.services.get(serviceKey(service, namespace ?? ra.metadata.namespace));
      if (svc) out.push(svc);
    }
  }
  return out;
}

/** The jwt_authn HttpFilter for `own`'s inbound listener, or undefined when no RequestAuthentication applies. */
export function jwtAuthnFilter(ctx: TranslateContext, own: Service): Obj | undefined {
  const providers: Record<string, Obj> = {};
  for (const ra of requestAuthenticationsFor(ctx, own)) {
    ra.spec.jwtRules.forEach((rule, i) => {
      const provider = jwtProvider(rule, ra.metadata.namespace);
      if (provider) providers[`${ra.metadata.name}/${i}`] = provider;
    });
  }
  const names = Object.keys(providers);
  if (names.length === 0) return undefined;
  const config = {
    providers,
    rules: [
      {
        match: { prefix: '/' },
        requires: { requires_any: { requirements: [...names.map((provider_name) => ({ provider_name })), { allow_missing: {} }] } },
      },
    ],
  };
  return { name: JWT_AUTHN_FILTER, typed_config: anyOf(TYPE_URL.JwtAuthentication, config) };
}

/** One rule as a JwtProvider; undefined when its JWKS service is gone (validation reports that). */
function jwtProvider(rule: JwtRule, namespace: string): Obj | undefined {
  const provider: Obj = { issuer: rule.issuer };
  if (rule.audiences?.length) provider.audiences = rule.audiences;
  const jwks = rule.jwks;
  if (jwks.file !== undefined) provider.local_jwks = { filename: jwks.file };
  else if (jwks.inline !== undefined) provider.local_jwks = { inline_string: jwks.inline };
  else if (jwks.service !== undefined && jwks.port !== undefined && jwks.path !== undefined) {
    const ns = jwks.namespace ?? namespace;
    provider.remote_jwks = {
      http_uri: {
        uri: `http://${serviceHost(jwks.service, ns)}:${jwks.port}${jwks.path}`,
        cluster: outboundClusterName(jwks.service, ns, jwks.port),
        timeout: JWKS_FETCH_TIMEOUT,
      },
      cache_duration: duration(jwks.cacheDuration ?? DEFAULT_JWKS_CACHE),
    };
  } else return undefined;
  provider.forward = rule.forwardOriginalToken;
  provider.from_headers = (rule.fromHeaders ?? [{ name: 'Authorization', prefix: 'Bearer ' }]).map((h) => ({ name: h.name, value_prefix: h.prefix ?? '' }));
  provider.payload_in_metadata = JWT_PAYLOAD_KEY;
  provider.clock_skew_seconds = Math.ceil(durationToMs(rule.clockSkew) / 1000);
  return provider;
}
