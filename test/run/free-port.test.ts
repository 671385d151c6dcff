// The port chooser `weft run` and the tests use (src/run/free-port.ts), on
// real sockets: what one process is handed, and what processes choosing at
// once see of each other's bound listeners.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import { PortChooser } from '../../src/run/free-port';

const LOW = 20_000;
const HIGH = Number(fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);

const held: net.Server[] = [];
after(() => Promise.all(held.map((s) => new Promise((resolve) => s.close(resolve)))));

/** Binds `port` on the wildcard address and keeps it bound until the file ends; false if it is taken. */
function hold(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen({ port, host: '0.0.0.0', exclusive: true }, () => {
      held.push(s);
      resolve(true);
    });
  });
}

test('one process is handed distinct bindable ports below the ephemeral range, never an excluded one', async () => {
  const chooser = new PortChooser();
  const exclude = Array.from({ length: 2000 }, (_, i) => LOW + i * 5);
  const seen = new Set<number>();
  for (let i = 0; i < 300; i++) {
    const port = await chooser.choose(exclude);
    assert.ok(port >= LOW && port < HIGH, `port ${port} outside [${LOW}, ${HIGH})`);
    assert.ok(!exclude.includes(port), `excluded port ${port} handed out`);
    assert.ok(!seen.has(port), `port ${port} handed out twice`);
    seen.add(port);
    // Every second port stays free: the chooser must not hand it out again anyway.
    if (i % 2 === 0) assert.ok(await hold(port), `port ${port} was handed out but cannot be bound`);
  }
});

test('a run of bound listeners does not steer other processes to the port just past it', async () => {
  // What a process that bound a stretch of ports leaves behind: the run, and
  // the next free port past it, which it may have chosen but not bound yet.
  const start = LOW + Math.floor(Math.random() * (HIGH - LOW - 2000));
  for (let port = start; port < start + 1000; port++) await hold(port);
  let pastRun = start + 1000;
  while (!(await hold(pastRun))) pastRun++;
  const probe = held.pop() as net.Server;
  await new Promise((resolve) => probe.close(resolve));
  // 300 other processes, each choosing its first port. A chooser that walked
  // in order from a random start would land in the run 1 time in 13 and slide
  // to `pastRun` (about 23 times here); random draws hit it about 1 in 12,000.
  let hits = 0;
  for (let i = 0; i < 300; i++) if ((await new PortChooser().choose()) === pastRun) hits++;
  assert.ok(hits <= 2, `${hits} of 300 fresh choosers chose port ${pastRun}, the one just past a run of 1000 bound ports`);
});
