/**
 * `npm run etl -- --source DIR` timed whole from outside, as a user runs it:
 * npm, the CLI's start-up, migrations, the dev server, the run and whatever
 * the command waits for after it, in a fresh state directory (--persist-to),
 * so every time is a first load. Exit code 0 is required (a complete run).
 */
import { spawn } from "node:child_process";
import { createWriteStream } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

export async function wholeCommandOnce(dataDir: string, n: number): Promise<number> {
  const state = await mkdtemp(join(tmpdir(), "idx-etl-whole-"));
  await mkdir(join("bench", "out"), { recursive: true });
  const logFile = join("bench", "out", `whole-etl-${n}.log`);
  const log = createWriteStream(logFile);
  try {
    const t0 = performance.now();
    const child = spawn("npm", ["run", "etl", "--", "--source", dataDir, "--persist-to", state], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    child.stdout.pipe(log);
    child.stderr.pipe(log);
    const code = await new Promise<number | null>((ok, fail) => {
      child.once("error", fail);
      child.once("exit", ok);
    });
    const seconds = (performance.now() - t0) / 1000;
    if (code !== 0) throw new Error(`npm run etl exited with ${code}; see ${logFile}`);
    return seconds;
  } finally {
    log.end();
    await rm(state, { recursive: true, force: true });
  }
}
