// Rules over a whole set of resources: identities are unique, references
// lead to Services and ports that exist and fit, and no two policies decide
// the same thing. The API uses the same rules for one put or delete.
import { ConfigError, problemToError, resourceLabel, type Problem, type ResourceRef } from './errors';
import { resourceKey, type Kind, type Resource, type ServiceSpec } from './kinds';
import { resourceRules } from './resource-rules';

/** Where a resource came from, for error messages. */
export type Where = (r: Resource) => { file?: string; document?: number };

type Path = PropertyKey[];
type ServicePort = ServiceSpec['ports'][number];

/** The protocols of a Service port each route kind can attach to. */
const ROUTE_PROTOCOLS: Partial<Record<Kind, readonly string[]>> = {
  HTTPRoute: ['http', 'http2', 'grpc'],
  GRPCRoute: ['grpc', 'http2'],
  TCPRoute: ['tcp'],
};

function refOf(r: Resource): ResourceRef {
  return { kind: r.kind, namespace: r.metadata.namespace, name: r.metadata.name };
}

function portList(ports: readonly ServicePort[]): string {
  return ports.map((p) => `${p.port} (${p.protocol})`).join(', ');
}

function orList(items: readonly string[]): string {
  return items.length > 1 ? `${items.slice(0, -1).join(', ')} or ${items[items.length - 1]}` : items.join('');
}

interface Ref {
  name: string;
  namespace?: string;
  port?: number;
}

/** The reference checks; `services` maps "namespace/name" to the Service. */
class ReferenceChecker {
  constructor(private readonly services: Map<string, Resource<'Service'>>) {}

  /** The Service a reference names, or a problem saying it does not exist. */
  service(owner: Resource, ref: Ref, path: Path, out: Problem[]): Resource<'Service'> | undefined {
    const id = `${ref.namespace ?? owner.metadata.namespace}/${ref.name}`;
    const svc = this.services.get(id);
    if (!svc) out.push({ code: 'E_REFERENCE', path: [...path, 'name'], detail: `Service ${id} does not exist`, expected: 'the name of a Service' });
    return svc;
  }

  /** A parentRef: the Service exists, has the port, and the port speaks the route's protocol. */
  parent(route: Resource, ref: Ref, path: Path, out: Problem[]): void {
    const svc = this.service(route, ref, path, out);
    if (!svc) return;
    const allowed = ROUTE_PROTOCOLS[route.kind] ?? [];
    const expected = `a port with protocol ${orList(allowed)}`;
    const id = `${svc.metadata.namespace}/${svc.metadata.name}`;
    if (ref.port === undefined) {
      // Without a port the route attaches to every port that fits; at least one must.
      if (!svc.spec.ports.some((p) => allowed.includes(p.protocol))) {
        const detail = `Service ${id} has no port a ${route.kind} can attach to (its ports: ${portList(svc.spec.ports)}; expected ${expected})`;
        out.push({ code: 'E_REFERENCE', path, detail, expected });
      }
      return;
    }
    const port = this.port(svc, ref.port, path, out);
    if (port && !allowed.includes(port.protocol)) {
      const detail = `a ${route.kind} cannot attach to port ${port.port} of Service ${id}: its protocol is ${port.protocol} (expected ${expected})`;
      out.push({ code: 'E_REFERENCE', path: [...path, 'port'], detail, expected });
    }
  }

  /** A backendRef: the Service exists and the port is one of its ports, or can be told without one. */
  backend(owner: Resource, ref: Ref, path: Path, out: Problem[]): void {
    const svc = this.service(owner, ref, path, out);
    if (!svc) return;
    if (ref.port !== undefined) {
      this.port(svc, ref.port, path, out);
    } else if (svc.spec.ports.length > 1) {
      const expected = `one of the ports ${portList(svc.spec.ports)}`;
      const detail = `Service ${svc.metadata.namespace}/${svc.metadata.name} has several ports, so the backendRef needs one (expected ${expected})`;
      out.push({ code: 'E_REFERENCE', path: [...path, 'port'], detail, expected });
    }
  }

