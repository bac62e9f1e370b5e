/**
 * Refusing a load that cannot fit, before it starts: D1 caps a database's
 * size, and a load writes a second copy of its dataset beside the one it
 * replaces until the swap. Failing halfway would waste the load and leave
 * nothing better; failing up front says what is needed.
 */
import { SPLITS, type Shape, type Split } from "../core/datasets";
import { EtlError } from "../core/errors";
import { estimateTableBytes } from "../db/tables";
import type { Config } from "./config";

/** Bytes for people: GB to two places, or MB below a GB. */
export const describeBytes = (bytes: number): string =>
  bytes >= 1e9 ? `${(bytes / 1e9).toFixed(2)} GB` : `${(bytes / 1e6).toFixed(bytes >= 1e7 ? 0 : 1)} MB`;

/** The bytes a dataset of these counts and shape takes in D1, as float32 pixels. */
export function datasetBytes(counts: Readonly<Record<Split, number>>, shape: Shape): number {
  const pixelBytes = shape.rows * shape.cols * shape.channels * 4;
  return SPLITS.reduce((n, s) => n + estimateTableBytes(counts[s], pixelBytes), 0);
}

/** Throws a (non-retryable) EtlError if the database cannot hold the run's copy beside what it holds now. */
export async function checkCapacity(
  db: D1Database,
  dataset: string,
  counts: Readonly<Record<Split, number>>,
  shape: Shape,
  cfg: Pick<Config, "maxDatabaseBytes">,
): Promise<void> {
  const need = datasetBytes(counts, shape);
  const result = await db.prepare("SELECT 1").run();
  const now = result.meta.size_after ?? 0;
  if (now + need <= cfg.maxDatabaseBytes) return;
  const images = counts.train + counts.test;
  throw new EtlError(
    `${dataset} needs about ${describeBytes(need)} in D1 for its ${images.toLocaleString("en-US")} images of ${shape.rows}×${shape.cols}×${shape.channels} as float32, loaded beside the copy it replaces; the database holds ${describeBytes(now)} of at most ${describeBytes(cfg.maxDatabaseBytes)} (D1_MAX_BYTES), so it cannot fit. Nothing was loaded`,
  );
}
