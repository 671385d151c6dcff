// The user-facing resource kinds and their schemas. Every object is strict:
// an unknown field is an error, never silently dropped. Cross-resource rules
// (references, duplicates) live in validate.ts; this file checks one document.
import { z } from 'zod';
import { DURATION_PATTERN } from './duration';
import { RETRY_ON } from './retry-on';

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const HEADER_NAME = /^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$/;

export const name = z
  .string()
  .max(63)
  .regex(DNS_LABEL, 'a lowercase DNS label (a-z, 0-9, "-"; starts and ends alphanumeric)');
export const port = z.number().int().min(1).max(65535);
export const duration = z
  .string()
  .regex(DURATION_PATTERN, 'a duration such as "500ms", "2s", "1m30s"');
const labels = z.record(z.string(), z.string());
const headerName = z.string().min(1).regex(HEADER_NAME, 'an HTTP header name (RFC 9110 token)');

export const metadataSchema = z.strictObject({
  name,
  namespace: name.default('default'),
  labels: labels.optional(),
  annotations: labels.optional(),
});

// ---- Service (weft.dev/v1) ----

export const PROTOCOLS = ['http', 'http2', 'grpc', 'tcp'] as const;

const servicePort = z.strictObject({
  name,
  port,
  protocol: z.enum(PROTOCOLS),
  /** Port on the endpoints when it differs from the service port. */
  targetPort: port.optional(),
});

export const staticEndpointSchema = z.strictObject({
  address: z.string().min(1),
  /** Port for every service port; defaults to the port's targetPort or port. */
  port: port.optional(),
  /** Per service-port-name ports, for multi-port services. */
  ports: z.record(z.string(), port).optional(),
  labels: labels.optional(),
  zone: z.string().optional(),
  weight: z.number().int().min(1).max(128).optional(),
});

const serviceRef = z.strictObject({ name, namespace: name.optional() });

export const serviceSpecSchema = z.strictObject({
  ports: z.array(servicePort).min(1),
  endpoints: z.array(staticEndpointSchema).optional(),
  labels: labels.optional(),
  /**
   * The services this one calls. When set, its proxies receive only those
   * (and what their routes lead to); when absent, every service in the mesh.
   */
  dependsOn: z.array(serviceRef).optional(),
});

// ---- Gateway API routes (GAMMA: parentRefs name a Service) ----

const parentRef = z.strictObject({
  group: z.literal('').optional(),
  kind: z.literal('Service').default('Service'),
  name,
  namespace: name.optional(),
  port: port.optional(),
});

const backendRef = z.strictObject({
  group: z.literal('').optional(),
  kind: z.literal('Service').default('Service'),
  name,
  namespace: name.optional(),
  port: port.optional(),
  weight: z.number().int().min(0).max(1_000_000).default(1),
});

const stringMatch = z.strictObject({
  type: z.enum(['Exact', 'RegularExpression']).default('Exact'),
  name: headerName,
  value: z.string(),
});

const headerModifier = z.strictObject({
  set: z.array(z.strictObject({ name: headerName, value: z.string() })).optional(),
  add: z.array(z.strictObject({ name: headerName, value: z.string() })).optional(),
  remove: z.array(headerName).optional(),
});

/** How a redirect or rewrite changes the path (Gateway API HTTPPathModifier). */
const pathModifier = z.strictObject({
  type: z.enum(['ReplaceFullPath', 'ReplacePrefixMatch']),
  replaceFullPath: z.string().optional(),
  replacePrefixMatch: z.string().optional(),
});

