/**
 * The product Worker under `wrangler dev`, as `npm run bench` drives it: bundled
 * once (frozen.ts: edits to src/ during the bench do not reload it), bare
 * (`metered: false`, as it is timed) or with the bill's meters around it
 * (bench/metered/worker.ts, the default), in a local state directory of its own
 * (fresh migrations; the project's .wrangler/state is left alone). Runs are
 * started and polled over HTTP as a client would.
 *
 * When the config binds the EXPORTS bucket, a run is over only once the job
 * that follows it (pipeline/materialise.ts) has written its exports to R2: the
 * jobs queue runs one job at a time, so a next run's extraction would otherwise
 * wait behind it, and whatever is timed next would overlap it. That wait is
 * `exportSeconds`, apart from `seconds` (trigger → complete).
 *
 * The run completes when its swap commits (the run's finishedAt). Locally, a
 * request sent around then is answered only once the export job queued at
 * completion has finished (even /openapi.json, which reads neither D1 nor R2;
 * on an idle dev server the same job leaves requests answered within
 * milliseconds), so the first GET /runs/:id that shows `complete` comes only
 * after the materialisation. `seconds` ends at finishedAt instead (the server's clock is
 * this machine's): the trigger's wall time plus the server's finishedAt, or the
 * client's sighting when that is earlier (no finishedAt, or a coarse clock).
 */
import { copyFile, mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse } from "smol-toml";
import { serveArchives, type ArchiveServer } from "../../scripts/lib/archive-server";
import { applyLocalMigrations, localD1, startDevServer, type DevServer } from "../../scripts/lib/dev-server";
import { FASHION_MNIST } from "../../src/core/registry";
import type { Meter } from "../metered/worker";
import { processCpuSeconds } from "./rss";
import { frozenConfig } from "./frozen";

export type { Meter };

interface RunJson {
  id: string;
  dataset: string;
  status: string;
  finishedAt: string | null;
  error: string | null;
  unchanged?: boolean;
  checksums: Record<string, string> | null;
  chunksTotal: number | null;
  splits: Record<"train" | "test", { expected: number | null; loaded: number }>;
}

export interface EtlTiming {
  /** Trigger → complete: until the run's finishedAt (see above), or the first sighting of complete if earlier. */
  seconds: number;
  /** Trigger → the first GET /runs/:id that showed complete (locally, after the export job when there is one). */
  observedSeconds: number;
  /** performance.now() when the run completed (trigger + seconds). */
  completeAt: number;
  extractSeconds: number;
  /** Until the job recorded all four archives' checksums: the producer's work is done. */
  producerSeconds: number;
  rows: number;
  runId: string;
  chunksTotal: number;
  unchanged: boolean;
  /**
   * After complete, until GET /datasets/{name} shows the run's version with
   * `exportsStored` (and, metered, the export job has returned): the
   * materialisation to R2. Not part of `seconds`. null: no EXPORTS bucket bound.
   */
  exportSeconds: number | null;
}

/** What one piece of work cost: the meters, and the CPU all of workerd spent meanwhile. */
export interface Metered<T> {
  readonly result: T;
  readonly meter: Meter;
  /** CPU seconds of every workerd process of the dev server (Worker + local D1 + Queues): an upper bound for the Worker's. */
  readonly workerdCpuSeconds: number;
  readonly wallSeconds: number;
}

export interface EtlServer {
  readonly dev: DevServer;
  readonly archives: ArchiveServer;
  readonly persistTo: string;
  /** One full run: POST /runs (force; the default dataset unless named) → GET /runs/:id shows complete. */
  run(opts?: { force?: boolean; dataset?: string; timeoutSeconds?: number }): Promise<EtlTiming>;
  /** The cron handler with the local archives as its default source, then its run to the end. */
  cron(): Promise<EtlTiming>;
  meter(): Promise<Meter>;
  resetMeter(): Promise<void>;
  /** Reset the meters, do `work`, read them back. */
  metered<T>(work: () => Promise<T>): Promise<Metered<T>>;
  /** SQL on the dev server's local D1 (stop the server first for writes). */
  d1<T = Record<string, unknown>>(sql: string): Promise<T[]>;
  stop(): Promise<void>;
}

const LOG_DIR = join("bench", "out");
/** The dev server's log, copied here when it fails to start or when it stops. */
const LOG = join(LOG_DIR, "etl-dev.log");

const UNMETERED = { "x-bench-unmetered": "1" };

/** The binding pipeline/materialise.ts writes the exports to. */
const EXPORTS_BINDING = "EXPORTS";
/** How long a run's exports may take to reach R2 after it completes (at least). */
const EXPORT_TIMEOUT_SECONDS = 300;

