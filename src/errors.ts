/**
 * A failure the pipeline reports to people: the message names the file or
 * request and what was wrong with it. `retryable` says whether doing the same
 * step again could succeed (a 503, a reset connection) or not (a bad archive).
 */
export class EtlError extends Error {
  override readonly name = "EtlError";
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
