/**
 * The seed's script, the baseline every ratio is over: `python3 seed_baseline.py
 * DATA_DIR OUT_DB` (numpy + sqlite3, one transaction), which prints
 * `rows=… seconds=…` (its own time, interpreter start excluded).
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";

const run = promisify(execFile);

export interface SeedRun {
  /** The script's own `seconds=`. */
  readonly seconds: number;
  /** The process's wall time, interpreter start included: what the whole command is compared with. */
  readonly wallSeconds: number;
  readonly rows: number;
}

export async function seedOnce(script: string, dataDir: string, outDb: string): Promise<SeedRun> {
  const t0 = performance.now();
  const { stdout } = await run("python3", [script, dataDir, outDb]);
  const wallSeconds = (performance.now() - t0) / 1000;
  const m = /rows=(\d+) seconds=([\d.]+)/.exec(stdout);
  if (!m) throw new Error(`${script} printed no "rows=… seconds=…": ${stdout}`);
  return { rows: Number(m[1]), seconds: Number(m[2]), wallSeconds };
}
