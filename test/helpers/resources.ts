// YAML snippets shared by tests.
export function serviceYaml(name: string, port = 8080, protocol = 'http', extra = ''): string {
  return `apiVersion: weft.dev/v1
kind: Service
metadata: { name: ${name} }
spec:
  ports: [{ name: p, port: ${port}, protocol: ${protocol} }]
${extra}`;
}

export function routeYaml(name: string, parent: string, backends: [string, number][], port = 8080): string {
  return `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: ${name} }
spec:
  parentRefs: [{ kind: Service, name: ${parent}, port: ${port} }]
  rules:
    - backendRefs:
${backends.map(([n, w]) => `        - { name: ${n}, port: ${port}, weight: ${w} }`).join('\n')}
`;
}
