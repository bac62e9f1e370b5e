/**
 * Fetching archives: bounded time per attempt, bounded attempts with
 * exponential backoff, and errors that say which URL failed and how. Whether a
 * failure is worth retrying is decided here, from the status or the error.
 */
import { EtlError, errorMessage, isRetryable } from "../errors";

export interface RetryPolicy {
  /** Attempts per archive, the first one included. */
  readonly attempts: number;
  /**
   * Time allowed without progress: for the response headers, then between two
   * body chunks. An idle limit, not a total one: a hung response is cut off
   * quickly, while a large download that keeps moving is never cut off for
   * being large or the machine being busy (the consumer's wall-time limit
   * still bounds an attempt).
   */
  readonly timeoutMs: number;
  /** Delay before the second attempt; doubled for each one after. */
  readonly backoffMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 3, timeoutMs: 120_000, backoffMs: 1_000 };

export type Fetch = (input: string, init?: RequestInit) => Promise<Response>;

/** GET `url`; resolves to the response body, or throws an EtlError saying why not. */
export async function openArchive(
  fetcher: Fetch,
  url: string,
  file: string,
  signal: AbortSignal,
): Promise<ReadableStream<Uint8Array>> {
  let res: Response;
  try {
    res = await fetcher(url, { signal });
  } catch (err) {
    const why = signal.aborted ? "timed out" : `could not connect (${errorMessage(err)})`;
    throw new EtlError(`${file}: ${why} fetching ${url}`, true);
  }
  if (!res.ok) {
    await res.body?.cancel();
    // 408, 429 and 5xx can pass; any other 4xx will answer the same again.
    const retryable = res.status === 408 || res.status === 429 || res.status >= 500;
    throw new EtlError(`${file}: HTTP ${res.status} ${res.statusText} from ${url}`, retryable);
  }
  if (res.body === null) throw new EtlError(`${file}: empty response from ${url}`);
  return res.body;
}

/** An abort signal that fires after `ms` without a call to `progress`. */
export class IdleTimeout {
  private readonly controller = new AbortController();
  private timer: ReturnType<typeof setTimeout> | undefined;

  constructor(private readonly ms: number) {
    this.progress();
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  readonly progress = (): void => {
    this.clear();
    this.timer = setTimeout(() => this.controller.abort(new Error(`no data for ${this.ms} ms`)), this.ms);
  };

  clear(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
  }
}

/**
 * Run `attempt` until it succeeds, a failure is not retryable, or attempts run
 * out. Each attempt gets its own idle time-out: `signal` aborts once `progress`
 * has not been called for `policy.timeoutMs`.
 */
export async function withRetries<T>(
  policy: RetryPolicy,
  attempt: (signal: AbortSignal, n: number, progress: () => void) => Promise<T>,
  sleep: (ms: number) => Promise<void> = (ms) => new Promise((r) => setTimeout(r, ms)),
): Promise<T> {
  for (let n = 1; ; n++) {
    const idle = new IdleTimeout(policy.timeoutMs);
    try {
      return await attempt(idle.signal, n, idle.progress);
    } catch (err) {
      const final = n >= policy.attempts || !isRetryable(err);
      if (final) {
        if (err instanceof EtlError && n > 1) throw new EtlError(`${err.message} (after ${n} attempts)`, err.retryable);
        throw err;
      }
      await sleep(policy.backoffMs * 2 ** (n - 1));
    } finally {
      idle.clear();
    }
  }
}

/**
 * Network reads arrive in pieces of a few KB (about 6,500 of them for the 26 MB
 * train archive). Each piece costs an await in every stage downstream and a
 * call into fflate, which dominated extraction, so pieces are gathered into
 * blocks of this size before they are handed on (fflate: 775 ms for the train
 * archive in 64 KB pushes, 650 ms in 512 KB ones; peak memory did not move).
 */
export const READ_BLOCK_BYTES = 256 * 1024;

/**
 * Read a body to its end in blocks of up to `blockBytes`, turning a broken or
 * timed-out stream into a retryable EtlError.
 */
export async function* readBody(
  body: ReadableStream<Uint8Array>,
  file: string,
  signal: AbortSignal,
  progress: () => void = () => {},
  blockBytes = READ_BLOCK_BYTES,
): AsyncGenerator<Uint8Array> {
  const reader = body.getReader();
  let received = 0;
  let pending: Uint8Array[] = [];
  let pendingBytes = 0;
  const take = (): Uint8Array => {
    const block = pending.length === 1 ? pending[0]! : new Uint8Array(pendingBytes);
    if (pending.length > 1) {
      let at = 0;
      for (const p of pending) {
        block.set(p, at);
        at += p.length;
      }
    }
    pending = [];
    pendingBytes = 0;
    return block;
  };
  const onAbort = () => void reader.cancel(signal.reason).catch(() => {});
  signal.addEventListener("abort", onAbort);
  try {
    for (;;) {
      let step: ReadableStreamReadResult<Uint8Array>;
      try {
        step = await reader.read();
      } catch (err) {
        const why = signal.aborted ? "timed out" : errorMessage(err);
        throw new EtlError(`${file}: download interrupted after ${received} bytes (${why})`, true);
      }
      if (signal.aborted) throw new EtlError(`${file}: download timed out after ${received} bytes`, true);
      if (step.done) {
        if (pendingBytes > 0) yield take();
        return;
      }
      received += step.value.length;
      progress();
      pending.push(step.value);
      pendingBytes += step.value.length;
      if (pendingBytes >= blockBytes) yield take();
    }
  } finally {
    signal.removeEventListener("abort", onAbort);
    reader.releaseLock();
  }
}
