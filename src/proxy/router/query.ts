// Query parameters for route matching, as Envoy reads them: names and values
// percent-decoded ("%20" → " "; "+" stays "+", Envoy does not form-decode),
// the first occurrence of a name wins, "?flag" is present with value "".

/**
 * The decoded value of the first parameter called `name` in
 * `text.slice(start, end)` (a query string without "?"), or undefined.
 * Scans in place: nothing is allocated unless the parameter is found or a
 * name needs decoding.
 */
export function queryParam(text: string, start: number, end: number, name: string): string | undefined {
  let pos = start;
  while (pos < end) {
    let amp = text.indexOf('&', pos);
    if (amp < 0 || amp > end) amp = end;
    let eq = text.indexOf('=', pos);
    if (eq < 0 || eq > amp) eq = amp;
    if (eq > pos && nameEquals(text, pos, eq, name)) {
      return eq === amp ? '' : percentDecode(text.slice(eq + 1, amp));
    }
    pos = amp + 1;
  }
  return undefined;
}

function nameEquals(text: string, start: number, end: number, name: string): boolean {
  if (end - start === name.length && text.startsWith(name, start)) return true;
  // An encoded name ("na%6De") is longer than its decoded form.
  if (end - start <= name.length) return false;
  const raw = text.slice(start, end);
  return raw.includes('%') && percentDecode(raw) === name;
}

/**
 * Percent-decodes as UTF-8. A "%" not followed by two hex digits stays as is
 * (Envoy's PercentEncoding::decode); invalid UTF-8 becomes U+FFFD.
 */
export function percentDecode(text: string): string {
  if (!text.includes('%')) return text;
  const bytes: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 37 && i + 2 < text.length && isHex(text.charCodeAt(i + 1)) && isHex(text.charCodeAt(i + 2))) {
      bytes.push(parseInt(text.substr(i + 1, 2), 16));
      i += 2;
    } else if (c < 0x80) {
      bytes.push(c);
    } else {
      const cp = text.codePointAt(i)!;
      if (cp > 0xffff) i++;
      for (const b of Buffer.from(String.fromCodePoint(cp), 'utf8')) bytes.push(b);
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

function isHex(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102);
}
