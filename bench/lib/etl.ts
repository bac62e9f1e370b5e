/**
 * The product Worker under `wrangler dev`, as `npm run bench` drives it: bundled
 * once (frozen.ts: edits to src/ during the bench do not reload it), bare
 * (`metered: false`, as it is timed) or with the bill's meters around it
 * (bench/metered/worker.ts), in a state directory of its own (fresh
 * migrations). Runs are started and polled over HTTP as a client would.
 *
 * A run is over only once the job that follows it has written its exports to
 * R2: the jobs queue runs one job at a time, so whatever is timed next would
 * otherwise overlap it. That wait is `exportSeconds`, apart from `seconds`
 * (trigger → the run's finishedAt, its swap committed: the server's clock is
 * this machine's). Locally a request sent while the export job runs may be
 * answered only after it, so the first GET /runs/:id showing `complete` can
 * come late; `seconds` does not wait for it.
 */
import { copyFile, mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse } from "smol-toml";
import { serveArchives, type ArchiveServer } from "../../scripts/lib/archive-server";
import { applyLocalMigrations, localD1, startDevServer, type DevServer } from "../../scripts/lib/dev-server";
import type { Meter } from "../metered/worker";
import { frozenConfig } from "./frozen";
import { processCpuSeconds } from "./isolate";

export type { Meter };

interface RunJson {
  id: string;
  dataset: string;
  status: string;
  finishedAt: string | null;
  error: string | null;
  unchanged?: boolean;
  checksums: Record<string, string> | null;
  splits: Record<"train" | "test", { loaded: number }>;
}

export interface EtlTiming {
  /** Trigger → the run's finishedAt (or the first sighting of complete, if earlier). */
  seconds: number;
  /** performance.now() when the run completed. */
  completeAt: number;
  /** Trigger → loading. */
  extractSeconds: number;
  rows: number;
  runId: string;
  unchanged: boolean;
  /** After complete, until GET /datasets/{name} shows the run's version with exportsStored. */
  exportSeconds: number;
}

/** Something that runs beside a run, from its start until its exports are stored. */
export type Watch = (run: { id: string; dataset: string }) => { stop(): Promise<void> };

export interface Metered<T> {
  readonly result: T;
  readonly meter: Meter;
  /** CPU of every workerd process of the dev server (Worker, local D1, Queues, R2): context, not the bill. */
  readonly workerdCpuSeconds: number;
  readonly wallSeconds: number;
}

export interface EtlServer {
  readonly dev: DevServer;
  /** One forced run of the default dataset from the local archives, to the end of its export job. */
  run(opts?: { watch?: Watch; onComplete?: () => Promise<void> }): Promise<EtlTiming>;
  /** The cron handler with the local archives as its source (metered Worker only), then its run. */
  cron(): Promise<EtlTiming>;
  /** Reset the meters, do `work`, read them back (metered Worker only). */
  metered<T>(work: () => Promise<T>): Promise<Metered<T>>;
  /** SQL on the local D1 (after stop(): no writer). */
  d1<T = Record<string, unknown>>(sql: string): Promise<T[]>;
  stop(): Promise<void>;
  /** Remove the state directory (after any last d1() reads). */
  remove(): Promise<void>;
}

const LOG = join("bench", "out", "etl-dev.log");
const UNMETERED = { "x-bench-unmetered": "1" };
const EXPORT_TIMEOUT_SECONDS = 300;
const RUN_TIMEOUT_SECONDS = 600;
const ARCHIVES = 4;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function requireExportsBucket(config: string): Promise<void> {
  const toml = parse(await readFile(config, "utf8")) as { r2_buckets?: { binding?: string }[] };
  if (!(toml.r2_buckets ?? []).some((b) => b.binding === "EXPORTS"))
    throw new Error(`${config} binds no EXPORTS bucket: the bench times exports materialised in R2`);
}

