/**
 * The memory probes run in their own Node process, with --expose-gc and nothing
 * else loaded. They are bundled first with esbuild, as wrangler bundles the
 * Worker: that also resolves CommonJS dependencies (crc-32) the way the Worker
 * build does, which Node's ESM loader alone does not.
 */
import { execFile } from "node:child_process";
import { mkdir } from "node:fs/promises";
import { basename, join } from "node:path";
import { promisify } from "node:util";
import { build } from "esbuild";

const run = promisify(execFile);
const OUT = join("bench", "out");

export async function bundle(entry: string): Promise<string> {
  await mkdir(OUT, { recursive: true });
  const outfile = join(OUT, basename(entry).replace(/\.ts$/, ".mjs"));
  await build({
    entryPoints: [entry],
    outfile,
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node22",
    logLevel: "error",
  });
  return outfile;
}

/** Run a bundled probe (with extra Node flags, e.g. a heap cap); its last stdout line is JSON. */
export async function probe<T>(script: string, args: readonly string[], nodeFlags: readonly string[] = []): Promise<T> {
  const { stdout } = await run(process.execPath, ["--expose-gc", ...nodeFlags, script, ...args], {
    maxBuffer: 16 * 1024 * 1024,
  });
  const last = stdout.trim().split("\n").pop() ?? "";
  try {
    return JSON.parse(last) as T;
  } catch {
    throw new Error(`${script} printed no JSON result: ${stdout.slice(-500)}`);
  }
}
