// A RouteTable compiled for the hot path: virtual host by authority, then the
// first route whose match holds. Built once per RDS version; a match allocates
// nothing in the common case (no query matcher, no regex over a path with a
// query string) and returns a result object made at compile time.
import type { Route, RouteTable, VirtualHost } from '../config/types';
import { PathParts } from './path-parts';
import { RouteMatcher } from './route-matcher';
import { VirtualHostIndex } from './virtual-host-index';

export interface RequestInfo {
  method: string;
  /** Lower-cased authority as received, maybe with ":port". */
  host: string;
  /** Path + "?query". */
  path: string;
  /** First value of a header, by lower-case name. */
  header(lowerName: string): string | undefined;
}

export interface RouteMatchResult {
  virtualHost: VirtualHost;
  route: Route;
}

interface CompiledRoute {
  matcher: RouteMatcher;
  result: RouteMatchResult;
}

interface CompiledVirtualHost {
  domains: readonly string[];
  virtualHost: VirtualHost;
  routes: CompiledRoute[];
}

export class CompiledRouteTable {
  readonly table: RouteTable;
  private readonly index: VirtualHostIndex<CompiledVirtualHost>;
  private readonly parts = new PathParts();

  constructor(table: RouteTable) {
    this.table = table;
    this.index = new VirtualHostIndex(
      table.virtualHosts.map((virtualHost) => ({
        domains: virtualHost.domains,
        virtualHost,
        routes: virtualHost.routes.map((route) => ({
          matcher: new RouteMatcher(route.match),
          result: Object.freeze({ virtualHost, route }),
        })),
      })),
    );
  }

  /**
   * Envoy's virtual host selection: exact domain (host as given, then host
   * without port), then longest "*suffix" wildcard, then longest "prefix*",
   * then "*". Exact domains are one Map lookup; other answers are memoized.
   */
  virtualHost(host: string): VirtualHost | undefined {
    return this.index.find(host)?.virtualHost;
  }

  /** The first route of the request's virtual host whose match holds. */
  match(req: RequestInfo): RouteMatchResult | undefined {
    const compiled = this.index.find(req.host);
    if (compiled === undefined) return undefined;
    const routes = compiled.routes;
    const parts = this.parts;
    parts.reset(req.path);
    for (let i = 0; i < routes.length; i++) {
      if (routes[i].matcher.matches(req, parts)) return routes[i].result;
    }
    return undefined;
  }
}
