/**
 * Only the bench's "isolate under production concurrency" step, for a quick check
 * without the full `npm run bench` (bench/lib/concurrent.ts):
 *
 *   npx tsx bench/concurrent/run.ts [--data DIR] [--concurrency N] [--batch B] [--reps R]
 *                                   [--warmups W] [--backlog kv|isolate] [--fill full|eager] [--d1-latency-ms L]
 *                                   [--live] [--var NAME=VALUE ...]
 *
 * N and B default to the chunk consumer's max_concurrency and max_batch_size in
 * wrangler.toml, the rest to what `npm run bench` uses. Each rep starts a fresh
 * `wrangler dev` with a fresh database. `--live` adds a run that collects the
 * garbage before each sample, for the live peak beside the garbage-inclusive one.
 * The last line is a summary.
 */
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { benchConfig } from "../lib/cost";
import {
  chunkConsumerSettings,
  CONCURRENT_D1_LATENCY_MS,
  measureConcurrentIsolate,
  type ConcurrentResult,
  type SampledRun,
} from "../lib/concurrent";
import { mb } from "../lib/memory";
import { round } from "../lib/stats";

const { values } = parseArgs({
  options: {
    data: { type: "string", default: "../shared/fashion-mnist" },
    concurrency: { type: "string" },
    batch: { type: "string" },
    reps: { type: "string", default: "1" },
    warmups: { type: "string", default: "1" },
    backlog: { type: "string", default: "kv" },
    fill: { type: "string", default: "full" },
    "d1-latency-ms": { type: "string", default: String(CONCURRENT_D1_LATENCY_MS) },
    live: { type: "boolean", default: false },
    var: { type: "string", multiple: true, default: [] },
  },
});

const positive = (name: string, raw: string | undefined, fallback: number): number => {
  const n = raw === undefined ? fallback : Number(raw);
  if (!(Number.isInteger(n) && n >= 1)) throw new Error(`--${name} must be a positive integer`);
  return n;
};

async function main(): Promise<void> {
  const overrides = Object.fromEntries(
    values.var.map((v) => {
      const at = v.indexOf("=");
      if (at < 1) throw new Error(`--var wants NAME=VALUE, got "${v}"`);
      return [v.slice(0, at), v.slice(at + 1)];
    }),
  );
  const backlog = values.backlog;
  if (backlog !== "kv" && backlog !== "isolate") throw new Error("--backlog must be kv or isolate");
  const fill = values.fill;
  if (fill !== "full" && fill !== "eager") throw new Error("--fill must be full or eager");
  const consumer = await chunkConsumerSettings();
  const concurrency = positive("concurrency", values.concurrency, consumer.maxConcurrency);
  const batch = positive("batch", values.batch, consumer.maxBatchSize);
  const reps = positive("reps", values.reps, 1);
  const warmups = Number(values.warmups);
  if (!(Number.isInteger(warmups) && warmups >= 0)) throw new Error("--warmups must be 0 or a positive integer");
  const d1LatencyMs = Number(values["d1-latency-ms"]);
  if (!(Number.isInteger(d1LatencyMs) && d1LatencyMs >= 0)) throw new Error("--d1-latency-ms must be 0 or more");
  const { vars } = await benchConfig(overrides);
  console.log(
    `isolate under production concurrency: N=${concurrency}${values.concurrency === undefined && !consumer.configured ? " (wrangler.toml sets no max_concurrency: fallback)" : ""} batch=${batch} backlog=${backlog} fill=${fill} d1_latency_ms=${d1LatencyMs} CHUNK_SIZE=${vars.CHUNK_SIZE}`,
  );
  const results: ConcurrentResult[] = [];
  const line = (what: string, r: SampledRun) => {
    const p = r.report;
    return `${what}: peak ${mb(r.peakBytes)} MB (while the job ran ${mb(r.jobPeakBytes)} MB, after ${mb(r.afterJobPeakBytes)} MB; ${mb(r.restBytes)} MB before; ${r.samples} samples) | ${p.rows} rows, ${p.status}, ${round(r.wallSeconds)} s wall (job ${round(p.jobSeconds)} s) | ${p.deliveries} deliveries of ${p.delivered} messages (${p.sent} sent), max in flight ${p.maxInFlight} (${p.maxInFlightDuringJob} while the job ran), max waiting ${p.maxWaiting}, retried ${p.retried}, thrown ${p.thrown}`;
  };
  for (let i = 0; i < reps; i++) {
    const r = await measureConcurrentIsolate({
      dataDir: resolve(values.data),
      concurrency,
      batch,
      maxRetries: consumer.maxRetries,
      retryDelay: consumer.retryDelay,
      vars,
      backlog,
      fill,
      d1LatencyMs,
      live: values.live,
      warmups,
      log: console.log,
    });
    results.push(r);
    console.log(line(`rep ${i + 1}/${reps}, garbage included`, r.garbage));
    if (r.live) console.log(line(`rep ${i + 1}/${reps}, live`, r.live));
  }
  const peaks = (xs: SampledRun[]) => xs.map((r) => mb(r.peakBytes));
  const garbage = peaks(results.map((r) => r.garbage));
  const live = peaks(results.flatMap((r) => (r.live ? [r.live] : [])));
  console.log(
    [
      `isolate_concurrent_peak_mb=${Math.max(...garbage)}`,
      `peaks_mb=${garbage.join(",")}`,
      ...(live.length > 0
        ? [`isolate_concurrent_live_peak_mb=${Math.max(...live)}`, `live_peaks_mb=${live.join(",")}`]
        : []),
      `concurrency=${concurrency}`,
      `batch=${batch}`,
      `backlog=${backlog}`,
      `fill=${fill}`,
      `d1_latency_ms=${d1LatencyMs}`,
      `max_in_flight=${Math.max(...results.map((r) => r.garbage.report.maxInFlight))}`,
      `seconds=${results.map((r) => round(r.garbage.wallSeconds)).join(",")}`,
    ].join(" "),
  );
}

main().catch((err: unknown) => {
  console.error(`concurrent: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  process.exit(1);
});
