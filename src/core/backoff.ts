/**
 * The one backoff policy: exponential steps with full jitter. Retry n waits a
 * random time in [0, min(cap, base · 2^(n-1))), so that many callers turned
 * away together (consumers by an overloaded D1, jobs by a failing mirror) come
 * back spread out instead of in step.
 */
export interface Backoff {
  readonly baseMs: number;
  readonly capMs: number;
}

/** Milliseconds to wait before retry `attempt` (1-based); `random` in [0, 1) as Math.random. */
export function backoffMs(attempt: number, policy: Backoff, random: () => number = Math.random): number {
  const step = Math.min(policy.capMs, policy.baseMs * 2 ** Math.max(0, attempt - 1));
  return Math.floor(random() * step);
}
