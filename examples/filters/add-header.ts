// An http-filter Plugin module: tags every request it sees for the upstream
// (x-weft-filter: <config.tag>) and every response on its way back
// (x-filtered-by: <config.tag>), and tells the upstream who called when the
// caller came over mTLS. Built to dist/examples/filters/add-header.js.
//
//   spec: { type: http-filter, module: /…/dist/examples/filters/add-header.js,
//           config: { global: { tag: "${service}" } }, targetRefs: [{ name: shop }] }
import type { HttpFilterPluginFactory } from '../../src/proxy/filters/filter-plugin-api';

const addHeader: HttpFilterPluginFactory = (config) => {
  const tag = config.tag ?? 'weft';
  return {
    decodeHeaders(req) {
      req.headers.set('x-weft-filter', tag);
      if (req.peerPrincipal) req.headers.set('x-caller', req.peerPrincipal);
    },
    encodeHeaders(res) {
      res.headers.set('x-filtered-by', tag);
    },
  };
};

export default addHeader;
