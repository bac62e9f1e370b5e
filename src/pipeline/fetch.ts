/**
 * The one way the pipeline fetches: bounded attempts with the shared backoff,
 * each attempt cut off by an idle limit and a minimum rate, and errors that
 * name the file and the (redacted) URL and say whether a retry could help.
 */
import { backoffMs } from "../core/backoff";
import { EtlError, errorMessage, isRetryable } from "../core/errors";
import { redactUrl } from "../codec/source";

export interface RetryPolicy {
  /** Attempts per archive, the first one included. */
  readonly attempts: number;
  /**
   * An idle limit, not a total one: for the response headers, then between
   * two pieces of the body. A download that keeps moving is never cut off.
   */
  readonly timeoutMs: number;
  /** The backoff's base: retry n waits a random time below base · 2^(n-1) (core/backoff). */
  readonly backoffMs: number;
  /**
   * The least throughput an attempt must keep up over each full window from
   * its start: without it, a source that trickles a byte now and then could
   * hold a run for ever. Failing it is retryable, like a time-out.
   */
  readonly minBytesPerSecond: number;
  /** The window the rate is averaged over: long enough for a busy machine's pauses to average out. */
  readonly rateWindowMs: number;
}

/**
 * 128 KiB/s (1 Mbit/s) is far below what any real source serves, yet at
 * exactly this rate a job still fits a queue consumer's 15-minute wall time
 * (hashing the images archives, then downloading them again to load them).
 */
export const DEFAULT_RETRY: RetryPolicy = {
  attempts: 3,
  timeoutMs: 120_000,
  backoffMs: 1_000,
  minBytesPerSecond: 128 * 1024,
  rateWindowMs: 30_000,
};

/** The longest wait between two attempts, whatever the base. */
const BACKOFF_CAP_MS = 60_000;

export type Fetch = (input: string, init?: RequestInit) => Promise<Response>;

const thousands = (n: number): string => String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
const rate = (bytesPerSecond: number): string =>
  bytesPerSecond % 1024 === 0 ? `${thousands(bytesPerSecond / 1024)} KiB/s` : `${thousands(bytesPerSecond)} bytes/s`;

/** Why an attempt was cut off by the minimum rate: the window's numbers. */
class TooSlow extends Error {
  constructor(windowBytes: number, windowMs: number, minBytesPerSecond: number) {
    super(`${thousands(windowBytes)} bytes in the last ${windowMs / 1000} s (minimum ${rate(minBytesPerSecond)})`);
  }
}

/**
 * One attempt's limits. `signal` aborts once `progress` has not been called
 * for `timeoutMs`, at the end of any rate window that brought fewer bytes than
 * the minimum (a timer: a source that sends nothing fails it too), or when
 * `stop` aborts. `end` clears the timers.
 */
export class Attempt {
  readonly signal: AbortSignal;
  private readonly limits = new AbortController();
  private idle: ReturnType<typeof setTimeout> | undefined;
  private readonly window: ReturnType<typeof setInterval>;
  private total = 0;

  constructor(
    private readonly policy: RetryPolicy,
    readonly stop?: AbortSignal,
  ) {
    this.signal = stop ? AbortSignal.any([this.limits.signal, stop]) : this.limits.signal;
    this.progress(0);
    let atWindowStart = 0;
    const least = (policy.minBytesPerSecond * policy.rateWindowMs) / 1000;
    this.window = setInterval(() => {
      const inWindow = this.total - atWindowStart;
      atWindowStart = this.total;
      if (inWindow >= least) return;
      this.end();
      this.limits.abort(new TooSlow(inWindow, policy.rateWindowMs, policy.minBytesPerSecond));
    }, policy.rateWindowMs);
  }

  readonly progress = (bytes: number): void => {
    this.total += bytes;
    if (this.idle !== undefined) clearTimeout(this.idle);
    const ms = this.policy.timeoutMs;
    this.idle = setTimeout(() => this.limits.abort(new Error(`no data for ${ms} ms`)), ms);
  };

  end(): void {
    if (this.idle !== undefined) clearTimeout(this.idle);
    clearInterval(this.window);
  }

