/**
 * 8-bit grayscale PNG encoding (colour type 0, no interlace), pure: one IHDR,
 * one IDAT compressed with fflate's zlib, one IEND. Every scanline uses filter
 * type 0 (None): the images are tiny, and unfiltered rows keep the encoder
 * obviously correct.
 */
import { buf as crc32 } from "crc-32";
import { zlibSync } from "fflate";

const SIGNATURE = Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a);

/** Nearest-neighbour upscaling limits for the HTTP route (28 × 16 = 448 px). */
export const MIN_SCALE = 1;
export const MAX_SCALE = 16;

export interface GrayImage {
  readonly width: number;
  readonly height: number;
  /** width × height bytes, row-major, 0 = black. */
  readonly pixels: Uint8Array;
}

/** Each pixel becomes a scale × scale block. */
export function upscale(img: GrayImage, scale: number): GrayImage {
  if (!Number.isInteger(scale) || scale < 1) throw new RangeError(`scale must be a positive integer, got ${scale}`);
  if (scale === 1) return img;
  const width = img.width * scale;
  const height = img.height * scale;
  const pixels = new Uint8Array(width * height);
  for (let y = 0; y < height; y++) {
    const src = Math.floor(y / scale) * img.width;
    for (let x = 0; x < width; x++) pixels[y * width + x] = img.pixels[src + Math.floor(x / scale)]!;
  }
  return { width, height, pixels };
}

function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  // The CRC covers the type and the data, not the length.
  view.setInt32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

export function encodeGrayPng(img: GrayImage): Uint8Array<ArrayBuffer> {
  const { width, height, pixels } = img;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1)
    throw new RangeError(`PNG size must be positive integers, got ${width}×${height}`);
  if (pixels.length !== width * height)
    throw new RangeError(`${pixels.length} pixels for a ${width}×${height} grayscale image`);
  const ihdr = new Uint8Array(13);
  const view = new DataView(ihdr.buffer);
  view.setUint32(0, width);
  view.setUint32(4, height);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 0; // colour type: grayscale
  // compression 0, filter method 0, interlace 0: already zero.
  const raw = new Uint8Array(height * (width + 1));
  for (let y = 0; y < height; y++) raw.set(pixels.subarray(y * width, (y + 1) * width), y * (width + 1) + 1);
  const parts = [
    SIGNATURE,
    chunk("IHDR", ihdr),
    chunk("IDAT", zlibSync(raw, { level: 9 })),
    chunk("IEND", new Uint8Array(0)),
  ];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
