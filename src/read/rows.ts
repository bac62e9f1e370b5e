/**
 * A split's rows read from D1 in pages, each with its labels, its images as
 * stored (float32) and as their original bytes: what every export format is
 * made of. One query per page, pinned to the dataset version as the .npy
 * export's pages are, so a swap mid-read ends the read with an error instead
 * of mixing two versions.
 */
import { hexColumns } from "./pixel-columns";
import { pixelsPerImage, type Shape, type Split } from "../core/datasets";
import { decodePackedHexInto } from "../codec/hex";
import { BYTES_PER_VALUE, bytesOfStored, ZERO_PIXEL, ZERO_PIXEL_HEX } from "../codec/transform";
import { liveTable } from "../db/tables";
import { MAX_PAGE_BYTES } from "./export";
import { DATASET_VERSION_SQL } from "./images";

export interface RowPage {
  readonly split: Split;
  /** The first row's idx. */
  readonly from: number;
  readonly labels: Uint8Array;
  /** The images as stored: float32 little-endian, rows × pixels per image × 4 bytes. */
  readonly floats: Uint8Array;
  /** The same images' original bytes (upright, HWC), rows × pixels per image. */
  readonly pixels: Uint8Array;
}

export interface RowsSpan {
  readonly dataset: string;
  readonly shape: Shape;
  readonly split: Split;
  /** The version every page must still come from. */
  readonly version: string;
  /** idx from … to - 1. */
  readonly from: number;
  readonly to: number;
}

/** Rows per page: as many as MAX_PAGE_BYTES of float32 hold, so a page never crowds the isolate's memory. */
export const rowsPerPage = (shape: Shape): number =>
  Math.max(1, Math.floor(MAX_PAGE_BYTES / (pixelsPerImage(shape) * BYTES_PER_VALUE)));

/** The span's rows, page by page, each read only when the consumer asks for it. */
export async function* readRowPages(db: D1Database, span: RowsSpan, perPage = rowsPerPage(span.shape)) {
  const perRow = pixelsPerImage(span.shape) * BYTES_PER_VALUE;
  const columns = hexColumns("pixels", perRow, (hex) => `replace(${hex}, '${ZERO_PIXEL_HEX}', '${ZERO_PIXEL}')`);
  const sql = `SELECT label, ${columns.join(", ")} FROM ${liveTable(span.dataset, span.split)}
    WHERE ?1 = ?1 AND idx >= ?2 AND idx < ?3 AND ${DATASET_VERSION_SQL} IS ?4 ORDER BY idx`;
  for (let from = span.from; from < span.to; from += perPage) {
    const to = Math.min(span.to, from + perPage);
    const rows = await db
      .prepare(sql)
      .bind(span.split, from, to, span.version, span.dataset)
      .raw<[number, ...string[]]>();
    if (rows.length !== to - from)
      throw new Error(
        `${span.split} rows ${from}…${to - 1}: D1 returned ${rows.length}; the dataset changed mid-export`,
      );
    const labels = new Uint8Array(rows.length);
    const floats = new Uint8Array(rows.length * perRow);
    let at = 0;
    rows.forEach(([label, ...pieces], i) => {
      labels[i] = label;
      for (const hex of pieces) at = decodePackedHexInto(hex, ZERO_PIXEL, floats, at);
    });
    if (at !== floats.length) throw new Error(`${span.split} rows ${from}…${to - 1}: pixel BLOBs of the wrong size`);
    const page: RowPage = { split: span.split, from, labels, floats, pixels: bytesOfStored(floats) };
    yield page;
  }
}
