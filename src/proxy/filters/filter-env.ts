// What filters may need of the proxy around them (its control plane, stats,
// log), kept in the FilterState under one key so the filter factory's
// signature stays (name, config, state). Absent in unit tests: filters then
// count nothing and have no control plane to call.
import type { ChannelCredentials } from '@grpc/grpc-js';
import type { ControlPlaneAddresses } from '../../xds/client/control-plane-addresses';
import type { Logger } from '../../observe/log';
import type { ProxyStats } from '../stats';
import type { FilterState } from './catalog';

export interface FilterEnv {
  /** The control plane's gRPC addresses (its xDS servers), the list and preference the sidecar's xDS client uses. */
  controlPlane?: ControlPlaneAddresses;
  /** TLS to it (outside dev mode); plaintext when absent. */
  controlPlaneCredentials?: ChannelCredentials;
  stats?: ProxyStats;
  log?: Logger;
  /** An endpoint of a cluster of the current config, picked by its load balancer (jwt_authn fetches remote JWKS there). */
  clusterEndpoint?: (cluster: string) => { address: string; port: number } | undefined;
  /** Called by the proxy's close(): clients filters opened (the rate limit service channel). */
  closers: (() => void)[];
}

const KEY = 'weft.filter-env';

export function filterEnv(state: FilterState): FilterEnv {
  let env = state.get(KEY) as FilterEnv | undefined;
  if (!env) state.set(KEY, (env = { closers: [] }));
  return env;
}

export function closeFilterEnv(state: FilterState): void {
  const env = state.get(KEY) as FilterEnv | undefined;
  for (const close of env?.closers.splice(0) ?? []) close();
}
