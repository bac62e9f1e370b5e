/**
 * One archive as an async iterator:
 *
 *   open (a file at a mirror, or a member of the dataset's zip)
 *     → MD5 tee (and a copy to R2) → verifying gunzip (CRC-32, length) → IDX records
 *
 * yielding the IDX header, then the records in chunks. The archive's last
 * chunk is yielded only once everything that can be checked was: its MD5
 * (against the published one, then pinned to the run), the gzip trailer, and
 * the IDX length. So a run cannot receive all its chunks before every archive
 * is verified. Reading only the header is a `break`, which stops the download.
 *
 * An archive comes from the first mirror that serves it whole, each mirror
 * with its own retries; every attempt starts over, yielding the header again,
 * so a consumer starts over on each header.
 */
import type { DatasetSpec, Mirror } from "../core/datasets";
import { EtlError, errorMessage, Interrupt, isRetryable, SourceChangedError } from "../core/errors";
import { concatBytes } from "../codec/bytes";
import type { Digest } from "../codec/digest";
import { VerifyingGunzip } from "../codec/gunzip";
import { IDX_UBYTE, IdxRecords, type IdxItem } from "../codec/idx";
import { archiveUrl, redactUrl } from "../codec/source";
import { get, readBody, withRetries, type Attempt, type Fetch, type RetryPolicy } from "./fetch";
import type { RawKeeper } from "./raw-archives";
import { readZipDirectory, zipMember, type ZipDirectory } from "./zip";

export interface ExtractDeps {
  readonly fetch: Fetch;
  /** A fresh MD5 per archive read. */
  readonly md5: () => Digest;
  /** Aborted when the work is no longer wanted: the download stops at once, with the signal's reason, and is not retried. */
  readonly stop?: AbortSignal;
  /** Where archives are kept byte for byte, once verified (raw-archives.ts); none without R2. */
  readonly keep?: RawKeeper;
}

export interface ExtractOptions {
  readonly dataset: DatasetSpec;
  /** Where the archives are, tried in order for each archive: the dataset's mirrors, or the run's source. */
  readonly mirrors: readonly Mirror[];
  /** Require the published MD5s and counts (runs from the dataset's own mirrors). */
  readonly official: boolean;
  readonly retry: RetryPolicy;
}

/**
 * Where an archive's MD5 goes once the whole archive was read and verified,
 * before its last chunk is yielded: the job pins it to the run, and throws to
 * refuse bytes that differ from those the run already used.
 */
export type ChecksumSink = (file: string, md5: string) => Promise<void>;

/** What is wanted of an archive: its published MD5 if any, and records per chunk (or only its MD5). */
export type ArchiveRead = { readonly md5?: string } & (
  { readonly recordsPerChunk: number } | { readonly hashOnly: true }
);

/**
 * Network reads arrive in pieces of a few KB. Each piece costs an await in
 * every stage and a call into fflate, which dominated extraction, so pieces
 * are gathered into blocks of this size (bench/decisions.md).
 */
export const READ_BLOCK_BYTES = 256 * 1024;

/** Bytes of a body shown when it is not gzip. */
const SHOWN_BYTES = 40;

/** One extraction's archives: where they are, how they are fetched, and the zip directories read so far. */
export class Archives {
  private readonly zips = new Map<string, ZipDirectory>();

  constructor(
    readonly opts: ExtractOptions,
    private readonly deps: ExtractDeps,
    private readonly pin: ChecksumSink,
  ) {}

  /** Archive `file`, from the first mirror that serves it whole. */
  async *read(file: string, want: ArchiveRead): AsyncGenerator<IdxItem> {
    const { mirrors, retry } = this.opts;
    const failures: string[] = [];
    let retryable = false;
    for (const mirror of mirrors) {
      const where = this.locate(mirror, file);
      try {
        yield* withRetries(retry, (attempt) => this.once(where, file, want, attempt), this.deps.stop);
        return;
      } catch (err) {
        // What fails the run rather than move on: it was stopped, or the bytes differ from those it pinned.
        const final = err instanceof SourceChangedError || err instanceof Interrupt || mirrors.length === 1;
        if (final || this.deps.stop?.aborted) throw err;
        retryable ||= isRetryable(err);
        failures.push(errorMessage(err));
        const more = failures.length < mirrors.length ? "; trying the next mirror" : "";
        console.warn(`${file}: ${errorMessage(err)}${more}`);
      }
    }
    const urls = mirrors.map((m) => redactUrl(this.locate(m, file).zip ?? m.url));
    throw new EtlError(`${file}: no mirror served it whole (${urls.join(", ")}): ${failures.join("; ")}`, retryable);
  }

