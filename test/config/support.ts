// Shared by the config tests: load YAML text through the real file path and
// assert on the one error a bad document should cause.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after } from 'node:test';
import { loadConfigPath, resourceKey, type ConfigError, type ConfigErrorCode, type Resource } from '../../src/config';

/** test/fixtures/config, from dist/test/config at run time. */
export const FIXTURES = resolve(__dirname, '../../../test/fixtures/config');

let root: string | undefined;
after(async () => {
  if (root) await rm(root, { recursive: true, force: true });
});

/** Writes `text` to a fresh file and loads it with loadConfigPath. */
export async function loadYaml(text: string): Promise<{ file: string; resources: Resource[]; errors: ConfigError[] }> {
  root ??= await mkdtemp(join(tmpdir(), 'weft-config-test-'));
  const dir = await mkdtemp(join(root, 'case-'));
  const file = join(dir, 'mesh.yaml');
  await writeFile(file, text);
  const { resources, errors } = await loadConfigPath(file);
  return { file, resources, errors };
}

export function keys(resources: readonly Resource[]): string[] {
  return resources.map(resourceKey);
}

export interface Expected {
  code: ConfigErrorCode;
  file?: string;
  document?: number;
  path?: string;
}

/** Exactly one error, with these fields; returns it for further checks. */
export function onlyError(errors: readonly ConfigError[], want: Expected): ConfigError {
  assert.equal(errors.length, 1, `expected one error, got:\n${errors.map((e) => e.message).join('\n')}`);
  const [e] = errors;
  assert.deepEqual({ code: e.code, file: e.file, document: e.document, path: e.path }, want, e.message);
  return e;
}

/** Three Services most cases refer to: documents 0 to 2 of every test file. */
export const BASE = `
apiVersion: weft.dev/v1
kind: Service
metadata: { name: web }
spec:
  ports:
    - { name: http, port: 80, protocol: http }
    - { name: admin, port: 9901, protocol: http }
---
apiVersion: weft.dev/v1
kind: Service
metadata: { name: db }
spec:
  ports: [{ name: pg, port: 5432, protocol: tcp }]
---
apiVersion: weft.dev/v1
kind: Service
metadata: { name: greeter }
spec:
  ports: [{ name: grpc, port: 50051, protocol: grpc }]
`;

export const BASE_KEYS = ['Service/default/web', 'Service/default/db', 'Service/default/greeter'];

/** BASE, then `docs` as documents 3, 4, ... */
export function withBase(...docs: string[]): string {
  return [BASE, ...docs].join('\n---\n');
}
