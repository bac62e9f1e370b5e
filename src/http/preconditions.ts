/**
 * The HTTP validators and ranges of a download (RFC 9110 §13, §14): parsing
 * If-None-Match, If-Match and If-Range against an entity tag, and one
 * `Range: bytes=…` against a file's size. Pure: the export routes decide with
 * them before reading a row.
 */
import type { ByteRange } from "../read/export";

/** The entity tags of an If-None-Match / If-Match list: "*" or each tag with its weakness. */
function entityTags(field: string): "*" | { weak: boolean; opaque: string }[] {
  if (field.trim() === "*") return "*";
  return [...field.matchAll(/(W\/)?"([^"]*)"/g)].map((m) => ({ weak: m[1] !== undefined, opaque: m[2]! }));
}

/** If-None-Match: weak comparison (RFC 9110 §13.1.2); "*" matches any current representation. */
export function noneMatch(field: string, etag: string | undefined): boolean {
  const tags = entityTags(field);
  if (tags === "*") return true;
  return etag !== undefined && tags.some((t) => `"${t.opaque}"` === etag);
}

/** If-Match: strong comparison (RFC 9110 §13.1.1); "*" matches any current representation. */
export function anyMatch(field: string, etag: string | undefined): boolean {
  const tags = entityTags(field);
  if (tags === "*") return true;
  return etag !== undefined && tags.some((t) => !t.weak && `"${t.opaque}"` === etag);
}

/** If-Range: an entity tag, compared strongly; a date never matches (the whole file is always a safe answer). */
export const ifRangeMatches = (field: string, etag: string | undefined): boolean =>
  etag !== undefined && field.trim() === etag;

export type RangeRequest = { readonly kind: "ignore" } | { readonly kind: "unsatisfiable" } | ByteRange;

/**
 * One `Range: bytes=…` against a file of `size` bytes (RFC 9110 §14.1.2): a
 * range to serve (end exclusive), unsatisfiable (→ 416), or one to ignore (→
 * 200, the whole file): another unit, several ranges, or a malformed or
 * invalid one (last < first), all of which a server may ignore.
 */
export function parseRange(field: string, size: number): RangeRequest {
  const m = /^\s*bytes\s*=\s*(.*)$/i.exec(field);
  if (!m) return { kind: "ignore" };
  const specs = m[1]!.split(",").map((s) => s.trim());
  if (specs.filter((s) => s !== "").length !== 1) return { kind: "ignore" };
  const spec = specs.find((s) => s !== "")!;
  const suffix = /^-(\d+)$/.exec(spec);
  if (suffix) {
    const n = Number(suffix[1]);
    return n === 0 ? { kind: "unsatisfiable" } : { start: Math.max(size - n, 0), end: size };
  }
  const span = /^(\d+)-(\d*)$/.exec(spec);
  if (!span) return { kind: "ignore" };
  const first = Number(span[1]);
  const last = span[2] === "" ? Infinity : Number(span[2]);
  if (last < first) return { kind: "ignore" };
  if (first >= size) return { kind: "unsatisfiable" };
  return { start: first, end: Math.min(last + 1, size) };
}
