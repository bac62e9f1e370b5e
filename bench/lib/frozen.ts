/**
 * A Worker bundled once into a directory of its own, and a copy of its wrangler
 * config that runs that bundle as it is (`no_bundle`). `wrangler dev` reloads
 * the Worker whenever a file it bundled changes, which kills the run in
 * progress, and src/ may be edited while the bench runs: a frozen bundle is
 * immune to that. Relative paths in the config (migrations) are made absolute.
 */
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { build } from "esbuild";
import { parse, stringify } from "smol-toml";

export async function frozenConfig(opts: {
  /** The Worker's entry module. */
  readonly entry: string;
  /** Its wrangler config (vars, bindings, queues, migrations). */
  readonly config: string;
  /** Where the bundle and the config copy go. */
  readonly dir: string;
  /** Top-level settings to add to the copy (e.g. compatibility_flags). */
  readonly extra?: Record<string, unknown>;
}): Promise<string> {
  // A directory of its own: wrangler watches the one the unbundled Worker is in.
  const bundle = join(opts.dir, "bundle", "worker.mjs");
  await mkdir(dirname(bundle), { recursive: true });
  await build({
    // esbuild's service keeps the working directory it started in: a caller that moved (bench/ab-etl.ts) means its own.
    absWorkingDir: process.cwd(),
    entryPoints: [opts.entry],
    outfile: bundle,
    bundle: true,
    format: "esm",
    target: "es2024",
    platform: "browser",
    // As wrangler resolves packages for workerd.
    conditions: ["workerd", "worker", "browser"],
    external: ["cloudflare:*", "node:*"],
    logLevel: "error",
  });
  const toml = parse(await readFile(opts.config, "utf8")) as Record<string, unknown> & {
    d1_databases?: { migrations_dir?: string }[];
  };
  for (const d of toml.d1_databases ?? []) {
    if (d.migrations_dir) d.migrations_dir = resolve(dirname(opts.config), d.migrations_dir);
  }
  const config = join(opts.dir, "wrangler.toml");
  await writeFile(config, stringify({ ...toml, ...opts.extra, main: resolve(bundle), no_bundle: true }));
  return config;
}
