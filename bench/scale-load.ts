/**
 * Optional, not part of `npm run bench`: a whole local load of the scaling
 * section's synthetic set (bench/lib/synthetic.ts: EMNIST ByClass's size by
 * default) through the product Worker under `wrangler dev` (a frozen bundle,
 * local D1 and Queues, a state directory of its own), as a client starts it:
 * POST /runs for the registry dataset from a local source, polled to the end.
 * Shows the job segments (JOB_MAX_CHUNKS), their hand-over and the swap of a
 * dataset of that size working end to end in workerd, and what it takes
 * locally. Miniflare delivers one chunk batch at a time, so the time is local
 * D1's, not production's.
 *
 *   npx tsx bench/scale-load.ts [--data DIR] [--scale F] [--timeout SECONDS]
 */
import { randomBytes } from "node:crypto";
import { readdir, readFile, rm, stat } from "node:fs/promises";
import { basename, join } from "node:path";
import { parseArgs } from "node:util";
import { registryEntry } from "../src/core/registry";
import { liveTable } from "../src/db/tables";
import { removeEtlState, startEtl } from "./lib/etl";
import { SCALE_DATASET } from "./lib/scaling";
import { syntheticDataset } from "./lib/synthetic";

const { values } = parseArgs({
  options: {
    data: { type: "string", default: "../shared/fashion-mnist" },
    scale: { type: "string", default: "1" },
    timeout: { type: "string", default: "3600" },
  },
});
const spec = registryEntry(SCALE_DATASET)!;
const log = (s: string) => console.log(s);

log(`generating a synthetic ${SCALE_DATASET} set (${values.scale}× its size) …`);
const big = await syntheticDataset(values.data, spec, Number(values.scale));
const files = spec.splits.flatMap((s) => [s.images.file, s.labels.file]).map((f) => basename(f));
try {
  const etl = await startEtl({
    dataDir: big.dir,
    files,
    vars: {},
    token: randomBytes(24).toString("hex"),
    metered: false,
  });
  let ok = false;
  try {
    log(`loading ${big.counts.train + big.counts.test} images through the local Worker …`);
    const t = await etl.run({ dataset: SCALE_DATASET, force: true, timeoutSeconds: Number(values.timeout) });
    const jobs = (await readFile(etl.dev.logFile, "utf8")).match(/the next job sends the rest/g)?.length ?? 0;
    log(
      JSON.stringify({
        rows: t.rows,
        seconds: Math.round(t.seconds),
        extractSeconds: Math.round(t.extractSeconds),
        chunks: t.chunksTotal,
        jobs: jobs + 1,
      }),
    );
    ok = true;
  } finally {
    await etl.stop();
  }
  if (ok) {
    const [n] = await etl.d1<{ train: number; test: number; bad: number }>(
      `SELECT (SELECT COUNT(*) FROM ${liveTable(SCALE_DATASET, "train")}) AS train,
              (SELECT COUNT(*) FROM ${liveTable(SCALE_DATASET, "test")}) AS test,
              (SELECT COUNT(*) FROM images WHERE dataset = '${SCALE_DATASET}' AND split = 'test' AND label <> idx % ${spec.classes!.length}) AS bad`,
    );
    let bytes = 0;
    for (const f of await readdir(etl.persistTo, { recursive: true }))
      if (f.endsWith(".sqlite")) bytes += (await stat(join(etl.persistTo, f))).size;
    log(
      `in local D1: ${n?.train} train + ${n?.test} test rows, ${n?.bad} test labels other than generated; database files ${(bytes / 1e9).toFixed(2)} GB`,
    );
  }
  await removeEtlState(etl);
} finally {
  await rm(big.dir, { recursive: true, force: true });
}
