// What every view shares: the live state from the event stream, the series
// the current page charts, the page's element, and the hash route.
import { LiveSeries, type LiveState, type Topology } from './api';

export const state: LiveState = {};
export const series = new LiveSeries();
export const app = document.getElementById('app')!;

/** The hash route's parts: "#/edge/a.default/b.default" → ["edge", "a.default", "b.default"]. */
export function route(): string[] {
  return location.hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
}

/** The observer has not counted a window yet (no sidecar has reported twice): no rates to show. */
export function warmingUp(t: Topology | undefined): boolean {
  return !t || !(t.windowSeconds > 0);
}

const openedAt = Date.now();

/** Why there are no rates yet: just opened (the first window takes a few seconds), or nothing reports traffic. */
export function noWindowYet(): string {
  return Date.now() - openedAt < 15_000
    ? 'Warming up: rates appear once the sidecars have reported twice (a few seconds).'
    : 'Warming up: no sidecar has reported traffic yet (an idle sidecar sends nothing).';
}

export function serviceHref(name: string): string {
  const [short, ...ns] = name.split('.');
  return `#/service/${encodeURIComponent(ns.join('.') || 'default')}/${encodeURIComponent(short)}`;
}

export function edgeHref(source: string, destination: string): string {
  return `#/edge/${encodeURIComponent(source)}/${encodeURIComponent(destination)}`;
}
