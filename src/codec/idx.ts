/**
 * IDX headers (the format of the MNIST family): two zero bytes, an element-type
 * byte, a dimension-count byte, then one big-endian uint32 per dimension; and
 * what an images or labels file's dimensions must be; and an IDX file's bytes
 * cut into its header and chunks of records. Pure: takes bytes, returns a
 * description or throws an EtlError naming the file.
 */
import type { Shape } from "../core/datasets";
import { EtlError } from "../core/errors";
import { concatBytes } from "./bytes";

/** Element type 0x08: unsigned byte, the only one image datasets use. */
export const IDX_UBYTE = 0x08;
const MAX_DIMS = 4;
/** Gray, gray + alpha, RGB, RGBA: what a PNG can show. */
export const MAX_CHANNELS = 4;

/** The element types the IDX format defines, named in refusals. */
const ELEMENT_TYPES: Readonly<Record<number, string>> = {
  0x08: "unsigned byte",
  0x09: "signed byte",
  0x0b: "short",
  0x0c: "int",
  0x0d: "float",
  0x0e: "double",
};

const hexByte = (b: number): string => `0x${b.toString(16).padStart(2, "0")}`;

export interface IdxHeader {
  readonly dims: readonly number[];
  /** Bytes before the first element: 4 + 4 × dims. */
  readonly headerLength: number;
  /** Bytes of elements the header promises: the product of dims. */
  readonly bodyLength: number;
}

/** How many bytes the header has, once its first four are known. */
export function idxHeaderLength(prefix: Uint8Array): number | undefined {
  return prefix.length < 4 ? undefined : 4 + 4 * (prefix[3] ?? 0);
}

