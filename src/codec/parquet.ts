/**
 * A split as a Parquet file that Hugging Face `datasets` reads as `Image` and
 * `ClassLabel` features, pure: columns `image` (struct<bytes: binary, path:
 * string>, the PNG and "{split}/{idx}.png") and `label` (int64), all
 * OPTIONAL, and the `huggingface` key-value metadata that names the
 * features. No `ARROW:schema` key: readers derive Arrow's types from the
 * Parquet schema, which says the same.
 *
 * The layout is fixed before a row is read: row groups of `rowsPerGroup`
 * rows, each one uncompressed PLAIN data page (v1) per column, no statistics,
 * and PNGs with stored (uncompressed) zlib, whose length depends only on the
 * image's shape. So the file's length, every row group's offset and the
 * footer are known in advance: a download has an exact Content-Length and any
 * Range is served from the rows it covers (or none, for the footer), whether
 * the bytes come from R2 or are encoded from D1 on the fly. The PNGs cost
 * about twice the compressed ones; that is the price of those guarantees.
 *
 * Thrift (page headers, the footer) is hyparquet-writer's encoder.
 */
import type { FileMetaData, PageHeader, RowGroup, SchemaElement } from "hyparquet";
import { ByteWriter } from "hyparquet-writer";
import { writePageHeader } from "hyparquet-writer/src/datapage.js";
import { writeMetadata } from "hyparquet-writer/src/metadata.js";
import { encodePngStoredInto, isPngChannels, storedPngLength } from "./png";
import type { Shape } from "../core/datasets";

const MAGIC = Uint8Array.of(0x50, 0x41, 0x52, 0x31); // PAR1

/** Rows per row group at most: a few thousand, as Hugging Face's viewer and polars read well. */
export const MAX_GROUP_ROWS = 4000;
/** A row group's image bytes at most, so that large images make smaller groups. */
const MAX_GROUP_BYTES = 8 * 1024 * 1024;

export interface ParquetSpec {
  /** The split's name: the rows' paths are "{split}/{idx}.png". */
  readonly split: string;
  /** Rows, idx 0 … count - 1. */
  readonly count: number;
  readonly shape: Shape;
  /** Class names by label, for the ClassLabel feature. */
  readonly classNames: readonly string[];
}

interface Column {
  /** Offset of the column chunk (its page header) in the file. */
  readonly offset: number;
  readonly header: Uint8Array;
  /** The page's body: definition levels and values. */
  readonly bodySize: number;
}

export interface RowGroupLayout {
  /** First idx. */
  readonly first: number;
  readonly rows: number;
  readonly offset: number;
  readonly size: number;
  /** image.bytes, image.path, label. */
  readonly columns: readonly [Column, Column, Column];
}

export interface ParquetLayout {
  readonly spec: ParquetSpec;
  readonly pngBytes: number;
  readonly groups: readonly RowGroupLayout[];
  /** Where the footer (file metadata, its length, PAR1) begins. */
  readonly footerOffset: number;
  readonly footer: Uint8Array;
  readonly size: number;
}

/** The `huggingface` key-value metadata: the features `datasets` builds from the file. */
export const huggingfaceFeatures = (classNames: readonly string[]): string =>
  JSON.stringify({
    info: { features: { image: { _type: "Image" }, label: { _type: "ClassLabel", names: classNames } } },
  });

const SCHEMA: SchemaElement[] = [
  { name: "schema", num_children: 2 },
  { name: "image", repetition_type: "OPTIONAL", num_children: 2 },
  { name: "bytes", type: "BYTE_ARRAY", repetition_type: "OPTIONAL" },
  {
    name: "path",
    type: "BYTE_ARRAY",
    repetition_type: "OPTIONAL",
    converted_type: "UTF8",
    logical_type: { type: "STRING" },
  },
  { name: "label", type: "INT64", repetition_type: "OPTIONAL" },
];
const PATHS = [["image", "bytes"], ["image", "path"], ["label"]] as const;
const TYPES = ["BYTE_ARRAY", "BYTE_ARRAY", "INT64"] as const;
/** Maximum definition levels: image.bytes and image.path sit in an optional struct. */
const MAX_DEFINITION = [2, 2, 1] as const;

/** Digits of idx, summed over a ≤ idx < b. */
function digitsSum(a: number, b: number): number {
  let sum = 0;
  for (let d = 1, lo = 0, hi = 10; lo < b; d++, lo = hi, hi *= 10)
    sum += d * Math.max(0, Math.min(b, hi) - Math.max(a, lo));
  return sum;
}

