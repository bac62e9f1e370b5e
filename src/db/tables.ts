/**
 * The physical layout behind the `images` view, pure: one rowid table per
 * dataset and split, named from the dataset, and the statements that create
 * them and the view.
 *
 * Why a table per split with `idx INTEGER PRIMARY KEY`: the row is keyed by
 * its rowid, so a 28×28 image's row fits one b-tree page, with no separate
 * primary-key index (which D1 would bill as one more row written per image)
 * and no overflow page as a `WITHOUT ROWID` table keyed (split, idx) needs
 * (bench/decisions.md has the measurements). Why a table per dataset: a
 * load, and its swap, never touch another dataset's rows, and dropping a
 * dataset's old tables is DDL, which D1 does not bill per row as it bills
 * a DELETE.
 */
import { isDatasetName, SPLITS, type Split } from "../core/datasets";

/** `fashion-mnist` → `fashion_mnist`: injective, since names have no `_` (DATASET_NAME). */
const slug = (dataset: string): string => {
  if (!isDatasetName(dataset)) throw new Error(`not a dataset name: ${JSON.stringify(dataset)}`);
  return dataset.replace(/-/g, "_");
};

/** The table that holds a dataset's current rows of one split. */
export const liveTable = (dataset: string, split: Split): string => `images__${slug(dataset)}__${split}`;

/** The table a run loads one split into; renamed to liveTable by the swap. */
export const shadowTable = (dataset: string, split: Split): string => `${liveTable(dataset, split)}__next`;

/**
 * One split's table. The CHECKs are the data contract's: every row's pixels
 * are the dataset's image size in float32, and its label a byte.
 */
export const createImageTableSql = (table: string, pixelBytes: number): string => {
  if (!/^images__[a-z0-9_]+$/.test(table)) throw new Error(`not an image table: ${table}`);
  if (!Number.isSafeInteger(pixelBytes) || pixelBytes < 4 || pixelBytes % 4 !== 0) {
    throw new RangeError(`pixel bytes must be a positive multiple of 4, got ${pixelBytes}`);
  }
  return `CREATE TABLE ${table} (
  idx    INTEGER PRIMARY KEY CHECK (idx >= 0),
  label  INTEGER NOT NULL CHECK (label BETWEEN 0 AND 255),
  pixels BLOB    NOT NULL CHECK (length(pixels) = ${pixelBytes})
)`;
};

/**
 * D1 allows at most this many terms in one compound SELECT (SQLite's
 * SQLITE_LIMIT_COMPOUND_SELECT, set low by D1); a subquery starts a new count.
 */
export const MAX_COMPOUND_TERMS = 5;

/** `terms` as one SELECT, nesting groups of MAX_COMPOUND_TERMS in subqueries as often as it takes. */
function unionAll(terms: readonly string[]): string {
  if (terms.length <= MAX_COMPOUND_TERMS) return terms.join("\nUNION ALL\n");
  const groups: string[] = [];
  for (let i = 0; i < terms.length; i += MAX_COMPOUND_TERMS) {
    const group = terms.slice(i, i + MAX_COMPOUND_TERMS);
    groups.push(group.length === 1 ? group[0]! : `SELECT * FROM (${group.join("\nUNION ALL\n")})`);
  }
  return unionAll(groups);
}

/** One term of the `images` view: a dataset's live table of one split. */
export interface ViewTerm {
  readonly dataset: string;
  readonly split: Split;
}

/**
 * `images`: the rows of every table in `terms` as `dataset, split, idx, label,
 * pixels`; a dataset named alone stands for both its splits. A view cannot
 * name a table that does not exist (SQLite creates it, and every query of it
 * then fails), so callers list only tables that exist (db/view.ts reads them
 * from sqlite_master). Past a few terms they nest (MAX_COMPOUND_TERMS);
 * SQLite still pushes a query's `WHERE dataset = …` down into each term,
 * where it is a constant.
 */
export function imagesViewSql(terms: readonly (string | ViewTerm)[]): string {
  const all = terms.flatMap((t) => (typeof t === "string" ? SPLITS.map((split) => ({ dataset: t, split })) : [t]));
  const unique = [...new Map(all.map((t) => [liveTable(t.dataset, t.split), t])).values()];
  unique.sort((a, b) =>
    a.dataset === b.dataset ? SPLITS.indexOf(a.split) - SPLITS.indexOf(b.split) : a.dataset < b.dataset ? -1 : 1,
  );
  if (unique.length === 0) {
    return `CREATE VIEW images AS SELECT NULL AS dataset, NULL AS split, NULL AS idx, NULL AS label, NULL AS pixels WHERE 0`;
  }
  const sql = unique.map(
    ({ dataset: d, split: s }) =>
      `SELECT '${d}' AS dataset, '${s}' AS split, idx, label, pixels FROM ${liveTable(d, s)}`,
  );
  return `CREATE VIEW images AS\n${unionAll(sql)}`;
}

/** liveTable in SQL, of the dataset name that the SQL expression `name` holds. */
export const liveTableSql = (name: string, split: Split): string =>
  `'images__' || replace(${name}, '-', '_') || '__${split}'`;

/**
 * The largest row D1 stores: its documented limit on a string, BLOB or row,
 * which is SQLite's SQLITE_MAX_LENGTH, checked on the row's record as a whole.
 */
export const D1_MAX_ROW_BYTES = 2_000_000;

/**
 * The record of an image row beyond its pixels, at most: the header's size
 * byte, the serial types of idx (NULL: it is the rowid), label (1 byte) and
 * pixels (a 4-byte varint past 2^21), and the label's one byte of body.
 */
const ROW_OVERHEAD_BYTES = 1 + 1 + 1 + 4 + 1;

/**
 * The most bytes an image may have in its IDX file (one per pixel): stored as
 * float32, 4 bytes a pixel, its row must fit D1_MAX_ROW_BYTES with its record
 * overhead: ⌊(2,000,000 − 8) / 4⌋ = 499,998.
 */
export const MAX_IMAGE_BYTES = Math.floor((D1_MAX_ROW_BYTES - ROW_OVERHEAD_BYTES) / 4);

/** SQLite's page size in D1, and the most payload a table leaf keeps in-page (page − 35). */
const PAGE = 4096;
const MAX_LOCAL = PAGE - 35;
const MIN_LOCAL = Math.floor(((PAGE - 12) * 32) / 255) - 23;

/**
 * About how many bytes a table of `rows` images of `pixelBytes` takes, from
 * SQLite's record format: rows share a leaf page while they fit, and a larger
 * payload keeps a part in-page and spills the rest to overflow pages. An
 * estimate for refusing a load up front, rounded up by a small margin for the
 * b-tree's interior pages.
 */
export function estimateTableBytes(rows: number, pixelBytes: number): number {
  // Record header, a label byte, and the blob; then the cell's rowid and length varints and its pointer.
  const payload = 6 + 1 + pixelBytes;
  const cell = (local: number) => local + 9 + 2;
  let perRow: number;
  if (payload <= MAX_LOCAL) {
    perRow = PAGE / Math.max(1, Math.floor((PAGE - 8) / cell(payload)));
  } else {
    let local = MIN_LOCAL + ((payload - MIN_LOCAL) % (PAGE - 4));
    if (local > MAX_LOCAL) local = MIN_LOCAL;
    const overflowPages = Math.ceil((payload - local) / (PAGE - 4));
    perRow = (PAGE * cell(local + 4)) / (PAGE - 8) + overflowPages * PAGE;
  }
  return Math.ceil(rows * perRow * 1.02);
}
