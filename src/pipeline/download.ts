/**
 * Fetching archives: bounded time per attempt, bounded attempts with
 * exponential backoff, and errors that say which URL failed and how. Whether a
 * failure is worth retrying is decided here, from the status or the error.
 */
import { EtlError, errorMessage, isRetryable } from "../core/errors";

export interface RetryPolicy {
  /** Attempts per archive, the first one included. */
  readonly attempts: number;
  /**
   * Time allowed without progress: for the response headers, then between two
   * body chunks. An idle limit, not a total one: a hung response is cut off
   * quickly, while a large download that keeps moving is never cut off for
   * being large or the machine being busy (the minimum rate below bounds an
   * attempt's total time).
   */
  readonly timeoutMs: number;
  /** Delay before the second attempt; doubled for each one after. */
  readonly backoffMs: number;
  /**
   * The least throughput an attempt may keep up, measured over each full
   * `rateWindowMs` from the start of the attempt (waiting for the headers
   * included). The idle limit alone lets a source that trickles a byte now and
   * then hold a run `extracting` for ever; this one fails such an attempt
   * (retryably, like a time-out) while never cutting off a download that keeps
   * moving at a sane rate, however large it is.
   */
  readonly minBytesPerSecond: number;
  /**
   * How long the rate is averaged over: long enough that a busy machine's
   * pauses (a GC, a slow queue send downstream) average out, short enough that
   * a stuck source is given up on soon.
   */
  readonly rateWindowMs: number;
}

/**
 * 128 KiB/s (1 Mbit/s) is far below what any real source serves, yet at
 * exactly this rate a job still fits a queue consumer's 15-minute wall time: the train
 * images archive (26.4 MB) takes 3.4 min, and a whole job that hashes the
 * images archives and then downloads them again to load them (about 62 MB)
 * takes 7.8 min. At 64 KiB/s that job would take 15.7 min. The 30 s window
 * asks for 3.75 MiB per window: a pause of several seconds costs nothing.
 */
export const DEFAULT_RETRY: RetryPolicy = {
  attempts: 3,
  timeoutMs: 120_000,
  backoffMs: 1_000,
  minBytesPerSecond: 128 * 1024,
  rateWindowMs: 30_000,
};

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
    if (signal.aborted && signal.reason instanceof TooSlow) throw tooSlow(file, url, 0, signal.reason);
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

/** Why a MinimumRate aborted: the window's numbers, for the message that names the file. */
export class TooSlow extends Error {
  override readonly name = "TooSlow";
  constructor(
    readonly windowBytes: number,
    readonly windowMs: number,
    readonly minBytesPerSecond: number,
  ) {
    super(`${thousands(windowBytes)} bytes in the last ${windowMs / 1000} s (minimum ${rate(minBytesPerSecond)})`);
  }
}

const thousands = (n: number): string => String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
const rate = (bytesPerSecond: number): string =>
  bytesPerSecond % 1024 === 0 ? `${thousands(bytesPerSecond / 1024)} KiB/s` : `${thousands(bytesPerSecond)} bytes/s`;

const tooSlow = (file: string, url: string, received: number, why: TooSlow): EtlError =>
  new EtlError(`${file}: download too slow: ${why.message} after ${thousands(received)} bytes from ${url}`, true);

/**
 * An abort signal that fires at the end of any `windowMs` in which fewer than
 * `bytesPerSecond` × the window's seconds were counted by `add`. A timer, not a
 * check made as data arrives: a source that sends nothing at all must fail it too.
 */
export class MinimumRate {
  private readonly controller = new AbortController();
  private readonly timer: ReturnType<typeof setInterval>;
  private total = 0;
  private atWindowStart = 0;