/** The rows' path strings "{split}/{idx}.png" (one byte per character: the split and the digits are ASCII). */
const pathBytes = (split: string, a: number, b: number): number => (b - a) * (split.length + 5) + digitsSum(a, b);

const varintLength = (n: number): number => {
  let len = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    len++;
  }
  return len;
};

/** Definition levels of `rows` values all present: one RLE run, prefixed by its length (data page v1). */
function definitionLevels(rows: number, max: number): Uint8Array {
  const run = [];
  let header = rows * 2; // (count << 1) | 0: an RLE run
  while (header >= 0x80) {
    run.push((header & 0x7f) | 0x80);
    header = Math.floor(header / 128);
  }
  run.push(header, max); // the run's value, in one byte (bit width ≤ 8)
  const out = new Uint8Array(4 + run.length);
  new DataView(out.buffer).setUint32(0, run.length, true);
  out.set(run, 4);
  return out;
}

const definitionBytes = (rows: number): number => 4 + varintLength(rows * 2) + 1;

function pageHeader(rows: number, bodySize: number): Uint8Array {
  const header: PageHeader = {
    type: "DATA_PAGE",
    uncompressed_page_size: bodySize,
    compressed_page_size: bodySize,
    data_page_header: {
      num_values: rows,
      encoding: "PLAIN",
      definition_level_encoding: "RLE",
      repetition_level_encoding: "RLE",
    },
  };
  const w = new ByteWriter(64);
  writePageHeader(w, header);
  return w.getBytes().slice();
}

/** Rows per group for an image shape: at most MAX_GROUP_ROWS, fewer for large images. */
export const groupRows = (pngBytes: number): number =>
  Math.max(1, Math.min(MAX_GROUP_ROWS, Math.floor(MAX_GROUP_BYTES / (pngBytes + 4))));

export function parquetLayout(spec: ParquetSpec, rowsPerGroup?: number): ParquetLayout {
  const { rows: height, cols: width, channels } = spec.shape;
  if (!isPngChannels(channels)) throw new RangeError(`a PNG holds 1 to 4 channels; these images have ${channels}`);
  const pngBytes = storedPngLength(width, height, channels);
  const per = rowsPerGroup ?? groupRows(pngBytes);
  const groups: RowGroupLayout[] = [];
  let at = MAGIC.length;
  for (let first = 0; first < spec.count; first += per) {
    const rows = Math.min(per, spec.count - first);
    const bodies = [
      definitionBytes(rows) + rows * (4 + pngBytes),
      definitionBytes(rows) + rows * 4 + pathBytes(spec.split, first, first + rows),
      definitionBytes(rows) + rows * 8,
    ];
    const offset = at;
    const columns = bodies.map((bodySize) => {
      const header = pageHeader(rows, bodySize);
      const column = { offset: at, header, bodySize };
      at += header.length + bodySize;
      return column;
    }) as [Column, Column, Column];
    groups.push({ first, rows, offset, size: at - offset, columns });
  }
  const footer = parquetFooter(spec, groups);
  return { spec, pngBytes, groups, footerOffset: at, footer, size: at + footer.length };
}

function parquetFooter(spec: ParquetSpec, groups: readonly RowGroupLayout[]): Uint8Array {
  const rowGroups: RowGroup[] = groups.map((g) => ({
    columns: g.columns.map((c, i) => {
      const size = BigInt(c.header.length + c.bodySize);
      return {
        file_offset: BigInt(c.offset),
        meta_data: {
          type: TYPES[i]!,
          encodings: ["PLAIN", "RLE"],
          path_in_schema: [...PATHS[i]!],
          codec: "UNCOMPRESSED",
          num_values: BigInt(g.rows),
          total_uncompressed_size: size,
          total_compressed_size: size,
          data_page_offset: BigInt(c.offset),
        },
      };
    }),
    total_byte_size: BigInt(g.size),
    num_rows: BigInt(g.rows),
    file_offset: BigInt(g.offset),
    total_compressed_size: BigInt(g.size),
  }));
  const metadata: Omit<FileMetaData, "metadata_length"> = {
    version: 2,
    schema: SCHEMA,
    num_rows: BigInt(spec.count),
    row_groups: rowGroups,
    key_value_metadata: [{ key: "huggingface", value: huggingfaceFeatures(spec.classNames) }],
    created_by: "idx-etl",
  };
  const w = new ByteWriter(1024 + groups.length * 256);
  writeMetadata(w, metadata as FileMetaData); // the metadata, then its length
  w.appendBytes(MAGIC);
  return w.getBytes().slice();
}

