/**
 * The isolate under production concurrency (issue #9): one ETL run in the bench's
 * concurrent Worker (bench/concurrent/worker.ts), which runs the extraction job
 * and up to max_concurrency chunk-consumer invocations in its one isolate, while
 * the isolate's memory is sampled through workerd's inspector as the bench's
 * isolate step does. Used by `npm run bench` and by bench/concurrent/run.ts.
 */
import { copyFile, mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { parse } from "smol-toml";
import { serveArchives } from "../../scripts/lib/archive-server";
import { applyLocalMigrations, startDevServer } from "../../scripts/lib/dev-server";
import { FASHION_MNIST } from "../../src/core/registry";
import { QUEUES } from "../../src/pipeline/config";
import type { RunReport } from "../concurrent/worker";
import { frozenConfig } from "./frozen";
import { findIsolateInspector, sampleIsolate, totalBytes } from "./isolate";

const CONFIG = "bench/concurrent/wrangler.toml";
const ENTRY = "bench/concurrent/worker.ts";
const WORKER = "idx-etl-bench-concurrent";
const DATABASE = "bench-concurrent";
/** The last dev server's log, kept after its state directory is gone. */
const LOG = join("bench", "out", "concurrent-dev.log");

/** The concurrent Worker bundled once into `state` (see frozen.ts: src/ may be edited while the bench runs). */
const frozen = (state: string): Promise<string> => frozenConfig({ entry: ENTRY, config: CONFIG, dir: state });

/**
 * Added to each D1 batch by default: local D1 answers so soon that invocations
 * would otherwise hardly overlap (bench/concurrent/worker.ts slowD1).
 */
export const CONCURRENT_D1_LATENCY_MS = 100;

/** Used when wrangler.toml sets no max_concurrency for the chunk consumer. */
export const FALLBACK_CONCURRENCY = 4;

export interface ChunkConsumerSettings {
  readonly maxConcurrency: number;
  readonly maxBatchSize: number;
  readonly maxRetries: number;
  readonly retryDelay: number;
  /** Whether maxConcurrency came from wrangler.toml rather than the fallback. */
  readonly configured: boolean;
}

/** The chunk consumer's `[[queues.consumers]]` entry of ./wrangler.toml, with Cloudflare's defaults. */
export async function chunkConsumerSettings(): Promise<ChunkConsumerSettings> {
  const toml = parse(await readFile("wrangler.toml", "utf8")) as {
    queues?: {
      consumers?: {
        queue: string;
        max_batch_size?: number;
        max_retries?: number;
        retry_delay?: number;
        max_concurrency?: number;
      }[];
    };
  };
  const c = toml.queues?.consumers?.find((q) => q.queue === QUEUES.chunks);
  if (!c) throw new Error(`wrangler.toml: no [[queues.consumers]] for ${QUEUES.chunks}`);
  return {
    maxConcurrency: c.max_concurrency ?? FALLBACK_CONCURRENCY,
    maxBatchSize: c.max_batch_size ?? 10,
    maxRetries: c.max_retries ?? 3,
    retryDelay: c.retry_delay ?? 0,
    configured: c.max_concurrency !== undefined,
  };
}

export interface ConcurrentOptions {
  readonly dataDir: string;
  readonly concurrency: number;
  readonly batch: number;
  readonly maxRetries: number;
  readonly retryDelay: number;
  /** The main wrangler.toml's vars (with the bench's overrides): the concurrent Worker runs the same configuration. */
  readonly vars: Record<string, string>;
  /** Where waiting messages are kept: outside the isolate as in production (kv), or inside it. */
  readonly backlog?: "kv" | "isolate";
  /** Full batches while the job sends (the worst case production scales into), or whatever is waiting. */
  readonly fill?: "full" | "eager";
  /** Added before each D1 batch, so invocations overlap as they would against a remote D1. */
  readonly d1LatencyMs?: number;
  /**
   * One more sampled run that collects the garbage before each sample (workerd
   * started with V8's --expose-gc, the Worker's /gc route): the live memory,
   * where the first run's figures include what V8 has not collected yet.
   */
  readonly live?: boolean;
  /** Unsampled runs first, as the bench's isolate step follows its timed runs. */
  readonly warmups?: number;
  readonly log?: (s: string) => void;
}

export interface SampledRun {
  readonly report: RunReport;
  readonly peakBytes: number;
  /** The peak while the extraction job was running (by the runner's clock: approximate at the edge). */
  readonly jobPeakBytes: number;
  /** The peak once the job was done: consumers only. */
  readonly afterJobPeakBytes: number;
  readonly restBytes: number;
  readonly samples: number;
  /** POST /run → response, by this process's clock. */
  readonly wallSeconds: number;
}

export interface ConcurrentResult {
  /** Garbage included, as the bench's isolate step measures. */
  readonly garbage: SampledRun;
  /** Garbage collected before each sample (`live` option). */
  readonly live?: SampledRun;
}

export async function measureConcurrentIsolate(opts: ConcurrentOptions): Promise<ConcurrentResult> {
  const log = opts.log ?? (() => {});
  const expectedRows = FASHION_MNIST.splits.reduce((n, s) => n + (s.count ?? 0), 0);
  const state = await mkdtemp(join(tmpdir(), "idx-etl-concurrent-"));
  const archives = await serveArchives(opts.dataDir);
  try {
    const config = await frozen(state);
    await applyLocalMigrations({ config, database: DATABASE, persistTo: state });
    const flags = process.env.MINIFLARE_WORKERD_V8_FLAGS;
    if (opts.live) process.env.MINIFLARE_WORKERD_V8_FLAGS = [flags, "--expose-gc"].filter(Boolean).join(" ");
    const dev = await startDevServer({ config, persistTo: state, vars: opts.vars, readyPath: "/ready" }).finally(() => {
      if (flags === undefined) delete process.env.MINIFLARE_WORKERD_V8_FLAGS;
      else process.env.MINIFLARE_WORKERD_V8_FLAGS = flags;
    });
    try {
      const runOnce = async (): Promise<{ report: RunReport; wallSeconds: number }> => {
        const q = new URLSearchParams({
          source: archives.url,
          concurrency: String(opts.concurrency),
          batch: String(opts.batch),
          retries: String(opts.maxRetries),
          retryDelay: String(opts.retryDelay),
          backlog: opts.backlog ?? "kv",
          fill: opts.fill ?? "full",
          d1LatencyMs: String(opts.d1LatencyMs ?? CONCURRENT_D1_LATENCY_MS),
        });
        const t0 = performance.now();
        const res = await fetch(`${dev.url}/run?${q}`, { method: "POST" });
        const text = await res.text();
        const wallSeconds = (performance.now() - t0) / 1000;
        let r: RunReport & { error?: string };
        try {
          r = JSON.parse(text) as typeof r;
        } catch {
          throw new Error(`concurrent worker: HTTP ${res.status}: ${text.slice(0, 500)}; see ${LOG}`);
        }
        if (!res.ok) throw new Error(`concurrent worker: HTTP ${res.status}: ${r.error}; see ${LOG}`);
        const problems = [
          r.status !== "complete" && `run ${r.runId} is ${r.status}${r.error ? ` (${r.error})` : ""}`,
          r.rows !== expectedRows && `${r.rows} rows in images, expected ${expectedRows}`,
          r.deadLettered > 0 && `${r.deadLettered} messages dead-lettered`,
          r.brokerErrors.length > 0 && `broker errors: ${r.brokerErrors.join("; ")}`,
        ].filter(Boolean);
        if (problems.length > 0) throw new Error(`concurrent run failed: ${problems.join("; ")}; see ${LOG}`);
        return { report: r, wallSeconds };
      };
      for (let i = 0; i < (opts.warmups ?? 1); i++) {
        log(`  warm-up run ${i + 1} …`);
        await runOnce();
      }
      const inspector = await findIsolateInspector(dev.pid, WORKER);
      const sampled = async (live: boolean): Promise<SampledRun> => {
        const collect = async () => {
          const res = await fetch(`${dev.url}/gc`, { method: "POST" });
          if (!res.ok) throw new Error(`concurrent worker: /gc: HTTP ${res.status}: ${await res.text()}`);
        };
        // A full collection takes the thread for a while: sampling as often as without one, the run would be mostly GC.
        const sampler = live ? await sampleIsolate(inspector, 50, collect) : await sampleIsolate(inspector);
        const t0 = performance.now();
        const { report, wallSeconds } = await runOnce();
        const samples = await sampler.stop();
        const jobDone = t0 + report.jobSeconds * 1000;
        const peak = (xs: typeof samples) => Math.max(0, ...xs.map((x) => totalBytes(x.usage)));
        return {
          report,
          wallSeconds,
          peakBytes: peak(samples),
          jobPeakBytes: peak(samples.filter((x) => x.at <= jobDone)),
          afterJobPeakBytes: peak(samples.filter((x) => x.at > jobDone)),
          restBytes: samples[0] ? totalBytes(samples[0].usage) : 0,
          samples: samples.length,
        };
      };
      const garbage = await sampled(false);
      if (!opts.live) return { garbage };
      log("  live run (garbage collected before each sample) …");
      return { garbage, live: await sampled(true) };
    } finally {
      await dev.stop();
      await mkdir(dirname(LOG), { recursive: true });
      await copyFile(dev.logFile, LOG).catch(() => {});
    }
  } finally {
    await archives.close();
    await rm(state, { recursive: true, force: true });
  }
}
