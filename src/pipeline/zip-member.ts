/**
 * Members of a remote zip without downloading the whole zip: EMNIST is
 * published as one large `gzip.zip` of which a run needs four members. The
 * central directory is read with a Range request for the zip's tail, and each
 * member with a Range request for its own bytes, inflated as it streams and
 * checked against the directory's CRC-32 and size.
 *
 * A server that ignores Range requests (answers 200 with the whole zip) still
 * works: the directory is read by streaming the whole zip, keeping only its
 * last bytes and hashing it all (`wholeMd5`, so the caller can hold the zip to
 * its published MD5), and a member by skipping the bytes before it. Only a
 * central directory larger than what is kept (WHOLE_ZIP_KEEP_BYTES) then fails,
 * with an error saying the server must support Range requests.
 *
 * Nothing here retries: every failure is an EtlError that says whether a retry
 * could help, for the caller's withRetries.
 */
import { buf as crc32 } from "crc-32";
import { Inflate } from "fflate";
import {
  EOCD_SEARCH_BYTES,
  LOCAL_HEADER_FIXED_BYTES,
  LOCAL_HEADER_MAX_BYTES,
  ZIP64_END_BYTES,
  ZIP64_LOCATOR_BYTES,
  checkReadable,
  findEnd,
  localHeaderLength,
  parseCentralDirectory,
  parseZip64End,
  parseZip64Locator,
  type ZipEntry,
} from "../codec/zip";
import { EtlError, SourceChangedError, errorMessage } from "../core/errors";
import { TooSlow, readBody, type Fetch } from "./download";
import { concatBytes } from "../codec/bytes";

export type { ZipEntry };

/** What a Range request for the zip's tail asks for: enough to hold the end record and its longest comment. */
export const TAIL_BYTES = EOCD_SEARCH_BYTES;

/**
 * How much of the zip's end is kept when the server ignores Range requests and
 * the whole zip streams by: room for a directory of tens of thousands of
 * members, and a bounded amount of memory however large the zip is.
 */
export const WHOLE_ZIP_KEEP_BYTES = 4 * 1024 * 1024;

export interface ZipDirectory {
  readonly url: string;
  /** The zip's name in messages: the last segment of its URL. */
  readonly file: string;
  /** The zip's size in bytes. */
  readonly size: number;
  /** Where the central directory starts: the end of the last member's bytes. */
  readonly directoryOffset: number;
  readonly entries: readonly ZipEntry[];
  /** MD5 of the whole zip (hex), known only when the server ignored the Range request and sent it all. */
  readonly wholeMd5?: string;
}

const noProgress = (): void => {};

