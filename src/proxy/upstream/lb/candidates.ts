// Which endpoints a load balancer picks from, and with what weight.
//
// - Candidates are the endpoints whose health is `healthy` or `unknown`;
//   `unhealthy` and `draining` are never picked (no panic mode).
// - Priorities fail over strictly: the lowest-numbered priority with a
//   candidate takes all traffic (the control plane puts the node's zone at
//   priority 0). Envoy's partial spill-over by overprovisioning is not done.
// - Within that priority, locality weights and endpoint weights both count,
//   flattened: an endpoint's share is its locality's share of the priority
//   times its own share of its locality's candidates. That is the probability
//   Envoy's two-step pick (locality by weight, then endpoint by weight) gives,
//   and it lets every policy work on one weighted list. Locality weights are
//   used as given, not scaled by health again: the control plane already sets
//   them from the healthy endpoints' weights.
// - A locality of weight 0 gets no traffic, unless every locality in the
//   priority has weight 0: then locality weights are ignored (as Envoy falls
//   back to all hosts of the priority). An endpoint weight that is not a
//   positive number counts as 1 (Envoy's default; it rejects 0).
import type { Endpoint, EndpointSet, Locality } from '../../config/types';

export interface Candidates {
  endpoints: Endpoint[];
  /** Positive, parallel to `endpoints`, summing to 1. */
  weights: number[];
}

export function isCandidate(e: Endpoint): boolean {
  return e.health === 'healthy' || e.health === 'unknown';
}

function endpointWeight(e: Endpoint): number {
  return e.weight > 0 && Number.isFinite(e.weight) ? e.weight : 1;
}

export function selectCandidates(set: EndpointSet): Candidates {
  let priority = Infinity;
  for (const l of set.localities) {
    if (l.priority < priority && l.endpoints.some(isCandidate)) priority = l.priority;
  }
  const localities = set.localities.filter((l) => l.priority === priority && l.endpoints.some(isCandidate));
  const useLocalityWeights = localities.some((l) => l.weight > 0);

  const endpoints: Endpoint[] = [];
  const raw: number[] = [];
  for (const l of localities) {
    const share = useLocalityWeights ? localityWeight(l) : 1;
    if (share === 0) continue;
    const members = l.endpoints.filter(isCandidate);
    const memberTotal = members.reduce((sum, e) => sum + endpointWeight(e), 0);
    for (const e of members) {
      endpoints.push(e);
      // Without locality weights, endpoints compete across localities by their own weight.
      raw.push(useLocalityWeights ? (share * endpointWeight(e)) / memberTotal : endpointWeight(e));
    }
  }
  const total = raw.reduce((sum, w) => sum + w, 0);
  return { endpoints, weights: raw.map((w) => w / total) };
}

function localityWeight(l: Locality): number {
  return l.weight > 0 && Number.isFinite(l.weight) ? l.weight : 0;
}

/**
 * The candidates ordered by endpoint key. Hash tables built from them then do
 * not depend on the order EDS listed the endpoints in, so every sidecar maps a
 * hash to the same endpoint.
 */
export function sortedByKey(c: Candidates): Candidates {
  const order = c.endpoints.map((_, i) => i).sort((a, b) => compareKeys(c.endpoints[a].key, c.endpoints[b].key));
  return { endpoints: order.map((i) => c.endpoints[i]), weights: order.map((i) => c.weights[i]) };
}

function compareKeys(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
