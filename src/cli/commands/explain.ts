// `weft explain --from <service> <METHOD> <URL> [-H 'name: value']…`: the
// control plane translates its current mesh view for the source's sidecar,
// decodes it with the sidecar's own decoders and matches the request with the
// sidecar's router (src/observe/explain.ts); this prints the answer.
import { apiRequest } from '../api-client';
import { ago, duration } from '../format';

type Obj = Record<string, any>;

export interface ExplainOptions {
  from: string;
  header: string[];
  output: 'text' | 'json';
  api: string;
  out?: { write(text: string): unknown };
}

export async function runExplain(method: string, url: string, opts: ExplainOptions): Promise<void> {
  const out = opts.out ?? process.stdout;
  const q = new URLSearchParams({ from: opts.from, method, url });
  for (const h of opts.header ?? []) q.append('header', h);
  const r = (await apiRequest(opts.api, 'GET', `/api/v1/explain?${q}`)) as Obj;
  out.write(opts.output === 'json' ? JSON.stringify(r, null, 2) + '\n' : renderExplain(r));
}

const ms = (n: number | undefined) => (n ? duration(n) : 'none');
/** A route as the user wrote it ("HTTPRoute default/hello spec.rules[1]"); a control plane before titles gives the entry's name. */
const routeName = (r: Obj) => r.title ?? r.name ?? r.route;

/** Outlier detection as a sentence: what ejects an endpoint, for how long, checked how often. */
function outlierText(o: Obj): string {
  const why: string[] = [];
  if (o.enforcingConsecutive5xx > 0) why.push(`${o.consecutive5xx} 5xx in a row`);
  if (o.enforcingConsecutiveGatewayFailure > 0) why.push(`${o.consecutiveGatewayFailure} gateway errors in a row`);
  if (o.successRate?.enforcing > 0) why.push(`a success rate ${o.successRate.stdevFactor / 1000} standard deviations below the others'`);
  if (o.failurePercentage?.enforcing > 0) why.push(`${o.failurePercentage.threshold}% failed requests`);
  return `${why.join(' or ') || 'nothing'} ejects an endpoint for ${duration(o.baseEjectionTimeMs)} (longer each time, up to ${duration(o.maxEjectionTimeMs)}), at most ${o.maxEjectionPercent}% of them; checked every ${duration(o.intervalMs)}`;
}

function healthCheckText(h: Obj): string {
  const what = h.kind === 'http' ? `HTTP GET ${h.path ?? '/'}` : h.kind === 'grpc' ? `gRPC health${h.serviceName ? ` of ${h.serviceName}` : ''}` : 'TCP connect';
  return `${what} every ${duration(h.intervalMs)} (timeout ${duration(h.timeoutMs)}): unhealthy after ${h.unhealthyThreshold} failure(s), healthy after ${h.healthyThreshold} success(es)`;
}