/** Whether a wrangler config binds the exports bucket (an older tree, for bench/ab-etl.ts, may not). */
async function bindsExports(config: string): Promise<boolean> {
  const toml = parse(await readFile(config, "utf8")) as { r2_buckets?: { binding?: string }[] };
  return (toml.r2_buckets ?? []).some((b) => b.binding === EXPORTS_BINDING);
}

export async function startEtl(opts: {
  dataDir: string;
  vars: Record<string, string>;
  token: string;
  /** false: src/index.ts as it is, without the meters (whose calls then fail). */
  metered?: boolean;
  /** The files of dataDir to serve (default: the default dataset's). */
  files?: readonly string[];
}): Promise<EtlServer> {
  const meters = opts.metered ?? true;
  const exportsBound = await bindsExports("wrangler.toml");
  const persistTo = await mkdtemp(join(tmpdir(), "idx-etl-bench-state-"));
  const archives = await serveArchives(opts.dataDir, opts.files);
  let dev: DevServer;
  try {
    const config = await frozenConfig({
      entry: meters ? "bench/metered/worker.ts" : "src/index.ts",
      config: "wrangler.toml",
      dir: persistTo,
      // AsyncLocalStorage, for the meters to leave the bench's own polling out.
      extra: meters ? { compatibility_flags: ["nodejs_als"] } : {},
    });
    await applyLocalMigrations({ config, database: "images", persistTo });
    dev = await startDevServer({ config, persistTo, vars: { ...opts.vars, ETL_TOKEN: opts.token } });
  } catch (err) {
    await archives.close();
    await mkdir(LOG_DIR, { recursive: true });
    await copyFile(join(persistTo, "dev.log"), LOG).catch(() => {});
    await rm(persistTo, { recursive: true, force: true });
    throw new Error(`${err instanceof Error ? err.message : String(err)} (log kept in ${LOG})`, { cause: err });
  }

  /** Export jobs the metered Worker has seen return (never reset): -1 for the bare Worker, which cannot tell. */
  const exportJobs = async (): Promise<number> => {
    if (!meters) return -1;
    const res = await fetch(`${dev.url}/__bench/export-jobs`);
    if (!res.ok) throw new Error(`export jobs: HTTP ${res.status}`);
    return ((await res.json()) as { done: number }).done;
  };

  /**
   * From the run's completion until its version's exports are in R2: the
   * dataset shows `exportsStored` for the run's version (an unchanged run's is
   * the earlier run's, stored already), and, metered, the job queued after it
   * has returned (its pruning follows the record, and an unchanged run's job
   * changes nothing the catalog shows). Seconds after complete, or null
   * without a bucket.
   */
  const awaitExports = async (
    done: EtlTiming,
    dataset: string,
    jobs0: number,
    timeoutSeconds = EXPORT_TIMEOUT_SECONDS,
  ): Promise<number | null> => {
    if (!exportsBound) return null;
    const { completeAt } = done;
    for (;;) {
      const res = await fetch(`${dev.url}/datasets/${encodeURIComponent(dataset)}`, { headers: UNMETERED });
      if (!res.ok) throw new Error(`GET /datasets/${dataset}: HTTP ${res.status}`);
      const d = (await res.json()) as { version: string | null; exportsStored?: boolean };
      const stored = d.exportsStored === true && (done.unchanged || d.version === done.runId);
      if (stored && (jobs0 < 0 || (await exportJobs()) > jobs0)) return (performance.now() - completeAt) / 1000;
      const waited = (performance.now() - completeAt) / 1000;
      if (waited > timeoutSeconds)
        throw new Error(
          `run ${done.runId}: its exports are not in R2 ${timeoutSeconds} s after it completed (${dataset}: version ${d.version}, exportsStored ${d.exportsStored}${jobs0 < 0 ? "" : `, export jobs returned ${(await exportJobs()) - jobs0}`})`,
        );
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  /** `t0`: performance.now() at the trigger; `wall0`: Date.now() then. */
  const poll = async (
    id: string,
    t0: number,
    wall0: number,
    timeoutSeconds = 600,
  ): Promise<EtlTiming & { dataset: string }> => {
    let extractSeconds = NaN;
    let producerSeconds = NaN;
    const archiveCount = FASHION_MNIST.splits.length * 2;
    for (;;) {
      const res = await fetch(`${dev.url}/runs/${id}`, { headers: UNMETERED });
      const { run } = (await res.json()) as { run: RunJson };
      const elapsed = (performance.now() - t0) / 1000;
      if (Number.isNaN(extractSeconds) && (run.status === "loading" || run.status === "complete"))
        extractSeconds = elapsed;
      if (Number.isNaN(producerSeconds) && Object.keys(run.checksums ?? {}).length === archiveCount)
        producerSeconds = elapsed;
      if (run.status === "failed") throw new Error(`run ${run.id} failed: ${run.error}`);
      if (run.status === "complete") {
        const finished = run.finishedAt ? (Date.parse(run.finishedAt) - wall0) / 1000 : NaN;
        const seconds = Number.isFinite(finished) ? Math.min(elapsed, Math.max(finished, 0)) : elapsed;
        return {
          dataset: run.dataset,
          seconds,
          observedSeconds: elapsed,
          completeAt: t0 + seconds * 1000,
          // First seen with complete itself (an unchanged run): not after it.
          extractSeconds: Math.min(extractSeconds, seconds),
          producerSeconds: Math.min(producerSeconds, seconds),
          rows: run.splits.train.loaded + run.splits.test.loaded,
          runId: run.id,
          chunksTotal: run.chunksTotal ?? 0,
          unchanged: run.unchanged ?? false,
          exportSeconds: null,
        };
      }
      if (elapsed > timeoutSeconds) throw new Error(`run ${run.id} still ${run.status} after ${timeoutSeconds} s`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  const meter = async (): Promise<Meter> => (await (await fetch(`${dev.url}/__bench/meter`)).json()) as Meter;
  const resetMeter = async (): Promise<void> => {
    const res = await fetch(`${dev.url}/__bench/meter/reset`, { method: "POST" });
    if (!res.ok) throw new Error(`meter reset: HTTP ${res.status}`);
  };

  return {
    dev,
    archives,
    persistTo,
    async run({ force = true, dataset, timeoutSeconds } = {}) {
      const jobs0 = await exportJobs();
      const t0 = performance.now();
      const wall0 = Date.now();
      const res = await fetch(`${dev.url}/runs`, {
        method: "POST",
        headers: { Authorization: `Bearer ${opts.token}`, "Content-Type": "application/json" },
        // No `dataset` for the default one: the body the routes have always taken.
        body: JSON.stringify({ ...(dataset ? { dataset } : {}), trigger: "cli", source: archives.url, force }),
      });
      const started = (await res.json()) as { run?: RunJson; error?: string };
      if (res.status !== 202 || !started.run) throw new Error(`POST /runs: HTTP ${res.status}: ${started.error}`);
      const { dataset: name, ...done } = await poll(started.run.id, t0, wall0, timeoutSeconds);
      // A larger dataset's run (bench/scale-load.ts) is given longer: its export takes longer too.
      const exportTimeout = Math.max(EXPORT_TIMEOUT_SECONDS, timeoutSeconds ?? 0);
      return { ...done, exportSeconds: await awaitExports(done, name, jobs0, exportTimeout) };
    },
    async cron() {
      const jobs0 = await exportJobs();
      const t0 = performance.now();
      const wall0 = Date.now();
      const res = await fetch(`${dev.url}/__bench/scheduled?source=${encodeURIComponent(archives.url)}`, {
        method: "POST",
      });
      if (!res.ok) throw new Error(`scheduled: HTTP ${res.status}: ${await res.text()}`);
      const { runs } = (await (await fetch(`${dev.url}/runs?limit=1`, { headers: UNMETERED })).json()) as {
        runs: RunJson[];
      };
      if (!runs[0]) throw new Error("the cron handler started no run");
      const { dataset: name, ...done } = await poll(runs[0].id, t0, wall0);
      return { ...done, exportSeconds: await awaitExports(done, name, jobs0) };
    },
    meter,
    resetMeter,
    async metered(work) {
      await resetMeter();
      const cpu0 = await processCpuSeconds(dev.pid, "workerd");
      const t0 = performance.now();
      const result = await work();
      const wallSeconds = (performance.now() - t0) / 1000;
      const workerdCpuSeconds = (await processCpuSeconds(dev.pid, "workerd")) - cpu0;
      return { result, meter: await meter(), workerdCpuSeconds, wallSeconds };
    },
    d1: (sql) => localD1(sql, { persistTo }),
    async stop() {
      await dev.stop();
      await archives.close();
      await mkdir(LOG_DIR, { recursive: true });
      await copyFile(dev.logFile, LOG).catch(() => {});
    },
  };
}

/** Remove the state directory (after any last d1() reads). */
export const removeEtlState = (server: EtlServer): Promise<void> =>
  rm(server.persistTo, { recursive: true, force: true });
