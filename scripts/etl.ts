/**
 * `npm run etl`: the whole ETL on this machine, in one command. Starts the
 * Worker in this process (Miniflare: local D1, Queues and R2, no Cloudflare
 * account) on the local state `npm run dev` uses, applies the migrations,
 * starts one run, follows it to the end, prints a summary and stops: it does
 * not wait for the exports to R2. Exit code 0 only for a complete run.
 *
 *   npm run etl                          # Fashion-MNIST, downloaded from the official location
 *   npm run etl -- --source DIR|URL      # the four .gz files from a directory or base URL
 *   npm run etl -- --dataset mnist       # another registry dataset (--list shows them)
 *   npm run etl -- --dataset NAME --source DIR|URL --train-images F --train-labels F \
 *                  --test-images F --test-labels F [--classes a,b,c]   # a custom dataset
 *   npm run etl -- --force               # reload even if the archives are unchanged
 *   npm run etl -- --delete NAME         # delete a dataset: its tables, runs and exports
 *
 * One command at a time per local state (state-lock.ts); the run of one
 * that died is abandoned by the next. Ctrl-C (SIGINT) or SIGTERM abandons
 * the command's own run, so the next command need not wait out its lease; a
 * second one quits at once. package.json runs this file with `exec node
 * --import tsx`: through the tsx command, which relays a signal to its child
 * and SIGKILLs it unless the child acknowledges within tens of milliseconds,
 * there would be no time to abandon the run; without `exec`, npm's shell
 * dies of the Ctrl-C and npm returns before the run is abandoned.
 */
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { localArchives, serveArchives, type ArchiveServer } from "./lib/archive-server";
import { D1File, type RunState } from "./lib/d1-file";
import { isUrl, parseEtlArgs, USAGE, UsageError, type EtlOptions } from "./lib/etl-options";
import { Interrupted, signalExitCode, watchInterrupts, type Interrupts } from "./lib/interrupt";
import { startLocalWorker, type LocalWorker } from "./lib/local-worker";
import { progressView } from "./lib/progress";
import { registryTable } from "./lib/registry-list";
import { StateBusy, StateLock } from "./lib/state-lock";
import { abandonInterrupted, abandonOrphan, ACTIVE, reportEarlierRuns } from "./lib/stopped-runs";
import { localDatabaseFile, localStats, summaryTable } from "./lib/summary";
import type { ErrorBody } from "../src/http/schemas/common";
import type { ActiveRunConflict, RunResponse } from "../src/http/schemas/runs";
import type { DatasetDeleted, Stats } from "../src/http/schemas/datasets";

/** Whether a Worker was started: then the end says how long the whole command took. */
let started = false;

