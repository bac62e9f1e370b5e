/**
 * Two versions of the Worker, the same full ETL, alternating: for a change
 * below the bench (a layout, a statement shape) judged on adjacent runs of the
 * same machine rather than on figures from different times. `--before` is a
 * tree of the other version (e.g. `git archive REV | tar -x -C DIR`, with
 * DIR/node_modules a link to this one's); this tree is the other. Each is
 * bundled once (frozen.ts) and served by its own `wrangler dev` with its own
 * migrations and state, both started before timing; one untimed run each
 * warms them.
 *
 *   npx tsx bench/ab-etl.ts --before DIR [--data DIR] [--reps N]
 */
import { randomBytes } from "node:crypto";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { removeEtlState, startEtl, type EtlServer } from "./lib/etl";
import { summarise } from "./lib/stats";

const { values } = parseArgs({
  options: {
    before: { type: "string" },
    data: { type: "string", default: "../shared/fashion-mnist" },
    reps: { type: "string", default: "5" },
  },
});
if (!values.before) throw new Error("--before DIR is required");
const dataDir = resolve(values.data);
const reps = Number(values.reps);
const here = process.cwd();
const token = randomBytes(24).toString("hex");

/** startEtl bundles src/index.ts and reads wrangler.toml relative to the working directory. */
async function serverIn(dir: string): Promise<EtlServer> {
  process.chdir(dir);
  try {
    return await startEtl({ dataDir, vars: {}, token, metered: false });
  } finally {
    process.chdir(here);
  }
}

const servers = { before: await serverIn(resolve(values.before)), after: await serverIn(here) };
const times: Record<keyof typeof servers, number[]> = { before: [], after: [] };
try {
  for (const s of Object.values(servers)) await s.run();
  for (let i = 0; i < reps; i++) {
    // Alternate which goes first, so neither always follows the other's writes.
    const order = i % 2 === 0 ? (["before", "after"] as const) : (["after", "before"] as const);
    for (const k of order) {
      const t = await servers[k].run();
      times[k].push(t.seconds);
    }
    console.log(
      `pair ${i + 1}/${reps}: before ${times.before.at(-1)!.toFixed(2)} s, after ${times.after.at(-1)!.toFixed(2)} s`,
    );
  }
} finally {
  for (const s of Object.values(servers)) {
    await s.stop();
    await removeEtlState(s);
  }
}
const b = summarise(times.before);
const a = summarise(times.after);
console.log(
  `before median ${b.median.toFixed(2)} s (${b.min.toFixed(2)}–${b.max.toFixed(2)}), after median ${a.median.toFixed(2)} s (${a.min.toFixed(2)}–${a.max.toFixed(2)}); after / before ${(a.median / b.median).toFixed(2)}`,
);
