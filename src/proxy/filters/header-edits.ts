// FilterResponseHead (http-filter.ts) over the two shapes a response head
// has in the proxy: the HTTP/1.1 codec's flat [name, value, …] list, and
// node:http2's header object (lower-case names, repeated values as arrays).
// Both edit in place; names and values were checked by the caller (the
// module filter refuses what could break framing).
import type { FilterResponseHead } from './http-filter';

/** A parsed HTTP/1.1 head's flat list. */
export class FlatResponseHead implements FilterResponseHead {
  /** Set once a hook changed something: the received head bytes can no longer go out as they are. */
  edited = false;

  constructor(
    readonly status: number,
    private readonly headers: string[],
  ) {}

  header(lowerName: string): string | undefined {
    const h = this.headers;
    for (let i = 0; i < h.length; i += 2) if (h[i].toLowerCase() === lowerName) return h[i + 1];
    return undefined;
  }

  setHeader(name: string, value: string): void {
    this.removeHeader(name.toLowerCase());
    this.addHeader(name, value);
  }

  addHeader(name: string, value: string): void {
    this.headers.push(name, value);
    this.edited = true;
  }

  removeHeader(lowerName: string): void {
    const h = this.headers;
    for (let i = h.length - 2; i >= 0; i -= 2) if (h[i].toLowerCase() === lowerName) h.splice(i, 2);
    this.edited = true;
  }
}

type HeaderObject = Record<string, string | string[] | number | undefined>;

/** Adds a value to a header object's field: the first value as a string, further ones as an array. */
export function appendHeaderValue(headers: HeaderObject, lowerName: string, value: string): void {
  const prev = headers[lowerName];
  headers[lowerName] = prev === undefined ? value : Array.isArray(prev) ? [...prev, value] : [String(prev), value];
}

/** node:http2's (and node:http's) header object. */
export class ObjectResponseHead implements FilterResponseHead {
  constructor(
    readonly status: number,
    private readonly headers: HeaderObject,
  ) {}

  header(lowerName: string): string | undefined {
    const v = this.headers[lowerName];
    return v === undefined ? undefined : Array.isArray(v) ? v[0] : String(v);
  }

  setHeader(name: string, value: string): void {
    this.headers[name.toLowerCase()] = value;
  }

  addHeader(name: string, value: string): void {
    appendHeaderValue(this.headers, name.toLowerCase(), value);
  }

  removeHeader(lowerName: string): void {
    delete this.headers[lowerName];
  }
}
