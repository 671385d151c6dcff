'use strict';
// The product catalogue. VERSION tells v1 from the canary v2.
const http = require('node:http');
const { listen, sendJson } = require('./mesh-http');

const version = process.env.VERSION || 'v1';
const products = [
  { id: 1, name: 'Loom', price: 249 },
  { id: 2, name: 'Spindle', price: 39 },
  { id: 3, name: 'Shuttle', price: 18 },
  { id: 4, name: 'Yarn, merino', price: 12 },
];

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://product');
  if (url.pathname === '/products') return sendJson(res, 200, { version, products: products.map((p) => ({ ...p, price: version === 'v2' ? Math.round(p.price * 0.9) : p.price })) });
  const m = /^\/products\/(\d+)$/.exec(url.pathname);
  if (m) {
    const p = products.find((x) => x.id === Number(m[1]));
    return p ? sendJson(res, 200, { version, product: p }) : sendJson(res, 404, { error: 'no such product' });
  }
  sendJson(res, 404, { error: 'not found' });
});
listen(server, Number(process.env.PORT || 18081));
