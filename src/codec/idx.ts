/**
 * IDX headers (the format of the MNIST family): two zero bytes, an element-type
 * byte, a dimension-count byte, then one big-endian uint32 per dimension.
 * Pure: takes bytes, returns a description or throws an EtlError naming the file.
 */
import { EtlError } from "../core/errors";

/** Element type 0x08: unsigned byte, the only one image datasets use. */
export const IDX_UBYTE = 0x08;
const MAX_DIMS = 4;

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
  if (bytes[2] !== IDX_UBYTE) {
    throw new EtlError(
      `${file}: magic number ${hex} has element type 0x${bytes[2]!.toString(16)}, expected 0x08 (unsigned byte)`,
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

/** An images file: [count, rows, cols] with the dataset's rows and cols. */
export function expectImages(h: IdxHeader, file: string, rows: number, cols: number): number {
  if (h.dims.length !== 3 || h.dims[1] !== rows || h.dims[2] !== cols) {
    throw new EtlError(`${file}: expected images of shape [n, ${rows}, ${cols}], header says [${h.dims.join(", ")}]`);
  }
  return h.dims[0]!;
}

/** A labels file: [count]. */
export function expectLabels(h: IdxHeader, file: string): number {
  if (h.dims.length !== 1) {
    throw new EtlError(`${file}: expected a 1-dimensional labels file, header says [${h.dims.join(", ")}]`);
  }
  return h.dims[0]!;
}
