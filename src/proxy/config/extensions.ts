// Fields the decoders produce that types.ts (the shared contract) does not
// have yet. Each is a structural extension of a contract type, so code that
// reads only the contract keeps working; the field moves into types.ts when
// its owner adds it.
import type { RedirectAction } from './types';

/**
 * A redirect whose path is rewritten by a regex. The translator emits
 * `regex_rewrite` in a redirect for a Gateway API ReplacePrefixMatch of "/"
 * on a non-root prefix ("/a/b" → "/b"). The regex is global and the
 * substitution is in String.prototype.replace syntax, as in RouteAction.
 */
export interface RedirectActionWithRegex extends RedirectAction {
  regexRewrite?: { regex: RegExp; substitution: string };
}