/** Read the central directory of the zip at `url`. `progress` is told each piece's size, as readBody does. */
export async function readZipDirectory(
  fetch: Fetch,
  url: string,
  signal: AbortSignal,
  progress: (bytes: number) => void = noProgress,
): Promise<ZipDirectory> {
  const file = zipLabel(url);
  const res = await request(fetch, url, file, `bytes=-${TAIL_BYTES}`, signal);
  let kept: Uint8Array;
  let keptStart: number;
  let size: number;
  let wholeMd5: string | undefined;
  if (res.status === 206) {
    const range = contentRange(res, file, url);
    size = range.total;
    keptStart = Math.max(0, size - TAIL_BYTES);
    if (range.start !== keptStart || range.end !== size - 1) {
      await res.body!.cancel().catch(() => {});
      throw new EtlError(
        `${file}: ${url} answered bytes ${range.start}-${range.end}/${size} to a request for its last ${TAIL_BYTES} bytes`,
      );
    }
    kept = await collect(blocks(res.body!, 0, size - keptStart, file, url, signal, progress), size - keptStart, file);
  } else {
    ({ kept, size, wholeMd5 } = await readWhole(res.body!, file, url, signal, progress));
    keptStart = size - kept.length;
  }
  const ranged = wholeMd5 === undefined;

  // Bytes of the zip: from what is kept if they lie there, else by another Range request.
  const bytesAt = async (offset: number, length: number, what: string): Promise<Uint8Array> => {
    if (offset < 0 || offset + length > size) {
      throw new EtlError(
        `${file}: the ${what} (${length} bytes at ${offset}) lies outside the zip's ${size} bytes: not a valid zip`,
      );
    }
    if (offset >= keptStart && offset + length <= keptStart + kept.length) {
      return kept.subarray(offset - keptStart, offset - keptStart + length);
    }
    if (!ranged) {
      throw new EtlError(
        `${file}: ${url} ignores Range requests, and the ${what} (${length} bytes at ${offset}) lies before the last ${kept.length} bytes kept while the whole zip streamed by; serve the zip from a server that supports Range requests`,
      );
    }
    const body = await openRange(fetch, url, file, offset, offset + length - 1, size, signal);
    return collect(blocks(body.stream, body.skip, length, file, url, signal, progress), length, file);
  };

  let end = findEnd(
    kept.subarray(Math.max(0, kept.length - TAIL_BYTES)),
    size - Math.min(kept.length, TAIL_BYTES),
    file,
  );
  if (end.zip64) {
    const locatorAt = end.offset - ZIP64_LOCATOR_BYTES;
    const recordAt = parseZip64Locator(await bytesAt(locatorAt, ZIP64_LOCATOR_BYTES, "ZIP64 locator"), file);
    end = parseZip64End(await bytesAt(recordAt, ZIP64_END_BYTES, "ZIP64 end record"), recordAt, locatorAt, file);
  }
  const directory = await bytesAt(end.directoryOffset, end.directorySize, "central directory");
  return {
    url,
    file,
    size,
    directoryOffset: end.directoryOffset,
    entries: parseCentralDirectory(directory, end.entries, file),
    ...(wholeMd5 === undefined ? {} : { wholeMd5 }),
  };
}

/**
 * The uncompressed bytes of `member`, as a stream that errors (with an
 * EtlError) if they do not match the directory's CRC-32 and size. Cancelling
 * it, or aborting `signal`, stops the download.
 */
export async function openZipMember(
  fetch: Fetch,
  dir: ZipDirectory,
  member: string,
  signal: AbortSignal,
  progress: (bytes: number) => void = noProgress,
): Promise<ReadableStream<Uint8Array>> {
  const entry = dir.entries.find((e) => e.name === member);
  if (!entry) throw new EtlError(`${dir.file} has no member ${member}; it has ${someMembers(dir, member)}`);
  checkReadable(entry, dir.file);
  const who = `${member} in ${dir.file}`;
  const start = entry.localHeaderOffset;
  // The header's length is known only once it is read; the member cannot reach past the next one's start.
  let next = dir.directoryOffset;
  for (const e of dir.entries)
    if (e.localHeaderOffset > start && e.localHeaderOffset < next) next = e.localHeaderOffset;
  const end = Math.min(next, start + LOCAL_HEADER_MAX_BYTES + entry.compressedSize) - 1;
  if (end - start + 1 < LOCAL_HEADER_FIXED_BYTES + entry.compressedSize) {
    throw new EtlError(
      `${who}: its ${entry.compressedSize} bytes at ${start} overlap the next member or the central directory: the zip is corrupt`,
    );
  }
  // Cancelling the stream aborts this, which readBody turns into cancelling the body.
  const stop = new AbortController();
  const both = AbortSignal.any([signal, stop.signal]);
  const body = await openRange(fetch, dir.url, who, start, end, dir.size, both);
  const chunks = memberBytes(
    blocks(body.stream, body.skip, end - start + 1, who, dir.url, both, progress),
    entry,
    dir.file,
  );
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        const step = await chunks.next();
        if (step.done) controller.close();
        else controller.enqueue(step.value);
      },
      async cancel(reason) {
        stop.abort(reason);
        await chunks.return(undefined).catch(() => {});
        // Not read from yet, the body is not locked, and nothing above touched it.
        await body.stream.cancel(reason).catch(() => {});
      },
    },
    // Pulled only when read: nothing is downloaded ahead of the consumer.
    { highWaterMark: 0 },
  );
}

