/**
 * Hex text → bytes, pure. Reads select `hex(pixels)` rather than the BLOB: D1
 * hands a BLOB to JavaScript as an array of numbers (~8 bytes per byte in
 * memory), a hex string costs 2; exports select it packed, with every run of
 * eight zero digits as one stand-in character (decodePackedHexInto).
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

/**
 * Decode hex text in which `zero` (a non-hex character) stands for eight `0`
 * digits, as SQL's `replace(hex(x), '00000000', zero)` makes it, into `out` at
 * `at`; returns the end. Exact for any bytes: the stand-in is expanded where
 * it stands, so a run of zeros that straddles a byte or a value decodes as
 * well as an aligned one. Throws on another character or an odd digit count.
 */
export function decodePackedHexInto(text: string, zero: string, out: Uint8Array, at: number): number {
  const z = zero.charCodeAt(0);
  let hi = -1; // a high nibble waiting for its low one
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === z) {
      // Eight zero nibbles are four bytes; with a nibble pending they finish its byte, fill three more and
      // leave a zero pending.
      out[at++] = hi >= 0 ? hi << 4 : 0;
      out[at++] = 0;
      out[at++] = 0;
      out[at++] = 0;
      if (hi >= 0) hi = 0;
      continue;
    }
    const n = NIBBLE[c] ?? -1;
    if (n < 0) throw new RangeError(`not hex at ${i}: ${JSON.stringify(text.slice(i, i + 1))}`);
    if (hi < 0) hi = n;
    else {
      out[at++] = (hi << 4) | n;
      hi = -1;
    }
  }
  if (hi >= 0) throw new RangeError(`packed hex text with an odd number of digits (${text.length} characters)`);
  return at;
}

export const decodeHex = (hex: string): Uint8Array => {
  const out = new Uint8Array(hex.length / 2);
  decodeHexInto(hex, out, 0);
  return out;
};
