// A resource's spec as YAML-ish text (block style, strings unquoted unless
// they need it): easier to read in the edge view than JSON, and no YAML
// library in the bundle.

const PLAIN = /^[A-Za-z0-9_./@%+-][A-Za-z0-9_./@%+: -]*$/;

function scalar(v: unknown): string {
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'string') return PLAIN.test(v) && !/^(true|false|null|yes|no|[-+]?\d[\d.eE+-]*)$/i.test(v) && !v.endsWith(' ') ? v : JSON.stringify(v);
  return String(v);
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

export function yaml(v: unknown, indent = ''): string {
  if (Array.isArray(v)) {
    if (v.length === 0) return `${indent}[]`;
    return v
      .map((item) => {
        if (isObject(item) || Array.isArray(item)) {
          const body = yaml(item, indent + '  ');
          return `${indent}- ${body.slice(indent.length + 2)}`;
        }
        return `${indent}- ${scalar(item)}`;
      })
      .join('\n');
  }
  if (isObject(v)) {
    const entries = Object.entries(v).filter(([, x]) => x !== undefined);
    if (entries.length === 0) return `${indent}{}`;
    return entries
      .map(([k, x]) => {
        if ((isObject(x) && Object.keys(x).length) || (Array.isArray(x) && x.length)) return `${indent}${k}:\n${yaml(x, indent + '  ')}`;
        return `${indent}${k}: ${isObject(x) ? '{}' : Array.isArray(x) ? '[]' : scalar(x)}`;
      })
      .join('\n');
  }
  return `${indent}${scalar(v)}`;
}