/** The row group that holds byte `offset` (≥ the first group's offset, < the footer's); its index. */
export function groupAt(layout: ParquetLayout, offset: number): number {
  let lo = 0;
  let hi = layout.groups.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (layout.groups[mid]!.offset <= offset) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/**
 * The file's bytes from the start of row group `firstGroup` (0: from the
 * magic), for rows pushed in idx order from that group's first row: each
 * push hands back the bytes it completes, the image as it comes and the
 * path and label columns when the group's last row arrives; `end` the footer.
 */
export class ParquetWriter {
  readonly #layout: ParquetLayout;
  #group: number;
  #next: number;
  #labels: number[] = [];

  constructor(layout: ParquetLayout, firstGroup = 0) {
    this.#layout = layout;
    this.#group = firstGroup;
    this.#next = layout.groups[firstGroup]?.first ?? layout.spec.count;
  }

  /** Bytes before the first pushed row: the magic, if the file is written from its start. */
  start(): Uint8Array[] {
    return this.#group === 0 ? [MAGIC] : [];
  }

  /** Row `idx` (the next one), its label and its upright pixels (rows × cols × channels). */
  push(idx: number, label: number, pixels: Uint8Array): Uint8Array[] {
    return this.pushRows(idx, Uint8Array.of(label), pixels);
  }

  /**
   * Rows `first` … (the next ones), their labels and their pixels end to end:
   * the PNGs of the rows of one group go into one buffer, so a page of rows
   * costs a few allocations, not a few per row.
   */
  pushRows(first: number, labels: Uint8Array, pixels: Uint8Array): Uint8Array[] {
    const { rows: height, cols: width, channels } = this.#layout.spec.shape;
    const perImage = height * width * channels;
    const perRow = 4 + this.#layout.pngBytes;
    const out: Uint8Array[] = [];
    for (let i = 0; i < labels.length;) {
      const g = this.#layout.groups[this.#group];
      if (!g || first + i !== this.#next)
        throw new RangeError(`parquet row ${first + i} out of order: expected ${this.#next}`);
      if (this.#next === g.first) out.push(g.columns[0].header, definitionLevels(g.rows, MAX_DEFINITION[0]));
      const n = Math.min(labels.length - i, g.first + g.rows - this.#next);
      const values = new Uint8Array(n * perRow);
      const view = new DataView(values.buffer);
      for (let k = 0; k < n; k++) {
        const at = k * perRow;
        view.setUint32(at, this.#layout.pngBytes, true);
        const image = pixels.subarray((i + k) * perImage, (i + k + 1) * perImage);
        encodePngStoredInto({ width, height, channels: channels as 1 | 2 | 3 | 4, pixels: image }, values, at + 4);
        this.#labels.push(labels[i + k]!);
      }
      out.push(values);
      this.#next += n;
      i += n;
      if (this.#next === g.first + g.rows) {
        out.push(...this.#closeGroup(g));
        this.#group++;
      }
    }
    return out;
  }

  /** The footer, once every row is pushed. */
  end(): Uint8Array[] {
    if (this.#next !== this.#layout.spec.count)
      throw new RangeError(`parquet ended at row ${this.#next} of ${this.#layout.spec.count}`);
    return [this.#layout.footer];
  }

  #closeGroup(g: RowGroupLayout): Uint8Array[] {
    const split = this.#layout.spec.split;
    const paths = new Uint8Array(g.columns[1].bodySize - definitionBytes(g.rows));
    const view = new DataView(paths.buffer);
    let at = 0;
    for (let idx = g.first; idx < g.first + g.rows; idx++) {
      const path = `${split}/${idx}.png`;
      view.setUint32(at, path.length, true);
      for (let i = 0; i < path.length; i++) paths[at + 4 + i] = path.charCodeAt(i);
      at += 4 + path.length;
    }
    const labels = new Uint8Array(g.rows * 8);
    const lv = new DataView(labels.buffer);
    this.#labels.forEach((l, i) => lv.setBigInt64(i * 8, BigInt(l), true));
    this.#labels = [];
    return [
      g.columns[1].header,
      definitionLevels(g.rows, MAX_DEFINITION[1]),
      paths,
      g.columns[2].header,
      definitionLevels(g.rows, MAX_DEFINITION[2]),
      labels,
    ];
  }
}
