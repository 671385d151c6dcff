// jose, loaded when a JWT is first checked or a JWKS first read: a sidecar
// with no RequestAuthentication never pays its ~10 MiB.
let loaded: typeof import('jose') | undefined;

export function jose(): typeof import('jose') {
  return (loaded ??= require('jose') as typeof import('jose'));
}
