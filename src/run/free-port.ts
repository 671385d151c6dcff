// Ports for listeners opened later: a sidecar's ports travel in its node
// metadata, so `weft run` chooses them before its sidecar binds them.
//
// Binding port 0 and releasing it, the usual trick, races: the kernel takes
// that port from its ephemeral range, where every outgoing connect() of every
// process on the host also takes its local port, and a busy host took the
// port again before the sidecar bound it (EADDRINUSE). So ports come from
// below the ephemeral range, each checked free by binding it on the wildcard
// address (which conflicts with any listener on the port).
//
// Each port is drawn at random, never walked in order. Processes choosing at
// once (several `weft run` units on a host) cannot see each other's chosen
// but not yet bound ports; a walk slides past a run of bound listeners to
// the very port the process that bound them walks to next, so walks collided
// often, while random draws collide rarely and independently.
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

function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen({ port, host: '0.0.0.0', exclusive: true }, () => s.close(() => resolve(true)));
  });
}

function kernelPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/** One process's chooser: remembers what it handed out, so it never hands a port out twice. */
export class PortChooser {
  private readonly handedOut = new Set<number>();

  constructor(
    private readonly low = LOW,
    private readonly high = ephemeralStart(),
  ) {}

  /** A port free right now and not handed out before by this chooser; never one of `exclude`. */
  async choose(exclude: readonly number[] = []): Promise<number> {
    const size = this.high - this.low;
    // No room below the ephemeral range (a host that starts it low): the kernel's choice, race and all.
    if (size <= 1000) return kernelPort();
    // A long-lived process forgets its oldest choices (long bound or given up) rather than run dry.
    while (this.handedOut.size >= size / 2) this.handedOut.delete(this.handedOut.values().next().value as number);
    for (let tries = 0; tries < size; tries++) {
      const port = this.low + Math.floor(Math.random() * size);
      if (this.handedOut.has(port) || exclude.includes(port)) continue;
      if (!(await bindable(port))) continue;
      this.handedOut.add(port);
      return port;
    }
    return kernelPort();
  }
}

const processChooser = new PortChooser();

/**
 * A port free right now, below the ephemeral range where the host leaves room
 * for it (else one the kernel picks); never one this process was given
 * before, nor one of `exclude` (`weft run`'s app port: free until the app
 * binds it, after the sidecar's ports are chosen).
 */
export function freePort(exclude: readonly number[] = []): Promise<number> {
  return processChooser.choose(exclude);
}
