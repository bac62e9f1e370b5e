/**
 * Members of a remote zip without downloading it whole (EMNIST's `gzip.zip`,
 * of which a run needs four members). zip.js reads the central directory from
 * the zip's tail, fetched with one Range request; each member is fetched with
 * one Range request of its own, inflated with fflate as it streams and checked
 * against the directory's CRC-32 and size. A server that ignores Range (200
 * and the whole zip) still works: the directory is read as the whole zip
 * streams by, hashed (`wholeMd5`, for the published MD5), and a member by
 * skipping to it. Nothing here retries: an EtlError says whether a retry could help.
 */
import { buf as crc32 } from "crc-32";
import { Inflate } from "fflate";
import { ZipReader, type Reader } from "@zip.js/zip.js/lib/zip-core-reader.js";
import { EtlError, SourceChangedError, errorMessage } from "../core/errors";
import { concatBytes } from "../codec/bytes";
import type { Digest } from "../codec/digest";
import { redactUrl } from "../codec/source";
import { get, readBody, type Attempt, type Fetch } from "./fetch";

/** The tail asked for first: the end record (22 bytes) after the longest comment it can have. */
export const TAIL_BYTES = 22 + 0xffff;
/** How much of the zip's end is kept when the server ignores Range and the whole zip streams by. */
export const WHOLE_ZIP_KEEP_BYTES = 4 * 1024 * 1024;
/** At most this much before the kept tail is fetched at once when zip.js reads there (the directory). */
const GAP_FETCH_BYTES = 16 * 1024 * 1024;
/** A local header: 30 fixed bytes, then a name and an extra field of up to 65,535 bytes each. */
const LOCAL_HEADER_BYTES = 30;
const LOCAL_HEADER_MAX_BYTES = LOCAL_HEADER_BYTES + 2 * 0xffff;
/** zip.js's warnings that the directory is not where the end record says. */
const MOVED = ["prepended data", "prepended central directory", "mismatched central directory offset"];

/** A member as the directory describes it (plain: zip.js's entries keep its reader, so the zip's tail, alive). */
export interface ZipEntry {
  readonly name: string;
  /** 0 stored, 8 deflate (the only two read here). */
  readonly method: number;
  readonly encrypted: boolean;
  readonly crc32: number;
  readonly compressedSize: number;
  readonly uncompressedSize: number;
  /** Where its local header starts. */
  readonly offset: number;
}

export interface ZipDirectory {
  readonly url: string;
  /** The zip's name in messages: the last segment of its URL. */
  readonly file: string;
  readonly size: number;
  /** Where the central directory starts: no member's bytes reach past it. */
  readonly directoryOffset: number;
  readonly entries: readonly ZipEntry[];
  /** MD5 of the whole zip (hex), known only when the server ignored the Range request and sent it all. */
  readonly wholeMd5?: string;
}

/** Read the central directory of the zip at `url`. */
export async function readZipDirectory(
  fetch: Fetch,
  url: string,
  attempt: Attempt,
  md5: () => Digest,
): Promise<ZipDirectory> {
  const file = zipLabel(url);
  const res = await get(fetch, url, file, attempt, `bytes=-${TAIL_BYTES}`);
  let kept: Uint8Array;
  let size: number;
  let wholeMd5: string | undefined;
  if (res.status === 206) {
    const range = contentRange(res, file, url);
    size = range.total;
    if (range.start !== Math.max(0, size - TAIL_BYTES) || range.end !== size - 1) {
      await res.body!.cancel().catch(() => {});
      throw new EtlError(
        `${file}: ${redactUrl(url)} answered bytes ${range.start}-${range.end}/${size} to a request for its last ${TAIL_BYTES} bytes`,
      );
    }
    kept = await collect(readBody(res.body!, file, url, attempt), size - range.start, file);
  } else ({ kept, size, wholeMd5 } = await readWhole(res.body!, file, url, attempt, md5()));
  if (size < 22)
    throw new EtlError(`${file}: not a zip file (${size} bytes, fewer than an end of central directory record)`);

  // What zip.js reads: from the bytes kept, else (the directory before the tail) by another Range request.
  let keptStart = size - kept.length;
  const readUint8Array = async (offset: number, length: number): Promise<Uint8Array> => {
    if (offset < keptStart) {
      if (wholeMd5 !== undefined) {
        throw new EtlError(
          `${file}: ${redactUrl(url)} ignores Range requests, and the central directory (${keptStart - offset} bytes at ${offset}) lies before the last ${kept.length} bytes kept while the whole zip streamed by; serve the zip from a server that supports Range requests`,
        );
      }
      const from = keptStart - offset <= GAP_FETCH_BYTES ? offset : undefined;
      const end = from === undefined ? offset + length - 1 : keptStart - 1;
      const body = await openRange(fetch, url, file, offset, end, size, attempt);
      const bytes = await collect(body, end - offset + 1, file);
      if (from === undefined) return bytes;
      kept = concatBytes(bytes, kept);
      keptStart = offset;
    }
    return kept.subarray(offset - keptStart, offset - keptStart + length);
  };
  // zip.js reads a reader that has a size and readUint8Array by range; a `readable` only serves readers without them.
  const reader = { size, readUint8Array } as unknown as Reader<unknown>;
  const zip = new ZipReader(reader, { useWebWorkers: false, maxAppendedDataSize: 0 });
  try {
    const entries = await zip.getEntries();
    // zip.js finds a directory that moved (bytes missing or added before it); its members' offsets did not move.
    const moved = (zip.warnings ?? []).map((w) => w.reason).filter((r) => MOVED.includes(r));
    if (moved.length > 0) {
      throw new EtlError(
        `${file}: the central directory is not where the end record says (zip.js: ${moved.join(", ")}): the zip is truncated or corrupt`,
      );
    }
    return {
      url,
      file,
      size,
      directoryOffset: zip.directoryOffset ?? size,
      entries: entries.map((e) => ({
        name: e.filename,
        method: e.compressionMethod,
        encrypted: e.encrypted,
        crc32: (e.crc32 ?? 0) >>> 0,
        compressedSize: e.compressedSize,
        uncompressedSize: e.uncompressedSize,
        offset: e.offset,
      })),
      ...(wholeMd5 === undefined ? {} : { wholeMd5 }),
    };
  } catch (err) {
    if (err instanceof EtlError) throw err;
    if (errorMessage(err) === "End of central directory not found") {
      throw new EtlError(
        `${file}: not a zip file, or truncated: no end of central directory record in its last ${Math.min(size, TAIL_BYTES)} bytes`,
      );
    }
    throw new EtlError(`${file}: not a valid zip (zip.js: ${errorMessage(err)})`);
  }
}

