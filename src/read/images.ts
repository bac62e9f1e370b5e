/**
 * Reading a loaded dataset back out of D1: single images, counts per class,
 * sample indices, pages of images (optionally of one class), and the extent
 * of a split. Each reads its dataset's own tables by primary key or in idx
 * order; extents read the catalog and the swap log, never an image row.
 */
import { pixelsPerImage, type Split } from "../core/datasets";
import { decodeHex } from "../codec/hex";
import { liveTable } from "../db/tables";
import type { LoadedDataset } from "./datasets";
import { hexColumns } from "./pixel-columns";

export interface StoredImage {
  readonly split: Split;
  readonly idx: number;
  readonly label: number;
  readonly className: string;
  /** The stored float32 values, HWC row-major. */
  readonly values: Float32Array;
}

export async function readImage(
  db: D1Database,
  dataset: LoadedDataset,
  split: Split,
  idx: number,
): Promise<StoredImage | undefined> {
  const blobBytes = dataset.shape ? pixelsPerImage(dataset.shape) * 4 : 0;
  const pieces = hexColumns("i.pixels", blobBytes).map((sql, k) => `${sql} AS hex${k}`);
  const row = await db
    .prepare(
      `SELECT i.label, coalesce(c.name, i.label) AS name, ${pieces.join(", ")} FROM ${liveTable(dataset.name, split)} i
       LEFT JOIN classes c ON c.dataset = ?1 AND c.label = i.label WHERE i.idx = ?2`,
    )
    .bind(dataset.name, idx)
    .first<{ label: number; name: string | number } & Record<`hex${number}`, string>>();
  if (!row) return undefined;
  const hex = pieces.map((_, k) => row[`hex${k}`]).join("");
  const bytes = decodeHex(hex);
  return { split, idx, label: row.label, className: String(row.name), values: new Float32Array(bytes.buffer) };
}

export interface ImagePage {
  readonly split: Split;
  readonly label: number | null;
  /** The images' indices and labels, in idx order. */
  readonly images: readonly { readonly idx: number; readonly label: number }[];
  /** Pass as `after` for the next page; null on the last one. */
  readonly next: number | null;
}

/**
 * Up to `limit` images of a split after idx `after` (-1: from the start), of
 * one class or any. Keyset paging on the primary key: a page reads from where
 * the last one ended, never the rows before it. A class filter scans forward
 * until the page fills (there is no label index: each entry would be one more
 * row written per image on every load).
 */
export async function readImagePage(
  db: D1Database,
  dataset: LoadedDataset,
  split: Split,
  opts: { readonly label?: number; readonly after: number; readonly limit: number },
): Promise<ImagePage> {
  const filter = opts.label === undefined ? "" : " AND label = ?3";
  const params = opts.label === undefined ? [opts.after, opts.limit + 1] : [opts.after, opts.limit + 1, opts.label];
  const { results } = await db
    .prepare(`SELECT idx, label FROM ${liveTable(dataset.name, split)} WHERE idx > ?1${filter} ORDER BY idx LIMIT ?2`)
    .bind(...params)
    .all<{ idx: number; label: number }>();
  const images = results.slice(0, opts.limit);
  const next = results.length > opts.limit ? images.at(-1)!.idx : null;
  return { split, label: opts.label ?? null, images, next };
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
  readonly dataset: string;
  readonly splits: Record<Split, SplitStats>;
  /** The first few images of each class, from the test split if it has any. */
  readonly samples: Samples | null;
}

/** How far into the test split (then train) to look for samples: a bounded primary-key range, not a scan. */
const SAMPLE_WINDOW = 1000;

/**
 * Counts per class per split, and sample indices. The counts come from
 * `class_counts`, which the swap fills when a dataset becomes current: a few
 * rows read, where the image tables (no label index: each entry would be one
 * more row written per load) would need a scan of every image.
 */
export async function readStats(db: D1Database, dataset: LoadedDataset, samplesPerClass: number): Promise<Stats> {
  const split: Split = dataset.counts.test > 0 ? "test" : "train";
  const [counts, samples] = await db.batch<{ split: Split; label: number; name: string; n: number }>([
    db
      .prepare(
        `SELECT s.split, c.label, c.name, COALESCE(g.n, 0) AS n
       FROM classes c CROSS JOIN (SELECT 'train' AS split UNION ALL SELECT 'test') s
       LEFT JOIN class_counts g ON g.dataset = c.dataset AND g.split = s.split AND g.label = c.label
       WHERE c.dataset = ?1
       ORDER BY s.split, c.label`,
      )
      .bind(dataset.name),
    db
      .prepare(
        `SELECT label, idx AS n FROM (
           SELECT label, idx, row_number() OVER (PARTITION BY label ORDER BY idx) AS rn FROM ${liveTable(dataset.name, split)}
           WHERE idx < ?2
         ) WHERE rn <= ?1 ORDER BY label, idx`,
      )
      .bind(samplesPerClass, SAMPLE_WINDOW),
  ]);
  const splitStats = (s: Split): SplitStats => {
    const classes = counts!.results
      .filter((r) => r.split === s)
      .map((r) => ({ label: r.label, name: r.name, count: r.n }));
    return { total: classes.reduce((n, c) => n + c.count, 0), classes };
  };
  const splits = { train: splitStats("train"), test: splitStats("test") };
  const rows = samples!.results;
  if (rows.length === 0) return { dataset: dataset.name, splits, samples: null };
  const byLabel = splits.train.classes
    .map(({ label, name }) => ({ label, name, idx: rows.filter((r) => r.label === label).map((r) => r.n) }))
    .filter((c) => c.idx.length > 0);
  return { dataset: dataset.name, splits, samples: { split, byLabel } };
}

/** A dataset's version is the run whose swap put its rows there: `?5` is the dataset's name. */
export const DATASET_VERSION_SQL = "(SELECT run_id FROM datasets WHERE name = ?5)";

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
 * How many rows a split holds, which version that is, and when it was swapped
 * in: one statement that reads only the catalog and the swap log, never an
 * image row, so that a conditional request (If-None-Match → 304) or a refused
 * one costs no image row. A dataset's tables only ever change whole, by a
 * swap, and the swap records the rows it put there (its CHECK makes them the
 * run's expected counts, idx 0 … n-1), so a run that is loading does not
 * concern an export; a swap in the middle of one does, and the export pins
 * the version (see npyExport).
 */
export async function readExtent(db: D1Database, dataset: string, split: Split, asked?: string): Promise<Extent> {
  const row = await db
    .prepare(
      `SELECT d.run_id, d.swapped_at, CASE ?2 WHEN 'train' THEN s.train_rows ELSE s.test_rows END AS n,
         EXISTS (SELECT 1 FROM dataset_swaps WHERE run_id = ?3 AND dataset = ?1) AS asked
       FROM datasets d LEFT JOIN dataset_swaps s ON s.run_id = d.run_id WHERE d.name = ?1`,
    )
    .bind(dataset, split, asked ?? null)
    .first<{ run_id: string | null; swapped_at: string | null; n: number | null; asked: number }>();
  return {
    count: row?.n ?? 0,
    version: row?.run_id ?? null,
    swappedAt: row?.swapped_at ?? null,
    askedWasSwapped: row?.asked === 1,
  };
}
