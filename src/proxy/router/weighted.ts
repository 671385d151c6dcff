// Weighted cluster choice for a route (canary splits), as Envoy: a random
// point in [0, totalWeight) falls in one cluster's cumulative range. Routes
// have a handful of clusters, so a linear walk beats anything cleverer.
import type { WeightedCluster } from '../config/types';

/**
 * The chosen cluster's name. If `totalWeight` exceeds the sum of the weights,
 * the last cluster takes the rest; an empty list gives "" (no cluster has that
 * name, so the engine answers as for an unknown cluster).
 */
export function pickWeightedCluster(clusters: WeightedCluster[], totalWeight: number, random: () => number): string {
  const n = clusters.length;
  if (n === 0) return '';
  if (n === 1 || totalWeight <= 0) return clusters[0].name;
  const point = random() * totalWeight;
  let upTo = 0;
  for (let i = 0; i < n - 1; i++) {
    upTo += clusters[i].weight;
    if (point < upTo) return clusters[i].name;
  }
  return clusters[n - 1].name;
}
