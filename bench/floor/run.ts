/**
 * The floors alone, to look for a faster transaction shape than the bench's:
 *
 *   npx tsx bench/floor/run.ts [--data DIR] [--reps N] [--chunk IMAGES] [VARIANT|PART ...]
 *
 * A VARIANT is kind-perTransaction[-perStatement][-xInflight] (bench/lib/floor.ts),
 * e.g. rows-2560-100 or rows-640-50-x2, or a part of the required stack
 * (archives, queue, mirror: stack.ts); none runs the bench's set. Round robin
 * after one warm-up round; prints each one's median.
 */
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { BENCH_VARIANTS, parseVariant, STACK_PARTS, startFloor, type StackPart } from "../lib/floor";
import { loadAverage, summarise } from "../lib/stats";

const { values, positionals } = parseArgs({
  options: {
    data: { type: "string", default: "../shared/fashion-mnist" },
    reps: { type: "string", default: "3" },
    chunk: { type: "string", default: "160" },
  },
  allowPositionals: true,
});
const isPart = (name: string): name is StackPart => (STACK_PARTS as readonly string[]).includes(name);
const names = positionals.length > 0 ? positionals : BENCH_VARIANTS.map((v) => v.name);
const floor = await startFloor(resolve(values.data));
try {
  const seen = new Map<string, number[]>();
  for (let rep = 0; rep <= Number(values.reps); rep++) {
    for (const name of names) {
      let seconds: number;
      let detail: string;
      if (isPart(name)) {
        const r = await floor.stack(name, Number(values.chunk));
        [seconds, detail] = [r.seconds, `${r.cpuSeconds.toFixed(2)} CPU s, ${r.amount}`];
      } else {
        const r = await floor.once(parseVariant(name));
        [seconds, detail] = [r.seconds, `${r.transactions} tx`];
      }
      console.log(
        `${rep === 0 ? "warm-up" : `rep ${rep}`} ${name}: ${seconds.toFixed(2)} s, ${detail}, load ${loadAverage()}`,
      );
      if (rep > 0) seen.set(name, [...(seen.get(name) ?? []), seconds]);
    }
  }
  for (const name of names) {
    const s = summarise(seen.get(name)!);
    console.log(`${name.padEnd(20)} median ${s.median.toFixed(2)} s (${s.min.toFixed(2)}–${s.max.toFixed(2)})`);
  }
} finally {
  await floor.stop();
}