const httpRouteFilter = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('RequestHeaderModifier'), requestHeaderModifier: headerModifier }),
  z.strictObject({ type: z.literal('ResponseHeaderModifier'), responseHeaderModifier: headerModifier }),
  z.strictObject({
    type: z.literal('RequestRedirect'),
    requestRedirect: z.strictObject({
      scheme: z.enum(['http', 'https']).optional(),
      hostname: z.string().optional(),
      path: pathModifier.optional(),
      port: port.optional(),
      statusCode: z.union([z.literal(301), z.literal(302), z.literal(303), z.literal(307), z.literal(308)]).default(302),
    }),
  }),
  z.strictObject({
    type: z.literal('URLRewrite'),
    urlRewrite: z.strictObject({
      hostname: z.string().optional(),
      path: pathModifier.optional(),
    }),
  }),
  z.strictObject({
    type: z.literal('RequestMirror'),
    requestMirror: z.strictObject({
      backendRef: z.strictObject({ name, namespace: name.optional(), port: port.optional() }),
      percent: z.number().int().min(0).max(100).optional(),
    }),
  }),
]);

const routeTimeouts = z.strictObject({
  /** The whole request, retries included (Envoy route timeout). */
  request: duration.optional(),
  /** One attempt to a backend (Envoy per_try_timeout). */
  backendRequest: duration.optional(),
});