  /** The error for a fetch or read of `url` that this attempt's signal cut off after `received` bytes. */
  cutOff(who: string, url: string, received: number | undefined, cause?: unknown): EtlError {
    const reason: unknown = this.signal.reason;
    if (reason instanceof TooSlow) {
      const after = thousands(received ?? 0);
      return new EtlError(
        `${who}: download too slow: ${reason.message} after ${after} bytes from ${redactUrl(url)}`,
        true,
      );
    }
    if (received === undefined) return new EtlError(`${who}: timed out fetching ${redactUrl(url)}`, true);
    if (cause === undefined) return new EtlError(`${who}: download timed out after ${received} bytes`, true);
    return new EtlError(`${who}: download interrupted after ${received} bytes (timed out)`, true);
  }
}

/**
 * GET `url` (bytes `range` of it, if given) within `attempt`: the response, or
 * an EtlError saying why not. 408, 429 and 5xx may pass; any other status
 * will answer the same again.
 */
export async function get(fetch: Fetch, url: string, who: string, attempt: Attempt, range?: string): Promise<Response> {
  let res: Response;
  try {
    res = await fetch(url, { signal: attempt.signal, ...(range ? { headers: { Range: range } } : {}) });
  } catch (err) {
    if (attempt.stop?.aborted) throw attempt.stop.reason;
    if (attempt.signal.aborted) throw attempt.cutOff(who, url, undefined);
    throw new EtlError(`${who}: could not connect (${errorMessage(err)}) fetching ${redactUrl(url)}`, true);
  }
  if (!res.ok) {
    await res.body?.cancel().catch(() => {});
    const retryable = res.status === 408 || res.status === 429 || res.status >= 500;
    throw new EtlError(`${who}: HTTP ${res.status} ${res.statusText} from ${redactUrl(url)}`, retryable);
  }
  if (res.body === null) throw new EtlError(`${who}: empty response from ${redactUrl(url)}`);
  return res;
}

/**
 * A body's pieces as they arrive, each told to `attempt.progress`; a broken,
 * timed-out or too slow body becomes a retryable EtlError. Stopping early
 * (a `break`) cancels the body.
 */
export async function* readBody(
  body: ReadableStream<Uint8Array>,
  who: string,
  url: string,
  attempt: Attempt,
): AsyncGenerator<Uint8Array> {
  const reader = body.getReader();
  const onAbort = () => void reader.cancel(attempt.signal.reason).catch(() => {});
  attempt.signal.addEventListener("abort", onAbort);
  let received = 0;
  let done = false;
  try {
    for (;;) {
      let step: ReadableStreamReadResult<Uint8Array>;
      try {
        step = await reader.read();
      } catch (err) {
        if (attempt.stop?.aborted) throw attempt.stop.reason;
        if (attempt.signal.aborted) throw attempt.cutOff(who, url, received, err);
        throw new EtlError(`${who}: download interrupted after ${received} bytes (${errorMessage(err)})`, true);
      }
      if (attempt.signal.aborted) {
        if (attempt.stop?.aborted) throw attempt.stop.reason;
        throw attempt.cutOff(who, url, received);
      }
      if (step.done) {
        done = true;
        return;
      }
      received += step.value.length;
      attempt.progress(step.value.length);
      yield step.value;
    }
  } finally {
    attempt.signal.removeEventListener("abort", onAbort);
    if (!done) await reader.cancel().catch(() => {});
    reader.releaseLock();
  }
}

/**
 * What `run` yields, attempt after attempt until one completes, a failure is
 * not retryable, or attempts run out; each attempt starts over, with its own
 * limits, after the shared backoff. The last failure is thrown as it is (its
 * kind still decides what happens to the run), saying how many attempts it took.
 */
export async function* withRetries<T>(
  policy: RetryPolicy,
  run: (attempt: Attempt) => AsyncIterable<T>,
  stop?: AbortSignal,
): AsyncGenerator<T> {
  for (let n = 1; ; n++) {
    stop?.throwIfAborted();
    const attempt = new Attempt(policy, stop);
    try {
      yield* run(attempt);
      return;
    } catch (err) {
      if (stop?.aborted) throw stop.reason;
      if (n >= policy.attempts || !isRetryable(err)) {
        if (err instanceof EtlError && n > 1) err.message = `${err.message} (after ${n} attempts)`;
        throw err;
      }
    } finally {
      attempt.end();
    }
    const ms = backoffMs(n, { baseMs: policy.backoffMs, capMs: BACKOFF_CAP_MS });
    await new Promise((r) => setTimeout(r, ms));
  }
}
