// Envoy's safe_regex matchers must match the whole input (RE2::FullMatch); a
// JavaScript RegExp finds a match anywhere. Anchoring once at compile time
// makes `test` a full match whether or not the decoder anchored already.

export function fullMatch(re: RegExp): RegExp {
  // g and y would make `test` stateful (lastIndex).
  const flags = re.flags.replace(/[gy]/g, '');
  // With m, ^ and $ match at line ends: anchor on the input's ends instead
  // (as the decoder does). Without it, ^…$ lets V8 fail fast past position 0.
  const source = re.multiline ? `(?<![\\s\\S])(?:${re.source})(?![\\s\\S])` : `^(?:${re.source})$`;
  return new RegExp(source, flags);
}
