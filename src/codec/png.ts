/**
 * 8-bit PNG encoding of any image shape, pure: gray (colour type 0), gray +
 * alpha (4), RGB (2) or RGBA (6) by channel count, no interlace; one IHDR, one
 * IDAT, one IEND. Every scanline uses filter type 0 (None): the images are
 * small, and unfiltered rows keep the encoder obviously correct. The IDAT is
 * compressed with fflate's zlib (the image route), or *stored* (deflate's
 * uncompressed blocks: the Parquet export), which makes a PNG's length a
 * function of its shape alone (storedPngLength). Also nearest-neighbour
 * upscaling for the HTTP route.
 */
import { buf as crc32 } from "crc-32";
import { zlibSync } from "fflate";
import { concatBytes } from "./bytes";

const SIGNATURE = Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a);

/** Nearest-neighbour upscaling limits for the HTTP route (28 × 16 = 448 px). */
export const MIN_SCALE = 1;
export const MAX_SCALE = 16;

/** Channels per pixel a PNG can hold at 8 bits: gray, gray + alpha, RGB, RGBA. */
export type PngChannels = 1 | 2 | 3 | 4;

export const isPngChannels = (n: number): n is PngChannels => n === 1 || n === 2 || n === 3 || n === 4;

/** PNG colour type by channel count. */
const COLOUR_TYPE: Readonly<Record<PngChannels, number>> = { 1: 0, 2: 4, 3: 2, 4: 6 };

export interface PngImage {
  readonly width: number;
  readonly height: number;
  readonly channels: PngChannels;
  /** width × height × channels bytes, row-major, channels interleaved (HWC). */
  readonly pixels: Uint8Array;
}

/** Each pixel becomes a scale × scale block. */
export function upscale(img: PngImage, scale: number): PngImage {
  if (!Number.isInteger(scale) || scale < 1) throw new RangeError(`scale must be a positive integer, got ${scale}`);
  if (scale === 1) return img;
  const { channels } = img;
  const width = img.width * scale;
  const height = img.height * scale;
  const srcRow = img.width * channels;
  const outRow = width * channels;
  const pixels = new Uint8Array(outRow * height);
  for (let sy = 0; sy < img.height; sy++) {
    // Widen the source row once, then repeat it: the block's other rows are copies.
    const first = sy * scale * outRow;
    let o = first;
    for (let i = sy * srcRow, end = i + srcRow; i < end; i += channels) {
      for (let r = 0; r < scale; r++) for (let k = 0; k < channels; k++) pixels[o++] = img.pixels[i + k]!;
    }
    for (let r = 1; r < scale; r++) pixels.copyWithin(first + r * outRow, first, first + outRow);
  }
  return { width, height, channels, pixels };
}

function chunk(type: string, data: Uint8Array): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  // The CRC covers the type and the data, not the length.
  view.setInt32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

/** A row's bytes, once the image is one a PNG can hold; a RangeError says what is wrong. */
function checkedStride({ width, height, channels, pixels }: PngImage): number {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1)
    throw new RangeError(`PNG size must be positive integers, got ${width}×${height}`);
  // The type says 1 to 4, but a Shape's channels is any number: refuse here, not with a corrupt PNG.
  if (!isPngChannels(channels)) throw new RangeError(`a PNG holds 1 to 4 channels, got ${channels}`);
  const stride = width * channels;
  if (pixels.length !== stride * height)
    throw new RangeError(`${pixels.length} bytes for a ${width}×${height}×${channels} image`);
  return stride;
}

/** The IHDR data and the unfiltered scanlines (a filter byte, then the row) of a checked image. */
function scanlines(img: PngImage): { ihdr: Uint8Array; raw: Uint8Array } {
  const { width, height, channels, pixels } = img;
  const stride = checkedStride(img);
  const ihdr = new Uint8Array(13);
  const view = new DataView(ihdr.buffer);
  view.setUint32(0, width);
  view.setUint32(4, height);
  ihdr[8] = 8; // bit depth
  ihdr[9] = COLOUR_TYPE[channels];
  // compression 0, filter method 0, interlace 0: already zero.
  const raw = new Uint8Array(height * (stride + 1));
  for (let y = 0; y < height; y++) raw.set(pixels.subarray(y * stride, (y + 1) * stride), y * (stride + 1) + 1);
  return { ihdr, raw };
}

const png = (ihdr: Uint8Array, idat: Uint8Array): Uint8Array<ArrayBuffer> =>
  concatBytes(SIGNATURE, chunk("IHDR", ihdr), chunk("IDAT", idat), chunk("IEND", new Uint8Array(0)));

