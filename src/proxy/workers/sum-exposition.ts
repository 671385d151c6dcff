// The sum of the workers' Prometheus lines that live outside ProxyStats
// (pools, circuit breakers, endpoint health, tracing: Proxy.dataPlaneMetrics):
// a series present in several workers is added up, families keep the order
// in which they first appear. Counters and most gauges (open connections,
// ejected endpoints) add up across workers; a 0/1 state does not, so the
// families in MAX_FAMILIES take the largest value (1: at least one worker
// is at that circuit breaker's limit).
const MAX_FAMILIES = new Set(['weft_circuit_breaker_open']);

interface Family {
  header: string[];
  samples: Map<string, number>;
}

export function sumExposition(workers: string[][]): string[] {
  const families = new Map<string, Family>();
  for (const lines of workers) {
    let family: Family | undefined;
    let name = '';
    for (const line of lines) {
      if (line.startsWith('# HELP ') || line.startsWith('# TYPE ')) {
        const n = line.split(' ')[2];
        if (n !== name || !family) {
          name = n;
          family = families.get(name);
          if (!family) families.set(name, (family = { header: [], samples: new Map() }));
        }
        if (!family.header.includes(line)) family.header.push(line);
        continue;
      }
      if (line === '' || line.startsWith('#')) continue;
      const space = line.lastIndexOf(' ');
      const key = line.slice(0, space);
      const value = Number(line.slice(space + 1));
      if (!family) families.set('', (family = { header: [], samples: new Map() }));
      const before = family.samples.get(key);
      family.samples.set(key, before === undefined ? value : MAX_FAMILIES.has(name) ? Math.max(before, value) : before + value);
    }
  }
  const out: string[] = [];
  for (const f of families.values()) {
    out.push(...f.header);
    for (const [key, value] of f.samples) out.push(`${key} ${value}`);
  }
  return out;
}
