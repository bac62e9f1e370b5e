/**
 * Pixels: uint8 → float32 in [0, 1], shaped (rows, cols, channels) row-major —
 * the same bytes as numpy's `x.astype(np.float32) / 255` — and transposed
 * images (EMNIST's) turned upright before that.
 *
 * Why a table and not arithmetic per pixel: there are only 256 inputs. Each
 * entry is b / 255 computed in float64 and rounded once to float32, which is the
 * correctly rounded float32 quotient (float64 carries more than 2×24+2 bits), so
 * it is bit-for-bit numpy's float32 division. Pure: no runtime imports.
 */
import type { Shape } from "../core/datasets";

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

/** The shape of a stored image's transpose: rows and columns swap, channels stay. */
export function transposedShape(s: Shape): Shape {
  return { rows: s.cols, cols: s.rows, channels: s.channels };
}

/**
 * Upright images from images stored transposed: `count` images of shape
 * `stored` (row-major, channels interleaved last) become `count` images of
 * shape transposedShape(stored), where upright pixel (y, x) is stored pixel
 * (x, y). A new array; `pixels` is left as it was.
 */
export function transposeImages(pixels: Uint8Array, count: number, stored: Shape): Uint8Array {
  const { rows, cols, channels } = stored;
  const ppi = rows * cols * channels;
  if (!Number.isInteger(count) || count < 0 || pixels.length !== count * ppi) {
    throw new RangeError(`${pixels.length} bytes are not ${count} images of ${rows}×${cols}×${channels}`);
  }
  const out = new Uint8Array(pixels.length);
  // Writes run in order and reads stride by a stored row: one image fits in
  // cache, so the strided reads cost little. One channel, the common case,
  // gets a loop without the inner channel loop.
  const rowStride = cols * channels;
  let o = 0;
  if (channels === 1) {
    for (let base = 0; base < pixels.length; base += ppi) {
      for (let y = 0; y < cols; y++) {
        for (let i = base + y, end = base + ppi; i < end; i += cols) out[o++] = pixels[i]!;
      }
    }
  } else {
    for (let base = 0; base < pixels.length; base += ppi) {
      for (let y = 0; y < cols; y++) {
        for (let i = base + y * channels, end = base + ppi; i < end; i += rowStride) {
          for (let k = 0; k < channels; k++) out[o++] = pixels[i + k]!;
        }
      }
    }
  }
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
 * The original bytes of stored pixels (float32 little-endian, as the `pixels`
 * BLOB holds them): b = round(v · 255), which recovers every b exactly because
 * v = fround(b / 255) lies within 2^-24 · v of b / 255, so v · 255 lies within
 * 2^-16 of b. A value that is not one of the 256 is refused, not rounded: the
 * exports must be the IDX bytes or nothing.
 */
export function bytesOfStored(floats: Uint8Array): Uint8Array<ArrayBuffer> {
  if (floats.length % BYTES_PER_VALUE !== 0) throw new RangeError(`${floats.length} bytes are not float32 values`);
  const values =
    floats.byteOffset % BYTES_PER_VALUE === 0
      ? new Float32Array(floats.buffer, floats.byteOffset, floats.length / BYTES_PER_VALUE) // little-endian hosts
      : new Float32Array(floats.slice().buffer);
  const out = new Uint8Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    const b = Math.round(v * 255);
    if (FLOAT_OF_BYTE[b] !== v) throw new RangeError(`pixel value ${v} at ${i} is not a byte / 255`);
    out[i] = b;
  }
  return out;
}

/**
 * HEX_OF_BYTE[b]: the 8 ASCII hex digits of FLOAT_OF_BYTE[b] as little-endian
 * bytes. Loading hex text decoded by SQL `unhex()` crosses the D1 boundary far
 * faster than binding a Uint8Array (see bench/decisions.md), and with this table a
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
 * The stand-in for a zero pixel in packed hex: half of Fashion-MNIST's pixels
 * are 0, and one character instead of their eight "00000000" cuts the text
 * that crosses into D1 by almost half. 'g' is not a hex digit, so SQL's
 * `unhex(replace(text, 'g', '00000000'))` restores the exact float32 bytes.
 */
export const ZERO_PIXEL = "g";
/** FLOAT_OF_BYTE[0]'s little-endian bytes in hex, what ZERO_PIXEL stands for. */
export const ZERO_PIXEL_HEX = "00000000";

/**
 * HEX_LO[b] and HEX_HI[b]: HEX_OF_BYTE's 8 characters for byte b as two 32-bit
 * words, first character in the low byte, for little-endian DataView stores:
 * two stores per pixel instead of eight. This is the consumer's hottest loop.
 */
const HEX_VIEW = new DataView(HEX_OF_BYTE.buffer);
const HEX_LO = Uint32Array.from({ length: 256 }, (_, b) => HEX_VIEW.getUint32(8 * b, true));
const HEX_HI = Uint32Array.from({ length: 256 }, (_, b) => HEX_VIEW.getUint32(8 * b + 4, true));

/**
 * Packed hex of the normalised float32 LE bytes of `pixels`, image by image:
 * 8 hex characters per pixel, or ZERO_PIXEL for a zero. `text.slice(starts[i],
 * starts[i + 1])` is image i's.
 */
export function pixelsToPackedHex(
  pixels: Uint8Array,
  pixelsPerImage: number,
): { readonly text: string; readonly starts: Uint32Array } {
  const images = pixels.length / pixelsPerImage;
  const out = new Uint8Array(pixels.length * 8);
  const view = new DataView(out.buffer);
  const zero = ZERO_PIXEL.charCodeAt(0);
  const starts = new Uint32Array(images + 1);
  let at = 0;
  for (let i = 0, p = 0; i < images; i++) {
    starts[i] = at;
    for (const end = p + pixelsPerImage; p < end; p++) {
      const b = pixels[p]!;
      if (b === 0) {
        out[at++] = zero;
      } else {
        view.setUint32(at, HEX_LO[b]!, true);
        view.setUint32(at + 4, HEX_HI[b]!, true);
        at += 8;
      }
    }
  }
  starts[images] = at;
  return { text: new TextDecoder().decode(out.subarray(0, at)), starts };
}
