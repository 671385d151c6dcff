'use strict';
// Orders: taking one charges the payment service through the mesh. With
// ORDERS_FILE set (the demo sets it) the orders are kept in that file, so
// they survive a restart; the demo's backup plugin archives it.
const fs = require('node:fs');
const http = require('node:http');
const { listen, meshRequest, sendJson } = require('./mesh-http');

const file = process.env.ORDERS_FILE;
const orders = file && fs.existsSync(file) ? JSON.parse(fs.readFileSync(file, 'utf8')).orders : [];
if (file) console.log(`order: ${orders.length} order(s) in ${file}`);

/** Writes the file whole under a temporary name, then renames it: a crash never leaves half of it. */
function save() {
  if (!file) return;
  fs.writeFileSync(`${file}.tmp`, JSON.stringify({ orders }));
  fs.renameSync(`${file}.tmp`, file);
}

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
        save();
        console.log(`order #${order.id} placed: product ${order.productId}, amount ${order.amount}`);
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
