/**
 * How a read selects an image's pixels as hex (D1 hands a BLOB to JavaScript
 * as an array of numbers; hex.ts): one `hex(pixels)` column while that fits
 * D1's 2,000,000-byte limit on a value, else one column per piece of the BLOB
 * (`substr` of a BLOB counts bytes), read back in order.
 */
import { D1_MAX_ROW_BYTES } from "../db/tables";

/** Bytes of BLOB per hex column: 2 hex digits a byte within the limit, and whole float32 values. */
export const HEX_PIECE_BYTES = Math.floor(D1_MAX_ROW_BYTES / 2 / 4) * 4;

/**
 * The columns that select `column`, a BLOB of `bytes`, as hex, each within
 * D1's limit; `wrap` turns each piece's hex into what is selected (a packing).
 */
export function hexColumns(column: string, bytes: number, wrap: (hex: string) => string = (h) => h): string[] {
  if (bytes <= HEX_PIECE_BYTES) return [wrap(`hex(${column})`)];
  const out: string[] = [];
  for (let at = 0; at < bytes; at += HEX_PIECE_BYTES)
    out.push(wrap(`hex(substr(${column}, ${at + 1}, ${HEX_PIECE_BYTES}))`));
  return out;
}
