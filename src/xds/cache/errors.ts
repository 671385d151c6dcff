// Why a node group's snapshot could not be published. The previous snapshot
// keeps serving; the error stays visible through SnapshotCache.lastError.

export abstract class SnapshotError extends Error {
  abstract readonly code: string;
  readonly at = new Date();
  constructor(
    readonly groupKey: string,
    message: string,
  ) {
    super(message);
  }
}

/** The generator threw, or produced a resource that does not encode. */
export class SnapshotGenerateError extends SnapshotError {
  readonly code = 'E_SNAPSHOT_GENERATE';
  constructor(groupKey: string, cause: unknown) {
    super(groupKey, `generating the snapshot of ${groupKey} failed: ${cause instanceof Error ? cause.message : String(cause)}`);
    this.cause = cause;
  }
}

/** A resource references another that the snapshot lacks (an RDS name, a cluster, an EDS assignment). */
export class SnapshotInconsistentError extends SnapshotError {
  readonly code = 'E_SNAPSHOT_INCONSISTENT';
  constructor(
    groupKey: string,
    readonly problems: string[],
  ) {
    super(groupKey, `snapshot of ${groupKey} is inconsistent: ${problems.join('; ')}`);
  }
}