  constructor(bytesPerSecond: number, windowMs: number) {
    const least = (bytesPerSecond * windowMs) / 1000;
    this.timer = setInterval(() => {
      const inWindow = this.total - this.atWindowStart;
      this.atWindowStart = this.total;
      if (inWindow >= least) return;
      this.clear();
      this.controller.abort(new TooSlow(inWindow, windowMs, bytesPerSecond));
    }, windowMs);
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  readonly add = (bytes: number): void => {
    this.total += bytes;
  };

  clear(): void {
    clearInterval(this.timer);
  }
}

/**
 * Run `attempt` until it succeeds, a failure is not retryable, or attempts run
 * out. Each attempt gets its own idle time-out and minimum rate: `signal`
 * aborts once `progress` has not been called for `policy.timeoutMs`, or when a
 * full `policy.rateWindowMs` brought fewer bytes (as told to `progress`) than
 * `policy.minBytesPerSecond` asks for.
 *
 * What bounds an attempt, so that no source can hold the jobs consumer for
 * ever: one still running after k windows has received at least k × the
 * window's minimum, so an attempt on an archive of S bytes ends within
 * S / minBytesPerSecond + rateWindowMs (the idle limit can only end it
 * sooner), and an archive within attempts × that + the backoffs. Provided what
 * the attempt awaits between reads returns: an abort is seen by the fetch and
 * the next read, it cannot interrupt a downstream await that never ends.
 */
export async function withRetries<T>(
  policy: RetryPolicy,
  attempt: (signal: AbortSignal, n: number, progress: (bytes: number) => void) => Promise<T>,
  sleep: (ms: number) => Promise<void> = (ms) => new Promise((r) => setTimeout(r, ms)),
): Promise<T> {
  for (let n = 1; ; n++) {
    const idle = new IdleTimeout(policy.timeoutMs);
    const floor = new MinimumRate(policy.minBytesPerSecond, policy.rateWindowMs);
    const progress = (bytes: number) => {
      idle.progress();
      floor.add(bytes);
    };
    try {
      return await attempt(AbortSignal.any([idle.signal, floor.signal]), n, progress);
    } catch (err) {
      const final = n >= policy.attempts || !isRetryable(err);
      if (final) {
        // The same error, so its kind (e.g. SourceChangedError) still decides what happens to the run.
        if (err instanceof EtlError && n > 1) err.message = `${err.message} (after ${n} attempts)`;
        throw err;
      }
      await sleep(policy.backoffMs * 2 ** (n - 1));
    } finally {
      idle.clear();
      floor.clear();
    }
  }
}

/**
 * Network reads arrive in pieces of a few KB (about 6,500 of them for the 26 MB
 * train archive). Each piece costs an await in every stage downstream and a
 * call into fflate, which dominated extraction, so pieces are gathered into
 * blocks of this size before they are handed on (bench/alternatives.md has the
 * measurements; peak memory did not move).
 */
export const READ_BLOCK_BYTES = 256 * 1024;

/**
 * Read a body to its end in blocks of up to `blockBytes`, turning a broken,
 * timed-out or too slow stream into a retryable EtlError. `progress` is told
 * the size of each piece as it arrives.
 */
export async function* readBody(
  body: ReadableStream<Uint8Array>,
  file: string,
  url: string,
  signal: AbortSignal,
  progress: (bytes: number) => void = () => {},
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
        if (signal.aborted && signal.reason instanceof TooSlow) throw tooSlow(file, url, received, signal.reason);
        const why = signal.aborted ? "timed out" : errorMessage(err);
        throw new EtlError(`${file}: download interrupted after ${received} bytes (${why})`, true);
      }
      if (signal.aborted) {
        if (signal.reason instanceof TooSlow) throw tooSlow(file, url, received, signal.reason);
        throw new EtlError(`${file}: download timed out after ${received} bytes`, true);
      }
      if (step.done) {
        if (pendingBytes > 0) yield take();
        return;
      }
      received += step.value.length;
      progress(step.value.length);
      pending.push(step.value);
      pendingBytes += step.value.length;
      if (pendingBytes >= blockBytes) yield take();
    }
  } finally {
    signal.removeEventListener("abort", onAbort);
    reader.releaseLock();
  }
}
