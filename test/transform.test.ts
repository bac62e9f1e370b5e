import { describe, expect, it } from "vitest";
import golden from "./fixtures/numpy-float32-of-byte.hex?raw";
import {
  FLOAT_OF_BYTE,
  HEX_OF_BYTE,
  ZERO_PIXEL,
  ZERO_PIXEL_HEX,
  float32LE,
  normalise,
  pixelsToPackedHex,
  toBytes,
  transposeImages,
  transposedShape,
} from "../src/codec/transform";

// numpy: (np.arange(256, dtype=np.uint8).astype(np.float32) / 255).tobytes().hex()
const numpyBytes = Uint8Array.from(golden.trim().match(/../g)!, (h) => parseInt(h, 16));

describe("normalisation", () => {
  it("equals numpy's float32 x / 255 bit for bit, for every byte value", () => {
    expect(numpyBytes.length).toBe(256 * 4);
    expect(float32LE(FLOAT_OF_BYTE)).toEqual(numpyBytes);
  });

  it("maps 0 to 0 and 255 to 1, monotonically", () => {
    expect(FLOAT_OF_BYTE[0]).toBe(0);
    expect(FLOAT_OF_BYTE[255]).toBe(1);
    for (let b = 1; b < 256; b++) expect(FLOAT_OF_BYTE[b]!).toBeGreaterThan(FLOAT_OF_BYTE[b - 1]!);
  });

  it("normalise keeps the pixel order (row-major 28×28×1) and round-trips through toBytes", () => {
    const pixels = Uint8Array.from({ length: 784 }, (_, i) => (i * 31) % 256);
    const values = normalise(pixels);
    expect(values.length).toBe(784);
    expect(values[29]).toBe(FLOAT_OF_BYTE[(29 * 31) % 256]);
    expect(toBytes(values)).toEqual(pixels);
  });

  it("the hex table spells each value's little-endian bytes", () => {
    const text = new TextDecoder().decode(HEX_OF_BYTE);
    expect(text).toBe(golden.trim());
  });

  it("packed hex spells every byte value as its float32's little-endian hex, in pixel order, a zero as one character", () => {
    const all = Uint8Array.from({ length: 256 }, (_, b) => b);
    const packed = pixelsToPackedHex(all, 256);
    expect(packed.text).toBe(ZERO_PIXEL + golden.trim().slice(8));
    expect(packed.text.replaceAll(ZERO_PIXEL, ZERO_PIXEL_HEX)).toBe(golden.trim());
    expect(ZERO_PIXEL_HEX).toBe(golden.trim().slice(0, 8));
    expect(/^[0-9a-f]$/.test(ZERO_PIXEL)).toBe(false);
  });

  it("packed hex marks where each image starts", () => {
    const { text, starts } = pixelsToPackedHex(Uint8Array.of(255, 0, 0, 0, 1, 0), 2);
    expect(text).toBe("0000803f" + "g" + "g" + "g" + "8180803b" + "g");
    expect(Array.from(starts)).toEqual([0, 9, 11, 20]);
    expect([0, 1, 2].map((i) => text.slice(starts[i], starts[i + 1]))).toEqual(["0000803fg", "gg", "8180803bg"]);
  });
});

describe("transposed images", () => {
  it("turns an asymmetric shape upright: an L stored as its transpose", () => {
    // Upright, 4 rows × 3 columns:   Stored (its transpose), 3 × 4:
    //   1 0 0                          1 1 1 2
    //   1 0 0                          0 0 0 2
    //   1 0 0                          0 0 0 2
    //   2 2 2
    const stored = Uint8Array.of(1, 1, 1, 2, 0, 0, 0, 2, 0, 0, 0, 2);
    const upright = Uint8Array.of(1, 0, 0, 1, 0, 0, 1, 0, 0, 2, 2, 2);
    const shape = { rows: 3, cols: 4, channels: 1 };
    expect(transposedShape(shape)).toEqual({ rows: 4, cols: 3, channels: 1 });
    expect(transposeImages(stored, 1, shape)).toEqual(upright);
  });

  it.each([1, 3])(
    "moves stored pixel (r, c) to upright (c, r), channels kept in order, image by image (%i channels)",
    (channels) => {
      const stored = { rows: 5, cols: 3, channels };
      const count = 4;
      const ppi = 5 * 3 * channels;
      // Every byte of every image distinct: image i, row r, column c, channel k.
      const value = (i: number, r: number, c: number, k: number) => i * 60 + (r * 3 + c) * channels + k;
      const pixels = new Uint8Array(count * ppi);
      for (let i = 0; i < count; i++)
        for (let r = 0; r < 5; r++)
          for (let c = 0; c < 3; c++)
            for (let k = 0; k < channels; k++) pixels[i * ppi + (r * 3 + c) * channels + k] = value(i, r, c, k);
      const before = pixels.slice();
      const out = transposeImages(pixels, count, stored);
      const up = transposedShape(stored);
      expect(up).toEqual({ rows: 3, cols: 5, channels });
      for (let i = 0; i < count; i++)
        for (let y = 0; y < up.rows; y++)
          for (let x = 0; x < up.cols; x++)
            for (let k = 0; k < channels; k++)
              expect(out[i * ppi + (y * up.cols + x) * channels + k]).toBe(value(i, x, y, k));
      expect(pixels).toEqual(before);
      expect(transposeImages(out, count, up)).toEqual(pixels);
    },
  );

  it("is its own inverse on a square image, and handles no images", () => {
    const shape = { rows: 28, cols: 28, channels: 1 };
    const pixels = Uint8Array.from({ length: 2 * 784 }, (_, i) => (i * 13) % 256);
    const once = transposeImages(pixels, 2, shape);
    expect(once).not.toEqual(pixels);
    expect(once[1]).toBe(pixels[28]);
    expect(transposeImages(once, 2, shape)).toEqual(pixels);
    expect(transposeImages(new Uint8Array(0), 0, shape)).toEqual(new Uint8Array(0));
  });

  it("refuses bytes that are not count images of the shape", () => {
    expect(() => transposeImages(new Uint8Array(10), 1, { rows: 3, cols: 3, channels: 1 })).toThrow(
      "10 bytes are not 1 images of 3×3×1",
    );
  });
});
