// AuthorizationPolicy on a proxyless gRPC server: a real @grpc/grpc-js-xds
// XdsServer (gRFC A36) gets its Listener from weft and enforces the RBAC
// filter (gRFC A41; grpc-js-xds 1.14 needs GRPC_XDS_EXPERIMENTAL_RBAC=true).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as os from 'node:os';
import * as grpc from '@grpc/grpc-js';
import { startControlPlane, type ControlPlane } from '../../src/control/control-plane';
import { silentLogger } from '../../src/observe/log';
import { grpcBootstrap } from '../../src/xds/bootstrap';
import { EchoClient, echoService } from '../helpers/grpc-echo';
import { freePort } from '../helpers/proxy-harness';
import { waitFor } from '../helpers/tmp';

let cp: ControlPlane;
let configDir: string;
let dataDir: string;
let server: grpc.Server;
let port: number;
let client: grpc.Client & Record<string, Function>;
let served = 0;

const T = { timeout: 20_000 };

function policies(allow: string, deny: string): string {
  return `apiVersion: weft.dev/v1
kind: AuthorizationPolicy
metadata: { name: allow }
spec:
  targetRef: { name: greeter }
  action: ALLOW
${allow}
---
apiVersion: weft.dev/v1
kind: AuthorizationPolicy
metadata: { name: deny }
spec:
  action: DENY
${deny}
`;
}

async function code(method: string, metadata: Record<string, string> = {}): Promise<number> {
  const md = new grpc.Metadata();
  for (const [k, v] of Object.entries(metadata)) md.set(k, v);
  return new Promise((resolve) => {
    client[method]({}, md, { deadline: Date.now() + 2000 }, (err: grpc.ServiceError | null) => resolve(err ? err.code : grpc.status.OK));
  });
}

before(async () => {
  port = await freePort();
  configDir = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-proxyless-authz-config-'));
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-proxyless-authz-data-'));
  fs.writeFileSync(
    path.join(configDir, 'services.yaml'),
    `apiVersion: weft.dev/v1
kind: Service
metadata: { name: greeter }
spec:
  ports: [{ name: grpc, port: ${port}, protocol: grpc }]
  endpoints: [{ address: 127.0.0.1, port: ${port} }]
`,
  );
  fs.writeFileSync(
    path.join(configDir, 'authz.yaml'),
    policies(
      `  rules: [{ to: [{ operation: { paths: [/test.Echo/Hello, /test.Echo/Flaky] } }] }]`,
      `  rules: [{ when: [{ key: x-deny, values: ["yes"] }] }, { to: [{ operation: { paths: [/test.Echo/Flaky] } }] }]`,
    ),
  );
  cp = await startControlPlane({ configDir, dataDir, xdsPort: 0, apiPort: 0, log: silentLogger, dev: true });
  // Read once per process, when grpc-js-xds is loaded: set before it is.
  process.env.GRPC_XDS_EXPERIMENTAL_RBAC = 'true';
  process.env.GRPC_XDS_BOOTSTRAP_CONFIG = JSON.stringify(
    grpcBootstrap({ xdsServer: `127.0.0.1:${cp.xdsPort}`, nodeId: 'greeter-server', service: 'greeter', namespace: 'default' }),
  );
  const xds = require('@grpc/grpc-js-xds');
  xds.register();
  server = new xds.XdsServer();
  server.addService(echoService, {
    Hello: (_call: unknown, cb: grpc.sendUnaryData<unknown>) => {
      served++;
      cb(null, { from: 'greeter' });
    },
    Hang: (_call: unknown, cb: grpc.sendUnaryData<unknown>) => {
      served++;
      cb(null, { from: 'greeter' });
    },
    Flaky: (_call: unknown, cb: grpc.sendUnaryData<unknown>) => {
      served++;
      cb(null, { from: 'greeter' });
    },
  });
  // The callback comes once the server has its Listener and serves.
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the XdsServer never started serving')), 10_000);
    server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err) => {
      clearTimeout(timer);
      if (err) reject(err);
      else resolve();
    });
  });
  client = new EchoClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
}, T);

after(async () => {
  client?.close();
  await new Promise<void>((resolve) => (server ? server.tryShutdown(() => resolve()) : resolve()));
  await cp?.close();
  fs.rmSync(configDir, { recursive: true, force: true });
  fs.rmSync(dataDir, { recursive: true, force: true });
});

test('proxyless server: the ALLOW policy lets its methods through, others get PERMISSION_DENIED', T, async () => {
  assert.equal(await code('Hello'), grpc.status.OK);
  assert.equal(await code('Hang'), grpc.status.PERMISSION_DENIED, 'not an allowed path');
  assert.equal(served, 1, 'the denied call never reached the handler');
});

test('proxyless server: DENY wins (by header, by path)', T, async () => {
  assert.equal(await code('Hello', { 'x-deny': 'yes' }), grpc.status.PERMISSION_DENIED);
  assert.equal(await code('Flaky'), grpc.status.PERMISSION_DENIED, 'allowed, but denied by the DENY policy');
  assert.equal(await code('Hello', { 'x-deny': 'no' }), grpc.status.OK);
});

test('proxyless server: a policy change reaches the running server (default deny, then open)', T, async () => {
  fs.writeFileSync(path.join(configDir, 'authz.yaml'), policies('', '  rules: []'));
  await waitFor(async () => (await code('Hello')) === grpc.status.PERMISSION_DENIED, 8000, 'default deny applied');
  fs.writeFileSync(path.join(configDir, 'authz.yaml'), policies('  rules: [{}]', '  rules: []'));
  await waitFor(async () => (await code('Hang')) === grpc.status.OK, 8000, 'everything allowed');
});
