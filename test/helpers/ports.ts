// Ports for listeners a test opens later (a sidecar's ports travel in its
// node metadata): the same chooser `weft run` uses, below the kernel's
// ephemeral range, so another test file's outgoing connections cannot take
// a port between the choice and the bind (src/run/free-port.ts).
export { freePort } from '../../src/run/free-port';
