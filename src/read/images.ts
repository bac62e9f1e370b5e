/**
 * Reading the loaded dataset back out of D1: single images, counts per class,
 * sample indices, and the extent of a split. Every query is by primary key or
 * by the (split, label) index.
 */
import { FASHION_MNIST, type Split } from "../datasets";
import { decodeHex } from "./hex";

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

/** Counts per class per split, and sample indices: two queries, both on the (split, label) index. */
export async function readStats(db: D1Database, samplesPerClass: number): Promise<Stats> {
  const [counts, samples] = await db.batch<{ split: Split; label: number; name: string; n: number; rn?: number }>([
    db.prepare(
      `SELECT s.split, c.label, c.name, (SELECT COUNT(*) FROM images i WHERE i.split = s.split AND i.label = c.label) AS n
       FROM classes c CROSS JOIN (SELECT 'train' AS split UNION ALL SELECT 'test') s ORDER BY s.split, c.label`,
    ),
    db
      .prepare(
        `SELECT split, label, idx AS n FROM (
           SELECT split, label, idx, row_number() OVER (PARTITION BY label ORDER BY idx) AS rn FROM images
           WHERE split = (SELECT CASE WHEN EXISTS (SELECT 1 FROM images WHERE split = 'test') THEN 'test' ELSE 'train' END)
         ) WHERE rn <= ?1 ORDER BY label, idx`,
      )
      .bind(samplesPerClass),
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

export type Extent =
  | { readonly kind: "contiguous"; readonly count: number }
  | { readonly kind: "gaps"; readonly count: number; readonly end: number };

/**
 * How many rows a split holds, and whether they are exactly idx 0…count-1 (as
 * a complete run leaves them). Exports page by idx range, so they need that.
 */
export async function readExtent(db: D1Database, split: Split): Promise<Extent> {
  const row = await db
    .prepare("SELECT COUNT(*) AS n, COALESCE(MAX(idx) + 1, 0) AS e FROM images WHERE split = ?1")
    .bind(split)
    .first<{ n: number; e: number }>();
  const count = row?.n ?? 0;
  const end = row?.e ?? 0;
  return count === end ? { kind: "contiguous", count } : { kind: "gaps", count, end };
}
