'use strict';
// Orders: taking one charges the payment service through the mesh.
const http = require('node:http');
const { listen, meshRequest, sendJson } = require('./mesh-http');

const orders = [];

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://order');
  if (req.method === 'GET' && url.pathname === '/orders') return sendJson(res, 200, { orders: orders.slice(-10).reverse(), total: orders.length });
  if (req.method === 'POST' && url.pathname === '/orders') {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', async () => {
      let body;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString() || '{}');
      } catch {
        return sendJson(res, 400, { error: 'body is not JSON' });
      }
      try {
        const charge = await meshRequest('POST', 'http://payment:8083/charge', { amount: body.amount ?? 0 });
        if (charge.status !== 200) return sendJson(res, 502, { error: 'payment failed', status: charge.status, flags: charge.flags });
        const order = { id: orders.length + 1, productId: body.productId, amount: body.amount, payment: charge.json.id, at: new Date().toISOString() };
        orders.push(order);
        sendJson(res, 201, order);
      } catch (err) {
        sendJson(res, 502, { error: `payment unreachable: ${err.message}` });
      }
    });
    return;
  }
  sendJson(res, 404, { error: 'not found' });
});
listen(server, Number(process.env.PORT || 18082));
