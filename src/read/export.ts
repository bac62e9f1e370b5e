/**
 * Streaming a split as .npy, page by page: each pull of the response stream
 * reads one idx range from D1 and hands on its bytes, so memory holds one page
 * whatever the export's size (the train split is 188 MB as float32). Three
 * files per split: the images as stored (float32), the same images as their
 * original bytes (uint8, recovered exactly from the floats), and the labels.
 */
import { DATASET_VERSION_SQL } from "./images";
import { pixelsPerImage, type Shape, type Split } from "../core/datasets";
import { liveTable } from "../db/tables";
import { hexColumns } from "./pixel-columns";
import { npyHeader, type NpyDtype } from "../codec/npy";
import { BYTES_PER_VALUE, bytesOfStored, ZERO_PIXEL, ZERO_PIXEL_HEX } from "../codec/transform";
import { decodePackedHexInto } from "../codec/hex";

/** images: float32 as stored; uint8: the same images' original bytes; labels: uint8. */
export type ExportKind = "images" | "uint8" | "labels";

const STEM_SUFFIX: Readonly<Record<ExportKind, string>> = { images: "", uint8: "-uint8", labels: "-labels" };

/** A split's file name without `.npy`: `train`, `train-uint8`, `train-labels`, and the test split's likewise. */
export const exportStem = (split: Split, kind: ExportKind): string => `${split}${STEM_SUFFIX[kind]}`;

export interface ExportSpan {
  readonly dataset: string;
  /** The dataset's image shape: each row of an images file. */
  readonly shape: Shape;
  readonly split: Split;
  readonly kind: ExportKind;
  /** First idx exported. */
  readonly offset: number;
  /** Rows exported: idx offset … offset + count - 1, all present. */
  readonly count: number;
  /** The dataset version every page must still come from (see readExtent); undefined: not checked. */
  readonly version?: string | null;
}

/** Smallest page; bigger exports use bigger pages to stay within the query budget below. */
export const MIN_PAGE_ROWS = 500;
/**
 * Pages an export aims for: D1 allows 50 queries per invocation on the free
 * plan, and the route spends one on the split's extent. Fashion-MNIST's
 * train split fits in 45 pages of a few MB each.
 */
export const MAX_PAGES = 45;
/**
 * The most float32 bytes one page holds (twice that as hex text while it is
 * decoded): a larger dataset reads more pages rather than hold a page that
 * would crowd the isolate's 128 MB; the paid plan's query budget allows them.
 */
export const MAX_PAGE_BYTES = 8 * 1024 * 1024;
/** Labels are one byte a row: one page carries many. */
const LABEL_PAGE_ROWS = 20_000;

export const pageRows = (span: ExportSpan): number =>
  span.kind === "labels"
    ? Math.max(LABEL_PAGE_ROWS, Math.ceil(span.count / MAX_PAGES))
    : Math.max(
        1,
        Math.min(
          // D1 hands over float32 values whatever the file's dtype: they bound the page.
          Math.floor(MAX_PAGE_BYTES / (pixelsPerImage(span.shape) * BYTES_PER_VALUE)),
          Math.max(MIN_PAGE_ROWS, Math.ceil(span.count / MAX_PAGES)),
        ),
      );

const dtypeOf = (kind: ExportKind): NpyDtype => (kind === "images" ? "<f4" : "|u1");
/** Images, as floats or as bytes: rows of pixels, read from D1 as float32. */
const isImages = (kind: ExportKind): boolean => kind !== "labels";

type SpanShape = Pick<ExportSpan, "kind" | "count" | "shape">;

export function exportShape(span: SpanShape): number[] {
  const d = span.shape;
  return isImages(span.kind) ? [span.count, d.rows, d.cols, d.channels] : [span.count];
}

/** Bytes of one row of a span's file: an image's float32 values or bytes, or a label. */
export const rowBytes = (span: SpanShape): number =>
  span.kind === "labels" ? 1 : pixelsPerImage(span.shape) * (span.kind === "images" ? BYTES_PER_VALUE : 1);

/** A span's .npy header: the file's first bytes, before its rows. */
export const spanHeader = (span: SpanShape): Uint8Array => npyHeader(dtypeOf(span.kind), exportShape(span));

/** The exact size of a span's .npy file: its header, then count rows. */
export const npyByteLength = (span: SpanShape): number => spanHeader(span).length + span.count * rowBytes(span);

/** Bytes start … end - 1 of a file (an HTTP Range, resolved against its size). */
export interface ByteRange {
  readonly start: number;
  /** Exclusive. */
  readonly end: number;
}

/**
 * Where bytes `range` (default: all) of a span's .npy file lie: bytes `start`
 * … `stop - 1` of the file, of which those below `header.length` are the
 * header's, and the rest the rows' data bytes `dataStart` … `dataStop - 1`
 * (counted from the first row's first byte; empty for a range within the header).
 */
