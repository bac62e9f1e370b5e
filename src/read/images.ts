/**
 * Reading the loaded dataset back out of D1: single images, counts per class,
 * sample indices, and the extent of a split. Single images and samples read
 * primary-key ranges, extents the swap log (dataset_swaps); only the
 * per-class counts scan.
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
  /** When that swap happened (ISO 8601); null with `version`. */
  readonly swappedAt: string | null;
  /**
   * Whether the version asked for (readExtent's `asked`) was ever swapped in:
   * true for the current one and for one a later swap has replaced.
   */
  readonly askedWasSwapped: boolean;
}

/**
 * How many rows a split holds, which dataset that is, and when it was swapped
 * in: one statement that reads only `dataset_swaps`, never `images`, so that a
 * conditional request (If-None-Match → 304) or a refused one costs no image row.
 * `images` only ever changes whole, by a swap, and the swap records the rows it
 * put there (its CHECK makes them the run's expected counts, idx 0 … n-1), so a
 * run that is loading does not concern an export; a swap in the middle of one
 * does, and the export pins the version (see npyExport).
 *
 * A database loaded before swaps existed (no row in dataset_swaps) falls back
 * to the primary key: MAX(idx) + 1, a seek, not a COUNT scan; its version is null.
 */
export async function readExtent(db: D1Database, split: Split, asked?: string): Promise<Extent> {
  const swap = await db
    .prepare(
      `SELECT run_id, swapped_at, CASE ?1 WHEN 'train' THEN train_rows ELSE test_rows END AS n,
         EXISTS (SELECT 1 FROM dataset_swaps WHERE run_id = ?2) AS asked
       FROM dataset_swaps ORDER BY swapped_at DESC LIMIT 1`,
    )
    .bind(split, asked ?? null)
    .first<{ run_id: string; swapped_at: string; n: number; asked: number }>();
  if (swap)
    return { count: swap.n, version: swap.run_id, swappedAt: swap.swapped_at, askedWasSwapped: swap.asked === 1 };
  const row = await db
    .prepare("SELECT COALESCE(MAX(idx) + 1, 0) AS n FROM images WHERE split = ?1")
    .bind(split)
    .first<{ n: number }>();
  return { count: row?.n ?? 0, version: null, swappedAt: null, askedWasSwapped: false };
}
