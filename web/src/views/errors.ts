// #/errors — recent failed requests (5xx, resets, anything with a response
// flag) across every host, newest first, as the control plane gathers them
// from the sidecars (/api/v1/requests?failed=1). Asked again every few
// seconds (on the live ticks) while shown.
import { getJsonAtMost, HttpStatusError, type FailedRequest } from '../api';
import { fmt, h, short, table } from '../dom';
import { app, edgeHref, route } from '../state';

let loading = false;

export async function renderErrors(): Promise<void> {
  if (loading) return; // a slow answer is not asked for again meanwhile
  loading = true;
  let items: FailedRequest[] | undefined;
  let problem = '';
  try {
    items = (await getJsonAtMost<{ items: FailedRequest[] }>('api/v1/requests?failed=1&limit=100', 3000)).items;
  } catch (err) {
    problem = err instanceof HttpStatusError && err.status === 404 ? 'this control plane does not gather recent requests (no /api/v1/requests)' : String((err as Error).message ?? err);
  } finally {
    loading = false;
  }
  if (route()[0] !== 'errors') return;
  const rows = (items ?? []).slice().reverse();
  app.replaceChildren(
    h('h1', {}, 'Errors'),
    h('p', { class: 'muted' }, 'Recent failed requests seen by the sidecars on every host: 5xx answers, resets, and anything with a response flag.'),
    items === undefined
      ? h('p', { class: 'muted', id: 'errors-none' }, `No data: ${problem}.`)
      : rows.length === 0
        ? h('p', { class: 'good', id: 'errors-none' }, 'No failed request recently.')
        : table(
            ['Time', 'Source → destination', 'Request', 'Status', 'Flags', 'Duration', 'Node', 'Host'],
            rows.map((r) => [
              new Date(r.time).toLocaleTimeString(),
              r.source && r.destination && r.source !== 'unknown'
                ? h('a', { href: edgeHref(r.source, r.destination), title: 'the call: its charts and config' }, `${short(r.source)} → ${short(r.destination)}`)
                : `${short(r.source || '?')} → ${short(r.destination || '?')}`,
              `${r.method} ${r.authority ?? ''}${r.path ?? ''}`,
              h('span', { class: r.status >= 500 || !r.status ? 'bad' : 'warn' }, r.status ? String(r.status) : r.grpcStatus !== undefined ? `grpc ${r.grpcStatus}` : 'reset'),
              h('code', { class: 'flags' }, r.flags && r.flags !== '-' ? r.flags : '—'),
              fmt.ms(r.durationMs),
              r.node,
              r.host,
            ]),
            { id: 'errors-table' },
          ),
  );
}
