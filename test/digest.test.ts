import { describe, expect, it } from "vitest";
import { chunkDigest, isChunkDigest } from "../src/codec/digest";

const L019 = Uint8Array.of(0, 1, 9);

describe("chunkDigest", () => {
  it("tells apart chunks that differ in one label or one pixel, and is the same for the same bytes", async () => {
    const pixels = Uint8Array.from({ length: 3 * 784 }, (_, i) => (i * 7) % 256);
    const base = await chunkDigest(L019, pixels);
    expect(isChunkDigest(base)).toBe(true);
    expect(await chunkDigest(L019, pixels.slice())).toBe(base);
    expect(await chunkDigest(Uint8Array.of(0, 1, 8), pixels)).not.toBe(base);
    const other = pixels.slice();
    other[1000] = (other[1000]! + 1) % 256;
    expect(await chunkDigest(L019, other)).not.toBe(base);
    // A view hashes only its own bytes, not the rest of its buffer.
    const padded = new Uint8Array(pixels.length + 10);
    padded.set(pixels, 5);
    expect(await chunkDigest(L019, padded.subarray(5, 5 + pixels.length))).toBe(base);
  });
});
