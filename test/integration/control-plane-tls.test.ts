// The sidecar's TLS to the control plane when it dials an IP address (the
// usual case): no IP in SNI (Node's DEP0123 warning on every sidecar's
// stderr, and throughout the test suite), and the control plane's
// certificate still verified against the IP dialed (its IP SANs).
import { after, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { startControlPlane, type ControlPlane } from '../../src/control/control-plane';
import { silentLogger } from '../../src/observe/log';
import { ControlPlaneCredentials, targetHost } from '../../src/xds/client/control-plane-tls';
import { freePort } from '../helpers/proxy-harness';
import { tempDir, waitFor } from '../helpers/tmp';

const BIN = path.resolve(__dirname, '../../../bin/weft.js');
const closers: (() => unknown)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

async function securePlane(extra: Record<string, unknown> = {}): Promise<ControlPlane> {
  const cp = await startControlPlane({ dataDir: tempDir(), xdsPort: 0, apiPort: 0, log: silentLogger, ...extra });
  closers.push(() => cp.close());
  return cp;
}

test('a sidecar process dialing the control plane by IP over TLS prints no DEP0123 (IP as TLS ServerName)', { timeout: 30_000 }, async () => {
  const cp = await securePlane();
  const token = (await cp.tokens.create({ service: 'orders' })).token;
  const [outbound, inbound, admin] = [await freePort(), await freePort(), await freePort()];
  const child = spawn(
    process.execPath,
    [BIN, 'proxy', '--xds', `127.0.0.1:${cp.xdsPort}`, '--service', 'orders', '--node-id', 'orders-tls', '--ca-file', cp.ca.bundleFile()!, '--join-token', token, '--outbound-port', String(outbound), '--inbound-port', String(inbound), '--admin-port', String(admin)],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  child.stdout.resume();
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  closers.push(() => child.exitCode === null && child.kill('SIGKILL'));
  // Every TLS channel it opens to the control plane: ADS, SDS (its certificate), telemetry.
  await waitFor(() => cp.xds.status().some((n) => n.nodeId === 'orders-tls' && n.types.some((t) => t.state === 'SYNCED')), 15_000, 'the sidecar connected over TLS (ADS)').catch((err) => assert.fail(`${err.message}\n${stderr}`));
  await waitFor(() => cp.ca.issuances().some((i) => i.nodeId === 'orders-tls'), 15_000, 'its certificate over SDS').catch((err) => assert.fail(`${err.message}\n${stderr}`));
  await waitFor(() => cp.intake.all().some((r) => r.node.id === 'orders-tls'), 15_000, 'its telemetry stream').catch((err) => assert.fail(`${err.message}\n${stderr}`));
  child.kill('SIGTERM');
  await exited;
  assert.doesNotMatch(stderr, /DEP0123|TLS ServerName to an IP/, stderr);
});

/** READY (the TLS handshake passed, certificate checks included) or TRANSIENT_FAILURE, whichever comes first. */
async function handshake(address: string, credentials: grpc.ChannelCredentials): Promise<string> {
  const client = new grpc.Client(address, credentials, { 'grpc.enable_channelz': 0 });
  try {
    const channel = client.getChannel();
    for (let state = channel.getConnectivityState(true); ; state = channel.getConnectivityState(true)) {
      if (state === grpc.connectivityState.READY) return 'READY';
      if (state === grpc.connectivityState.TRANSIENT_FAILURE) return 'TRANSIENT_FAILURE';
      await new Promise<void>((resolve, reject) => channel.watchConnectivityState(state, Date.now() + 10_000, (err) => (err ? reject(err) : resolve())));
    }
  } finally {
    client.close();
  }
}

test('without SNI the control plane certificate is still checked against the IP dialed: an address it does not carry is refused', { timeout: 30_000 }, async () => {
  // Bound to every address, its certificate names 127.0.0.3 (advertised) and 127.0.0.1, not 127.0.0.2.
  const cp = await securePlane({ host: '0.0.0.0', advertiseAddress: '127.0.0.3' });
  const creds = new ControlPlaneCredentials(Buffer.from(cp.ca.bundlePem()));
  assert.equal(await handshake(`127.0.0.3:${cp.xdsPort}`, creds), 'READY');
  assert.equal(await handshake(`127.0.0.1:${cp.xdsPort}`, creds), 'READY');
  assert.equal(await handshake(`127.0.0.2:${cp.xdsPort}`, creds), 'TRANSIENT_FAILURE');
});

test('the host the certificate is checked against: from the channel target, or through an HTTP CONNECT proxy the real target', () => {
  const t = (path: string) => ({ scheme: 'dns', path });
  assert.equal(targetHost(t('198.18.0.2:15010')), '198.18.0.2');
  assert.equal(targetHost(t('[::1]:15010')), '::1');
  assert.equal(targetHost(t('cp.example:15010')), 'cp.example');
  assert.equal(targetHost(t('/cp.example')), 'cp.example');
  // grpc-js dials the proxy and keeps the control plane in grpc.http_connect_target.
  assert.equal(targetHost(t('10.0.0.9:3128'), { 'grpc.http_connect_target': 'dns:198.18.0.2:15010' }), '198.18.0.2');
});
