/**
 * The export job's pass, before and after every format was exported: one
 * line per dataset size and mode from bench/materialise-probe.ts (a child
 * process each, with the real t10k images as the rows). CPU and wall
 * seconds, and the memory the pass holds beyond the process's own.
 *
 *   npx tsx bench/materialise.ts [TRAIN TEST]...   (default: Fashion-MNIST's 60000 10000)
 */
import { bundle, probe } from "./lib/child";

const T10K = "../shared/fashion-mnist/t10k-images-idx3-ubyte.gz";
const args = process.argv.slice(2).map(Number);
const sizes: [number, number][] = [];
for (let i = 0; i + 1 < args.length; i += 2) sizes.push([args[i]!, args[i + 1]!]);
if (sizes.length === 0) sizes.push([60_000, 10_000]);

const script = await bundle("bench/materialise-probe.ts");
for (const [train, test] of sizes)
  for (const mode of ["before", "after"])
    console.log(JSON.stringify(await probe(script, [mode, String(train), String(test), T10K])));