export function renderExplain(r: Obj): string {
  const lines: string[] = [];
  const add = (s = '') => lines.push(s);
  const headers = Object.entries(r.request.headers ?? {}).map(([k, v]) => ` -H '${k}: ${v}'`).join('');
  add(`${r.request.method} ${r.request.url}${headers}  from ${r.source.service} (sidecar ${r.source.node})`);
  add();
  add(`Listener   ${r.listener.name} on ${r.listener.address}${r.listener.routeTable ? `, routes from ${r.listener.routeTable}` : ''}`);
  for (const f of r.listener.httpFilters ?? []) add(`           filter ${f.name} (${f.type})`);
  if (r.virtualHost) add(`Host       ${r.virtualHost.name}  (domains ${r.virtualHost.domains.join(', ')})`);
  for (const t of r.notMatched ?? []) add(`  skipped  ${routeName(t)}: needs ${t.match.join(' and ')}`);
  if (r.route) {
    add(`Route      ${routeName(r.route)}`);
    add(`  matched because ${r.route.matchedBecause.join(' and ')}`);
    if (r.route.origin?.nonIdempotentMethods) {
      add(`  a copy of the route for ${r.route.origin.nonIdempotentMethods.join(', ')}: retried only when the request never reached the upstream (TrafficPolicy retries.nonIdempotent: true retries them too)`);
    }
    add(`  timeout ${ms(r.route.timeoutMs)}${r.route.idleTimeoutMs ? `, idle ${ms(r.route.idleTimeoutMs)}` : ''}`);
    if (r.route.retry) {
      const x = r.route.retry;
      add(`  retries  ${x.numRetries} on ${x.retryOn.join(',')}${x.retriableStatusCodes.length ? ` (${x.retriableStatusCodes.join(',')})` : ''}, per try ${ms(x.perTryTimeoutMs)}, backoff ${duration(x.backoff.baseMs)} to ${duration(x.backoff.maxMs)}`);
    } else add('  retries  none');
    for (const w of r.route.warnings ?? []) add(`  warning  ${w}`);
    for (const m of r.route.mirrors ?? []) add(`  mirror   ${m.percent}% to ${m.cluster}`);
    if (r.route.filters) add(`  per-route filters ${JSON.stringify(r.route.filters)}`);
    if (r.route.rateLimits) add(`  rate limit descriptors ${JSON.stringify(r.route.rateLimits)}`);
  }
  for (const c of r.clusters ?? []) {
    add(`Cluster    ${c.name}  weight ${c.weight}${c.missing ? `  ${c.missing}` : `  ${c.lbPolicy}, ${c.protocol}, connect timeout ${ms(c.connectTimeoutMs)}`}`);
    if (c.circuitBreakers) add(`  circuit breakers ${Object.entries(c.circuitBreakers).map(([k, v]) => `${k} ${v}`).join(', ')}`);
    if (c.outlierDetection) add(`  outlier detection: ${outlierText(c.outlierDetection)}`);
    if (c.healthCheck) add(`  health check: ${healthCheckText(c.healthCheck)}`);
    if (!c.endpoints?.length && !c.missing) add('  no endpoints: requests fail (UH)');
    for (const e of c.endpoints ?? []) {
      const live = (e.live ?? []).map((l: Obj) => {
        const bits = [];
        if (l.outlier?.ejected) bits.push(`EJECTED, back ${ago(l.outlier.ejectedUntil)}`);
        if (l.healthCheck) bits.push(`health check ${l.healthCheck.state}`);
        return bits.length ? bits.join(', ') : 'in load balancing';
      });
      add(`  endpoint ${e.address}${e.zone ? ` zone ${e.zone}` : ''} ${e.health}${live.length ? ` — ${[...new Set(live)].join('; ')}` : ''}`);
    }
  }
  for (const d of r.destinationPolicies ?? []) {
    const parts = (d.httpFilters ?? []).map((f: Obj) => `${f.name} ${JSON.stringify(f.config)}`);
    if (d.route?.timeoutMs) parts.push(`timeout ${ms(d.route.timeoutMs)}`);
    if (parts.length) add(`At ${d.service}: ${parts.join('; ')}`);
  }
  add();
  const v = r.verdict ?? {};
  add(`Verdict    ${v.flag ? `${v.status} ${v.flag}: ` : v.status ? `${v.status}: ` : ''}${v.reason ?? ''}`);
  if (r.recentRequests?.length) {
    add();
    add('Last similar requests:');
    for (const q of r.recentRequests) {
      add(`  ${ago(q.time).padStart(10)}  ${q.method} ${q.path}  → ${q.status ?? '-'} ${q.flags || '-'}  ${q.cluster ?? ''} ${q.endpoint ?? ''}${q.durationMs !== undefined ? ` in ${duration(q.durationMs)}` : ''}`);
    }
  } else if (r.recentRequests) add('\nNo similar request recorded by its sidecars (they keep the last requests at /requests).');
  return lines.join('\n') + '\n';
}
