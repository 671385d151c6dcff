// Envoy's safe_regex matchers must match the whole input (RE2::FullMatch); a
// JavaScript RegExp finds a match anywhere. Anchoring once at compile time
// makes `test` a full match whether or not the decoder anchored already.

export function fullMatch(re: RegExp): RegExp {
  // g and y would make `test` stateful (lastIndex); m would let ^ and $ match at line ends.
  return new RegExp(`^(?:${re.source})$`, re.flags.replace(/[gym]/g, ''));
}
