// The chaos bench's upstream: three endpoints in one process (so the bench's
// own event loop, blocked while wrk runs, serves nothing). After --fail-after
// ms the last endpoint answers half of its requests with 503.
//
//   node dist/bench/chaos-upstream.js --ports 9001,9002,9003 --fail-after 3000
import * as http from 'node:http';

function arg(name: string): string {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) throw new Error(`--${name} is required`);
  return process.argv[i + 1];
}

const ports = arg('ports').split(',').map(Number);
const failAt = Date.now() + Number(arg('fail-after'));
const body = Buffer.alloc(100, 0x61);

ports.forEach((port, i) => {
  const failing = i === ports.length - 1;
  let n = 0;
  const server = http.createServer((_req, res) => {
    if (failing && Date.now() >= failAt && n++ % 2 === 0) {
      res.writeHead(503, { 'content-length': 4 }).end('fail');
      return;
    }
    res.writeHead(200, { 'content-length': body.length }).end(body);
  });
  server.keepAliveTimeout = 60_000;
  server.listen(port, '127.0.0.1');
});
process.on('SIGTERM', () => process.exit(0));
