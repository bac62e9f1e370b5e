/**
 * A failure the pipeline reports to people: the message names the file or
 * request and what was wrong with it. `retryable` says whether doing the same
 * step again could succeed (a 503, a reset connection) or not (a bad archive).
 */
export class EtlError extends Error {
  override readonly name: string = "EtlError";
  constructor(
    message: string,
    readonly retryable = false,
  ) {
    super(message);
  }
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export function isRetryable(err: unknown): boolean {
  // Errors we did not classify (a D1 hiccup, a queue send) are worth another try;
  // an EtlError knows for itself.
  return err instanceof EtlError ? err.retryable : true;
}

/**
 * The source served other bytes for an archive (or a chunk of it) than the run
 * already used. Going on would mix two versions in one dataset, and so would
 * resuming: the run fails and cannot be resumed; a new run starts clean.
 */
export class SourceChangedError extends EtlError {
  override readonly name = "SourceChangedError";
  constructor(message: string) {
    super(message, false);
  }
}

/**
 * Work stopped on purpose, not because of the source: the run was abandoned
 * or taken over. Never retried, and never a reason to try another mirror.
 */
export class Interrupt extends EtlError {
  override readonly name: string = "Interrupt";
  constructor(message: string) {
    super(message, false);
  }
}