/** A few member names for a "no such member" message, those with the wanted base name first. */
function someMembers(dir: ZipDirectory, member: string, most = 5): string {
  const base = member.slice(member.lastIndexOf("/") + 1);
  const files = dir.entries.map((e) => e.name).filter((n) => !n.endsWith("/"));
  if (files.length === 0) return "no members";
  const ranked = [...files.filter((n) => n.endsWith(`/${base}`)), ...files.filter((n) => !n.endsWith(`/${base}`))];
  const shown = ranked.slice(0, most).join(", ");
  return files.length > most ? `${shown} and ${files.length - most} more` : shown;
}

/** The local header is skipped, the data inflated (or passed on, if stored) and checked at the end. */
async function* memberBytes(
  compressed: AsyncGenerator<Uint8Array>,
  entry: ZipEntry,
  file: string,
): AsyncGenerator<Uint8Array> {
  const who = `${entry.name} in ${file}`;
  let head: Uint8Array | undefined = new Uint8Array(0);
  let remaining = entry.compressedSize;
  let crc = 0;
  let produced = 0;
  let out: Uint8Array[] = [];
  const inflater = entry.method === 8 ? new Inflate((chunk) => void out.push(chunk)) : undefined;
  // A corrupted transfer garbles a member as surely as a corrupt zip does, and is worth another try.
  const corrupt = (why: string): EtlError => new EtlError(`${who}: ${why}`, true);
  for await (let block of compressed) {
    if (head !== undefined) {
      head = head.length === 0 ? block : concatBytes(head, block);
      if (head.length < LOCAL_HEADER_FIXED_BYTES) continue;
      const length = localHeaderLength(head, file, entry.name);
      if (head.length < length) continue;
      block = head.subarray(length);
      head = undefined;
    }
    const data = block.subarray(0, remaining);
    remaining -= data.length;
    if (inflater) {
      try {
        inflater.push(data, remaining === 0);
      } catch (err) {
        throw corrupt(`deflate data is corrupt (${errorMessage(err)})`);
      }
    } else if (data.length > 0) out.push(data);
    const ready = out;
    out = [];
    for (const chunk of ready) {
      produced += chunk.length;
      if (produced > entry.uncompressedSize) {
        throw corrupt(`inflates to more than the ${entry.uncompressedSize} bytes the central directory says`);
      }
      crc = crc32(chunk, crc);
      yield chunk;
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

/** GET with a Range header; errors as openArchive's (408, 429 and 5xx retryable, other 4xx not). */
async function request(fetch: Fetch, url: string, who: string, range: string, signal: AbortSignal): Promise<Response> {
  let res: Response;
  try {
    res = await fetch(url, { signal, headers: { Range: range } });
  } catch (err) {
    if (signal.aborted && signal.reason instanceof TooSlow) {
      throw new EtlError(`${who}: download too slow: ${signal.reason.message} from ${url}`, true);
    }
    const why = signal.aborted ? "timed out" : `could not connect (${errorMessage(err)})`;
    throw new EtlError(`${who}: ${why} fetching ${url}`, true);
  }
  if (res.status !== 200 && res.status !== 206) {
    await res.body?.cancel();
    const retryable = res.status === 408 || res.status === 429 || res.status >= 500;
    throw new EtlError(`${who}: HTTP ${res.status} ${res.statusText} from ${url}`, retryable);
  }
  if (res.body === null) throw new EtlError(`${who}: empty response from ${url}`);
  return res;
}

function contentRange(res: Response, who: string, url: string): { start: number; end: number; total: number } {
  const header = res.headers.get("Content-Range") ?? "";
  const m = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(header.trim());
  if (!m || Number(m[1]) > Number(m[2])) {
    void res.body?.cancel().catch(() => {});
    throw new EtlError(`${who}: ${url} answered 206 with Content-Range ${JSON.stringify(header)}, not bytes a-b/size`);
  }
  return { start: Number(m[1]), end: Number(m[2]), total: Number(m[3]) };
}

/**
 * A request for bytes `start`…`end` (inclusive) of a zip of `size` bytes:
 * the body, and how many of its bytes come before `start` (all of them up to
 * `start` when the server ignored the Range and sent the whole zip).
 */
async function openRange(
  fetch: Fetch,
  url: string,
  who: string,
  start: number,
  end: number,
  size: number,
  signal: AbortSignal,
): Promise<{ stream: ReadableStream<Uint8Array>; skip: number }> {
  const res = await request(fetch, url, who, `bytes=${start}-${end}`, signal);
  const stream = res.body!;
  let total: number | undefined;
  let skip = 0;
  if (res.status === 206) {
    const range = contentRange(res, who, url);
    total = range.total;
    if (range.start !== start || range.end < Math.min(end, total - 1)) {
      await stream.cancel().catch(() => {});
      throw new EtlError(`${who}: ${url} answered bytes ${range.start}-${range.end} to a request for ${start}-${end}`);
    }
  } else {
    const length = res.headers.get("Content-Length");
    if (length !== null) total = Number(length);
    skip = start;
  }
  if (total !== undefined && total !== size) {
    await stream.cancel().catch(() => {});
    throw new SourceChangedError(
      `${who}: the zip at ${url} is now ${total} bytes, ${size} when its directory was read: it changed at the source`,
    );
  }
  return { stream, skip };
}

/**
 * The `length` bytes of `body` after its first `skip`, in blocks; the body is
 * cancelled once they are through (or the reader stops early). Ends early if
 * the body does: the caller checks what it got.
 */
async function* blocks(
  body: ReadableStream<Uint8Array>,
  skip: number,
  length: number,
  who: string,
  url: string,
  signal: AbortSignal,
  progress: (bytes: number) => void,
): AsyncGenerator<Uint8Array> {
  let left = length;
  try {
    for await (let block of readBody(body, who, url, signal, progress)) {
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
  } finally {
    // Done, or the reader stopped early: either way the rest of the body is not wanted.
    await body.cancel().catch(() => {});
  }
}

/** All of `source`'s bytes, which must be exactly `length`. */
async function collect(source: AsyncGenerator<Uint8Array>, length: number, who: string): Promise<Uint8Array> {
  const out = new Uint8Array(length);
  let at = 0;
  for await (const block of source) {
    out.set(block, at);
    at += block.length;
  }
  if (at !== length) throw new EtlError(`${who}: download cut short: ${at} of ${length} bytes`, true);
  return out;
}

/** The whole zip streamed by: its last WHOLE_ZIP_KEEP_BYTES, its size and its MD5. */
async function readWhole(
  body: ReadableStream<Uint8Array>,
  file: string,
  url: string,
  signal: AbortSignal,
  progress: (bytes: number) => void,
): Promise<{ kept: Uint8Array; size: number; wholeMd5: string }> {
  const digest = new crypto.DigestStream("MD5");
  const writer = digest.getWriter();
  const pieces: Uint8Array[] = [];
  let keptBytes = 0;
  let size = 0;
  try {
    for await (const block of readBody(body, file, url, signal, progress)) {
      await writer.write(block);
      size += block.length;
      pieces.push(block);
      keptBytes += block.length;
      while (keptBytes - pieces[0]!.length >= WHOLE_ZIP_KEEP_BYTES) keptBytes -= pieces.shift()!.length;
    }
    await writer.close();
  } catch (err) {
    await writer.abort(err).catch(() => {});
    await body.cancel().catch(() => {});
    throw err;
  }
  const md5 = [...new Uint8Array(await digest.digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
  const kept = concatBytes(...pieces);
  const drop = Math.max(0, kept.length - WHOLE_ZIP_KEEP_BYTES);
  return { kept: kept.subarray(drop), size, wholeMd5: md5 };
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
