/**
 * The HPACK static table (RFC 7541 Appendix A), and the lookups the encoder
 * uses to find a field or a name in it.
 */

/** Entries 1–61 as [name, value]; entry i is STATIC_TABLE[i - 1]. */
export const STATIC_TABLE: readonly (readonly [string, string])[] = [
  [':authority', ''],
  [':method', 'GET'],
  [':method', 'POST'],
  [':path', '/'],
  [':path', '/index.html'],
  [':scheme', 'http'],
  [':scheme', 'https'],
  [':status', '200'],
  [':status', '204'],
  [':status', '206'],
  [':status', '304'],
  [':status', '400'],
  [':status', '404'],
  [':status', '500'],
  ['accept-charset', ''],
  ['accept-encoding', 'gzip, deflate'],
  ['accept-language', ''],
  ['accept-ranges', ''],
  ['accept', ''],
  ['access-control-allow-origin', ''],
  ['age', ''],
  ['allow', ''],
  ['authorization', ''],
  ['cache-control', ''],
  ['content-disposition', ''],
  ['content-encoding', ''],
  ['content-language', ''],
  ['content-length', ''],
  ['content-location', ''],
  ['content-range', ''],
  ['content-type', ''],
  ['cookie', ''],
  ['date', ''],
  ['etag', ''],
  ['expect', ''],
  ['expires', ''],
  ['from', ''],
  ['host', ''],
  ['if-match', ''],
  ['if-modified-since', ''],
  ['if-none-match', ''],
  ['if-range', ''],
  ['if-unmodified-since', ''],
  ['last-modified', ''],
  ['link', ''],
  ['location', ''],
  ['max-forwards', ''],
  ['proxy-authenticate', ''],
  ['proxy-authorization', ''],
  ['range', ''],
  ['referer', ''],
  ['refresh', ''],
  ['retry-after', ''],
  ['server', ''],
  ['set-cookie', ''],
  ['strict-transport-security', ''],
  ['transfer-encoding', ''],
  ['user-agent', ''],
  ['vary', ''],
  ['via', ''],
  ['www-authenticate', ''],
];

/** Number of static entries; dynamic indices start after it. */
export const STATIC_COUNT = 61;

/** Names and values by index (slot 0 unused), so the decoder reads them without arithmetic. */
export const STATIC_NAMES: readonly string[] = ['', ...STATIC_TABLE.map((e) => e[0])];
export const STATIC_VALUES: readonly string[] = ['', ...STATIC_TABLE.map((e) => e[1])];

/** Name → the lowest index with that name. */
export const STATIC_NAME_INDEX: ReadonlyMap<string, number> = (() => {
  const byName = new Map<string, number>();
  STATIC_TABLE.forEach(([name], i) => byName.has(name) || byName.set(name, i + 1));
  return byName;
})();

/** Name → (value → index) of every entry (an empty value matches the entries without one). */
export const STATIC_FIELD_INDEX: ReadonlyMap<string, ReadonlyMap<string, number>> = (() => {
  const byName = new Map<string, Map<string, number>>();
  STATIC_TABLE.forEach(([name, value], i) => {
    let values = byName.get(name);
    if (!values) byName.set(name, (values = new Map()));
    if (!values.has(value)) values.set(value, i + 1);
  });
  return byName;
})();
