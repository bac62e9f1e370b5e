/**
 * `npm run etl` as a child process, for the CLI tests, started as package.json
 * starts it (`node --import tsx scripts/etl.ts`): its exit code and output,
 * never a throw; or, to signal it while it runs, the child itself.
 */
import { execFile, spawn } from "node:child_process";
import { constants } from "node:os";
import { promisify } from "node:util";

const run = promisify(execFile);
const COMMAND = ["--import", "tsx", "scripts/etl.ts"];

export interface EtlResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export async function etl(args: string[]): Promise<EtlResult> {
  try {
    const { stdout, stderr } = await run(process.execPath, [...COMMAND, ...args], { maxBuffer: 16 * 1024 * 1024 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

export interface EtlChild {
  readonly pid: number;
  /** Its output so far. */
  readonly stdout: string;
  readonly stderr: string;
  /** The first match of `re` in its output, once it has printed one; throws if it exits first or after `timeoutMs`. */
  waitFor(re: RegExp, timeoutMs?: number, from?: "stdout" | "stderr"): Promise<RegExpMatchArray>;
  /** `signal` to the command alone, or to its process group as a terminal's Ctrl-C does (the runtime included). */
  kill(signal: NodeJS.Signals, group?: boolean): void;
  /** Its exit code (a signal's death is 128 + its number, as a shell says, and `signal`), output, and when it exited. */
  readonly exited: Promise<EtlResult & { readonly signal: NodeJS.Signals | null; readonly at: number }>;
}

/**
 * The command in a process group of its own, as a shell runs a foreground
 * command; `npm`: through `npm run etl`, as a user types it (the pid is npm's).
 */
export function startEtl(args: string[], opts: { npm?: boolean } = {}): EtlChild {
  const [command, argv] = opts.npm
    ? ["npm", ["run", "--silent", "etl", "--", ...args]]
    : [process.execPath, [...COMMAND, ...args]];
  const child = spawn(command, argv, { detached: true, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<EtlResult & { signal: NodeJS.Signals | null; at: number }>((ok) =>
    child.once("close", (code, signal) =>
      ok({ code: code ?? 128 + constants.signals[signal!], signal, stdout, stderr, at: Date.now() }),
    ),
  );
  let done = false;
  void exited.then(() => (done = true));
  return {
    pid: child.pid!,
    get stdout() {
      return stdout;
    },
    get stderr() {
      return stderr;
    },
    async waitFor(re, timeoutMs = 60_000, from = "stdout") {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const m = re.exec(from === "stdout" ? stdout : stderr);
        if (m) return m;
        if (done || Date.now() > deadline)
          throw new Error(`${done ? "exited" : "still running"} without printing ${re}:\n${stdout}\n${stderr}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    kill(signal, group = false) {
      process.kill(group ? -child.pid! : child.pid!, signal);
    },
    exited,
  };
}
