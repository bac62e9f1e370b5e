/**
 * The Worker on this machine, inside this Node process: wrangler's
 * `unstable_startWorker` runs it under Miniflare exactly as `wrangler dev`
 * does (same bundle, bindings and .dev.vars), on the same local state
 * (`.wrangler/state`, or `--persist-to`) that `npm run dev` and
 * `wrangler d1 execute images --local` use. The D1 migrations are applied
 * through that runtime's own D1 binding, so one runtime start replaces a
 * `wrangler d1 migrations apply` process, a `wrangler d1 execute` process and
 * a `wrangler dev` process, each of which started its own.
 */
import { createWriteStream } from "node:fs";
import { mkdir, readdir, readFile, rm } from "node:fs/promises";
import module, { createRequire } from "node:module";
import { freePort } from "./dev-server";
import { isAlive } from "./state-lock";
import { dirname, join } from "node:path";

/** The part of a D1 binding the scripts use (Miniflare's binding, seen from Node). */
export interface D1Statement {
  bind(...values: unknown[]): D1Statement;
  all<T = Record<string, unknown>>(): Promise<{ results: T[] }>;
  run(): Promise<unknown>;
}
export interface LocalD1 {
  prepare(sql: string): D1Statement;
  batch(statements: D1Statement[]): Promise<unknown[]>;
}

export interface LocalWorker {
  readonly url: string;
  readonly logFile: string;
  /** The Worker's D1 binding. Reads through it wait while the runtime is busy, as requests do. */
  readonly db: LocalD1;
  /** Whether wrangler.toml binds an R2 bucket for the exports (EXPORTS). */
  readonly exportsBucket: boolean;
  stop(): Promise<void>;
}

/** Wrangler's migrations table and its columns (`wrangler d1 migrations apply` creates the same). */
const MIGRATIONS_TABLE = "d1_migrations";

/**
 * Apply `dir`'s migrations that `db` has not recorded, in file-name order,
 * each with its record as `wrangler d1 migrations apply` writes it, so either
 * can apply the next one after the other. All of them go in one batch (one
 * transaction): a fresh state takes one round trip instead of one per file,
 * and a failing migration leaves none of them applied. Returns the names applied.
 */
export async function applyMigrations(db: LocalD1, dir: string, split: (sql: string) => string[]): Promise<string[]> {
  await db
    .prepare(
      `CREATE TABLE IF NOT EXISTS "${MIGRATIONS_TABLE}"(id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT UNIQUE, applied_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP NOT NULL)`,
    )
    .run();
  const { results } = await db.prepare(`SELECT name FROM "${MIGRATIONS_TABLE}" ORDER BY id`).all<{ name: string }>();
  const applied = new Set(results.map((r) => r.name));
  const pending = (await readdir(dir)).filter((f) => f.endsWith(".sql") && !applied.has(f)).sort();
  const statements: D1Statement[] = [];
  for (const name of pending) {
    const sql = `${await readFile(join(dir, name), "utf8")}\nINSERT INTO "${MIGRATIONS_TABLE}" (name) VALUES ('${name.replaceAll("'", "''")}');`;
    statements.push(...split(sql).map((q) => db.prepare(q)));
  }
  if (statements.length > 0) await db.batch(statements);
  return pending;
}

/** `.<blob id>.<pid of the writing workerd>.<n>.tmp`: a blob being written to a local R2 bucket's `blobs` directory. */
const UPLOAD_TEMP = /^\..+\.(\d+)\.\d+\.tmp$/;

/**
 * Miniflare stops its runtime with SIGKILL, and an R2 put cut short leaves
 * the blob it was writing as a temporary file that nothing will ever read or
 * delete. When `npm run etl` stops, the export job that follows a load is
 * usually writing one (up to a whole .npy), so those are deleted here: only
 * the ones whose writer has exited, as a `npm run dev` on the same state may
 * be writing its own. Returns the files deleted.
 */
export async function removeCutUploads(stateDir: string): Promise<string[]> {
  const r2 = join(stateDir, "v3", "r2");
  const removed: string[] = [];
  for (const bucket of await readdir(r2).catch(() => [] as string[])) {
    const blobs = join(r2, bucket, "blobs");
    for (const name of await readdir(blobs).catch(() => [] as string[])) {
      const pid = UPLOAD_TEMP.exec(name)?.[1];
      if (pid === undefined || isAlive(Number(pid))) continue;
      await rm(join(blobs, name), { force: true });
      removed.push(join(blobs, name));
    }
  }
  return removed;
}

/**
 * wrangler is one 15 MB CommonJS file, loaded only when a Worker starts (--list
 * and --help do without). require() takes it without tsx's ESM loader, and
 * Node's compile cache keeps its bytecode between runs: about 1 s less CPU
 * than import() (1.4–1.7 s against 2.3–2.9 s, five runs each).
 */
function loadWrangler(): typeof import("wrangler") {
  module.enableCompileCache?.();
  return createRequire(import.meta.url)("wrangler") as typeof import("wrangler");
}

