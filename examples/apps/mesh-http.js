'use strict';
// Calls another service through the mesh. `weft run` sets HTTP_PROXY to the
// sidecar; like curl or Python's urllib, the request then goes to the proxy
// with the full URL as its target. Node's own http module does not read
// HTTP_PROXY, so this small helper does.
const http = require('node:http');

function meshRequest(method, url, body) {
  const target = new URL(url);
  const proxy = process.env.HTTP_PROXY ? new URL(process.env.HTTP_PROXY) : undefined;
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: proxy ? proxy.hostname : target.hostname,
        port: proxy ? proxy.port : target.port,
        method,
        path: proxy ? target.href : target.pathname + target.search,
        headers: { host: target.host, 'content-type': 'application/json', ...(payload ? { 'content-length': payload.length } : {}) },
        agent: keepAlive,
        timeout: 5000,
      },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString();
          let json;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode, flags: res.headers['x-weft-response-flags'], json, text });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(payload);
  });
}

const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 16 });

function listen(server, port) {
  server.keepAliveTimeout = 30000;
  server.listen(port, '127.0.0.1', () => console.log(`listening on 127.0.0.1:${port}`));
  process.on('SIGTERM', () => server.close(() => process.exit(0)));
}

function sendJson(res, status, value) {
  const body = JSON.stringify(value);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

module.exports = { meshRequest, listen, sendJson };
