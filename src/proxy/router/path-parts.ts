// Where the path, query and fragment of a request target lie, found at most
// once per request (and only if a route needs it: a prefix route compares the
// whole target) and shared by every route tried. One instance per route table
// is reused: matching is synchronous, so nothing else touches it meanwhile.

export class PathParts {
  /** The request target as received: path + "?query". */
  target = '';
  /** End of the path proper (first "?" or "#"); -1 until scanned. */
  private end = -1;
  private qStart = -1;
  private qEnd = 0;
  private bare: string | undefined;

  reset(target: string): void {
    this.target = target;
    this.end = -1;
    this.bare = undefined;
  }

  /** Index where the path proper ends. */
  pathEnd(): number {
    if (this.end < 0) this.scan();
    return this.end;
  }

  /** Start of the query string (after "?"), or -1 when there is none. */
  queryStart(): number {
    if (this.end < 0) this.scan();
    return this.qStart;
  }

  /** End of the query string (a fragment is not part of it). */
  queryEnd(): number {
    if (this.end < 0) this.scan();
    return this.qEnd;
  }

  /** The path without query and fragment (sliced only when it differs). */
  path(): string {
    if (this.bare === undefined) {
      const end = this.pathEnd();
      this.bare = end === this.target.length ? this.target : this.target.slice(0, end);
    }
    return this.bare;
  }

  private scan(): void {
    const target = this.target;
    const hash = target.indexOf('#');
    const end = hash < 0 ? target.length : hash;
    let q = target.indexOf('?');
    if (q >= end) q = -1;
    this.end = q >= 0 ? q : end;
    this.qStart = q >= 0 ? q + 1 : -1;
    this.qEnd = end;
  }
}
