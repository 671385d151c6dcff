// An http-filter Plugin module: answers 403 itself for every path under
// config.prefix (default /admin) unless the request carries the header
// config.allowHeader (if set) — the upstream never sees a denied request.
// Built to dist/examples/filters/deny-prefix.js.
import type { HttpFilterPluginFactory } from '../../src/proxy/filters/filter-plugin-api';

const denyPrefix: HttpFilterPluginFactory = (config, ctx) => {
  const prefix = config.prefix ?? '/admin';
  const allowHeader = config.allowHeader;
  ctx.log('info', 'deny-prefix filter ready', { prefix });
  return {
    decodeHeaders(req) {
      if (!req.path.startsWith(prefix)) return;
      if (allowHeader && req.headers.get(allowHeader) !== undefined) return;
      return { status: 403, body: `${prefix} is closed`, headers: { 'x-denied-by': 'deny-prefix' } };
    },
  };
};

export default denyPrefix;
