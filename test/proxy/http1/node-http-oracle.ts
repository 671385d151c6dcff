// What Node's own HTTP/1.1 server (llhttp, default strict options) makes of
// raw request bytes: a real node:http server on 127.0.0.1:0, one raw TCP
// connection per message. The server's events are the verdict:
//   request / checkContinue / checkExpectation → accepted (method, url, and the
//     body length once the request stream ends), connect / upgrade → accepted
//     as a tunnel, clientError → rejected (HPE_INVALID_EOF_STATE: the bytes
//     ended mid-message, "incomplete"), the connection closed with none of
//     these → rejected by node:http itself (e.g. a missing Host).
// A real server rather than the internal HTTPParser binding: it is what an
// upstream here actually runs, with node:http's checks on top of llhttp's,
// and it needs no private API.
import * as http from 'node:http';
import * as net from 'node:net';

export type Verdict =
  | { kind: 'accepted'; method: string; target: string; bodyLength: number; tunnel: boolean }
  | { kind: 'rejected'; code: string }
  | { kind: 'incomplete' };

interface Pending {
  settle(v: Verdict): void;
  /** The first request, once its head is parsed. */
  request?: http.IncomingMessage;
}

const CASE_TIMEOUT_MS = 5000;

export class NodeHttpOracle {
  // Default options: insecureHTTPParser false (llhttp without lenient flags), requireHostHeader true.
  private readonly server = http.createServer({ insecureHTTPParser: false });
  /** By the client's local port (the server socket's remote port). */
  private readonly pending = new Map<number, Pending>();
  private readonly ports = new WeakMap<net.Socket, number>();
  private port = 0;

  async start(): Promise<void> {
    const s = this.server;
    s.on('connection', (socket: net.Socket) => {
      this.ports.set(socket, socket.remotePort ?? 0);
      socket.on('close', () => this.of(socket)?.settle({ kind: 'rejected', code: 'CLOSED_BY_NODE_HTTP' }));
    });
    const onRequest = (req: http.IncomingMessage): void => {
      const p = this.of(req.socket);
      if (!p || p.request) return; // a pipelined follower: only the first message counts
      p.request = req;
      let bodyLength = 0;
      req.on('data', (chunk: Buffer) => (bodyLength += chunk.length));
      req.on('end', () => p.settle({ kind: 'accepted', method: req.method ?? '', target: req.url ?? '', bodyLength, tunnel: false }));
    };
    s.on('request', onRequest);
    s.on('checkContinue', onRequest);
    s.on('checkExpectation', onRequest);
    const onTunnel = (req: http.IncomingMessage, socket: net.Socket): void => {
      this.of(socket)?.settle({ kind: 'accepted', method: req.method ?? '', target: req.url ?? '', bodyLength: 0, tunnel: true });
      socket.destroy();
    };
    s.on('connect', onTunnel);
    s.on('upgrade', onTunnel);
    s.on('clientError', (err: NodeJS.ErrnoException, socket: net.Socket) => {
      const p = this.of(socket);
      // llhttp goes on parsing the bytes after a complete first message in the same read, before the request
      // stream's 'end' is emitted: an error there is about the next message, and the first one's 'end' still comes.
      if (p?.request?.complete) return;
      const code = err.code ?? err.message;
      p?.settle(code === 'HPE_INVALID_EOF_STATE' ? { kind: 'incomplete' } : { kind: 'rejected', code });
      socket.destroy();
    });
    await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
    this.port = (s.address() as net.AddressInfo).port;
  }

  /** Sends the bytes on a fresh connection, half-closes, and reports what node:http made of the first message. */
  judge(bytes: Buffer): Promise<Verdict> {
    return new Promise((resolve) => {
      const client = net.connect(this.port, '127.0.0.1');
      let localPort = 0;
      let done = false;
      const p: Pending = {
        settle: (v) => {
          if (done) return;
          done = true;
          clearTimeout(timer);
          this.pending.delete(localPort);
          client.destroy();
          resolve(v);
        },
      };
      const timer = setTimeout(() => p.settle({ kind: 'rejected', code: 'TIMEOUT' }), CASE_TIMEOUT_MS);
      client.on('error', () => undefined); // node:http may reset the connection; its verdict comes from the server side
      client.on('connect', () => {
        localPort = client.localPort ?? 0;
        this.pending.set(localPort, p);
        client.end(bytes);
      });
    });
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private of(socket: net.Socket): Pending | undefined {
    return this.pending.get(this.ports.get(socket) ?? -1);
  }
}