/**
 * Stops the esbuild service process that wrangler bundles with, so that the
 * next Worker start begins a new one. A Ctrl-C in a terminal signals the
 * whole process group, that process too, and esbuild never replaces a service
 * that died: `npm run etl` starts a second Worker after one (to abandon its run).
 */
function stopBundler(): Promise<void> {
  const wranglers = createRequire(createRequire(import.meta.url).resolve("wrangler"));
  return (wranglers("esbuild") as typeof import("esbuild")).stop();
}

/**
 * What `unstable_startWorker` keeps of its Miniflare instance: the first
 * runtime controller is the local one, and its `mf` is set once the first
 * bundle has started. Checked, so that a wrangler that moves it fails here
 * with a message rather than later with a TypeError.
 */
interface MiniflareHandle {
  readonly ready: Promise<URL>;
  getD1Database(binding: string, worker?: string): Promise<LocalD1>;
}
async function runtimeMiniflare(raw: unknown, deadline: number): Promise<MiniflareHandle> {
  const local = (raw as { runtimes?: { mf?: MiniflareHandle }[] }).runtimes?.[0];
  if (local === undefined) throw new Error("wrangler's startWorker has no local runtime (DevEnv.runtimes[0])");
  while (local.mf === undefined) {
    if (Date.now() > deadline) throw new Error("wrangler's local runtime did not start its Miniflare in time");
    await new Promise((r) => setTimeout(r, 20));
  }
  await local.mf.ready;
  return local.mf;
}

const STOP_SIGNALS: readonly NodeJS.Signals[] = ["SIGINT", "SIGTERM"];

/**
 * Miniflare answers SIGINT and SIGTERM by killing its runtime and exiting at
 * once, which leaves the run it was loading active in D1 for a lease. The
 * caller decides what they mean (`npm run etl` abandons its run first), so
 * the listeners added since `before` go. Its `exit` hook, which kills the
 * runtime however the process ends, stays.
 */
function leaveSignalsToCaller(before: readonly Set<unknown>[]): void {
  STOP_SIGNALS.forEach((signal, i) => {
    for (const listener of process.listeners(signal)) {
      if (!before[i]!.has(listener)) process.removeListener(signal, listener);
    }
  });
}

/** The caller must handle SIGINT and SIGTERM (leaveSignalsToCaller). */
export async function startLocalWorker(opts: {
  vars?: Record<string, string>;
  /** Instead of .wrangler/state (tests use a fresh directory). */
  persistTo?: string;
  logFile: string;
  readyTimeoutMs?: number;
}): Promise<LocalWorker> {
  const deadline = Date.now() + (opts.readyTimeoutMs ?? 60_000);
  await mkdir(dirname(opts.logFile), { recursive: true });
  // Appended to, not replaced: an error message that points to the log must still find its lines after the next
  // command. A Worker's log is a few lines (errors, mostly), so the file grows slowly; each start is marked.
  const log = createWriteStream(opts.logFile, { flags: "a" });
  log.write(`--- ${new Date().toISOString()} Worker started by pid ${process.pid}\n`);
  // wrangler's own notices (its banner, a `Request.cf` it cannot fetch offline) would bury the progress; errors stay.
  process.env.WRANGLER_LOG ??= "error";
  process.env.WRANGLER_SEND_METRICS ??= "false";
  // Miniflare's local trace collector and data explorer serve `wrangler dev`'s pages, which this command has none
  // of; the collector's work would share the runtime's one thread with the load.
  process.env.X_LOCAL_OBSERVABILITY ??= "false";
  process.env.X_LOCAL_EXPLORER ??= "false";
  const { unstable_startWorker, unstable_splitSqlQuery } = loadWrangler();
  const signalListeners = STOP_SIGNALS.map((s) => new Set<unknown>(process.listeners(s)));
  const worker = await unstable_startWorker({
    config: "wrangler.toml",
    bindings: Object.fromEntries(
      Object.entries(opts.vars ?? {}).map(([k, v]) => [k, { type: "plain_text" as const, value: v }]),
    ),
    dev: {
      ...(opts.persistTo ? { persist: opts.persistTo } : {}),
      server: { hostname: "127.0.0.1", port: await freePort() },
      inspector: false,
      watch: false,
      // The Worker's console output goes to the log file, as `wrangler dev`'s did when the CLI ran it.
      structuredLogsHandler: ({ level, message }: { level: string; message: string }) =>
        log.write(`${new Date().toISOString()} ${level} ${message}\n`),
    },
  } as Parameters<typeof unstable_startWorker>[0]);
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await worker.dispose();
    await stopBundler();
    await removeCutUploads(opts.persistTo ?? join(".wrangler", "state"));
    await new Promise((ok) => log.end(ok));
  };
  try {
    const mf = await runtimeMiniflare(worker.raw, deadline);
    leaveSignalsToCaller(signalListeners);
    const db = await mf.getD1Database("DB", worker.config.name);
    await applyMigrations(db, "migrations", unstable_splitSqlQuery);
    const url = (await worker.url).origin;
    const exportsBucket = (worker.config.bindings ?? {}).EXPORTS?.type === "r2_bucket";
    return { url, logFile: opts.logFile, db, exportsBucket, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
