/**
 * Inserting images whose packed hex could pass D1's limit on a bound value
 * (2,000,000 bytes): each image is its own statement, its pixels split into
 * parts of at most MAX_PIXELS_PER_PARAM, one parameter each. A part's packed
 * hex is at most 8 characters a pixel, and so is its expansion in SQL
 * (`replace`), so neither passes the limit; each is decoded with `unhex` and
 * the BLOBs are joined (`||`, then CAST back to a BLOB: the bytes unchanged).
 * The row itself stays within D1's row limit (tables.ts MAX_IMAGE_BYTES).
 */
import { pixelsToPackedHex, ZERO_PIXEL, ZERO_PIXEL_HEX } from "../codec/transform";
import type { Statement } from "./batch";
import { D1_MAX_ROW_BYTES } from "./tables";

/** Pixels per bound parameter: 8 hex digits a pixel at most, within D1's 2,000,000-byte value limit. */
export const MAX_PIXELS_PER_PARAM = Math.floor(D1_MAX_ROW_BYTES / 8);

/** The packed hex parts of one image, each of at most MAX_PIXELS_PER_PARAM pixels. */
export function pixelParts(image: Uint8Array): string[] {
  const parts: string[] = [];
  for (let at = 0; at < image.length; at += MAX_PIXELS_PER_PARAM) {
    const part = image.subarray(at, Math.min(at + MAX_PIXELS_PER_PARAM, image.length));
    parts.push(pixelsToPackedHex(part, part.length).text);
  }
  return parts;
}

/**
 * One INSERT per image into `table`: `?1` is the run id, the image's parts
 * are `?2` on. `tail` is the guards and the upsert clause that every insert of
 * a chunk ends with (load.ts buildInsertStatements).
 */
export function largeImageStatements(
  table: string,
  runId: string,
  chunk: {
    readonly start: number;
    readonly labels: Uint8Array;
    readonly pixels: Uint8Array;
    readonly pixelsPerImage: number;
  },
  tail: string,
): Statement[] {
  const { start, labels, pixels, pixelsPerImage } = chunk;
  return Array.from(labels, (label, k) => {
    const parts = pixelParts(pixels.subarray(k * pixelsPerImage, (k + 1) * pixelsPerImage));
    const decoded = parts.map((_, j) => `unhex(replace(?${2 + j}, '${ZERO_PIXEL}', '${ZERO_PIXEL_HEX}'))`);
    const blob = decoded.length === 1 ? decoded[0]! : `CAST(${decoded.join(" || ")} AS BLOB)`;
    return {
      sql: `INSERT INTO ${table} (idx, label, pixels)\nSELECT ${start + k}, ${label}, ${blob}\n${tail}`,
      params: [runId, ...parts],
    };
  });
}
