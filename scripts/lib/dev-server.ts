/**
 * Drives wrangler as separate processes: migrations, `d1 execute`, and a
 * `wrangler dev` child process, as the tests and the bench use them (a test
 * can SIGKILL the process group). `npm run etl` runs its Worker in-process
 * instead (local-worker.ts).
 */
import { spawn, execFile } from "node:child_process";
import { createWriteStream } from "node:fs";
import { mkdir } from "node:fs/promises";
import { createServer } from "node:net";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);
const wrangler = join(process.cwd(), "node_modules", ".bin", "wrangler");

/** `persistTo`: a directory for the local D1 and Queues state instead of .wrangler/state (tests use a fresh one). */
const persistArgs = (persistTo?: string): string[] => (persistTo ? ["--persist-to", persistTo] : []);

/** `config`/`database`: another wrangler config and its D1 database (the bench's own Workers). */
export async function applyLocalMigrations(
  opts: { persistTo?: string; config?: string; database?: string } = {},
): Promise<void> {
  const config = opts.config ? ["--config", opts.config] : [];
  const args = [
    "d1",
    "migrations",
    "apply",
    opts.database ?? "images",
    "--local",
    ...config,
    ...persistArgs(opts.persistTo),
  ];
  await run(wrangler, args, { env: { ...process.env, CI: "true" } });
}

export async function localD1<T = Record<string, unknown>>(
  command: string,
  opts: { persistTo?: string } = {},
): Promise<T[]> {
  const args = ["d1", "execute", "images", "--local", ...persistArgs(opts.persistTo), "--json", "--command", command];
  const { stdout } = await run(wrangler, args, { maxBuffer: 64 * 1024 * 1024 });
  const parsed = JSON.parse(stdout) as { results: T[] }[];
  return parsed.flatMap((p) => p.results);
}

/** A port on 127.0.0.1 that nothing listens on right now. */
export async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((ok) => srv.listen(0, "127.0.0.1", ok));
  const port = (srv.address() as { port: number }).port;
  await new Promise((ok) => srv.close(ok));
  return port;
}

export interface DevServer {
  readonly url: string;
  readonly logFile: string;
  readonly pid: number;
  stop(): Promise<void>;
}

export async function startDevServer(
  opts: {
    vars?: Record<string, string>;
    readyTimeoutMs?: number;
    persistTo?: string;
    /** Another wrangler config than ./wrangler.toml (the bench's floor worker). */
    config?: string;
    /** Answers 200 once the Worker is up. */
    readyPath?: string;
  } = {},
): Promise<DevServer> {
  const port = await freePort();
  await mkdir(".wrangler", { recursive: true });
  const logFile = opts.persistTo ? join(opts.persistTo, "dev.log") : join(".wrangler", "etl-dev.log");
  const log = createWriteStream(logFile);
  const vars = Object.entries(opts.vars ?? {}).flatMap(([k, v]) => ["--var", `${k}:${v}`]);
  const child = spawn(
    wrangler,
    [
      "dev",
      "--ip",
      "127.0.0.1",
      "--port",
      String(port),
      "--show-interactive-dev-session=false",
      ...(opts.config ? ["--config", opts.config] : []),
      ...persistArgs(opts.persistTo),
      ...vars,
    ],
    {
      env: { ...process.env, WRANGLER_SEND_METRICS: "false" },
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    },
  );
  child.stdout.pipe(log);
  child.stderr.pipe(log);
  const url = `http://127.0.0.1:${port}`;
  const exited = new Promise<number | null>((ok) => child.once("exit", ok));
  const stop = async () => {
    if (child.exitCode === null) {
      try {
        process.kill(-child.pid!, "SIGTERM");
      } catch {}
      await Promise.race([exited, new Promise((ok) => setTimeout(ok, 5000))]);
      if (child.exitCode === null) {
        try {
          process.kill(-child.pid!, "SIGKILL");
        } catch {}
      }
    }
    log.end();
  };
  const deadline = Date.now() + (opts.readyTimeoutMs ?? 60_000);
  for (;;) {
    if (child.exitCode !== null) throw new Error(`wrangler dev exited with code ${child.exitCode}; see ${logFile}`);
    try {
      const res = await fetch(`${url}${opts.readyPath ?? "/runs?limit=1"}`);
      if (res.ok) break;
    } catch {}
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`wrangler dev did not answer within ${(opts.readyTimeoutMs ?? 60_000) / 1000} s; see ${logFile}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return { url, logFile, pid: child.pid!, stop };
}
