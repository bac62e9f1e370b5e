/**
 * Which datasets the database holds, and for each what a reader needs before
 * touching a row: its tables' shape, the version (the run whose swap put the
 * rows there) and the rows per split, all from the catalog and the swap log —
 * never from the image tables.
 */
import { SPLITS, type Shape, type Split } from "../core/datasets";
import { registryEntry } from "../core/registry";
import { liveTable, liveTableSql } from "../db/tables";

export interface LoadedDataset {
  readonly name: string;
  /** Null when no run has swapped rows in yet (the tables are empty). */
  readonly shape: Shape | null;
  /** The run whose swap put the rows there; null with shape. */
  readonly version: string | null;
  readonly swappedAt: string | null;
  readonly counts: Readonly<Record<Split, number>>;
  /** Whether this version's .npy files are in R2 (migrations/0006_exports.sql): exports read them, not D1. */
  readonly exported: boolean;
  /**
   * Whether the rows are the registry dataset's published files (official
   * mirrors, published MD5s matched); null if no swap recorded it.
   */
  readonly official: boolean | null;
  /** Where the rows came from, redacted; null with `official`. */
  readonly source: string | null;
  /**
   * The dataset's tables that a swap made but that no longer exist (dropped
   * by hand): such a dataset is broken, and none of its images can be read.
   */
  readonly missingTables: readonly string[];
}

interface CatalogRow {
  name: string;
  run_id: string | null;
  swapped_at: string | null;
  image_rows: number | null;
  image_cols: number | null;
  image_channels: number | null;
  train_rows: number | null;
  test_rows: number | null;
  exported: number;
  official: number | null;
  source: string | null;
  has_train: number;
  has_test: number;
}

const hasTable = (split: Split) =>
  `EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ${liveTableSql("d.name", split)}) AS has_${split}`;

const CATALOG_SQL = `SELECT d.name, d.run_id, d.swapped_at, r.image_rows, r.image_cols, r.image_channels,
  s.train_rows, s.test_rows, e.version IS NOT NULL AS exported, d.official, d.source,
  ${SPLITS.map(hasTable).join(", ")}
FROM datasets d LEFT JOIN runs r ON r.id = d.run_id LEFT JOIN dataset_swaps s ON s.run_id = d.run_id
  LEFT JOIN dataset_exports e ON e.dataset = d.name AND e.version = d.run_id`;

function loaded(row: CatalogRow): LoadedDataset {
  const registered = registryEntry(row.name)?.shape;
  const shape =
    row.image_rows !== null && row.image_cols !== null && row.image_channels !== null
      ? { rows: row.image_rows, cols: row.image_cols, channels: row.image_channels }
      : (registered ?? null);
  return {
    name: row.name,
    shape: row.run_id === null ? null : shape,
    version: row.run_id,
    swappedAt: row.swapped_at,
    counts: { train: row.train_rows ?? 0, test: row.test_rows ?? 0 },
    exported: row.exported === 1,
    official: row.official === null ? null : row.official === 1,
    source: row.source,
    // Tables exist from the first swap on (the migrations made fashion-mnist's before any).
    missingTables:
      row.run_id === null
        ? []
        : SPLITS.filter((s) => (s === "train" ? row.has_train : row.has_test) !== 1).map((s) => liveTable(row.name, s)),
  };
}

/** A dataset with tables, or undefined if no run of it has got that far. */
export async function readDataset(db: D1Database, name: string): Promise<LoadedDataset | undefined> {
  const row = await db.prepare(`${CATALOG_SQL} WHERE d.name = ?1`).bind(name).first<CatalogRow>();
  return row ? loaded(row) : undefined;
}

/** Every dataset with tables. */
export async function readDatasets(db: D1Database): Promise<LoadedDataset[]> {
  const { results } = await db.prepare(`${CATALOG_SQL} ORDER BY d.name`).all<CatalogRow>();
  return results.map(loaded);
}

/** Whether a swap loaded the dataset but a table of it is gone. */
export const isBroken = (d: LoadedDataset | undefined): boolean => d !== undefined && d.missingTables.length > 0;

/** What is wrong with a broken dataset, and the fix: one sentence. */
export const brokenHint = (d: LoadedDataset): string =>
  `${d.missingTables.length === 1 ? `its table ${d.missingTables[0]} is` : `its tables ${d.missingTables.join(" and ")} are`} missing (dropped outside idx-etl); DELETE /datasets/${d.name} or load it again (POST /datasets/${d.name}/runs)`;

/** Whether a split index is within the dataset's rows. */
export const hasImage = (d: LoadedDataset, split: Split, idx: number): boolean => idx < d.counts[split];

/** How many classes each dataset's last swap recorded. */
export async function readClassCounts(db: D1Database): Promise<Map<string, number>> {
  const { results } = await db
    .prepare("SELECT dataset, COUNT(*) AS n FROM classes GROUP BY dataset")
    .all<{ dataset: string; n: number }>();
  return new Map(results.map((r) => [r.dataset, r.n]));
}

/** The class names a dataset's last swap recorded, by label. */
export async function readClasses(db: D1Database, name: string): Promise<{ label: number; name: string }[]> {
  const { results } = await db
    .prepare("SELECT label, name FROM classes WHERE dataset = ?1 ORDER BY label")
    .bind(name)
    .all<{ label: number; name: string }>();
  return results;
}