export function parseIdxHeader(bytes: Uint8Array, file: string): IdxHeader {
  if (bytes.length === 0) throw new EtlError(`${file}: file is empty`);
  if (bytes.length < 4) throw new EtlError(`${file}: truncated IDX header (${bytes.length} bytes)`);
  const magic = ((bytes[0]! << 24) | (bytes[1]! << 16) | (bytes[2]! << 8) | bytes[3]!) >>> 0;
  const hex = `0x${magic.toString(16).padStart(8, "0")}`;
  if (bytes[0] !== 0 || bytes[1] !== 0) {
    throw new EtlError(`${file}: wrong magic number ${hex}, not an IDX file (expected 0x000008NN)`);
  }
  const type = bytes[2]!;
  if (type !== IDX_UBYTE) {
    const name = ELEMENT_TYPES[type] ?? "not an IDX element type";
    throw new EtlError(
      `${file}: magic number ${hex} has element type ${hexByte(type)} (${name}), expected 0x08 (unsigned byte): ` +
        `only unsigned-byte images and labels are accepted`,
    );
  }
  const ndim = bytes[3]!;
  if (ndim < 1 || ndim > MAX_DIMS) {
    throw new EtlError(`${file}: magic number ${hex} declares ${ndim} dimensions, expected 1 to ${MAX_DIMS}`);
  }
  const headerLength = 4 + 4 * ndim;
  if (bytes.length < headerLength) {
    throw new EtlError(`${file}: truncated IDX header (${bytes.length} of ${headerLength} bytes)`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, headerLength);
  const dims: number[] = [];
  let bodyLength = 1;
  for (let i = 0; i < ndim; i++) {
    const d = view.getUint32(4 + 4 * i, false);
    dims.push(d);
    bodyLength *= d;
  }
  if (!Number.isSafeInteger(bodyLength)) {
    throw new EtlError(`${file}: dimensions ${dims.join("×")} are too large`);
  }
  return { dims, headerLength, bodyLength };
}

const ACCEPTED_IMAGES = `images must be [n, rows, cols] or [n, rows, cols, channels], rows and cols at least 1, channels 1 to ${MAX_CHANNELS}`;

/**
 * An images file: [count, rows, cols] (one channel) or [count, rows, cols,
 * channels], channels interleaved last. The shape is the file's own; whether
 * it is the one a dataset expects is the caller's to check (sameShape).
 */
export function expectImages(h: IdxHeader, file: string): { count: number; shape: Shape } {
  const [count, rows, cols, channels = 1] = h.dims;
  const refuse = (why: string) =>
    new EtlError(`${file}: header says [${h.dims.join(", ")}] (${why}); ${ACCEPTED_IMAGES}`);
  const n = h.dims.length;
  if (n !== 3 && n !== 4) throw refuse(`${n} dimension${n === 1 ? "" : "s"}`);
  if (rows === 0 || cols === 0)
    throw refuse([rows === 0 && "0 rows", cols === 0 && "0 columns"].filter(Boolean).join(" and "));
  if (channels < 1 || channels > MAX_CHANNELS) throw refuse(`${channels} channels`);
  return { count: count!, shape: { rows: rows!, cols: cols!, channels } };
}

export function sameShape(a: Shape, b: Shape): boolean {
  return a.rows === b.rows && a.cols === b.cols && a.channels === b.channels;
}

/** rows×cols×channels, as messages and people write a shape: "28×28×1". */
export function describeShape(s: Shape): string {
  return `${s.rows}×${s.cols}×${s.channels}`;
}

/** A labels file: [count]. */
export function expectLabels(h: IdxHeader, file: string): number {
  if (h.dims.length !== 1) {
    throw new EtlError(`${file}: expected a 1-dimensional labels file, header says [${h.dims.join(", ")}]`);
  }
  return h.dims[0]!;
}

/** What an IDX file is read as: its header, then its records in order, `count` at a time. */
export type IdxItem =
  | { readonly kind: "header"; readonly header: IdxHeader }
  | { readonly kind: "records"; readonly start: number; readonly count: number; readonly bytes: Uint8Array };

/**
 * An IDX file's bytes, pushed as they inflate, cut into its header and then
 * chunks of `perChunk` records (a record is one element of the first
 * dimension: an image, a label). The file's last chunk is held back until
 * `end`, which first checks the file is exactly as long as its header says.
 */
export class IdxRecords {
  private head: Uint8Array = new Uint8Array(0);
  private header: IdxHeader | undefined;
  private received = 0;
  private recordBytes = 0;
  private chunk: Uint8Array | undefined;
  private filled = 0;
  private start = 0;

  constructor(
    private readonly file: string,
    private readonly perChunk: number,
  ) {}

  /**
   * Yields the header as soon as it is whole, then each full chunk, pulling
   * `pieces` only as the reader asks: a reader that stops at the header (a
   * header read) has allocated nothing for records its header may make huge.
   */
  *push(pieces: Iterable<Uint8Array>): Generator<IdxItem> {
    for (let bytes of pieces) {
      if (this.header === undefined) {
        const joined = concatBytes(this.head, bytes);
        const need = idxHeaderLength(joined);
        if (need === undefined || joined.length < need) {
          this.head = joined;
          continue;
        }
        const h = (this.header = parseIdxHeader(joined, this.file));
        this.recordBytes = h.dims.slice(1).reduce((a, b) => a * b, 1);
        this.head = new Uint8Array(0);
        bytes = joined.subarray(need);
        yield { kind: "header", header: h };
      }
      const h = this.header;
      if (this.received + bytes.length > h.bodyLength) {
        const extra = this.received + bytes.length - h.bodyLength;
        throw new EtlError(
          `${this.file}: ${extra}+ extra bytes after the ${h.dims.join("×")} elements the header declares`,
        );
      }
      this.received += bytes.length;
      while (bytes.length > 0) {
        // A fresh array per chunk: whoever takes it owns it.
        const records = Math.min(this.perChunk, h.dims[0]! - this.start);
        this.chunk ??= new Uint8Array(records * this.recordBytes);
        const piece = bytes.subarray(0, this.chunk.length - this.filled);
        this.chunk.set(piece, this.filled);
        this.filled += piece.length;
        bytes = bytes.subarray(piece.length);
        const last = this.start + this.chunk.length / this.recordBytes >= h.dims[0]!;
        if (this.filled === this.chunk.length && !last) yield this.take();
      }
    }
  }

  /** The end of the file: its last chunk, once the file proved exactly as long as its header says. */
  end(): IdxItem | undefined {
    if (this.header === undefined) parseIdxHeader(this.head, this.file); // throws: empty or truncated header
    const h = this.header!;
    if (this.received !== h.bodyLength) {
      throw new EtlError(
        `${this.file}: truncated: ${this.received} of ${h.bodyLength} bytes the header [${h.dims.join(", ")}] declares`,
      );
    }
    return this.chunk === undefined ? undefined : this.take();
  }

  private take(): IdxItem {
    const bytes = this.chunk!;
    const count = this.recordBytes === 0 ? 0 : bytes.length / this.recordBytes;
    const item: IdxItem = { kind: "records", start: this.start, count, bytes };
    this.chunk = undefined;
    this.filled = 0;
    this.start += count;
    return item;
  }
}
