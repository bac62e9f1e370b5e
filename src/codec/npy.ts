/**
 * NumPy .npy format version 1.0 headers, pure. The body that follows is the
 * array's bytes in C order, which for the stored images is exactly the
 * concatenation of their `pixels` BLOBs (float32 little-endian, HWC).
 * Format: numpy.org/doc/stable/reference/generated/numpy.lib.format.html
 */

/** The element types this project exports. */
export type NpyDtype = "<f4" | "|u1";

export const NPY_MAGIC = Uint8Array.of(0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59); // \x93NUMPY

/** numpy pads the header so the data starts on a 64-byte boundary. */
const ALIGN = 64;
/** Version 1.0 stores the header length in 2 bytes. */
const MAX_V1_HEADER = 0xffff;

const pyTuple = (shape: readonly number[]): string => (shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(", ")})`);

export function npyHeader(dtype: NpyDtype, shape: readonly number[]): Uint8Array {
  if (shape.length === 0 || shape.some((d) => !Number.isSafeInteger(d) || d < 0))
    throw new RangeError(`npy shape must be non-negative integers, got [${shape.join(", ")}]`);
  const dict = `{'descr': '${dtype}', 'fortran_order': False, 'shape': ${pyTuple(shape)}, }`;
  const prefix = NPY_MAGIC.length + 2 + 2; // magic, version, header length
  // The dict is padded with spaces and ends with a newline.
  const total = Math.ceil((prefix + dict.length + 1) / ALIGN) * ALIGN;
  const headerLen = total - prefix;
  if (headerLen > MAX_V1_HEADER) throw new RangeError("npy header too long for format 1.0");
  const out = new Uint8Array(total);
  out.set(NPY_MAGIC, 0);
  out[6] = 1; // major version
  out[7] = 0; // minor version
  new DataView(out.buffer).setUint16(8, headerLen, true);
  const text = dict.padEnd(headerLen - 1, " ") + "\n";
  for (let i = 0; i < text.length; i++) out[prefix + i] = text.charCodeAt(i);
  return out;
}
