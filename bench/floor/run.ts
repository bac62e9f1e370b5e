/**
 * The floors alone, to look for a faster transaction shape than the bench's:
 *
 *   npx tsx bench/floor/run.ts [--data DIR] [--reps N] [VARIANT ...]
 *
 * A VARIANT is kind-perTransaction[-perStatement][-xInflight] (bench/lib/floor.ts),
 * e.g. rows-2560-100 or rows-640-50-x2; none runs the bench's set. Round robin
 * after one warm-up round; prints each one's median.
 */
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { BENCH_VARIANTS, parseVariant, startFloor, type FillResult } from "../lib/floor";
import { loadAverage, summarise } from "../lib/stats";

const { values, positionals } = parseArgs({
  options: { data: { type: "string", default: "../shared/fashion-mnist" }, reps: { type: "string", default: "3" } },
  allowPositionals: true,
});
const variants = positionals.length > 0 ? positionals.map(parseVariant) : BENCH_VARIANTS;
const floor = await startFloor(resolve(values.data));
try {
  const seen = new Map<string, FillResult[]>();
  for (let rep = 0; rep <= Number(values.reps); rep++) {
    for (const v of variants) {
      const r = await floor.once(v);
      console.log(
        `${rep === 0 ? "warm-up" : `rep ${rep}`} ${v.name}: ${r.seconds.toFixed(2)} s, ${r.transactions} tx, load ${loadAverage()}`,
      );
      if (rep > 0) seen.set(v.name, [...(seen.get(v.name) ?? []), r]);
    }
  }
  for (const v of variants) {
    const s = summarise(seen.get(v.name)!.map((r) => r.seconds));
    console.log(`${v.name.padEnd(20)} median ${s.median.toFixed(2)} s (${s.min.toFixed(2)}–${s.max.toFixed(2)})`);
  }
} finally {
  await floor.stop();
}