const httpRouteMatch = z.strictObject({
  path: z
    .strictObject({
      type: z.enum(['Exact', 'PathPrefix', 'RegularExpression']).default('PathPrefix'),
      value: z.string().default('/'),
    })
    .optional(),
  headers: z.array(stringMatch).optional(),
  queryParams: z.array(stringMatch.extend({ name: z.string().min(1) })).optional(),
  method: z.enum(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH']).optional(),
});

const routeCommon = {
  parentRefs: z.array(parentRef).min(1),
  hostnames: z.array(z.string().min(1)).optional(),
};

export const httpRouteSpecSchema = z.strictObject({
  ...routeCommon,
  rules: z
    .array(
      z.strictObject({
        name: name.optional(),
        matches: z.array(httpRouteMatch).optional(),
        filters: z.array(httpRouteFilter).optional(),
        backendRefs: z.array(backendRef).optional(),
        timeouts: routeTimeouts.optional(),
      }),
    )
    .min(1),
});

const grpcMethodMatch = z.strictObject({
  type: z.enum(['Exact', 'RegularExpression']).default('Exact'),
  service: z.string().min(1).optional(),
  method: z.string().min(1).optional(),
});

export const grpcRouteSpecSchema = z.strictObject({
  ...routeCommon,
  rules: z
    .array(
      z.strictObject({
        name: name.optional(),
        matches: z
          .array(z.strictObject({ method: grpcMethodMatch.optional(), headers: z.array(stringMatch).optional() }))
          .optional(),
        filters: z
          .array(
            z.discriminatedUnion('type', [
              z.strictObject({ type: z.literal('RequestHeaderModifier'), requestHeaderModifier: headerModifier }),
              z.strictObject({ type: z.literal('ResponseHeaderModifier'), responseHeaderModifier: headerModifier }),
            ]),
          )
          .optional(),
        backendRefs: z.array(backendRef).optional(),
        timeouts: routeTimeouts.optional(),
      }),
    )
    .min(1),
});

export const tcpRouteSpecSchema = z.strictObject({
  parentRefs: z.array(parentRef).min(1),
  rules: z.array(z.strictObject({ name: name.optional(), backendRefs: z.array(backendRef).min(1) })).min(1),
});

// ---- TrafficPolicy (weft.dev/v1): what a client does when calling a Service ----

export { RETRY_ON } from './retry-on';

const percent = z.number().min(0).max(100);

/**
 * Delay and/or abort a share of the requests (percent, default 100), only
 * those carrying every listed header when `headers` is set. Cross-field rules
 * (delay > 0, one of httpStatus / grpcStatus) are in resource-rules.ts.
 */
const faultSchema = z.strictObject({
  delay: z.strictObject({ fixed: duration, percent: percent.default(100) }).optional(),
  abort: z
    .strictObject({
      httpStatus: z.number().int().min(200).max(599).optional(),
      grpcStatus: z.number().int().min(1).max(16).optional(),
      percent: percent.default(100),
    })
    .optional(),
  headers: z.array(stringMatch).min(1).optional(),
});
const rateLimitCount = z.number().int().min(1).max(1_000_000_000);
/** What a rate limit counts separately: every caller address, or every value of a header. Absent: all requests together. */
const rateLimitBy = z.union([z.literal('source'), z.strictObject({ header: headerName })]);
const rateLimitBucket = z.strictObject({ requests: rateLimitCount, per: duration, by: rateLimitBy.optional() });
/** healthCheck fields left out (Kubernetes probe defaults, which users know). */
export const HEALTH_CHECK_DEFAULTS = { interval: '10s', timeout: '1s', unhealthyThreshold: 3, healthyThreshold: 1 } as const;

export const trafficPolicySpecSchema = z.strictObject({
  targetRef: z.strictObject({ kind: z.literal('Service').default('Service'), name, namespace: name.optional() }),
  loadBalancer: z
    .strictObject({
      type: z.enum(['RoundRobin', 'LeastRequest', 'Random', 'RingHash', 'Maglev']),
      ringHash: z
        .strictObject({
          minimumRingSize: z.number().int().min(1).max(8_388_608).optional(),
          maximumRingSize: z.number().int().min(1).max(8_388_608).optional(),
        })
        .optional(),
      /** What a RingHash/Maglev request hashes on; the first present wins. */
      hashOn: z
        .array(
          z.union([
            z.strictObject({ header: headerName }),
            z.strictObject({ cookie: z.strictObject({ name: z.string().min(1), ttl: duration.optional() }) }),
            z.strictObject({ sourceIP: z.literal(true) }),
          ]),
        )
        .optional(),
    })
    .optional(),
  connectionPool: z
    .strictObject({
      maxConnections: z.number().int().min(1).optional(),
      maxPendingRequests: z.number().int().min(1).optional(),
      maxRequests: z.number().int().min(1).optional(),
      maxRetries: z.number().int().min(0).optional(),
      connectTimeout: duration.optional(),
      maxRequestsPerConnection: z.number().int().min(1).optional(),
    })
    .optional(),
  outlierDetection: z
    .strictObject({
      consecutive5xx: z.number().int().min(1).optional(),
      consecutiveGatewayErrors: z.number().int().min(1).optional(),
      interval: duration.optional(),
      baseEjectionTime: duration.optional(),
      maxEjectionPercent: percent.optional(),
      successRate: z
        .strictObject({
          minimumHosts: z.number().int().min(1).optional(),
          requestVolume: z.number().int().min(1).optional(),
          /** Eject hosts whose success rate is below mean − stdevFactor × stdev (e.g. 1.9). */
          stdevFactor: z.number().min(0.1).max(100).optional(),
        })
        .optional(),
      /** Eject hosts whose share of failed requests is above `threshold` percent. */
      failurePercentage: z
        .strictObject({
          threshold: z.number().int().min(0).max(100).optional(),
          minimumHosts: z.number().int().min(1).optional(),
          requestVolume: z.number().int().min(1).optional(),
        })
        .optional(),
    })
    .optional(),
  /** Active health checks run by every sidecar calling the service (not by proxyless clients). */
  healthCheck: z
    .strictObject({
      type: z.enum(['http', 'tcp', 'grpc']),
      /** http: the path to GET (required). */
      path: z.string().regex(/^\/[\x21-\x7e]*$/, 'an absolute path without spaces, e.g. /healthz').optional(),
      /** Defaults: every 10s, 1s timeout, 3 failures to take out, 1 pass to bring back. */
      interval: duration.optional(),
      timeout: duration.optional(),
      unhealthyThreshold: z.number().int().min(1).max(1000).optional(),
      healthyThreshold: z.number().int().min(1).max(1000).optional(),
      /** http: statuses that pass (default [200]). */
      expectedStatuses: z.array(z.number().int().min(100).max(599)).min(1).optional(),
      /** grpc: the service name asked about (default "": the server as a whole). */
      grpcService: z.string().optional(),
    })
    .optional(),
  retries: z
    .strictObject({
      attempts: z.number().int().min(0).max(10),
      retryOn: z.array(z.enum(RETRY_ON)).min(1).optional(),
      retriableStatusCodes: z.array(z.number().int().min(100).max(599)).optional(),
      perTryTimeout: duration.optional(),
      /** Retry POST, PATCH and CONNECT on every condition too (default: only when the request never reached the upstream). */
      nonIdempotent: z.boolean().optional(),
      backoff: z.strictObject({ baseInterval: duration, maxInterval: duration.optional() }).optional(),
      budget: z
        .strictObject({ percent: percent, minRetriesPerSecond: z.number().int().min(0).optional() })
        .optional(),
    })
    .optional(),
  timeouts: z
    .strictObject({
      request: duration.optional(),
      /** Connections to the service idle this long are closed (callers' pools and the service's inbound side). */
      idle: duration.optional(),
      /** A request with no bytes either way for this long ends: 408 SI, or a reset once answered (Envoy route idle_timeout). */
      streamIdle: duration.optional(),
    })
    .optional(),
  /** Fault injection on every route to the service (Envoy's HTTPFault, applied by the caller). */
  fault: faultSchema.optional(),
  /** Limits on requests *to* the target service, enforced by its own (inbound) sidecars. */
  rateLimit: z
    .strictObject({
      /** A token bucket in each replica's sidecar: each replica admits this much. */
      local: rateLimitBucket.extend({ burst: rateLimitCount.optional() }).optional(),
      /** One fixed-window counter per key in the control plane, shared by every replica. */
      global: rateLimitBucket.optional(),
    })
    .optional(),
});

// ---- Zero trust (weft.dev/v1) ----

export const meshTlsSpecSchema = z.strictObject({
  /** A Service in this namespace; absent: every service of the namespace. */
  targetRef: z.strictObject({ kind: z.literal('Service').default('Service'), name }).optional(),
  /** permissive: mTLS and plaintext callers; strict: mTLS only. */
  mode: z.enum(['permissive', 'strict']).default('permissive'),
});

// AuthorizationPolicy: Istio's shape and semantics (translate/authz.ts). A
// list field matches when any value matches; fields of one source/operation
// must all match; a `not*` field matches when none of its values does.

/** A SPIFFE ID, or "*" (any authenticated caller), or a prefix "spiffe://td/ns/x/*", or a suffix "*\/sa/x". */
const authzPrincipal = z
  .string()
  .min(1)
  .refine((v) => v === '*' || (/^[^*]+\*?$/.test(v) && v.startsWith('spiffe://')) || /^\*[^*]+$/.test(v), {
    message: 'a SPIFFE ID ("spiffe://…"), "*", a prefix ending in "*" or a suffix starting with "*"',
  });
/** "issuer/subject" of a verified JWT (split at the last "/"); either side may be "*", or the whole value "*". */
const authzRequestPrincipal = z
  .string()
  .min(1)
  .refine((v) => v === '*' || splitRequestPrincipal(v) !== undefined, {
    message: '"issuer/subject" (split at the last "/"), where the issuer or the subject may be "*", or "*"',
  });

/** "iss/sub" split at the last "/": each side non-empty, "*" or free of "*". */
export function splitRequestPrincipal(v: string): { iss: string; sub: string } | undefined {
  const at = v.lastIndexOf('/');
  const iss = v.slice(0, at);
  const sub = v.slice(at + 1);
  const ok = (p: string) => p === '*' || (p.length > 0 && !p.includes('*'));
  return at > 0 && ok(iss) && ok(sub) ? { iss, sub } : undefined;
}
/** A Service "name" (in the policy's namespace) or "namespace/name". */
const authzService = z.string().regex(/^([a-z0-9]([-a-z0-9]*[a-z0-9])?\/)?[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'a Service "name" or "namespace/name"');
/** An exact path, a prefix "/x/*", a suffix "*.js", or "*". */
const authzPath = z
  .string()
  .min(1)
  .refine((v) => v === '*' || /^\/[^*]*\*?$/.test(v) || /^\*[^*]+$/.test(v), { message: 'an exact path "/x", a prefix "/x/*", a suffix "*.x" or "*"' });
const authzMethod = z.string().regex(/^[A-Z]+$/, 'an HTTP method in upper case (GET, POST, …)');

const authzSource = z.strictObject({
  principals: z.array(authzPrincipal).min(1).optional(),
  notPrincipals: z.array(authzPrincipal).min(1).optional(),
  namespaces: z.array(name).min(1).optional(),
  notNamespaces: z.array(name).min(1).optional(),
  services: z.array(authzService).min(1).optional(),
  notServices: z.array(authzService).min(1).optional(),
  requestPrincipals: z.array(authzRequestPrincipal).min(1).optional(),
  notRequestPrincipals: z.array(authzRequestPrincipal).min(1).optional(),
});

const authzOperation = z.strictObject({
  ports: z.array(port).min(1).optional(),
  notPorts: z.array(port).min(1).optional(),
  paths: z.array(authzPath).min(1).optional(),
  notPaths: z.array(authzPath).min(1).optional(),
  methods: z.array(authzMethod).min(1).optional(),
  notMethods: z.array(authzMethod).min(1).optional(),
  /** The request's authority (Host), exact, or with a "*" prefix/suffix; ":port" is part of it. */
  hosts: z.array(z.string().min(1)).min(1).optional(),
  notHosts: z.array(z.string().min(1)).min(1).optional(),
});

/**
 * `request.headers[<name>]`, `request.auth.claims[<name>]` (nested: `[a][b]`), or a bare header
 * name; other Istio attributes (source.ip, …) are not taken for header names.
 */
export const AUTHZ_CONDITION_KEY = /^(?!(request|source|destination|connection|experimental)\.(?!headers\[|auth\.claims\[))(request\.headers\[[A-Za-z0-9!#$%&'*+\-.^_`|~]+\]|request\.auth\.claims(\[[^\[\]]+\])+|[A-Za-z0-9!#$%&'*+\-.^_`|~]+)$/;

const authzCondition = z
  .strictObject({
    key: z.string().regex(AUTHZ_CONDITION_KEY, 'request.headers[<name>], request.auth.claims[<name>] or a header name'),
    values: z.array(z.string()).min(1).optional(),
    notValues: z.array(z.string()).min(1).optional(),
  })
  .refine((c) => c.values || c.notValues, { message: 'needs values or notValues' });

export const authorizationPolicySpecSchema = z.strictObject({
  /** A Service in this namespace; absent: every service of the namespace. */
  targetRef: z.strictObject({ kind: z.literal('Service').default('Service'), name }).optional(),
  action: z.enum(['ALLOW', 'DENY']),
  /** A request matching any rule gets the action. ALLOW with no rules allows nothing: default deny. */
  rules: z
    .array(
      z.strictObject({
        from: z.array(z.strictObject({ source: authzSource })).min(1).optional(),
        to: z.array(z.strictObject({ operation: authzOperation })).min(1).optional(),
        when: z.array(authzCondition).min(1).optional(),
      }),
    )
    .default([]),
});

/**
 * Where a JWT rule's signing keys come from: exactly one of a JWKS file on the
 * callee's host, an inline JWKS document, or a mesh Service serving one over
 * HTTP (fetched through the callee's sidecar). "Exactly one" is in resource-rules.ts.
 */
const jwksSource = z.strictObject({
  file: z.string().min(1).optional(),
  inline: z.string().min(1).optional(),
  service: name.optional(),
  namespace: name.optional(),
  port: port.optional(),
  path: z.string().regex(/^\/[\x21-\x7e]*$/, 'an absolute path without spaces, e.g. /.well-known/jwks.json').optional(),
  /** How long fetched keys are kept before they are fetched again (default 5m). */
  cacheDuration: duration.optional(),
});

const jwtRule = z.strictObject({
  issuer: z.string().min(1),
  /** Accepted `aud` values, any one of them; absent: the audience is not checked. */
  audiences: z.array(z.string().min(1)).optional(),
  jwks: jwksSource,
  /** Leeway on exp and nbf. */
  clockSkew: duration.default('60s'),
  /** Where the token is; default the Authorization header after "Bearer ". */
  fromHeaders: z.array(z.strictObject({ name: headerName, prefix: z.string().optional() })).min(1).optional(),
  /** Pass the token on to the app (default); false removes it from the request. */
  forwardOriginalToken: z.boolean().default(true),
});

/** Verifies JWTs on requests to a Service (or every Service of the namespace) in its inbound sidecar. */
export const requestAuthenticationSpecSchema = z.strictObject({
  targetRef: z.strictObject({ kind: z.literal('Service').default('Service'), name }).optional(),
  jwtRules: z.array(jwtRule).min(1),
});

// ---- Plugin (weft.dev/v1): a process `weft run` starts beside the services it attaches to,
// or (http-filter) a JS module their sidecars run in the HTTP filter chain ----

export const PLUGIN_TYPES = ['init', 'general', 'http-filter'] as const;
export const FILTER_DIRECTIONS = ['inbound', 'outbound'] as const;
export const RESTART_POLICIES = ['Always', 'OnFailure', 'Never'] as const;
export const CONFIG_RELOADS = ['Restart', 'Signal'] as const;
/** restartBackoff fields left out. */
export const PLUGIN_BACKOFF_DEFAULTS = { min: '1s', max: '30s' } as const;
const configGroup = z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_.-]*$/, 'a key of letters, digits, "_", "." or "-"'), z.string());

export const pluginSpecSchema = z.strictObject({
  /** init: runs to completion before the app (by order, then name); general: runs beside the app; http-filter: a module the sidecar runs per request. */
  type: z.enum(PLUGIN_TYPES),
  /** init and general: the argv, a path or a program on PATH, then its arguments. */
  command: z.array(z.string()).min(1).refine((argv) => argv.length === 0 || argv[0].length > 0, { message: 'the program (command[0]) must not be empty' }).optional(),
  /** http-filter: the JS module, an absolute path or an npm package name the sidecar can resolve. */
  module: z.string().min(1).optional(),
  /** http-filter: inbound (default) filters requests to the attached services; outbound, the requests they make. */
  direction: z.enum(FILTER_DIRECTIONS).optional(),
  env: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'an environment variable name'), z.string()).optional(),
  /** Obtain the program from npm: a package spec npm install takes (name@version, a tarball); command[0] is then one of its bins. */
  npm: z.string().min(1).optional(),
  /** Absent: the app's working directory. */
  workingDir: z.string().min(1).optional(),
  /** Services of the plugin's namespace it attaches to (with `selector`: either matches). */
  targetRefs: z.array(z.strictObject({ kind: z.literal('Service').default('Service'), name })).min(1).optional(),
  /** Services whose metadata.labels carry every one of these. */
  selector: z.strictObject({ matchLabels: labels.refine((l) => Object.keys(l).length > 0, { message: 'at least one label' }) }).optional(),
  /** Key/value config, resolved per instance: ${service}, ${namespace}; ${port} per own port; ${dependency} per dependsOn entry. */
  config: z
    .strictObject({
      global: configGroup.default({}),
      perPort: configGroup.default({}),
      perDependency: configGroup.default({}),
    })
    .default({ global: {}, perPort: {}, perDependency: {} }),
  /** general plugins only; default Always. */
  restartPolicy: z.enum(RESTART_POLICIES).optional(),
  /** The wait before a restart doubles from min up to max. */
  restartBackoff: z.strictObject({ min: duration.optional(), max: duration.optional() }).optional(),
  /** Limits for the plugin's processes, applied with cgroups where the host gives them (else a warning). */
  resources: z
    .strictObject({
      /** Bytes: 268435456, 256Mi, 1Gi, 500M. */
      memory: z.string().regex(/^[0-9]+(Ki|Mi|Gi|K|M|G)?$/, 'bytes, or a quantity such as 256Mi, 1Gi, 500M'),
      /** Cores: 500m, 0.5, 2. */
      cpu: z.string().regex(/^([0-9]+m|[0-9]+(\.[0-9]{1,3})?)$/, 'cores, such as 500m, 0.5 or 2'),
      /** Processes and threads at most. */
      pids: z.number().int().min(1).max(1_000_000),
    })
    .partial()
    .optional(),
  /** general plugins: a config change from the mesh restarts the plugin (Restart), or reaches it as SIGHUP with a new WEFT_PLUGIN_CONFIG_FILE (Signal). Default: Signal for weft's built-ins, else Restart. */
  configReload: z.enum(CONFIG_RELOADS).optional(),
  /** init plugins: lower runs first; http-filter plugins: lower filters first (default 0). */
  order: z.number().int().min(-1_000_000).max(1_000_000).optional(),
});

// ---- The registry of kinds ----

export const KINDS = {
  Service: { apiVersion: 'weft.dev/v1', spec: serviceSpecSchema },
  HTTPRoute: { apiVersion: 'gateway.networking.k8s.io/v1', spec: httpRouteSpecSchema },
  GRPCRoute: { apiVersion: 'gateway.networking.k8s.io/v1', spec: grpcRouteSpecSchema },
  TCPRoute: { apiVersion: 'gateway.networking.k8s.io/v1alpha2', spec: tcpRouteSpecSchema },
  TrafficPolicy: { apiVersion: 'weft.dev/v1', spec: trafficPolicySpecSchema },
  MeshTLS: { apiVersion: 'weft.dev/v1', spec: meshTlsSpecSchema },
  AuthorizationPolicy: { apiVersion: 'weft.dev/v1', spec: authorizationPolicySpecSchema },
  RequestAuthentication: { apiVersion: 'weft.dev/v1', spec: requestAuthenticationSpecSchema },
  Plugin: { apiVersion: 'weft.dev/v1', spec: pluginSpecSchema },
} as const;

export type Kind = keyof typeof KINDS;
export const KIND_NAMES = Object.keys(KINDS) as Kind[];

export type Metadata = z.output<typeof metadataSchema>;
export type ServiceSpec = z.output<typeof serviceSpecSchema>;
export type StaticEndpoint = z.output<typeof staticEndpointSchema>;
export type HTTPRouteSpec = z.output<typeof httpRouteSpecSchema>;
export type GRPCRouteSpec = z.output<typeof grpcRouteSpecSchema>;
export type TCPRouteSpec = z.output<typeof tcpRouteSpecSchema>;
export type TrafficPolicySpec = z.output<typeof trafficPolicySpecSchema>;
export type MeshTLSSpec = z.output<typeof meshTlsSpecSchema>;
export type AuthorizationPolicySpec = z.output<typeof authorizationPolicySpecSchema>;
export type RequestAuthenticationSpec = z.output<typeof requestAuthenticationSpecSchema>;
export type PluginSpec = z.output<typeof pluginSpecSchema>;

export interface SpecByKind {
  Service: ServiceSpec;
  HTTPRoute: HTTPRouteSpec;
  GRPCRoute: GRPCRouteSpec;
  TCPRoute: TCPRouteSpec;
  TrafficPolicy: TrafficPolicySpec;
  MeshTLS: MeshTLSSpec;
  AuthorizationPolicy: AuthorizationPolicySpec;
  RequestAuthentication: RequestAuthenticationSpec;
  Plugin: PluginSpec;
}

/** A validated resource, defaults applied. */
export interface Resource<K extends Kind = Kind> {
  apiVersion: string;
  kind: K;
  metadata: Metadata;
  spec: SpecByKind[K];
}

/** "Kind/namespace/name": the identity of a resource in the store. */
export function resourceKey(r: { kind: string; metadata: { name: string; namespace?: string } }): string {
  return `${r.kind}/${r.metadata.namespace ?? 'default'}/${r.metadata.name}`;
}