async function main(): Promise<number> {
  const opts = parseEtlArgs(process.argv.slice(2));
  if (opts.help) {
    console.log(USAGE);
    return 0;
  }
  if (opts.list) {
    console.log(registryTable());
    return 0;
  }
  const interrupts = watchInterrupts();

  // Every file the run needs is checked before anything starts: a missing one
  // would otherwise surface as the run's error, after the Worker's start.
  const local =
    opts.source !== undefined && !isUrl(opts.source) ? await localArchives(opts.spec, opts.source) : undefined;
  const persistTo = opts.persistTo;
  const stateDir = persistTo ?? join(".wrangler", "state");
  let held: Awaited<ReturnType<typeof StateLock.acquire>>;
  try {
    held = await StateLock.acquire(stateDir);
  } catch (err) {
    if (!(err instanceof StateBusy)) throw err;
    console.error(
      `etl: another npm run etl (pid ${err.holder.pid}, since ${err.holder.since}) is using the local state ${stateDir} (${err.path}): wait for it to end, or give this one a state of its own with --persist-to DIR`,
    );
    return 1;
  }
  const { lock } = held;
  let archives: ArchiveServer | undefined;
  let worker: LocalWorker | undefined;
  let d1: D1File | undefined;
  let runId: string | undefined;
  const token = randomBytes(24).toString("hex");
  const startWorker = () =>
    startLocalWorker({
      vars: { ETL_TOKEN: token },
      persistTo,
      logFile: persistTo ? join(persistTo, "etl-worker.log") : join(".wrangler", "etl-worker.log"),
    });
  try {
    let source = opts.source;
    if (local) {
      archives = await serveArchives(local.dir, local.files);
      source = local.path ? `${archives.url}/${encodeURIComponent(local.path)}` : archives.url;
    }
    started = true;
    worker = await interrupts.race(startWorker());
    console.log(`worker: ${worker.url} (log: ${worker.logFile})`);
    const dbFile = await localDatabaseFile(persistTo);
    if (dbFile === undefined) throw new Error("the local D1 has no database file after its migrations");
    d1 = new D1File(dbFile);
    if (held.stale) await interrupts.race(abandonOrphan(worker.url, token, d1, held.stale));
    if (opts.delete !== undefined) return await interrupts.race(deleteDataset(worker.url, token, opts.delete));

    // The state may be shared with a running `npm run dev`: its runs are left alone. The trigger closes
    // only the runs silent for longer than a lease (their runtime is gone), and says so in their error.
    const before = d1.activeRuns();
    // A run the Worker records as a signal comes, before its answer, is not known here: its lease closes it.
    const res = await interrupts.race(
      fetch(`${worker.url}/runs`, {
        method: "POST",
        headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
        body: JSON.stringify(runRequest(opts, source)),
      }),
    );
    const startedRun = (await interrupts.race(res.json())) as Partial<RunResponse & ErrorBody & ActiveRunConflict>;
    reportEarlierRuns(before, d1, startedRun.activeRunId);
    if (!res.ok || !startedRun.run)
      throw new Error(
        `could not start a run: HTTP ${res.status}: ${startedRun.error ?? "no detail"}${startedRun.hint ? `\n${startedRun.hint}` : ""}`,
      );
    runId = startedRun.run.id;
    await lock.recordRun(runId);
    console.log(
      opts.named === undefined
        ? `run ${runId}: source ${startedRun.run.source}`
        : `run ${runId}: ${opts.named} from ${startedRun.run.source}`,
    );

    const run = await follow(d1, runId, opts.timeoutMs, interrupts);
    if (run.status !== "complete") {
      printFailure(run, opts.named);
      return 1;
    }
    printSummary(run, localStats(opts.spec.name, d1), dbFile, opts);
    if (worker.exportsBucket) printExports(d1.exportsStored(opts.spec.name));
    return 0;
  } catch (err) {
    if (!(err instanceof Interrupted)) throw err;
    await worker?.stop();
    await abandonInterrupted(err.signal, runId, d1, () => startWorker(), token);
    return signalExitCode(err.signal);
  } finally {
    // A run still active now dies with this command's runtime (a timeout, an abandon that failed): the lock, left
    // behind, names it for the next command to abandon (abandonOrphan). An unreadable one (a busy file) counts.
    const left = runId === undefined ? null : d1?.run(runId);
    const orphaned = left === undefined || (left !== null && ACTIVE.has(left.status));
    d1?.close();
    await worker?.stop();
    await archives?.close();
    if (!orphaned) await lock.release();
  }
}

/** --delete NAME: DELETE /datasets/NAME, and what it removed; exit code 0 only if it did. */
async function deleteDataset(url: string, token: string, name: string): Promise<number> {
  const res = await fetch(`${url}/datasets/${encodeURIComponent(name)}`, {
    method: "DELETE",
    headers: { Authorization: `Bearer ${token}` },
  });
  const body = (await res.json()) as Partial<DatasetDeleted & ErrorBody & ActiveRunConflict>;
  if (!res.ok || body.deleted === undefined) {
    console.error(
      `could not delete ${name}: HTTP ${res.status}: ${body.error ?? "no detail"}${body.hint ? `\n${body.hint}` : ""}`,
    );
    return 1;
  }
  const tables = body.tables?.length ? body.tables.join(", ") : "none";
  const objects = body.objects === null || body.objects === undefined ? "" : `, ${body.objects} R2 objects`;
  console.log(`deleted ${name}: tables ${tables}; ${body.runs} runs${objects}`);
  console.log(body.dataset ? `${name} is a registry dataset: now ${body.dataset.status}` : `${name} is gone`);
  return 0;
}

