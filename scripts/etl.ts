/**
 * `npm run etl`: the whole ETL on this machine, in one command. Applies the
 * migrations to the local D1, starts the Worker with `wrangler dev` (Miniflare:
 * local D1 and Queues, no Cloudflare account), starts one run, follows it
 * to the end and prints a summary. Exit code 0 only for a complete run.
 *
 *   npm run etl                          # downloads from the official location
 *   npm run etl -- --source DIR|URL      # the four .gz files from a directory or base URL
 *   npm run etl -- --force               # reload even if the archives are unchanged
 */
import { parseArgs } from "node:util";
import { randomBytes } from "node:crypto";
import { serveArchives } from "./lib/archive-server";
import { applyLocalMigrations, localD1, startDevServer, type DevServer } from "./lib/dev-server";
import { progressView } from "./lib/progress";
import { localDatabaseFile, summaryTable } from "./lib/summary";
import type { ActiveRunConflict, ErrorBody, RunResponse, RunView, Stats } from "../src/http/schemas";

const USAGE = "usage: npm run etl -- [--source DIR|URL] [--force] [--timeout SECONDS] [--persist-to DIR]";

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      source: { type: "string" },
      force: { type: "boolean", default: false },
      timeout: { type: "string", default: "1800" },
      // wrangler's own flag: local state somewhere other than .wrangler/state (the CLI test uses a fresh one).
      "persist-to": { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const timeoutMs = Number(values.timeout) * 1000;
  if (!(timeoutMs > 0)) throw new Error(`--timeout must be a positive number of seconds\n${USAGE}`);

  const archives =
    values.source && !/^https?:\/\//.test(values.source) ? await serveArchives(values.source) : undefined;
  const source = archives?.url ?? values.source;
  let dev: DevServer | undefined;
  try {
    const persistTo = values["persist-to"];
    await applyLocalMigrations({ persistTo });
    // Local queues do not outlive the dev server that held them: a run left
    // active by an interrupted `npm run etl` can never finish, so close it, and say so.
    const interrupted = await localD1<{ id: string; status: string; train_loaded: number; test_loaded: number }>(
      "SELECT id, status, train_loaded, test_loaded FROM runs WHERE status IN ('queued', 'extracting', 'loading')",
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
        `run ${r.id} was still ${r.status} (${r.train_loaded} train, ${r.test_loaded} test images loaded) when an earlier dev server stopped: its queued work is lost with it, so it is marked failed and a new run starts now. The dataset in D1 is the last complete one, untouched.`,
      );
    }
    const token = randomBytes(24).toString("hex");
    dev = await startDevServer({ vars: { ETL_TOKEN: token }, persistTo });
    console.log(`worker: ${dev.url} (log: ${dev.logFile})`);

    const res = await fetch(`${dev.url}/runs`, {
      method: "POST",
      headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
      body: JSON.stringify({ trigger: "cli", force: values.force, ...(source ? { source } : {}) }),
    });
    const started = (await res.json()) as Partial<RunResponse & ErrorBody & ActiveRunConflict>;
    if (!res.ok || !started.run)
      throw new Error(
        `could not start a run: HTTP ${res.status}: ${started.error ?? "no detail"}${started.hint ? `\n${started.hint}` : ""}`,
      );
    console.log(`run ${started.run.id}: source ${started.run.source}`);

    const run = await follow(dev.url, started.run.id, timeoutMs);
    // Counts come from the Worker's read API while it still runs: the same D1 the run wrote.
    const stats = (await (await fetch(`${dev.url}/stats`)).json()) as Stats;
    printSummary(run, stats, await localDatabaseFile(persistTo));
    return run.status === "complete" ? 0 : 1;
  } finally {
    await dev?.stop();
    await archives?.close();
  }
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

function printSummary(run: RunView, stats: Stats, dbFile: string | undefined): void {
  const seconds = (run.durationMs / 1000).toFixed(1);
  if (run.status !== "complete") {
    console.error(`run ${run.id} failed after ${seconds} s: ${run.error}`);
    return;
  }
  console.log(`run ${run.id} complete in ${seconds} s`);
  console.log(summaryTable(run, stats, dbFile, process.stdout.isTTY));
  console.log(
    'query: npx wrangler d1 execute images --local --command "SELECT split, label, COUNT(*) FROM images GROUP BY 1, 2"',
  );
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`etl: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
