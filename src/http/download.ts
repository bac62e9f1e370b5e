/**
 * Answering a download of one export file, whatever its format: the
 * preconditions (If-Match → 412, If-None-Match → 304) on its ETag before any
 * row is read, one Range → 206 (or 416) gated by If-Range, the headers every
 * export carries, HEAD without a body, and a body of exactly Content-Length
 * bytes (FixedLengthStream errors one that yields more or fewer, so a cut-off
 * download shows).
 */
import type { Context } from "hono";
import type { ByteRange, NpyExport } from "../read/export";
import { anyMatch, ifRangeMatches, noneMatch, parseRange } from "./preconditions";
import type { AppEnv } from "./validation";

export interface Download {
  readonly etag: string;
  /** Cache-Control, and Content-Location for an unversioned URL: sent with 200, 206 and 304. */
  readonly validators: Record<string, string>;
  readonly size: number;
  /** When the dataset was swapped in (ISO 8601), or null. */
  readonly swappedAt: string | null;
  readonly filename: string;
  readonly contentType: string;
  /** The bytes asked for (default: all), and which store answers: `r2` or `d1`. */
  readonly body: (range?: ByteRange) => Promise<NpyExport & { readonly source: "r2" | "d1" }>;
}

export const IF_HEADERS = ["Range", "If-Range", "If-None-Match", "If-Match"] as const;
export type IfHeaders = Partial<Record<(typeof IF_HEADERS)[number], string>>;

export async function download(c: Context<AppEnv>, d: Download, headers: IfHeaders): Promise<Response> {
  const { etag, validators, size } = d;
  // Preconditions in RFC 9110 §13.2.2's order, all before any image row is read.
  if (headers["If-Match"] !== undefined && !anyMatch(headers["If-Match"], etag))
    return c.json({ error: `If-Match names no current ETag; the current one is ${etag}` }, 412, validators);
  if (headers["If-None-Match"] !== undefined && noneMatch(headers["If-None-Match"], etag))
    return c.body(null, 304, validators);

  let range: ByteRange | undefined;
  if (headers.Range !== undefined && (headers["If-Range"] === undefined || ifRangeMatches(headers["If-Range"], etag))) {
    const parsed = parseRange(headers.Range, size);
    if ("kind" in parsed) {
      if (parsed.kind === "unsatisfiable")
        return c.json({ error: `Range ${headers.Range} is not satisfiable: the file is ${size} bytes` }, 416, {
          "Content-Range": `bytes */${size}`,
          "Accept-Ranges": "bytes",
        });
    } else range = parsed;
  }

  const modified = d.swappedAt === null ? NaN : Date.parse(d.swappedAt);
  const out: Record<string, string> = {
    ...validators,
    ...(Number.isNaN(modified) ? {} : { "Last-Modified": new Date(modified).toUTCString() }),
    "Accept-Ranges": "bytes",
    "Content-Type": d.contentType,
    "Content-Disposition": `attachment; filename="${d.filename}"`,
    ...(range ? { "Content-Range": `bytes ${range.start}-${range.end - 1}/${size}` } : {}),
  };
  const status = range ? 206 : 200;
  const length = range ? range.end - range.start : size;
  // HEAD: the same status and headers, and no stream (nothing would read it).
  if (c.req.method === "HEAD") return c.body(null, status, { ...out, "Content-Length": String(length) });

  const body = await d.body(range);
  out["X-Export-Source"] = body.source;
  // A fixed length lets clients show progress and detect a cut-off download; it is the length computed
  // from the layout, and FixedLengthStream errors a body that yields more or fewer bytes.
  const { readable, writable } = new FixedLengthStream(length);
  c.executionCtx.waitUntil(
    body.body.pipeTo(writable).catch((err: unknown) => console.error(`export ${c.req.url}: ${err}`)),
  );
  return c.body(readable, status, { ...out, "Content-Length": String(length) });
}
