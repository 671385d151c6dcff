// Ports for listeners a test opens later (a sidecar's ports travel in its
// node metadata, so they are chosen before the sidecar binds them).
//
// Binding port 0 and releasing it, the usual trick, races: the port comes
// from the kernel's ephemeral range, where every outgoing connect() of every
// test file running beside this one also takes its local port, and a port
// picked here was taken again before the sidecar bound it (EADDRINUSE in CI).
// So ports come from below the ephemeral range (32768+ on Linux), walked in
// order from a random start per process, each checked free by binding it.
import * as net from 'node:net';

const LOW = 20_000;
const HIGH = 32_000; // below net.ipv4.ip_local_port_range's default start
let next = LOW + Math.floor(Math.random() * (HIGH - LOW));

function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    // The wildcard address conflicts with any listener on the port, loopback included.
    s.listen({ port, host: '0.0.0.0', exclusive: true }, () => s.close(() => resolve(true)));
  });
}

/** A port free right now, outside the ephemeral range, not handed out before by this process. */
export async function freePort(): Promise<number> {
  for (let tries = 0; tries < HIGH - LOW; tries++) {
    const port = next;
    next = next + 1 >= HIGH ? LOW : next + 1;
    if (await bindable(port)) return port;
  }
  throw new Error(`no free port in ${LOW}-${HIGH}`);
}
