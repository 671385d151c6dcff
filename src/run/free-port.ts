// Ports for listeners opened later: a sidecar's ports travel in its node
// metadata, so `weft run` chooses them before its sidecar binds them.
//
// Binding port 0 and releasing it, the usual trick, races: the kernel takes
// that port from its ephemeral range, where every outgoing connect() of every
// process on the host also takes its local port, and a busy host took the
// port again before the sidecar bound it (EADDRINUSE). So ports come from
// below the ephemeral range, walked in order from a random start per process
// (never the same port twice from one process), each checked free by binding
// it on the wildcard address, which conflicts with any listener on the port.
import * as fs from 'node:fs';
import * as net from 'node:net';

/** The lowest port handed out (below: well-known and commonly configured ports). */
const LOW = 20_000;

/** Where the kernel's ephemeral ports start (net.ipv4.ip_local_port_range); 32768 where /proc does not say. */
function ephemeralStart(): number {
  try {
    const start = Number(fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(start) && start > 0 ? start : 32_768;
  } catch {
    return 32_768;
  }
}

const HIGH = ephemeralStart();
let next = HIGH - LOW > 1000 ? LOW + Math.floor(Math.random() * (HIGH - LOW)) : 0;

function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen({ port, host: '0.0.0.0', exclusive: true }, () => s.close(() => resolve(true)));
  });
}

/**
 * A port free right now, below the ephemeral range where the host leaves room
 * for it (else one the kernel picks); never one of `exclude` (`weft run`'s
 * app port: free until the app binds it, after the sidecar's ports are chosen).
 */
export async function freePort(exclude: readonly number[] = []): Promise<number> {
  if (next !== 0) {
    for (let tries = 0; tries < HIGH - LOW; tries++) {
      const port = next;
      next = next + 1 >= HIGH ? LOW : next + 1;
      if (!exclude.includes(port) && (await bindable(port))) return port;
    }
  }
  // No room below the ephemeral range (a host that starts it low): the kernel's choice, race and all.
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}
