/**
 * Hex text → bytes, pure. Reads select `hex(pixels)` rather than the BLOB: D1
 * hands a BLOB to JavaScript as an array of numbers (~8 bytes per byte in
 * memory), a hex string costs 2.
 */
const NIBBLE: Int8Array = (() => {
  const t = new Int8Array(128).fill(-1);
  for (let i = 0; i < 10; i++) t[48 + i] = i;
  for (let i = 0; i < 6; i++) t[65 + i] = t[97 + i] = 10 + i;
  return t;
})();

/** Decode `hex` into `out` at `at`; returns the end. Throws on a non-hex character or an odd length. */
export function decodeHexInto(hex: string, out: Uint8Array, at: number): number {
  if (hex.length % 2 !== 0) throw new RangeError(`hex text of odd length ${hex.length}`);
  for (let i = 0; i < hex.length; i += 2) {
    const hi = NIBBLE[hex.charCodeAt(i)] ?? -1;
    const lo = NIBBLE[hex.charCodeAt(i + 1)] ?? -1;
    if (hi < 0 || lo < 0) throw new RangeError(`not hex at ${i}: ${JSON.stringify(hex.slice(i, i + 2))}`);
    out[at++] = (hi << 4) | lo;
  }
  return at;
}

export const decodeHex = (hex: string): Uint8Array => {
  const out = new Uint8Array(hex.length / 2);
  decodeHexInto(hex, out, 0);
  return out;
};