export async function startEtl(opts: {
  dataDir: string;
  vars: Record<string, string>;
  token: string;
  metered: boolean;
}): Promise<EtlServer> {
  await requireExportsBucket("wrangler.toml");
  const persistTo = await mkdtemp(join(tmpdir(), "idx-etl-bench-state-"));
  const archives: ArchiveServer = await serveArchives(opts.dataDir);
  let dev: DevServer;
  try {
    const config = await frozenConfig({
      entry: opts.metered ? "bench/metered/worker.ts" : "src/index.ts",
      config: "wrangler.toml",
      dir: persistTo,
      // AsyncLocalStorage, for the meters to leave the bench's own polling out.
      extra: opts.metered ? { compatibility_flags: ["nodejs_als"] } : {},
    });
    await applyLocalMigrations({ config, database: "images", persistTo });
    dev = await startDevServer({ config, persistTo, vars: { ...opts.vars, ETL_TOKEN: opts.token } });
  } catch (err) {
    await archives.close();
    await mkdir(join("bench", "out"), { recursive: true });
    await copyFile(join(persistTo, "dev.log"), LOG).catch(() => {});
    await rm(persistTo, { recursive: true, force: true });
    throw new Error(`${err instanceof Error ? err.message : String(err)} (log kept in ${LOG})`, { cause: err });
  }

  const get = async <T>(path: string): Promise<T> => {
    const res = await fetch(`${dev.url}${path}`, { headers: UNMETERED });
    if (!res.ok) throw new Error(`GET ${path}: HTTP ${res.status}`);
    return (await res.json()) as T;
  };
  /** Export jobs the metered Worker has seen return; -1 for the bare Worker, which cannot tell. */
  const exportJobs = async (): Promise<number> =>
    opts.metered ? (await get<{ done: number }>("/__bench/export-jobs")).done : -1;

  /** Seconds from complete until the version's exports are in R2 (and, metered, its job has returned). */
  const awaitExports = async (done: EtlTiming, dataset: string, jobs0: number): Promise<number> => {
    for (;;) {
      const d = await get<{ version: string | null; exportsStored?: boolean }>(`/datasets/${dataset}`);
      const stored = d.exportsStored === true && (done.unchanged || d.version === done.runId);
      const waited = (performance.now() - done.completeAt) / 1000;
      if (stored && (jobs0 < 0 || (await exportJobs()) > jobs0)) return waited;
      if (waited > EXPORT_TIMEOUT_SECONDS)
        throw new Error(`run ${done.runId}: exports not in R2 ${EXPORT_TIMEOUT_SECONDS} s after it completed`);
      await sleep(50);
    }
  };

  /** Poll the run every 50 ms; `t0`/`wall0`: performance.now() and Date.now() at the trigger. */
  const poll = async (id: string, t0: number, wall0: number): Promise<EtlTiming & { dataset: string }> => {
    let extractSeconds = NaN;
    for (;;) {
      const { run } = await get<{ run: RunJson }>(`/runs/${id}`);
      const elapsed = (performance.now() - t0) / 1000;
      if (Number.isNaN(extractSeconds) && (run.status === "loading" || run.status === "complete"))
        extractSeconds = elapsed;
      if (run.status === "failed") throw new Error(`run ${run.id} failed: ${run.error}`);
      if (run.status === "complete") {
        const finished = run.finishedAt ? (Date.parse(run.finishedAt) - wall0) / 1000 : NaN;
        const seconds = Number.isFinite(finished) ? Math.min(elapsed, Math.max(finished, 0)) : elapsed;
        return {
          dataset: run.dataset,
          seconds,
          completeAt: t0 + seconds * 1000,
          extractSeconds: Math.min(extractSeconds, seconds),
          rows: run.splits.train.loaded + run.splits.test.loaded,
          runId: run.id,
          unchanged: run.unchanged ?? false,
          exportSeconds: NaN,
        };
      }
      if (elapsed > RUN_TIMEOUT_SECONDS)
        throw new Error(`run ${run.id} still ${run.status} after ${RUN_TIMEOUT_SECONDS} s`);
      // The run's time is its finishedAt, not when a poll saw it: polling no faster than a
      // dashboard would keeps the measured server from answering the bench more than the run.
      await sleep(250);
    }
  };

  /** `start` triggers the run; then it is followed to the end of its export job. */
  const follow = async (
    start: () => Promise<RunJson>,
    watch?: Watch,
    onComplete?: () => Promise<void>,
  ): Promise<EtlTiming> => {
    const jobs0 = await exportJobs();
    const t0 = performance.now();
    const wall0 = Date.now();
    const run = await start();
    const watching = watch?.({ id: run.id, dataset: run.dataset });
    try {
      const { dataset, ...done } = await poll(run.id, t0, wall0);
      await onComplete?.();
      return { ...done, exportSeconds: await awaitExports(done, dataset, jobs0) };
    } finally {
      await watching?.stop();
    }
  };

  const bench = async (path: string, method = "GET"): Promise<Response> => {
    if (!opts.metered) throw new Error(`${path}: the bare Worker has no bench routes`);
    const res = await fetch(`${dev.url}${path}`, { method });
    if (!res.ok) throw new Error(`${method} ${path}: HTTP ${res.status}: ${await res.text()}`);
    return res;
  };

  return {
    dev,
    run: ({ watch, onComplete } = {}) =>
      follow(
        async () => {
          const res = await fetch(`${dev.url}/runs`, {
            method: "POST",
            headers: { Authorization: `Bearer ${opts.token}`, "Content-Type": "application/json" },
            body: JSON.stringify({ trigger: "cli", source: archives.url, force: true }),
          });
          const started = (await res.json()) as { run?: RunJson; error?: string };
          if (res.status !== 202 || !started.run) throw new Error(`POST /runs: HTTP ${res.status}: ${started.error}`);
          return started.run;
        },
        watch,
        onComplete,
      ),
    cron: () =>
      follow(async () => {
        await bench(`/__bench/scheduled?source=${encodeURIComponent(archives.url)}`, "POST");
        const { runs } = await get<{ runs: RunJson[] }>("/runs?limit=1");
        if (!runs[0]) throw new Error("the cron handler started no run");
        return runs[0];
      }),
    async metered(work) {
      await bench("/__bench/meter/reset", "POST");
      const cpu0 = await processCpuSeconds(dev.pid, "workerd");
      const t0 = performance.now();
      const result = await work();
      const wallSeconds = (performance.now() - t0) / 1000;
      const workerdCpuSeconds = (await processCpuSeconds(dev.pid, "workerd")) - cpu0;
      const meter = (await (await bench("/__bench/meter")).json()) as Meter;
      return { result, meter, workerdCpuSeconds, wallSeconds };
    },
    d1: (sql) => localD1(sql, { persistTo }),
    async stop() {
      await dev.stop();
      await archives.close();
      await mkdir(join("bench", "out"), { recursive: true });
      await copyFile(dev.logFile, LOG).catch(() => {});
    },
    remove: () => rm(persistTo, { recursive: true, force: true }),
  };
}
