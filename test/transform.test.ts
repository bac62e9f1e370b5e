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