  /** One attempt at one place: open → MD5 tee → gunzip → IDX records. */
  private async *once(where: Location, file: string, want: ArchiveRead, attempt: Attempt): AsyncGenerator<IdxItem> {
    const { bytes, sent } = await this.open(where, file, attempt);
    const digest = this.deps.md5();
    const gunzip = "hashOnly" in want ? undefined : new VerifyingGunzip(file);
    const records = "hashOnly" in want ? undefined : new IdxRecords(file, want.recordsPerChunk);
    // A hashing pass keeps nothing: an unchanged source loads nothing, a changed one is read again to load it.
    const copy = "hashOnly" in want ? undefined : this.deps.keep?.begin(file);
    let kept = false;
    try {
      for await (const block of gzipOnly(blocks(bytes), file, sent)) {
        await digest.update(block);
        await copy?.write(block);
        if (gunzip) yield* records!.push(gunzip.push(block));
      }
      const md5 = await digest.hex();
      if (this.opts.official && want.md5 !== undefined && md5 !== want.md5) {
        throw new EtlError(`${file}: MD5 ${md5} does not match the published ${want.md5}`);
      }
      if (gunzip) yield* records!.push(gunzip.finish());
      const last = records?.end();
      // Pinned only once the archive proved whole: a corrupt download is not a version of the source.
      await this.pin(file, md5);
      // Kept only once pinned, and before the last chunk goes on: a run completes with its archives kept.
      await copy?.commit(md5);
      kept = true;
      if (last) yield last;
    } finally {
      // A failed attempt, or a reader that stopped early (a header read, a full job segment): nothing is kept.
      if (!kept) await copy?.abort();
    }
  }

  /** The archive's compressed bytes, and what sent them (for a body that is not gzip). */
  private async open(where: Location, file: string, attempt: Attempt): Promise<Opened> {
    if (where.zip === undefined) {
      const res = await get(this.deps.fetch, where.url, file, attempt);
      const type = res.headers.get("Content-Type");
      return {
        bytes: readBody(res.body!, file, where.url, attempt),
        sent: type ? `served as ${type}` : "served with no Content-Type",
      };
    }
    let dir = this.zips.get(where.zip);
    if (!dir) {
      dir = await readZipDirectory(this.deps.fetch, where.zip, attempt, this.deps.md5);
      const zip = this.opts.dataset.zip;
      // Read whole (the server ignored Range requests): then the zip's published MD5 can be checked.
      if (this.opts.official && zip?.md5 && dir.wholeMd5 !== undefined && dir.wholeMd5 !== zip.md5) {
        throw new EtlError(`${zip.file}: MD5 ${dir.wholeMd5} does not match the published ${zip.md5}`);
      }
      this.zips.set(where.zip, dir);
    }
    return {
      bytes: zipMember(this.deps.fetch, dir, file, attempt),
      sent: `a member of ${dir.file}`,
    };
  }

  /** A file at a mirror: loose at its URL, or a member of the dataset's zip there. */
  private locate(mirror: Mirror, file: string): Location {
    if (mirror.packaging === "files") return { url: archiveUrl(mirror.url, file.replace(/^.*\//, "")) };
    const zip = this.opts.dataset.zip;
    if (!zip) throw new EtlError(`${this.opts.dataset.name} is not published as a zip`);
    const url = /\.zip$/i.test(new URL(mirror.url).pathname) ? mirror.url : archiveUrl(mirror.url, zip.file);
    return { url, zip: url };
  }
}

type Location = { readonly url: string; readonly zip?: string };
type Opened = { readonly bytes: AsyncIterable<Uint8Array>; readonly sent: string };

/** Pieces gathered into blocks of READ_BLOCK_BYTES; the first goes on at once (a header read needs only it). */
async function* blocks(pieces: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  let pending: Uint8Array[] = [];
  let bytes = 0;
  let first = true;
  for await (const piece of pieces) {
    pending.push(piece);
    bytes += piece.length;
    if (first || bytes >= READ_BLOCK_BYTES) {
      yield concatBytes(...pending);
      pending = [];
      bytes = 0;
      first = false;
    }
  }
  if (bytes > 0) yield concatBytes(...pending);
}

/**
 * The bytes as they come, once their first two are gzip's (1f 8b): an HTML
 * page or an IDX file that was never compressed says so, not "corrupt".
 */
async function* gzipOnly(bytes: AsyncIterable<Uint8Array>, file: string, sent: string): AsyncGenerator<Uint8Array> {
  let head: Uint8Array | undefined = new Uint8Array(0);
  for await (const block of bytes) {
    if (head !== undefined) {
      head = concatBytes(head, block.subarray(0, SHOWN_BYTES));
      if (head.length >= 2 && (head[0] !== 0x1f || head[1] !== 0x8b)) throw notGzip(file, head, sent);
      if (head.length >= 2) head = undefined;
    }
    yield block;
  }
}

/** Why `head` does not start a gzip archive: an uncompressed IDX file by its magic, else its first bytes shown. */
function notGzip(file: string, head: Uint8Array, sent: string): EtlError {
  if (head.length >= 4 && head[0] === 0 && head[1] === 0 && head[2] === IDX_UBYTE) {
    const magic = [...head.subarray(0, 4)].map((b) => b.toString(16).padStart(2, "0")).join("");
    return new EtlError(
      `${file}: an uncompressed IDX file (magic 0x${magic}), not a gzip archive (${sent}): archives are read gzipped, as published; gzip it (\`gzip -k FILE\`) and name the .gz`,
    );
  }
  const shown = new TextDecoder().decode(head.subarray(0, SHOWN_BYTES)) + (head.length >= SHOWN_BYTES ? "…" : "");
  return new EtlError(`${file}: not a gzip archive (${sent}): its bytes start ${JSON.stringify(shown)}`);
}
