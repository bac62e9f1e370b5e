/**
 * PNG encoding: every colour type decodes (with fast-png, checking CRCs) to
 * the same size, channel count and bytes, and upscaling repeats each pixel's
 * channels as a block.
 */
import { decode } from "fast-png";
import { describe, expect, it } from "vitest";
import { encodePng, isPngChannels, upscale, type PngChannels } from "../src/codec/png";

/** Distinct bytes at every position, so a swapped row, column or channel shows. */
const pattern = (length: number) => Uint8Array.from({ length }, (_, i) => (i * 37 + 11) % 256);

describe("PNG encoding", () => {
  it.each([
    [1, 0],
    [2, 4],
    [3, 2],
    [4, 6],
  ] as const)("encodes %i channel(s) as colour type %i, decoding to the same pixels", (channels, colourType) => {
    const [width, height] = [5, 3];
    const pixels = pattern(width * height * channels);
    const bytes = encodePng({ width, height, channels, pixels });
    expect(bytes[25]).toBe(colourType); // IHDR's colour type byte: 8 signature + 8 chunk head + 9
    const png = decode(bytes, { checkCrc: true });
    expect([png.width, png.height, png.channels, png.depth]).toEqual([width, height, channels, 8]);
    expect(Uint8Array.from(png.data)).toEqual(pixels);
  });

  it("refuses a size, a channel count or a pixel count it cannot encode", () => {
    const pixels = new Uint8Array(12);
    expect(() => encodePng({ width: 0, height: 4, channels: 3, pixels })).toThrow("PNG size must be positive integers");
    expect(() => encodePng({ width: 2, height: 2, channels: 5 as PngChannels, pixels })).toThrow(
      "a PNG holds 1 to 4 channels, got 5",
    );
    expect(() => encodePng({ width: 2, height: 2, channels: 4, pixels })).toThrow("12 bytes for a 2×2×4 image");
    expect([0, 1, 2, 3, 4, 5].map(isPngChannels)).toEqual([false, true, true, true, true, false]);
  });
});

describe("upscale", () => {
  it.each([1, 3] as const)("repeats each pixel, all %i channel(s), as a scale × scale block", (channels) => {
    const [width, height, scale] = [3, 2, 4];
    const img = { width, height, channels, pixels: pattern(width * height * channels) };
    const big = upscale(img, scale);
    expect([big.width, big.height, big.channels]).toEqual([12, 8, channels]);
    for (let y = 0; y < big.height; y++)
      for (let x = 0; x < big.width; x++)
        for (let k = 0; k < channels; k++)
          expect(big.pixels[(y * big.width + x) * channels + k]).toBe(
            img.pixels[(Math.floor(y / scale) * width + Math.floor(x / scale)) * channels + k],
          );
    const png = decode(encodePng(big), { checkCrc: true });
    expect([png.width, png.height, png.channels]).toEqual([12, 8, channels]);
    expect(Uint8Array.from(png.data)).toEqual(big.pixels);
  });

  it("keeps a gray image gray, and scale 1 is the image itself", () => {
    const gray = { width: 2, height: 2, channels: 1, pixels: Uint8Array.of(1, 2, 3, 4) } as const;
    const big = upscale(gray, 2);
    expect(big).toEqual({
      width: 4,
      height: 4,
      channels: 1,
      pixels: Uint8Array.of(1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4),
    });
    expect(upscale(gray, 1)).toBe(gray);
    expect(() => upscale(gray, 0)).toThrow("scale must be a positive integer, got 0");
    expect(() => upscale(gray, 1.5)).toThrow("scale must be a positive integer, got 1.5");
  });
});
