/**
 * The local D1 write floor alone, for exploring layouts and transaction sizes
 * without the rest of the bench:
 *
 *   npx tsx bench/floor/run.ts [--reps N] [VARIANT ...]
 *
 * A VARIANT is layout:mode:perTransaction[:perStatement], e.g. rowid:cte:70000
 * or wor:values:640:80; none runs the bench's own set (bench/lib/floor.ts).
 * Variants run round-robin, one warm-up round first; prints each one's median.
 */
import { parseArgs } from "node:util";
import { benchConfig } from "../lib/cost";
import {
  benchVariants,
  etlTransactions,
  startFloor,
  type FloorResult,
  type FloorVariant,
  type Layout,
  type Mode,
} from "../lib/floor";
import { summarise } from "../lib/stats";

const { values, positionals } = parseArgs({
  options: { reps: { type: "string", default: "3" }, "read-full": { type: "boolean", default: false } },
  allowPositionals: true,
});
const reps = Number(values.reps);

const variants: FloorVariant[] =
  positionals.length === 0
    ? (({ perTransaction, perStatement }) => benchVariants(perTransaction, perStatement))(
        etlTransactions(await benchConfig({})),
      )
    : positionals.map((p) => {
        const [layout, mode, perTransaction, perStatement] = p.split(":");
        return {
          name: p,
          layout: layout as Layout,
          mode: mode as Mode,
          perTransaction: Number(perTransaction),
          perStatement: perStatement ? Number(perStatement) : undefined,
          label: p,
        };
      });

const floor = await startFloor({ readFull: values["read-full"] });
try {
  const seen = new Map<string, FloorResult[]>();
  for (let rep = 0; rep <= reps; rep++) {
    for (const v of variants) {
      const r = await floor.once(v);
      console.log(
        `${rep === 0 ? "warm-up" : `rep ${rep}`} ${v.name}: ${r.seconds.toFixed(2)} s, ${r.transactions} tx, ${r.statements} stmts, rows_written ${r.rowsWritten}, db ${(r.bytes / 1e6).toFixed(1)} MB`,
      );
      if (rep > 0) seen.set(v.name, [...(seen.get(v.name) ?? []), r]);
    }
  }
  console.log("");
  for (const v of variants) {
    const rs = seen.get(v.name) ?? [];
    if (rs.length === 0) continue;
    const s = summarise(rs.map((r) => r.seconds));
    const reads = Object.entries(rs[0]!.reads)
      .map(([k, r]) => `${k} ${r.rowsRead} read/${r.rows} rows ${r.ms} ms`)
      .join("; ");
    console.log(
      `${v.name.padEnd(24)} median ${s.median.toFixed(2)} s (${s.min.toFixed(2)}–${s.max.toFixed(2)}), ${rs[0]!.transactions} tx, rows_written ${rs[0]!.rowsWritten}, ${(rs[0]!.bytes / 1e6).toFixed(1)} MB; reads: ${reads}`,
    );
  }
} finally {
  await floor.stop();
}