/**
 * Exports are not waited for. The job that writes a version's .npy files to
 * local R2 follows the load, and stops with this command, its queue with it
 * (Miniflare holds queued messages in memory): until a later job has written
 * them, downloads read the same bytes from D1, and the first such download
 * queues the job again.
 */
function printExports(stored: boolean): void {
  console.log(
    stored
      ? "exports: this version's .npy files are in local R2: `npm run dev` streams downloads from there."
      : "exports: `npm run dev` serves the .npy downloads from D1 (the same bytes) until they are in local R2; the first download queues the job that writes them there (this command does not wait for it).",
  );
}

/**
 * POST /runs's body. Without --dataset it is the one it always was, so a
 * Worker that predates datasets loads Fashion-MNIST from it as before.
 */
function runRequest(opts: EtlOptions, source: string | undefined): Record<string, unknown> {
  return {
    trigger: "cli",
    force: opts.force,
    ...(opts.named !== undefined ? { dataset: opts.named } : {}),
    ...(source !== undefined ? { source } : {}),
    ...(opts.custom ? { files: opts.custom.files } : {}),
    ...(opts.custom?.classes ? { classes: opts.custom.classes } : {}),
  };
}

/** Follows the run in the local D1's file, which answers even while the Worker is too busy to. */
async function follow(d1: D1File, id: string, timeoutMs: number, interrupts: Interrupts): Promise<RunState> {
  const deadline = Date.now() + timeoutMs;
  const view = progressView();
  try {
    let status = "queued";
    for (;;) {
      const run = d1.run(id);
      if (run === null) throw new Error(`run ${id} is not in the local D1`);
      if (run !== undefined) {
        view.update(run);
        if (run.status === "complete" || run.status === "failed") return run;
        status = run.status;
      }
      if (Date.now() > deadline)
        throw new Error(`run ${id} did not finish within ${timeoutMs / 1000} s (still ${status})`);
      await interrupts.race(new Promise((r) => setTimeout(r, 100)));
    }
  } finally {
    view.stop();
  }
}

const named = (run: RunState, dataset: string | undefined) =>
  dataset === undefined ? run.id : `${run.id} (${dataset})`;

function printFailure(run: RunState, dataset: string | undefined): void {
  console.error(`run ${named(run, dataset)} failed after ${(run.durationMs / 1000).toFixed(1)} s: ${run.error}`);
}

function printSummary(run: RunState, stats: Stats, dbFile: string | undefined, opts: EtlOptions): void {
  console.log(`run ${named(run, opts.named)} complete in ${(run.durationMs / 1000).toFixed(1)} s`);
  console.log(summaryTable(run, stats, dbFile, process.stdout.isTTY, opts.named));
  // `images` is a view over every dataset loaded: a named one is picked out of it.
  const where = opts.named === undefined ? "" : ` WHERE dataset = '${opts.named}'`;
  console.log(
    `query: npx wrangler d1 execute images --local --command "SELECT split, label, COUNT(*) FROM images${where} GROUP BY 1, 2"`,
  );
}

/** From this process's start: the Worker's start and stop included. */
function printWallTime(): void {
  if (started) console.log(`etl: ${(performance.now() / 1000).toFixed(1)} s in all`);
}

main().then(
  (code) => {
    printWallTime();
    process.exit(code);
  },
  (err: unknown) => {
    if (err instanceof UsageError) {
      console.error(`etl: ${err.message}\n\n${USAGE}`);
      process.exit(2);
    }
    console.error(`etl: ${err instanceof Error ? err.message : String(err)}`);
    printWallTime();
    process.exit(1);
  },
);