export function encodePng(img: PngImage): Uint8Array<ArrayBuffer> {
  const { ihdr, raw } = scanlines(img);
  return png(ihdr, zlibSync(raw, { level: 9 }));
}

/** Deflate's largest stored block (RFC 1951 §3.2.4: LEN is 16 bits). */
const STORED_BLOCK = 0xffff;

/** Bytes of a zlib stream of `n` bytes in stored blocks: header, 5 per block, the data, Adler-32. */
const storedZlibLength = (n: number): number => 2 + 5 * Math.max(1, Math.ceil(n / STORED_BLOCK)) + n + 4;

/** The exact length of encodePngStored's PNG of an image of this size: 57 bytes of chunks around the zlib stream. */
export const storedPngLength = (width: number, height: number, channels: number): number =>
  SIGNATURE.length + (12 + 13) + 12 + storedZlibLength(height * (width * channels + 1)) + 12;

/** A PNG whose IDAT is stored, not compressed: as valid as encodePng's, and exactly storedPngLength bytes. */
export function encodePngStored(img: PngImage): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(storedPngLength(img.width, img.height, img.channels));
  encodePngStoredInto(img, out, 0);
  return out;
}

const IHDR_TYPE = Uint8Array.from("IHDR", (c) => c.charCodeAt(0));
const IDAT_TYPE = Uint8Array.from("IDAT", (c) => c.charCodeAt(0));
const IEND_CHUNK = chunk("IEND", new Uint8Array(0));

/**
 * encodePngStored's PNG written into `out` at `at`, with no allocation: the
 * exports encode one per image, so the scanlines go straight into their
 * stored deflate blocks and the checksums are taken where the bytes lie.
 * Returns the end.
 */
export function encodePngStoredInto(img: PngImage, out: Uint8Array, at: number): number {
  const { width, height, channels, pixels } = img;
  const stride = checkedStride(img);
  const rawLength = height * (stride + 1);
  const v = new DataView(out.buffer, out.byteOffset, out.byteLength);
  out.set(SIGNATURE, at);
  let p = at + SIGNATURE.length;
  v.setUint32(p, 13);
  out.set(IHDR_TYPE, p + 4);
  v.setUint32(p + 8, width);
  v.setUint32(p + 12, height);
  out[p + 16] = 8; // bit depth
  out[p + 17] = COLOUR_TYPE[channels];
  out[p + 18] = out[p + 19] = out[p + 20] = 0; // compression, filter method, interlace
  v.setInt32(p + 21, crc32(out.subarray(p + 4, p + 21)));
  p += 25;
  const idat = p;
  v.setUint32(p, storedZlibLength(rawLength));
  out.set(IDAT_TYPE, p + 4);
  p += 8;
  out[p++] = 0x78; // deflate, 32 KB window
  out[p++] = 0x01; // no preset dictionary, fastest; (0x78 << 8 | 0x01) % 31 === 0
  let a = 1; // Adler-32 (RFC 1950 §8.2) of the scanlines, as they are written
  let b = 0;
  let raw = 0; // scanline bytes written
  let left = 0; // of the current stored block
  const write = (src: Uint8Array) => {
    for (let i = 0; i < src.length;) {
      if (left === 0) {
        left = Math.min(STORED_BLOCK, rawLength - raw);
        out[p] = raw + left >= rawLength ? 1 : 0; // BFINAL, BTYPE 00
        out[p + 1] = left & 0xff;
        out[p + 2] = left >>> 8;
        out[p + 3] = ~left & 0xff;
        out[p + 4] = (~left >>> 8) & 0xff;
        p += 5;
      }
      // Runs short enough that the sums stay exact before the modulo.
      const n = Math.min(src.length - i, left, 3800);
      for (let k = i; k < i + n; k++) {
        a += src[k]!;
        b += a;
      }
      a %= 65521;
      b %= 65521;
      out.set(src.subarray(i, i + n), p);
      p += n;
      i += n;
      raw += n;
      left -= n;
    }
  };
  for (let y = 0; y < height; y++) {
    write(FILTER_NONE);
    write(pixels.subarray(y * stride, (y + 1) * stride));
  }
  v.setUint32(p, ((b << 16) | a) >>> 0);
  p += 4;
  v.setInt32(p, crc32(out.subarray(idat + 4, p)));
  p += 4;
  out.set(IEND_CHUNK, p);
  return p + IEND_CHUNK.length;
}

const FILTER_NONE = new Uint8Array(1);