  private port(svc: Resource<'Service'>, number: number, path: Path, out: Problem[]): ServicePort | undefined {
    const port = svc.spec.ports.find((p) => p.port === number);
    if (!port) {
      const expected = `one of the ports ${portList(svc.spec.ports)}`;
      const detail = `Service ${svc.metadata.namespace}/${svc.metadata.name} has no port ${number} (expected ${expected})`;
      out.push({ code: 'E_REFERENCE', path: [...path, 'port'], detail, expected });
    }
    return port;
  }

  /** Problems of the references `r` makes. */
  check(r: Resource): Problem[] {
    const out: Problem[] = [];
    switch (r.kind) {
      case 'Service':
        ((r as Resource<'Service'>).spec.dependsOn ?? []).forEach((d, i) => this.service(r, d, ['spec', 'dependsOn', i], out));
        break;
      case 'HTTPRoute':
      case 'GRPCRoute':
      case 'TCPRoute': {
        const spec = (r as Resource<'HTTPRoute' | 'GRPCRoute' | 'TCPRoute'>).spec;
        spec.parentRefs.forEach((p, i) => this.parent(r, p, ['spec', 'parentRefs', i], out));
        spec.rules.forEach((rule, i) => {
          (rule.backendRefs ?? []).forEach((b, j) => this.backend(r, b, ['spec', 'rules', i, 'backendRefs', j], out));
          const filters = 'filters' in rule ? (rule.filters ?? []) : [];
          filters.forEach((f, j) => {
            if (f.type === 'RequestMirror') {
              this.backend(r, f.requestMirror.backendRef, ['spec', 'rules', i, 'filters', j, 'requestMirror', 'backendRef'], out);
            }
          });
        });
        break;
      }
      case 'TrafficPolicy':
        this.service(r, (r as Resource<'TrafficPolicy'>).spec.targetRef, ['spec', 'targetRef'], out);
        break;
      case 'MeshTLS':
      case 'AuthorizationPolicy': {
        const target = (r as Resource<'MeshTLS' | 'AuthorizationPolicy'>).spec.targetRef;
        if (target) this.service(r, target, ['spec', 'targetRef'], out);
        break;
      }
      case 'Plugin':
        ((r as Resource<'Plugin'>).spec.targetRefs ?? []).forEach((t, i) => this.service(r, t, ['spec', 'targetRefs', i], out));
        break;
      case 'RequestAuthentication': {
        const spec = (r as Resource<'RequestAuthentication'>).spec;
        if (spec.targetRef) this.service(r, spec.targetRef, ['spec', 'targetRef'], out);
        spec.jwtRules.forEach((rule, i) => {
          const { service, namespace, port } = rule.jwks;
          if (service === undefined) return;
          const path = ['spec', 'jwtRules', i, 'jwks'];
          const id = `${namespace ?? r.metadata.namespace}/${service}`;
          const svc = this.services.get(id);
          if (!svc) out.push({ code: 'E_REFERENCE', path: [...path, 'service'], detail: `Service ${id} does not exist`, expected: 'the name of a Service serving the JWKS' });
          else if (port !== undefined) this.port(svc, port, path, out);
        });
        break;
      }
    }
    return out;
  }
}

/**
 * The Service a policy decides for, when only one policy of its kind may:
 * TrafficPolicy per Service, MeshTLS per Service or per whole namespace.
 */
function exclusiveTarget(r: Resource): string | undefined {
  const ns = r.metadata.namespace;
  if (r.kind === 'TrafficPolicy') {
    const t = (r as Resource<'TrafficPolicy'>).spec.targetRef;
    return `Service ${t.namespace ?? ns}/${t.name}`;
  }
  if (r.kind === 'MeshTLS') {
    const t = (r as Resource<'MeshTLS'>).spec.targetRef;
    return t ? `Service ${ns}/${t.name}` : `namespace ${ns}`;
  }
  return undefined;
}

function placeOf(w: { file?: string; document?: number }): string {
  if (w.file === undefined) return '';
  return w.document === undefined ? ` in ${w.file}` : ` in ${w.file} document ${w.document}`;
}

