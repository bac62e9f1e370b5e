/**
 * 8-bit PNG encoding of any image shape, pure: gray (colour type 0), gray +
 * alpha (4), RGB (2) or RGBA (6) by channel count, no interlace; one IHDR, one
 * IDAT compressed with fflate's zlib, one IEND. Every scanline uses filter
 * type 0 (None): the images are small, and unfiltered rows keep the encoder
 * obviously correct. Also nearest-neighbour upscaling for the HTTP route.
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

export function encodePng(img: PngImage): Uint8Array<ArrayBuffer> {
  const { width, height, channels, pixels } = img;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1)
    throw new RangeError(`PNG size must be positive integers, got ${width}×${height}`);
  // The type says 1 to 4, but a Shape's channels is any number: refuse here, not with a corrupt PNG.
  if (!isPngChannels(channels)) throw new RangeError(`a PNG holds 1 to 4 channels, got ${channels}`);
  const stride = width * channels;
  if (pixels.length !== stride * height)
    throw new RangeError(`${pixels.length} bytes for a ${width}×${height}×${channels} image`);
  const ihdr = new Uint8Array(13);
  const view = new DataView(ihdr.buffer);
  view.setUint32(0, width);
  view.setUint32(4, height);
  ihdr[8] = 8; // bit depth
  ihdr[9] = COLOUR_TYPE[channels];
  // compression 0, filter method 0, interlace 0: already zero.
  const raw = new Uint8Array(height * (stride + 1));
  for (let y = 0; y < height; y++) raw.set(pixels.subarray(y * stride, (y + 1) * stride), y * (stride + 1) + 1);
  const parts = [
    SIGNATURE,
    chunk("IHDR", ihdr),
    chunk("IDAT", zlibSync(raw, { level: 9 })),
    chunk("IEND", new Uint8Array(0)),
  ];
  return concatBytes(...parts);
}
