'use strict';
// The storefront: pages assembled from calls through the mesh to product
// and order (which calls payment). It listens on 8080 for people.
const http = require('node:http');
const { listen, meshRequest, sendJson } = require('./mesh-http');

const escape = (s) => String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);

// The versions of product that answered the last catalogue calls: the page shows the split the
// mesh actually made (the weights are in examples/mesh/routes.yaml and may change while it runs).
const served = [];
const SERVED_KEPT = 200;

function splitSeen() {
  if (served.length === 0) return 'no answer from product yet';
  const counts = new Map();
  for (const v of served) counts.set(v, (counts.get(v) ?? 0) + 1);
  const shares = [...counts].sort(([a], [b]) => a.localeCompare(b)).map(([v, n]) => `${Math.round((100 * n) / served.length)}% ${escape(v)}`);
  return `the last ${served.length} catalogue calls: ${shares.join(', ')}; reload to see the split`;
}

async function catalogue() {
  try {
    const r = await meshRequest('GET', 'http://product:8081/products');
    if (r.status === 200 && r.json?.version) {
      served.push(String(r.json.version));
      if (served.length > SERVED_KEPT) served.shift();
    }
    return r.status === 200 ? { ok: true, ...r.json } : { ok: false, error: `product answered ${r.status} ${r.flags ?? ''}` };
  } catch (err) {
    return { ok: false, error: err.message };
  }
}

async function recentOrders() {
  try {
    const r = await meshRequest('GET', 'http://order:8082/orders');
    return r.status === 200 ? { ok: true, ...r.json } : { ok: false, error: `order answered ${r.status} ${r.flags ?? ''}` };
  } catch (err) {
    return { ok: false, error: err.message };
  }
}

function page(cat, ord, message) {
  const rows = cat.ok
    ? cat.products.map((p) => `<tr><td>${escape(p.name)}</td><td>${p.price} €</td><td><a href="/buy?id=${p.id}&amount=${p.price}">buy</a></td></tr>`).join('')
    : `<tr><td colspan=3>catalogue unavailable: ${escape(cat.error)}</td></tr>`;
  const orders = ord.ok
    ? ord.orders.map((o) => `<li>#${o.id}: product ${o.productId}, ${o.amount} €, payment ${escape(o.payment)}</li>`).join('')
    : `<li>orders unavailable: ${escape(ord.error)}</li>`;
  return `<!doctype html><html><head><meta charset=utf-8><title>weft demo shop</title>
<style>body{font-family:sans-serif;max-width:40em;margin:2em auto}td{padding:.2em 1em}</style></head><body>
<h1>weft demo shop</h1>
${message ? `<p><b>${escape(message)}</b></p>` : ''}
<p>Catalogue served by product <b>${escape(cat.version ?? '?')}</b> (${splitSeen()}).</p>
<table>${rows}</table>
<h2>Recent orders (${ord.ok ? ord.total : '?'} in all)</h2><ul>${orders}</ul>
<p><small>Every call above went storefront → sidecar → product / order → sidecar → payment (Python).</small></p>
</body></html>`;
}

const server = http.createServer(async (req, res) => {
  const url = new URL(req.url, 'http://storefront');
  if (url.pathname === '/') {
    const [cat, ord] = await Promise.all([catalogue(), recentOrders()]);
    const body = page(cat, ord, url.searchParams.get('msg'));
    res.writeHead(cat.ok && ord.ok ? 200 : 503, { 'content-type': 'text/html; charset=utf-8', 'content-length': Buffer.byteLength(body) });
    return res.end(body);
  }
  if (url.pathname === '/buy') {
    try {
      const r = await meshRequest('POST', 'http://order:8082/orders', { productId: Number(url.searchParams.get('id')), amount: Number(url.searchParams.get('amount')) });
      const msg = r.status === 201 ? `order #${r.json.id} placed` : `order failed: ${r.status} ${r.json?.error ?? ''}`;
      res.writeHead(303, { location: `/?msg=${encodeURIComponent(msg)}`, 'content-length': 0 });
      return res.end();
    } catch (err) {
      return sendJson(res, 502, { error: err.message });
    }
  }
  if (url.pathname === '/api/summary') {
    const [cat, ord] = await Promise.all([catalogue(), recentOrders()]);
    return sendJson(res, cat.ok && ord.ok ? 200 : 503, { productVersion: cat.version, products: cat.products?.length, orders: ord.total, errors: [cat.error, ord.error].filter(Boolean) });
  }
  sendJson(res, 404, { error: 'not found' });
});
listen(server, Number(process.env.PORT || 8080));
