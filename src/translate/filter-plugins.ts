// Plugins of type http-filter → one HTTP filter each in the HttpConnectionManagers
// of the attached service's sidecar: inbound ones in every HTTP chain of its
// inbound listener (after jwt_authn, RBAC and the rate limits, so a module
// never sees a request they refuse), outbound ones in its outbound listener
// (after the fault filter). Just before the router, by order then name.
//
//   HttpFilter { name: "weft.plugin.<ns>.<name>", is_optional: true,
//     typed_config: xds.type.v3.TypedStruct {
//       type_url: "weft.dev/filters.http.typescript",
//       value: Struct { plugin: "<ns>/<name>", module: "<path or package>", config: { key: "value", … } } } }
//
// is_optional: an Envoy (or any data plane without weft's module filter)
// skips the filter instead of rejecting the listener.
import { attachesTo, resolveFilterPlugins } from '../config/plugin-config';
import { anyOf } from '../xds/protos';
import { MODULE_FILTER_TYPE_URL, TYPE_URL } from '../xds/type-urls';
import type { Service, TranslateContext } from './context';

type Obj = Record<string, unknown>;

/**
 * A google.protobuf.Struct of string values and nested Structs, keys sorted
 * (resources are byte-stable). Its fields are camelCase: protobufjs bundles
 * the well-known types with JSON names.
 */
function struct(values: Record<string, string | Record<string, string>>): Obj {
  const fields: Obj = {};
  for (const key of Object.keys(values).sort()) {
    const v = values[key];
    fields[key] = typeof v === 'string' ? { stringValue: v } : { structValue: struct(v) };
  }
  return { fields };
}

/** The http-filter plugins' HTTP filters for `service`'s sidecar in one direction, in chain order. */
export function pluginFilters(ctx: TranslateContext, service: Service | undefined, direction: 'inbound' | 'outbound'): Obj[] {
  const plugins = ctx.view.plugins ?? [];
  if (!service || !plugins.some((p) => p.spec.type === 'http-filter' && attachesTo(p, service))) return [];
  return resolveFilterPlugins(plugins, service, direction).map((p) => ({
    name: `weft.plugin.${p.namespace}.${p.name}`,
    is_optional: true,
    typed_config: anyOf(TYPE_URL.TypedStruct, {
      type_url: MODULE_FILTER_TYPE_URL,
      value: struct({ plugin: `${p.namespace}/${p.name}`, module: p.module, config: p.config }),
    }),
  }));
}