export interface LocatedRange {
  readonly header: Uint8Array;
  /** Bytes per row. */
  readonly perRow: number;
  readonly start: number;
  /** Exclusive. */
  readonly stop: number;
  readonly dataStart: number;
  /** Exclusive. */
  readonly dataStop: number;
}

/** Locate `range` in a span's .npy file; a range not within the file is a RangeError. */
export function locateRange(span: SpanShape, range?: ByteRange): LocatedRange {
  const header = spanHeader(span);
  const perRow = rowBytes(span);
  const fileSize = header.length + span.count * perRow;
  const { start, end: stop } = range ?? { start: 0, end: fileSize };
  if (!(Number.isSafeInteger(start) && Number.isSafeInteger(stop) && 0 <= start && start <= stop && stop <= fileSize))
    throw new RangeError(`bytes ${start}…${stop - 1} are not within the file's ${fileSize}`);
  const dataStart = Math.max(start - header.length, 0);
  const dataStop = Math.max(stop - header.length, 0);
  return { header, perRow, start, stop, dataStart, dataStop };
}

export interface NpyExport {
  readonly body: ReadableStream<Uint8Array>;
  /** Exact byte length of what `body` yields: the whole file, or the range asked for. */
  readonly byteLength: number;
}

/**
 * The .npy file of a span, or bytes `range.start` … `range.end - 1` of it. A
 * range reads only the rows it overlaps: the header is `header.length` bytes,
 * then row r (from the span's offset) is bytes `header.length + r × rowBytes`
 * onward, so a range within the header reads no row at all and one mid-file
 * reads ⌈its length / rowBytes⌉ + 1 rows at most, in pages as the whole file.
 *
 * A page that comes back short (rows deleted, or a swap to another dataset
 * since the export began: each page is read only if the dataset version is
 * still the pinned one) errors the stream rather than emit a file whose body
 * disagrees with its header or mixes two datasets.
 */
export function npyExport(
  db: D1Database,
  span: ExportSpan,
  rowsPerPage = pageRows(span),
  range?: ByteRange,
): NpyExport {
  const { header, perRow, start, stop, dataStart, dataStop } = locateRange(span, range);
  // The rows (from the span's first) that hold the range's data bytes.
  const firstRow = Math.floor(dataStart / perRow);
  const endRow = dataStop > dataStart ? Math.ceil(dataStop / perRow) : firstRow;
  const end = span.offset + endRow;
  let next = span.offset + firstRow;
  let headerSent = start >= header.length;
  // Packed: most datasets' pixels are half zeros, whose eight hex digits each become one character.
  const storedPerRow = span.kind === "uint8" ? perRow * BYTES_PER_VALUE : perRow;
  const columns = isImages(span.kind)
    ? hexColumns("pixels", storedPerRow, (hex) => `replace(${hex}, '${ZERO_PIXEL_HEX}', '${ZERO_PIXEL}')`)
    : ["label"];
  const pinned = span.version === undefined ? "" : ` AND ${DATASET_VERSION_SQL} IS ?4`;
  const sql = `SELECT ${columns.join(", ")} FROM ${liveTable(span.dataset, span.split)} WHERE ?1 = ?1 AND idx >= ?2 AND idx < ?3${pinned} ORDER BY idx`;
  const body = new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        if (!headerSent) {
          headerSent = true;
          controller.enqueue(header.subarray(start, Math.min(stop, header.length)));
          if (next >= end) controller.close();
          return;
        }
        if (next >= end) {
          controller.close();
          return;
        }
        const from = next;
        const to = Math.min(end, from + rowsPerPage);
        const params =
          span.version === undefined ? [span.split, from, to] : [span.split, from, to, span.version, span.dataset];
        const rows = await db
          .prepare(sql)
          .bind(...params)
          .raw<(string | number)[]>();
        if (rows.length !== to - from)
          throw new Error(
            `${span.split} rows ${from}…${to - 1}: D1 returned ${rows.length}; the dataset changed mid-export`,
          );
        let page: Uint8Array = new Uint8Array((to - from) * storedPerRow);
        if (isImages(span.kind)) {
          let at = 0;
          for (const pieces of rows)
            for (const hex of pieces) at = decodePackedHexInto(hex as string, ZERO_PIXEL, page, at);
          if (at !== page.length)
            throw new Error(`${span.split} rows ${from}…${to - 1}: pixel BLOBs of the wrong size`);
          if (span.kind === "uint8") page = bytesOfStored(page);
        } else {
          rows.forEach(([label], i) => (page[i] = label as number));
        }
        next = to;
        // The page is data bytes pageStart …; trim what lies outside the range (first and last page only).
        const pageStart = (from - span.offset) * perRow;
        const lo = Math.max(dataStart - pageStart, 0);
        const hi = Math.min(dataStop - pageStart, page.length);
        controller.enqueue(lo === 0 && hi === page.length ? page : page.subarray(lo, hi));
        if (next >= end) controller.close();
      },
    },
    // Read a page only when the consumer asks: never more than one page ahead.
    { highWaterMark: 0 },
  );
  return { body, byteLength: stop - start };
}
