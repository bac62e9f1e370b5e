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

interface LoadingRow {
  train_expected: number;
  test_expected: number;
  train_loaded: number;
  test_loaded: number;
  image_rows: number;
  image_cols: number;
  image_channels: number;
}

/**
 * Throws a (non-retryable) EtlError if the database cannot hold the run's copy
 * beside what it holds now and what the other datasets' runs still have to
 * write: two large loads started together must not both pass the check and
 * then fill the database between them.
 */
export async function checkCapacity(
  db: D1Database,
  run: { readonly id: string; readonly dataset: string },
  counts: Readonly<Record<Split, number>>,
  shape: Shape,
  cfg: Pick<Config, "maxDatabaseBytes">,
): Promise<void> {
  const need = datasetBytes(counts, shape);
  const result = await db
    .prepare(
      `SELECT train_expected, test_expected, train_loaded, test_loaded, image_rows, image_cols, image_channels
       FROM runs WHERE status = 'loading' AND id <> ?1 AND image_rows IS NOT NULL`,
    )
    .bind(run.id)
    .all<LoadingRow>();
  const now = result.meta.size_after ?? 0;
  const pending = result.results.reduce(
    (n, r) =>
      n +
      datasetBytes(
        {
          train: Math.max(0, r.train_expected - r.train_loaded),
          test: Math.max(0, r.test_expected - r.test_loaded),
        },
        { rows: r.image_rows, cols: r.image_cols, channels: r.image_channels },
      ),
    0,
  );
  if (now + pending + need <= cfg.maxDatabaseBytes) return;
  const images = counts.train + counts.test;
  const others =
    pending > 0
      ? ` and ${result.results.length} other run${result.results.length > 1 ? "s" : ""} loading will add about ${describeBytes(pending)}`
      : "";
  throw new EtlError(
    `${run.dataset} needs about ${describeBytes(need)} in D1 for its ${images.toLocaleString("en-US")} images of ${shape.rows}×${shape.cols}×${shape.channels} as float32, loaded beside the copy it replaces; the database holds ${describeBytes(now)}${others}, of at most ${describeBytes(cfg.maxDatabaseBytes)} (D1_MAX_BYTES), so it cannot fit. Nothing was loaded`,
  );
}
