// Names the translator, the sidecar and the control plane's rate limit
// service agree on (the global limit's contract).

/** The RateLimitService domain of every weft global limit. */
export const RATE_LIMIT_DOMAIN = 'weft';

/**
 * The cluster a RateLimit filter's grpc_service names for the control plane:
 * the static cluster of the xDS server in an Envoy bootstrap. weft proxy
 * reads it as "the control plane I got this config from".
 */
export const CONTROL_PLANE_CLUSTER = 'xds_cluster';

/** The first entry of a global limit's descriptor: which service's limit it is, "<name>.<namespace>". */
export const RATE_LIMIT_SERVICE_KEY = 'weft.service';

/** Route rate_limits stages: local limits on 0, the global one on 1, so each has its own key. */
export const LOCAL_RATE_LIMIT_STAGE = 0;
export const GLOBAL_RATE_LIMIT_STAGE = 1;

/** The RLS method path on the control plane's gRPC port. */
export const RLS_PATH = '/envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit';
