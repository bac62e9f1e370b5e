/**
 * Pixels: uint8 → float32 in [0, 1], shaped (28, 28, 1) row-major — the same
 * bytes as numpy's `x.astype(np.float32) / 255`.
 *
 * Why a table and not arithmetic per pixel: there are only 256 inputs. Each
 * entry is b / 255 computed in float64 and rounded once to float32, which is the
 * correctly rounded float32 quotient (float64 carries more than 2×24+2 bits), so
 * it is bit-for-bit numpy's float32 division. Pure: no runtime imports.
 */

/** FLOAT_OF_BYTE[b] === Math.fround(b / 255). */
export const FLOAT_OF_BYTE: Float32Array = Float32Array.from({ length: 256 }, (_, b) => b / 255);

/** Bytes of one stored value: a float32. */
export const BYTES_PER_VALUE = 4;

/** Normalise uint8 pixels into float32 values (the shape is the memory order: row-major HWC). */
export function normalise(pixels: Uint8Array): Float32Array {
  const out = new Float32Array(pixels.length);
  for (let i = 0; i < pixels.length; i++) out[i] = FLOAT_OF_BYTE[pixels[i]!]!;
  return out;
}

/** The float32 values as little-endian bytes, the layout of the `pixels` BLOB. */
export function float32LE(values: Float32Array): Uint8Array {
  const out = new Uint8Array(values.length * BYTES_PER_VALUE);
  const view = new DataView(out.buffer);
  for (let i = 0; i < values.length; i++) view.setFloat32(i * BYTES_PER_VALUE, values[i]!, true);
  return out;
}

/** Inverse of normalise for stored values: round(x · 255), as an image viewer wants. */
export function toBytes(values: Float32Array): Uint8Array {
  const out = new Uint8Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = Math.round(values[i]! * 255);
  return out;
}

/**
 * HEX_OF_BYTE[b]: the 8 ASCII hex digits of FLOAT_OF_BYTE[b] as little-endian
 * bytes. Loading hex text decoded by SQL `unhex()` crosses the D1 boundary ~8×
 * faster than binding a Uint8Array (see bench/results.md), and with this table a
 * pixel becomes its 8 output characters in one copy.
 */
export const HEX_OF_BYTE: Uint8Array = (() => {
  const digits = new TextEncoder().encode("0123456789abcdef");
  const le = float32LE(FLOAT_OF_BYTE);
  const table = new Uint8Array(256 * 8);
  for (let i = 0; i < le.length; i++) {
    table[2 * i] = digits[le[i]! >> 4]!;
    table[2 * i + 1] = digits[le[i]! & 15]!;
  }
  return table;
})();

/**
 * HEX_WORDS[2b] and HEX_WORDS[2b + 1]: HEX_OF_BYTE's 8 characters for byte b as
 * two 32-bit words, read through the platform's own byte order, so writing them
 * through a Uint32Array lays the characters down in order. Two stores per pixel
 * instead of eight: this encoding is the consumer's hottest loop.
 */
const HEX_WORDS = new Uint32Array(HEX_OF_BYTE.slice().buffer);

/** The hex text of the normalised float32 LE bytes of `pixels`: 8 characters per pixel. */
export function pixelsToHex(pixels: Uint8Array): string {
  const words = new Uint32Array(pixels.length * 2);
  for (let i = 0; i < pixels.length; i++) {
    const b = pixels[i]! * 2;
    words[2 * i] = HEX_WORDS[b]!;
    words[2 * i + 1] = HEX_WORDS[b + 1]!;
  }
  return new TextDecoder().decode(words);
}