/** Every problem of a set of resources, single-resource rules included. */
export function validateSet(resources: readonly Resource[], where: Where = () => ({})): ConfigError[] {
  const errors: ConfigError[] = [];
  const report = (r: Resource, p: Problem): void => {
    errors.push(problemToError(p, { ...where(r), resource: refOf(r) }));
  };

  const first = new Map<string, Resource>();
  const duplicates = new Set<Resource>();
  for (const r of resources) {
    const key = resourceKey(r);
    const prior = first.get(key);
    if (!prior) {
      first.set(key, r);
      continue;
    }
    duplicates.add(r);
    const at = placeOf(where(r));
    const before = placeOf(where(prior));
    const label = resourceLabel(refOf(r));
    const detail = at && before ? `${label} is defined twice: here${at} and before${before}` : `${label} is defined more than once`;
    report(r, { code: 'E_DUPLICATE', path: ['metadata', 'name'], detail, expected: 'a name not used by another resource of this kind' });
  }

  const services = new Map<string, Resource<'Service'>>();
  for (const r of first.values()) {
    if (r.kind === 'Service') services.set(`${r.metadata.namespace}/${r.metadata.name}`, r as Resource<'Service'>);
  }
  const refs = new ReferenceChecker(services);
  const claimed = new Map<string, Resource>();
  for (const r of resources) {
    for (const p of resourceRules(r)) report(r, p);
    for (const p of refs.check(r)) report(r, p);

    const target = exclusiveTarget(r);
    if (target === undefined || duplicates.has(r)) continue;
    const claimKey = `${r.kind} ${target}`;
    const holder = claimed.get(claimKey);
    if (!holder) {
      claimed.set(claimKey, r);
      continue;
    }
    const detail = `${resourceLabel(refOf(holder))}${placeOf(where(holder))} already applies to ${target}; only one ${r.kind} may`;
    report(r, { code: 'E_CONFLICT', path: ['spec', 'targetRef'], detail });
  }
  return errors;
}

/** Errors of `after` that `before` did not have, plus every error about `subject` (the resource being changed). */
function introduced(before: readonly Resource[], after: readonly Resource[], where: Where, subject?: Resource): ConfigError[] {
  const subjectLabel = subject && resourceLabel(refOf(subject));
  const seen = new Map<string, number>();
  for (const e of validateSet(before, where)) seen.set(e.message, (seen.get(e.message) ?? 0) + 1);
  return validateSet(after, where).filter((e) => {
    if (subjectLabel !== undefined && e.resource && resourceLabel(e.resource) === subjectLabel) return true;
    const n = seen.get(e.message) ?? 0;
    if (n === 0) return true;
    seen.set(e.message, n - 1);
    return false;
  });
}

/**
 * Errors of putting `candidate` into `existing` (replacing the resource with
 * the same key): the candidate's own, and those it causes in others. Errors
 * that `existing` already had are not the candidate's doing and are left out.
 */
export function validateAgainst(existing: readonly Resource[], candidate: Resource, where?: Where): ConfigError[] {
  const key = resourceKey(candidate);
  const i = existing.findIndex((r) => resourceKey(r) === key);
  const next = i < 0 ? [...existing, candidate] : [...existing.slice(0, i), candidate, ...existing.slice(i + 1)];
  return introduced(existing, next, where ?? (() => ({})), candidate);
}

/**
 * Errors of deleting the resource `key` ("Kind/namespace/name"): each names a
 * resource that would be left referring to it. Deleting an unknown key is no
 * error here (the caller answers "not found").
 */
export function validateDelete(existing: readonly Resource[], key: string, where?: Where): ConfigError[] {
  const target = existing.find((r) => resourceKey(r) === key);
  if (!target) return [];
  const rest = existing.filter((r) => r !== target);
  const label = resourceLabel(refOf(target));
  return introduced(existing, rest, where ?? (() => ({}))).map(
    (e) =>
      new ConfigError('E_IN_USE', `refers to ${label}, which cannot be deleted while this reference exists`, {
        file: e.file,
        document: e.document,
        resource: e.resource,
        path: e.path,
      }),
  );
}