/**
 * The bytes of `member`, fetched with one Range request, that end with an
 * EtlError if they do not match the directory's CRC-32 and size. Stopping
 * early (a `break`) cancels the download.
 */
export async function* zipMember(
  fetch: Fetch,
  dir: ZipDirectory,
  member: string,
  attempt: Attempt,
): AsyncGenerator<Uint8Array> {
  const entry = dir.entries.find((e) => e.name === member);
  if (!entry) throw new EtlError(`${dir.file} has no member ${member}; it has ${someMembers(dir, member)}`);
  const who = `${member} in ${dir.file}`;
  if (entry.encrypted) throw new EtlError(`${who}: encrypted member, not supported`);
  if (entry.method !== 0 && entry.method !== 8) {
    throw new EtlError(`${who}: unsupported compression method ${entry.method} (only 0, stored, and 8, deflate)`);
  }
  // The local header's length is known only once it is read; the member cannot reach past the next one's start.
  const start = entry.offset;
  let next = dir.directoryOffset;
  for (const e of dir.entries) if (e.offset > start && e.offset < next) next = e.offset;
  const end = Math.min(next, start + LOCAL_HEADER_MAX_BYTES + entry.compressedSize) - 1;
  if (end - start + 1 < LOCAL_HEADER_BYTES + entry.compressedSize) {
    throw new EtlError(
      `${who}: its ${entry.compressedSize} bytes at ${start} overlap the next member or the central directory: the zip is corrupt`,
    );
  }
  const body = await openRange(fetch, dir.url, who, start, end, dir.size, attempt);
  // A corrupted transfer garbles a member as surely as a corrupt zip does, and is worth another try.
  const corrupt = (why: string): EtlError => new EtlError(`${who}: ${why}`, true);
  let head: Uint8Array | undefined = new Uint8Array(0);
  let remaining = entry.compressedSize;
  let out: Uint8Array[] = [];
  let crc = 0;
  let produced = 0;
  const inflater = entry.method === 8 ? new Inflate((chunk) => void out.push(chunk)) : undefined;
  for await (let block of body) {
    if (head !== undefined) {
      head = concatBytes(head, block);
      if (head.length < LOCAL_HEADER_BYTES) continue;
      const view = new DataView(head.buffer, head.byteOffset, head.length);
      if (view.getUint32(0, true) !== 0x04034b50) {
        throw new EtlError(
          `${who}: no local file header where the central directory says the member starts: the zip is corrupt`,
        );
      }
      const length = LOCAL_HEADER_BYTES + view.getUint16(26, true) + view.getUint16(28, true);
      if (head.length < length) continue;
      block = head.subarray(length);
      head = undefined;
    }
    const data = block.subarray(0, remaining);
    remaining -= data.length;
    if (!inflater) out.push(data);
    else {
      try {
        inflater.push(data, remaining === 0);
      } catch (err) {
        throw corrupt(`deflate data is corrupt (${errorMessage(err)})`);
      }
    }
    const ready = out;
    out = [];
    for (const chunk of ready) {
      produced += chunk.length;
      if (produced > entry.uncompressedSize) {
        throw corrupt(`inflates to more than the ${entry.uncompressedSize} bytes the central directory says`);
      }
      crc = crc32(chunk, crc);
      if (chunk.length > 0) yield chunk;
    }
    if (remaining === 0) break;
  }
  if (head !== undefined || remaining > 0) {
    throw corrupt(
      `cut short: ${entry.compressedSize - remaining} of its ${entry.compressedSize} compressed bytes arrived`,
    );
  }
  if (produced !== entry.uncompressedSize) {
    throw corrupt(`${produced} bytes, the central directory says ${entry.uncompressedSize}`);
  }
  if (crc >>> 0 !== entry.crc32) {
    throw corrupt(`CRC-32 mismatch (central directory 0x${hex8(entry.crc32)}, data 0x${hex8(crc >>> 0)})`);
  }
}

