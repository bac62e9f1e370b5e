/**
 * `npm run etl`: the whole ETL on this machine, in one command. Applies the
 * migrations to the local D1, starts the Worker with `wrangler dev` (Miniflare:
 * local D1 and Queues, no Cloudflare account), starts one run, follows it
 * to the end and prints a summary. Exit code 0 only for a complete run.
 *
 *   npm run etl                          # Fashion-MNIST, downloaded from the official location
 *   npm run etl -- --source DIR|URL      # the four .gz files from a directory or base URL
 *   npm run etl -- --dataset mnist       # another registry dataset (--list shows them)
 *   npm run etl -- --dataset NAME --source DIR|URL --train-images F --train-labels F \
 *                  --test-images F --test-labels F [--classes a,b,c]   # a custom dataset
 *   npm run etl -- --force               # reload even if the archives are unchanged
 *   npm run etl -- --delete NAME         # delete a dataset: its tables, runs and exports
 */
import { randomBytes } from "node:crypto";
import { localArchives, serveArchives, type ArchiveServer } from "./lib/archive-server";
import { applyLocalMigrations, localD1, startDevServer, type DevServer } from "./lib/dev-server";
import { isUrl, parseEtlArgs, USAGE, UsageError, type EtlOptions } from "./lib/etl-options";
import { progressView } from "./lib/progress";
import { registryTable } from "./lib/registry-list";
import { localDatabaseFile, localStats, summaryTable } from "./lib/summary";
import type { ErrorBody } from "../src/http/schemas/common";
import type { ActiveRunConflict, RunResponse, RunView } from "../src/http/schemas/runs";
import type { DatasetDeleted, Stats } from "../src/http/schemas/datasets";

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

  // Every file the run needs is checked before anything starts: a missing one
  // would otherwise surface as the run's error, after a migration and a wrangler start.
  let archives: ArchiveServer | undefined;
  let source = opts.source;
  if (opts.source !== undefined && !isUrl(opts.source)) {
    const local = await localArchives(opts.spec, opts.source);
    archives = await serveArchives(local.dir, local.files);
    source = local.path ? `${archives.url}/${encodeURIComponent(local.path)}` : archives.url;
  }
  let dev: DevServer | undefined;
  try {
    const persistTo = opts.persistTo;
    await applyLocalMigrations({ persistTo });
    // Local queues do not outlive the dev server that held them: a run left
    // active by an interrupted `npm run etl` can never finish, so close it, and say so.
    const interrupted = await localD1<{
      id: string;
      dataset: string;
      status: string;
      train_loaded: number;
      test_loaded: number;
    }>(
      "SELECT id, dataset, status, train_loaded, test_loaded FROM runs WHERE status IN ('queued', 'extracting', 'loading')",
      { persistTo },
    );
    if (interrupted.length > 0) {
      await localD1(
        "UPDATE runs SET status = 'failed', error = 'interrupted: the local dev server stopped before the run finished', finished_at = strftime('%Y-%m-%dT%H:%M:%fZ') WHERE status IN ('queued', 'extracting', 'loading')",
        { persistTo },
      );
    }
    for (const r of interrupted) {
      console.log(
        `run ${r.id} was still ${r.status} (${r.train_loaded} train, ${r.test_loaded} test images loaded) when an earlier dev server stopped: its queued work is lost with it, so it is marked failed and a new run starts now. ${r.dataset} in D1 is as its last complete run left it, untouched.`,
      );
    }
    const token = randomBytes(24).toString("hex");
    dev = await startDevServer({ vars: { ETL_TOKEN: token }, persistTo });
    console.log(`worker: ${dev.url} (log: ${dev.logFile})`);
    if (opts.delete !== undefined) return await deleteDataset(dev.url, token, opts.delete);

    const res = await fetch(`${dev.url}/runs`, {
      method: "POST",
      headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
      body: JSON.stringify(runRequest(opts, source)),
    });
    const started = (await res.json()) as Partial<RunResponse & ErrorBody & ActiveRunConflict>;
    if (!res.ok || !started.run)
      throw new Error(
        `could not start a run: HTTP ${res.status}: ${started.error ?? "no detail"}${started.hint ? `\n${started.hint}` : ""}`,
      );
    console.log(
      opts.named === undefined
        ? `run ${started.run.id}: source ${started.run.source}`
        : `run ${started.run.id}: ${opts.named} from ${started.run.source}`,
    );

    const run = await follow(dev.url, started.run.id, opts.timeoutMs);
    // The server's clock (this machine's): locally, the first poll that sees `complete` may be answered only after
    // the export job that follows the run, so the client's sighting would hide how long that job took.
    const completedAt = run.finishedAt ? Date.parse(run.finishedAt) : Date.now();
    if (run.status !== "complete") {
      printFailure(run, opts.named);
      return 1;
    }
    const stats = await datasetStats(dev.url, opts.spec.name, persistTo);
    printSummary(run, stats, await localDatabaseFile(persistTo), opts);
    await awaitExports(dev.url, opts.spec.name, completedAt, opts.timeoutMs);
    return 0;
  } finally {
    await dev?.stop();
    await archives?.close();
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

/**
 * The dataset's counts from the Worker while it still runs (the same D1 the
 * run wrote); straight from the local D1 if it has no per-dataset stats route.
 */
async function datasetStats(url: string, dataset: string, persistTo: string | undefined): Promise<Stats> {
  const res = await fetch(`${url}/datasets/${encodeURIComponent(dataset)}/stats`);
  if (res.ok) return (await res.json()) as Stats;
  await res.body?.cancel();
  return localStats(dataset, persistTo);
}

async function follow(url: string, id: string, timeoutMs: number): Promise<RunView> {
  const deadline = Date.now() + timeoutMs;
  const view = progressView();
  try {
    for (;;) {
      const res = await fetch(`${url}/runs/${id}`);
      const { run } = (await res.json()) as RunResponse;
      view.update(run);
      if (run.status === "complete" || run.status === "failed") return run;
      if (Date.now() > deadline)
        throw new Error(`run ${id} did not finish within ${timeoutMs / 1000} s (still ${run.status})`);
      await new Promise((r) => setTimeout(r, 250));
    }
  } finally {
    view.stop();
  }
}

/**
 * The job that follows a load writes the dataset's .npy files to the local R2:
 * wait for it while the dev server is still up, so that `npm run dev` serves
 * exports from R2 afterwards. The run succeeded either way; without the files
 * exports read D1.
 */
async function awaitExports(url: string, dataset: string, completedAt: number, timeoutMs: number): Promise<void> {
  const t0 = completedAt;
  for (;;) {
    const res = await fetch(`${url}/datasets/${encodeURIComponent(dataset)}`);
    const view = res.ok ? ((await res.json()) as { exportsStored?: boolean | null }) : undefined;
    // A Worker without exports in R2, or without a bucket bound: downloads read D1, nothing to wait for.
    if (view?.exportsStored === undefined || view.exportsStored === null) return;
    if (view.exportsStored) {
      console.log(
        `exports: the export files written to local R2 ${((Date.now() - t0) / 1000).toFixed(1)} s after the run`,
      );
      return;
    }
    if (Date.now() - t0 > timeoutMs) {
      console.warn(
        `exports: not written to R2 within ${timeoutMs / 1000} s; downloads read D1 until a later run's are`,
      );
      return;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

const named = (run: RunView, dataset: string | undefined) =>
  dataset === undefined ? run.id : `${run.id} (${dataset})`;

function printFailure(run: RunView, dataset: string | undefined): void {
  console.error(`run ${named(run, dataset)} failed after ${(run.durationMs / 1000).toFixed(1)} s: ${run.error}`);
}

function printSummary(run: RunView, stats: Stats, dbFile: string | undefined, opts: EtlOptions): void {
  console.log(`run ${named(run, opts.named)} complete in ${(run.durationMs / 1000).toFixed(1)} s`);
  console.log(summaryTable(run, stats, dbFile, process.stdout.isTTY, opts.named));
  // `images` is a view over every dataset loaded: a named one is picked out of it.
  const where = opts.named === undefined ? "" : ` WHERE dataset = '${opts.named}'`;
  console.log(
    `query: npx wrangler d1 execute images --local --command "SELECT split, label, COUNT(*) FROM images${where} GROUP BY 1, 2"`,
  );
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof UsageError) {
      console.error(`etl: ${err.message}\n\n${USAGE}`);
      process.exit(2);
    }
    console.error(`etl: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
