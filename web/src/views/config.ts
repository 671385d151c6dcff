// #/config — resources and validation errors; #/proxies — connected proxies and their sync state.
import type { NodeStatus } from '../api';
import { getJson } from '../api';
import { h, table } from '../dom';
import { app, route, state } from '../state';

export async function renderConfig(): Promise<void> {
  let resources: any[] = [];
  try {
    resources = (await getJson<{ items: any[] }>('api/v1/resources')).items;
  } catch {
    // the errors still show
  }
  if (route()[0] !== 'config') return;
  const errs = state.errors ?? { config: [], snapshots: [] };
  app.replaceChildren(
    h('h1', {}, 'Config'),
    h('h2', {}, 'Validation errors'),
    errs.config.length + errs.snapshots.length === 0
      ? h('p', { class: 'good' }, 'None: the config is valid.')
      : table(
          ['Where', 'Field', 'Message'],
          [
            ...errs.config.map((e) => [`${e.file ?? ''}${e.document !== undefined ? ` #${e.document}` : ''}`, String(e.path ?? e.field ?? ''), h('span', { class: 'bad config-error' }, e.message ?? '')]),
            ...errs.snapshots.map((e) => ['snapshot', '', h('span', { class: 'bad config-error' }, e.message ?? JSON.stringify(e))]),
          ],
          { id: 'config-errors' },
        ),
    ...((errs.warnings ?? []).length
      ? [h('h2', {}, 'Warnings: accepted, not in effect'), h('ul', { id: 'config-warnings' }, ...(errs.warnings ?? []).map((w) => h('li', { class: 'warn' }, w.message)))]
      : []),
    h('h2', {}, 'Resources'),
    table(
      ['Kind', 'Namespace', 'Name', 'Source', 'Revision'],
      resources.map((r) => [r.kind, r.metadata.namespace, r.metadata.name, r.status?.source?.file ?? r.status?.source ?? '', r.status?.revision ?? '']),
    ),
  );
}

function syncCell(t: NodeStatus['types'][number] | undefined): HTMLElement {
  if (!t) return h('span', { class: 'muted' }, '—');
  const cls = t.state === 'SYNCED' ? 'good' : t.state === 'NACKED' ? 'bad' : 'warn';
  return h('span', { class: cls, title: t.lastNack?.message ?? '' }, `${t.state}${t.ackedVersion ? ` ${t.ackedVersion}` : ''}`);
}

export function renderProxies(): void {
  const nodes = state.nodes ?? [];
  const types = ['CDS', 'EDS', 'LDS', 'RDS'];
  app.replaceChildren(
    h('h1', {}, 'Proxies'),
    table(
      ['Node', 'Service', 'Role', 'Mode', 'Peer', ...types],
      nodes.map((n) => [n.nodeId, n.node.service ? `${n.node.service}.${n.node.namespace}` : '—', n.node.role, n.mode, n.peer, ...types.map((t) => syncCell(n.types.find((x) => x.type === t)))]),
      { id: 'proxies-table' },
    ),
  );
}