const hex8 = (n: number): string => n.toString(16).padStart(8, "0");

/** A few member names for a "no such member" message, those with the wanted base name first. */
function someMembers(dir: ZipDirectory, member: string, most = 5): string {
  const base = member.slice(member.lastIndexOf("/") + 1);
  const files = dir.entries.map((e) => e.name).filter((n) => !n.endsWith("/"));
  if (files.length === 0) return "no members";
  const ranked = [...files.filter((n) => n.endsWith(`/${base}`)), ...files.filter((n) => !n.endsWith(`/${base}`))];
  const shown = ranked.slice(0, most).join(", ");
  return files.length > most ? `${shown} and ${files.length - most} more` : shown;
}

function contentRange(res: Response, who: string, url: string): { start: number; end: number; total: number } {
  const header = res.headers.get("Content-Range") ?? "";
  const m = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(header.trim());
  if (!m || Number(m[1]) > Number(m[2])) {
    void res.body?.cancel().catch(() => {});
    throw new EtlError(
      `${who}: ${redactUrl(url)} answered 206 with Content-Range ${JSON.stringify(header)}, not bytes a-b/size`,
    );
  }
  return { start: Number(m[1]), end: Number(m[2]), total: Number(m[3]) };
}

/**
 * Bytes `start`…`end` (inclusive) of a zip of `size` bytes, in pieces: by a
 * Range request, or by skipping to them if the server ignored it and sent the
 * whole zip. A zip of another size than `size` changed at the source.
 */
async function* openRange(
  fetch: Fetch,
  url: string,
  who: string,
  start: number,
  end: number,
  size: number,
  attempt: Attempt,
): AsyncGenerator<Uint8Array> {
  const res = await get(fetch, url, who, attempt, `bytes=${start}-${end}`);
  let total = res.headers.get("Content-Length") === null ? undefined : Number(res.headers.get("Content-Length"));
  let skip = start;
  if (res.status === 206) {
    const range = contentRange(res, who, url);
    ({ total } = range);
    skip = 0;
    if (range.start !== start || range.end < Math.min(end, total - 1)) {
      await res.body!.cancel().catch(() => {});
      throw new EtlError(
        `${who}: ${redactUrl(url)} answered bytes ${range.start}-${range.end} to a request for ${start}-${end}`,
      );
    }
  }
  if (total !== undefined && total !== size) {
    await res.body!.cancel().catch(() => {});
    throw new SourceChangedError(
      `${who}: the zip at ${redactUrl(url)} is now ${total} bytes, ${size} when its directory was read: it changed at the source`,
    );
  }
  let left = end - start + 1;
  for await (let block of readBody(res.body!, who, url, attempt)) {
    if (skip >= block.length) {
      skip -= block.length;
      continue;
    }
    block = block.subarray(skip, skip + left);
    skip = 0;
    left -= block.length;
    if (block.length > 0) yield block;
    if (left === 0) return;
  }
}

/** All of `source`'s bytes, which must be exactly `length`. */
async function collect(source: AsyncIterable<Uint8Array>, length: number, who: string): Promise<Uint8Array> {
  const out = new Uint8Array(length);
  let at = 0;
  for await (const block of source) {
    const piece = block.subarray(0, length - at);
    out.set(piece, at);
    at += piece.length;
  }
  if (at !== length) throw new EtlError(`${who}: download cut short: ${at} of ${length} bytes`, true);
  return out;
}

/** The whole zip streamed by: its last WHOLE_ZIP_KEEP_BYTES, its size and its MD5. */
async function readWhole(
  body: ReadableStream<Uint8Array>,
  file: string,
  url: string,
  attempt: Attempt,
  digest: Digest,
): Promise<{ kept: Uint8Array; size: number; wholeMd5: string }> {
  const pieces: Uint8Array[] = [];
  let keptBytes = 0;
  let size = 0;
  for await (const block of readBody(body, file, url, attempt)) {
    await digest.update(block);
    size += block.length;
    pieces.push(block);
    keptBytes += block.length;
    while (keptBytes - pieces[0]!.length >= WHOLE_ZIP_KEEP_BYTES) keptBytes -= pieces.shift()!.length;
  }
  const kept = concatBytes(...pieces);
  return { kept: kept.subarray(Math.max(0, kept.length - WHOLE_ZIP_KEEP_BYTES)), size, wholeMd5: await digest.hex() };
}

/** The last segment of the URL's path, decoded: what messages call the zip. */
function zipLabel(url: string): string {
  try {
    const segments = new URL(url).pathname.split("/").filter((s) => s !== "");
    return decodeURIComponent(segments.at(-1) ?? url);
  } catch {
    return url;
  }
}
