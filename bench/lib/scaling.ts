/**
 * The bench's scaling section: a registry dataset's worth of images (EMNIST
 * ByClass by default, the registry's largest) through the extraction job,
 * segment by segment (bench/scale-job.ts), held to the per-invocation limits
 * of a queue consumer; and the .npy export of such a dataset, page by page,
 * held to the per-invocation query budget.
 */
import { pixelsPerImage, SPLITS, type Shape, type Split } from "../../src/core/datasets";
import { npyByteLength, pageRows, type ExportKind } from "../../src/read/export";
import { BYTES_PER_VALUE } from "../../src/codec/transform";
import { INVOCATION_LIMITS } from "../../test/budget";

/** The dataset the section sizes its synthetic set after. */
export const SCALE_DATASET = "emnist-byclass";

/**
 * Per-invocation limits of a queue consumer on the Workers Paid plan
 * (developers.cloudflare.com/workers/platform/limits, /queues/platform/limits):
 * subrequests to Cloudflare services (D1, Queues) and fetches together, CPU
 * time (the default; configurable up to 5 minutes), memory of an isolate, and
 * a consumer invocation's wall time, which bounds how many heartbeats a job can make.
 */
export const JOB_LIMITS = { subrequests: 1_000, cpuSeconds: 30, memoryMb: 128, wallSeconds: 15 * 60 } as const;

/** D1 queries an export request makes besides its pages: the catalog (readDataset) and the extent (readExtent); src/http/routes/exports.ts. */
export const EXPORT_FIXED_QUERIES = 2;
/** D1 queries per invocation: the free plan's (budget.ts) and the paid plan's. */
export const QUERY_LIMITS = { free: INVOCATION_LIMITS.d1Queries, paid: 1_000 } as const;

/** One job of the run, as bench/scale-job.ts prints it. */
export interface Segment {
  readonly from: number;
  readonly chunks: number;
  readonly sendBatchCalls: number;
  readonly fetches: number;
  readonly d1: {
    readonly pin: number;
    readonly heartbeat: number;
    readonly ledger: number;
    readonly run: number;
    readonly total: number;
  };
  readonly queueSends: number;
  readonly subrequests: number;
  readonly cpuSeconds: number;
  readonly wallSeconds: number;
  readonly peakMb: number;
  readonly peakAboveRestMb: number;
  readonly outcome: string;
}

/** bench/scale-job.ts's result line. */
export interface JobRun {
  readonly dataset: string;
  readonly jobMaxChunks: number;
  readonly chunkSize: number;
  readonly leaseSeconds: number;
  readonly runStatus: string | null;
  readonly runError: string | null;
  readonly rows: number;
  readonly chunksTotal: number | null;
  readonly chunksSent: number;
  readonly duplicates: number;
  readonly maxMessageBytes: number;
  readonly maxBatchBytes: number;
  readonly maxBatchMessages: number;
  readonly seconds: number;
  readonly segments: readonly Segment[];
}

export type Check = "ok" | "fail";

export interface JobMaxima {
  readonly subrequests: number;
  /** With the heartbeats of an invocation that ran for the whole wall-time limit instead of the ones measured. */
  readonly subrequestsAtWallLimit: number;
  readonly cpuSeconds: number;
  readonly peakMb: number;
}

/** The highest figure over the segments of every run given. */
export function jobMaxima(runs: readonly JobRun[]): JobMaxima {
  const segs = runs.flatMap((r) => r.segments);
  const lease = runs[0]?.leaseSeconds ?? 60;
  // job.ts beats HEARTBEATS_PER_LEASE (4) times a lease.
  const beatsAtLimit = Math.floor(JOB_LIMITS.wallSeconds / (lease / 4));
  return {
    subrequests: Math.max(0, ...segs.map((s) => s.subrequests)),
    subrequestsAtWallLimit: Math.max(0, ...segs.map((s) => s.subrequests - s.d1.heartbeat + beatsAtLimit)),
    cpuSeconds: Math.max(0, ...segs.map((s) => s.cpuSeconds)),
    peakMb: Math.max(0, ...segs.map((s) => s.peakMb)),
  };
}

/** Whether a run sent every planned chunk exactly once and left the run loading (the consumers' to complete). */
export const runWhole = (r: JobRun): boolean =>
  r.runStatus === "loading" && r.chunksTotal === r.chunksSent && r.duplicates === 0;

