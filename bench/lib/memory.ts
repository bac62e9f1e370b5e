/**
 * Peak memory of a piece of work, measured in this Node process: V8 heap in use
 * plus memory outside the heap (ArrayBuffers — fflate's buffers, chunks, the
 * hex we build). That is what a Worker isolate's 128 MB limit counts; the
 * runtime itself is not ours to measure here. Needs `node --expose-gc`.
 */

export interface MemoryReport {
  /** Highest heapUsed + external seen, above the settled baseline, garbage included. */
  readonly peakBytes: number;
  /** Highest after a forced GC at each sample point: what the work keeps alive. */
  readonly livePeakBytes: number;
  readonly samples: number;
}

const inUse = (): number => {
  const m = process.memoryUsage();
  return m.heapUsed + m.external;
};

function collect(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error("run with node --expose-gc: memory figures need a forced GC");
  gc();
  gc();
}

/** Samples memory at the points `work` reports with `sample()`, and every few ms in between. */
export async function measurePeak(
  work: (sample: () => void) => Promise<void>,
  opts: { forceGc: boolean; every?: number },
): Promise<MemoryReport> {
  const every = Math.max(1, opts.every ?? 1);
  let calls = 0;
  collect();
  const base = inUse();
  let peak = base;
  let samples = 0;
  const sample = () => {
    // A forced GC per sample is slow (ms each): on long streams, every n-th point.
    if (opts.forceGc && calls++ % every !== 0) return;
    if (opts.forceGc) collect();
    const now = inUse();
    if (now > peak) peak = now;
    samples++;
  };
  const timer = opts.forceGc ? undefined : setInterval(sample, 5);
  try {
    await work(sample);
    calls = 0;
    sample();
  } finally {
    clearInterval(timer);
  }
  const above = Math.max(0, peak - base);
  return { peakBytes: opts.forceGc ? 0 : above, livePeakBytes: opts.forceGc ? above : 0, samples };
}

export const mb = (bytes: number): number => Math.round((bytes / 1e6) * 10) / 10;
