// Where the path, query and fragment of a request target lie, found once per
// request and shared by every route tried. One instance per route table is
// reused: matching is synchronous, so nothing else touches it meanwhile.

export class PathParts {
  /** The request target as received: path + "?query". */
  target = '';
  /** End of the path proper (first "?" or "#"). */
  pathEnd = 0;
  /** Query string bounds (without "?"); queryStart < 0 when there is none. */
  queryStart = -1;
  queryEnd = 0;
  private bare: string | undefined;

  reset(target: string): void {
    this.target = target;
    this.bare = undefined;
    const hash = target.indexOf('#');
    const end = hash < 0 ? target.length : hash;
    let q = target.indexOf('?');
    if (q >= end) q = -1;
    this.pathEnd = q >= 0 ? q : end;
    this.queryStart = q >= 0 ? q + 1 : -1;
    this.queryEnd = end;
  }

  /** The path without query and fragment (sliced only when it differs). */
  path(): string {
    if (this.bare === undefined) {
      this.bare = this.pathEnd === this.target.length ? this.target : this.target.slice(0, this.pathEnd);
    }
    return this.bare;
  }
}
