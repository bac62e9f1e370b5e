/**
 * Packed hex, the exports' D1 reads: SQL's `replace(hex(x), '00000000', 'g')`
 * decoded back to the bytes, for any bytes, zeros aligned to a float32 or not.
 */
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { decodeHex, decodePackedHexInto } from "../src/codec/hex";
import { mulberry32 } from "./flaky-d1";

const hexOf = (bytes: Uint8Array) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0").toUpperCase()).join("");
/** What SQLite's replace() does: left to right, matches do not overlap (as String.replaceAll). */
const pack = (bytes: Uint8Array) => hexOf(bytes).replaceAll("00000000", "g");
const unpack = (text: string, length: number) => {
  const out = new Uint8Array(length);
  expect(decodePackedHexInto(text, "g", out, 0)).toBe(length);
  return out;
};

/** Bytes with runs of zeros at random places and lengths, and nibbles like 0x10 and 0x01 beside them. */
function zeroish(length: number, seed: number): Uint8Array {
  const random = mulberry32(seed);
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) {
    const r = random();
    out[i] = r < 0.6 ? 0 : r < 0.7 ? 0x10 : r < 0.8 ? 0x01 : Math.floor(random() * 256);
  }
  return out;
}

describe("decodePackedHexInto", () => {
  it("restores any bytes, whether a run of zeros starts on a byte, mid-byte or mid-value", () => {
    for (const bytes of [
      Uint8Array.of(0x10, 0, 0, 0, 0x01), // "1000000001": the run starts mid-byte → "1g1"
      Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 0, 0), // two whole runs and a byte
      Uint8Array.of(0x3f, 0, 0, 0, 0, 0, 0, 0x80, 0x3f), // a zero pixel beside 1.0 (0000803f)
      new Uint8Array(0),
      ...Array.from({ length: 200 }, (_, seed) => zeroish(1 + (seed % 97), seed)),
    ]) {
      const text = pack(bytes);
      expect(unpack(text, bytes.length), text).toEqual(bytes);
    }
    expect(pack(Uint8Array.of(0x10, 0, 0, 0, 0x01))).toBe("1g1");
  });

  it("writes at an offset, and agrees with plain hex when there is nothing packed", () => {
    const out = new Uint8Array(6);
    expect(decodePackedHexInto("AB", "g", out, 1)).toBe(2);
    expect(decodePackedHexInto("g", "g", out, 2)).toBe(6);
    expect(out).toEqual(Uint8Array.of(0, 0xab, 0, 0, 0, 0));
    expect(unpack("0A0b", 2)).toEqual(decodeHex("0A0b"));
  });

  it("refuses another character, and an odd number of digits", () => {
    expect(() => decodePackedHexInto("0g0x", "g", new Uint8Array(8), 0)).toThrow(/not hex at 3: "x"/);
    expect(() => decodePackedHexInto("0g", "g", new Uint8Array(8), 0)).toThrow(/odd number of digits/);
  });

  it("decodes what D1 itself packs: replace(hex(blob), '00000000', 'g')", async () => {
    for (let seed = 0; seed < 20; seed++) {
      const bytes = zeroish(3136, seed);
      const row = await env.DB.prepare("SELECT replace(hex(unhex(?1)), '00000000', 'g') AS p")
        .bind(hexOf(bytes))
        .first<{ p: string }>();
      expect(row!.p.length).toBeLessThan(bytes.length * 2);
      expect(unpack(row!.p, bytes.length)).toEqual(bytes);
    }
  });
});