export interface ExportFile {
  readonly file: string;
  readonly rows: number;
  readonly pageRows: number;
  readonly pages: number;
  /** D1 queries of one request for the whole file. */
  readonly queries: number;
  /** Bytes of one full page in the file (float32 or label bytes). */
  readonly pageBytes: number;
  /** Characters of hex one full page of images arrives as from D1 (0 for labels). */
  readonly pageHexChars: number;
  readonly fileBytes: number;
  readonly free: Check;
  readonly paid: Check;
}

/** The four .npy files of a dataset of these counts and shape, paged as src/read/export.ts pages them. */
export function exportPlan(dataset: string, counts: Readonly<Record<Split, number>>, shape: Shape): ExportFile[] {
  return SPLITS.flatMap((split) =>
    (["images", "labels"] as ExportKind[]).map((kind) => {
      const span = { dataset, shape, split, kind, offset: 0, count: counts[split] };
      const rows = pageRows(span);
      const pages = Math.ceil(span.count / rows);
      const queries = pages + EXPORT_FIXED_QUERIES;
      const rowBytes = kind === "images" ? pixelsPerImage(shape) * BYTES_PER_VALUE : 1;
      return {
        file: `${split}${kind === "labels" ? "-labels" : ""}.npy`,
        rows: span.count,
        pageRows: rows,
        pages,
        queries,
        pageBytes: rows * rowBytes,
        pageHexChars: kind === "images" ? 2 * rows * rowBytes : 0,
        fileBytes: npyByteLength(span),
        free: queries <= QUERY_LIMITS.free ? "ok" : "fail",
        paid: queries <= QUERY_LIMITS.paid ? "ok" : "fail",
      } satisfies ExportFile;
    }),
  );
}

export interface ScalingResult {
  readonly dataset: string;
  /** Times the dataset's published counts. */
  readonly scale: number;
  readonly counts: Record<Split, number>;
  readonly archiveBytes: number;
  readonly generateSeconds: number;
  /** The job over the whole run, V8 collecting lazily (garbage included). */
  readonly run: JobRun;
  /** The same with V8's heap held to heapCapMb, as an isolate near its limit collects; null if it did not complete. */
  readonly capped: JobRun | null;
  readonly cappedError: string | null;
  readonly heapCapMb: number;
  /** The default dataset's job, for comparison: one segment. */
  readonly small: JobRun;
  /** Of the run V8 collects as it pleases. */
  readonly maxima: JobMaxima;
  /** Of the run held to the small heap; null if it did not complete. */
  readonly cappedMaxima: JobMaxima | null;
  readonly limits: typeof JOB_LIMITS;
  readonly checks: { readonly whole: Check; readonly subrequests: Check; readonly cpu: Check; readonly memory: Check };
  readonly export: { readonly files: ExportFile[]; readonly limits: typeof QUERY_LIMITS };
}

/**
 * The section's verdicts. Subrequests: at the wall-time limit's heartbeats,
 * in either run. CPU: the run in which V8 collects by its own heuristics, as
 * in an isolate; held to a 16 MB heap it collects all the time, which the
 * report shows beside it as a pessimistic figure but which no isolate does.
 * Memory: the run held to the small heap must complete, and its peak (heap
 * and buffers together, what the isolate limit counts) stay under the limit;
 * the lazily collected run's peak is reported beside it.
 */
export function scalingChecks(
  run: JobRun,
  capped: JobRun | null,
): { maxima: JobMaxima; cappedMaxima: JobMaxima | null; checks: ScalingResult["checks"] } {
  const maxima = jobMaxima([run]);
  const cappedMaxima = capped ? jobMaxima([capped]) : null;
  const subrequests = Math.max(maxima.subrequestsAtWallLimit, cappedMaxima?.subrequestsAtWallLimit ?? 0);
  return {
    maxima,
    cappedMaxima,
    checks: {
      whole: runWhole(run) && (capped === null || runWhole(capped)) ? "ok" : "fail",
      subrequests: subrequests <= JOB_LIMITS.subrequests ? "ok" : "fail",
      cpu: maxima.cpuSeconds <= JOB_LIMITS.cpuSeconds ? "ok" : "fail",
      memory: (cappedMaxima?.peakMb ?? Infinity) <= JOB_LIMITS.memoryMb ? "ok" : "fail",
    },
  };
}
