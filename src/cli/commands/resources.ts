// apply / get / delete / endpoints: resource commands over the admin API.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { stringify as toYaml } from 'yaml';
import { ConfigError, type ConfigErrorInit } from '../../config/errors';
import { parseConfigFile, type ParsedEntry } from '../../config/parse';
import { ApiError, apiRequest } from '../api-client';
import { formatConfigErrors, table } from '../format';
import { kindFromName, unknownKindMessage } from '../../api/kind-names';
import { ioErrorDetail } from '../../config/errors';

interface Located extends ParsedEntry {
  file: string;
}

function yamlFilesIn(target: string): string[] {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(target);
  } catch (err) {
    throw new Error(`-f ${target}: ${ioErrorDetail(err)}`);
  }
  if (!stat.isDirectory()) return [target];
  return fs
    .readdirSync(target, { recursive: true, withFileTypes: false })
    .map((f) => path.join(target, String(f)))
    .filter((f) => /\.ya?ml$/.test(f) && !path.basename(f).startsWith('.') && fs.statSync(f).isFile())
    .sort();
}

export async function runApply(opts: { file: string; api: string }): Promise<void> {
  const entries: Located[] = [];
  const errors: ConfigError[] = [];
  const sources = opts.file === '-' ? [{ file: '<stdin>', text: fs.readFileSync(0, 'utf8') }] : yamlFilesIn(opts.file).map((file) => ({ file, text: fs.readFileSync(file, 'utf8') }));
  for (const { file, text } of sources) {
    const parsed = parseConfigFile(text, file);
    errors.push(...parsed.errors);
    entries.push(...parsed.entries.map((e) => ({ ...e, file })));
  }
  if (errors.length > 0) return fail(`nothing applied; ${errors.length} error(s):\n` + formatConfigErrors(errors));
  if (entries.length === 0) return fail(`no resources in ${opts.file}\n`);
  try {
    const result = await apiRequest(opts.api, 'POST', '/api/v1/resources', JSON.stringify(entries.map((e) => e.resource)), 'application/json');
    for (const a of result.applied) process.stdout.write(`applied ${a.key} (revision ${a.revision})\n`);
  } catch (err) {
    if (err instanceof ApiError && Array.isArray(err.body?.errors)) {
      // The API numbers documents of the request; name the user's files instead.
      const located = err.body.errors.map((j: ConfigErrorInit & { code: any; detail: string }) => {
        const origin = j.file === 'request body' && j.document !== undefined ? entries[j.document] : undefined;
        return new ConfigError(j.code, j.detail, origin ? { ...j, file: origin.file, document: origin.document } : j);
      });
      return fail(`nothing applied; ${located.length} error(s):\n` + formatConfigErrors(located));
    }
    throw err;
  }
}

export async function runGet(kindName: string, name: string | undefined, opts: { namespace?: string; output: string; api: string }): Promise<void> {
  const kind = kindFromName(kindName);
  if (!kind) return fail(`${unknownKindMessage(kindName)}\n`);
  const ns = opts.namespace ?? (name ? 'default' : undefined);
  const url = name ? `/api/v1/resources/${kind}/${ns}/${name}` : `/api/v1/resources/${kind}${ns ? `/${ns}` : ''}`;
  const body = await apiRequest(opts.api, 'GET', url);
  const items: any[] = name ? [body] : body.items;
  if (opts.output === 'json') return void process.stdout.write(JSON.stringify(name ? body : items, null, 2) + '\n');
  if (opts.output === 'yaml') return void process.stdout.write(items.map((i) => toYaml(i)).join('---\n'));
  process.stdout.write(
    table(
      ['NAMESPACE', 'NAME', 'SOURCE', 'REVISION'],
      items.map((i) => [i.metadata.namespace, i.metadata.name, sourceLabel(i.status.source), String(i.status.revision)]),
    ),
  );
}

function sourceLabel(source: { type: string; file?: string; document?: number }): string {
  return source.type === 'file' ? `${source.file}#${source.document}` : 'api';
}

export async function runDelete(kindName: string, name: string, opts: { namespace: string; api: string }): Promise<void> {
  const kind = kindFromName(kindName);
  if (!kind) return fail(`${unknownKindMessage(kindName)}\n`);
  try {
    await apiRequest(opts.api, 'DELETE', `/api/v1/resources/${kind}/${opts.namespace}/${name}`);
    process.stdout.write(`deleted ${kind}/${opts.namespace}/${name}\n`);
  } catch (err) {
    if (err instanceof ApiError && Array.isArray(err.body?.errors)) {
      return fail(`not deleted:\n` + formatConfigErrors(err.body.errors));
    }
    throw err;
  }
}

export async function runEndpoints(service: string | undefined, opts: { api: string }): Promise<void> {
  const q = service ? `?service=${encodeURIComponent(service)}` : '';
  const body = await apiRequest(opts.api, 'GET', `/api/v1/endpoints${q}`);
  const rows: string[][] = [];
  for (const [svc, endpoints] of Object.entries<any[]>(body.services)) {
    if (endpoints.length === 0) rows.push([svc, '-', '', '', '', '']);
    for (const e of endpoints) {
      const ports = Object.entries(e.ports).map(([n, p]) => `${n}=${p}`).join(',');
      rows.push([svc, e.address, ports, e.health, e.zone ?? '', e.origin === 'static' ? 'static' : `registered ${e.origin.slice(0, 8)}`]);
    }
  }
  process.stdout.write(table(['SERVICE', 'ADDRESS', 'PORTS', 'HEALTH', 'ZONE', 'ORIGIN'], rows));
}

function fail(message: string): void {
  process.stderr.write(message);
  process.exitCode = 1;
}
