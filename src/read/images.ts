/**
 * Reading the loaded dataset back out of D1: single images, counts per class,
 * sample indices, and the extent of a split. Single images, samples and
 * extents read primary-key ranges; only the per-class counts scan.
 */
import { FASHION_MNIST, type Split } from "../core/datasets";
import { decodeHex } from "../codec/hex";

export interface StoredImage {
  readonly split: Split;
  readonly idx: number;
  readonly label: number;
  readonly className: string;
  /** The stored float32 values, HWC row-major. */
  readonly values: Float32Array;
}

export async function readImage(db: D1Database, split: Split, idx: number): Promise<StoredImage | undefined> {
  const row = await db
    .prepare(
      "SELECT i.label, c.name, hex(i.pixels) AS hex FROM images i JOIN classes c USING (label) WHERE i.split = ?1 AND i.idx = ?2",
    )
    .bind(split, idx)
    .first<{ label: number; name: string; hex: string }>();
  if (!row) return undefined;
  const bytes = decodeHex(row.hex);
  return { split, idx, label: row.label, className: row.name, values: new Float32Array(bytes.buffer) };
}

export interface ClassCount {
  readonly label: number;
  readonly name: string;
  readonly count: number;
}

export interface SplitStats {
  readonly total: number;
  readonly classes: readonly ClassCount[];
}

export interface Samples {
  readonly split: Split;
  readonly byLabel: readonly { readonly label: number; readonly name: string; readonly idx: readonly number[] }[];
}

export interface Stats {
  readonly splits: Record<Split, SplitStats>;
  /** The first few images of each class, from the test split if it has any. */
  readonly samples: Samples | null;
}

/** How far into the test split (then train) to look for samples: a bounded primary-key range, not a scan. */
const SAMPLE_WINDOW = 1000;

/**
 * Counts per class per split, and sample indices. The counts come from
 * `class_counts`, which the swap fills when a dataset becomes current: 20 rows
 * read, where `images` (no label index: each entry would be one more row
 * written per load) would need a scan of all 70,000.
 */
export async function readStats(db: D1Database, samplesPerClass: number): Promise<Stats> {
  const [counts, samples] = await db.batch<{ split: Split; label: number; name: string; n: number }>([
    db.prepare(
      `SELECT s.split, c.label, c.name, COALESCE(g.n, 0) AS n
       FROM classes c CROSS JOIN (SELECT 'train' AS split UNION ALL SELECT 'test') s
       LEFT JOIN class_counts g ON g.split = s.split AND g.label = c.label
       ORDER BY s.split, c.label`,
    ),
    db
      .prepare(
        `WITH pick AS (SELECT CASE WHEN EXISTS (SELECT 1 FROM images WHERE split = 'test') THEN 'test' ELSE 'train' END AS split)
         SELECT split, label, idx AS n FROM (
           SELECT split, label, idx, row_number() OVER (PARTITION BY label ORDER BY idx) AS rn FROM images
           WHERE split = (SELECT split FROM pick) AND idx < ?2
         ) WHERE rn <= ?1 ORDER BY label, idx`,
      )
      .bind(samplesPerClass, SAMPLE_WINDOW),
  ]);
  const splitStats = (split: Split): SplitStats => {
    const classes = counts!.results
      .filter((r) => r.split === split)
      .map((r) => ({ label: r.label, name: r.name, count: r.n }));
    return { total: classes.reduce((n, c) => n + c.count, 0), classes };
  };
  const splits = { train: splitStats("train"), test: splitStats("test") };
  const rows = samples!.results;
  if (rows.length === 0) return { splits, samples: null };
  const byLabel = FASHION_MNIST.classes.map((name, label) => ({
    label,
    name,
    idx: rows.filter((r) => r.label === label).map((r) => r.n),
  }));
  return { splits, samples: { split: rows[0]!.split, byLabel } };
}

/** The dataset in `images` is identified by the run whose swap put it there. */
export const DATASET_VERSION_SQL = "(SELECT run_id FROM dataset_swaps ORDER BY swapped_at DESC LIMIT 1)";

export interface Extent {
  /** Rows in the split: idx 0 … count-1, as a swap leaves them. */
  readonly count: number;
  /** The run whose swap made the current dataset (null if none has swapped yet). */
  readonly version: string | null;
}

/**
 * How many rows a split holds, read from the primary key (MAX(idx) + 1: a
 * seek, not a COUNT scan), and which dataset that is. `images` only ever
 * changes whole, by a swap, so a run that is loading does not concern an
 * export; a swap in the middle of one does, and the export pins the version.
 */
export async function readExtent(db: D1Database, split: Split): Promise<Extent> {
  const row = await db
    .prepare(
      `SELECT (SELECT COALESCE(MAX(idx) + 1, 0) FROM images WHERE split = ?1) AS n, ${DATASET_VERSION_SQL} AS version`,
    )
    .bind(split)
    .first<{ n: number; version: string | null }>();
  return { count: row?.n ?? 0, version: row?.version ?? null };
}
