// The names a user may give a kind on the command line and in API paths:
// the kind itself, its plural, and a short alias, in any case.
import { KIND_NAMES, type Kind } from '../config/kinds';

const ALIASES: Record<string, Kind> = {
  svc: 'Service',
  tp: 'TrafficPolicy',
  authz: 'AuthorizationPolicy',
  mtls: 'MeshTLS',
  authn: 'RequestAuthentication',
};

export function kindFromName(text: string): Kind | undefined {
  const lower = text.toLowerCase();
  if (ALIASES[lower]) return ALIASES[lower];
  for (const kind of KIND_NAMES) {
    const k = kind.toLowerCase();
    if (lower === k || lower === pluralOf(k)) return kind;
  }
  return undefined;
}

export function pluralOf(kindLower: string): string {
  if (kindLower.endsWith('y')) return kindLower.slice(0, -1) + 'ies';
  if (kindLower.endsWith('s')) return kindLower + 'es';
  return kindLower + 's';
}

/** What `weft get <kind>` accepts, for an error about a name it does not know. */
export function knownKinds(): string {
  const alias = new Map(Object.entries(ALIASES).map(([a, k]) => [k, a]));
  // ("meshtls", not its plural "meshtlses", which is accepted too)
  return KIND_NAMES.map((k) => `${k.endsWith('S') ? k.toLowerCase() : pluralOf(k.toLowerCase())}${alias.has(k) ? ` (${alias.get(k)})` : ''}`).join(', ');
}

/** "unknown kind "foo": one of services (svc), httproutes, …" */
export function unknownKindMessage(text: string): string {
  return `unknown kind "${text}": one of ${knownKinds()} (or the kind's own name, in any case)`;
}
