/**
 * Extract: download the four archives (loose, or as members of the dataset's
 * zip), verify them (checksums where known, gzip CRC and length always, IDX
 * headers and counts), inflate them as a stream, keep the labels (one byte per
 * image) and cut the images into chunks of raw pixels for the queue, upright.
 * Everything that can be validated is validated here, before a chunk can
 * complete a run. Peak memory is a few fflate buffers and one chunk, not a split.
 */
import { pixelsPerImage, type DatasetSpec, type Mirror, type Shape, type Split } from "../core/datasets";
import { EtlError, errorMessage, Interrupt, isRetryable, SourceChangedError } from "../core/errors";
import { openArchive, readBody, withRetries, type Fetch, type RetryPolicy } from "./download";
import { VerifyingGunzip } from "../codec/gunzip";
import {
  describeShape,
  expectImages,
  expectLabels,
  idxHeaderLength,
  parseIdxHeader,
  type IdxHeader,
} from "../codec/idx";
import { archiveUrl, redactUrl } from "../codec/source";
import { transposedShape, transposeImages } from "../codec/transform";
import { concatBytes } from "../codec/bytes";
import { openZipMember, readZipDirectory, type ZipDirectory } from "./zip-member";
import type { RawKeeper } from "./raw-archives";

/**
 * Where an archive's MD5 goes once the whole archive has been read, before the
 * archive's last chunk is handed on: the job pins it to the run, and throws to
 * refuse an archive whose bytes differ from those the run already used.
 */
export type ChecksumSink = (file: string, md5: string) => Promise<void>;

/** A ChecksumSink that only collects (tests, benchmarks): the first MD5 seen per file, later ones must match. */
export function collectChecksums(): { readonly sink: ChecksumSink; readonly values: Record<string, string> } {
  const values: Record<string, string> = {};
  return {
    values,
    sink: async (file, md5) => {
      values[file] ??= md5;
      if (values[file] !== md5) throw new EtlError(`${file}: MD5 ${md5} differs from the ${values[file]} read before`);
    },
  };
}

/** An incremental MD5: Workers have crypto.DigestStream, Node has createHash. */
export interface Digest {
  update(chunk: Uint8Array): void | Promise<void>;
  hex(): Promise<string>;
}

export interface ExtractDeps {
  readonly fetch: Fetch;
  readonly md5: () => Digest;
  readonly sleep?: (ms: number) => Promise<void>;
  /** Aborted when the work is no longer wanted: the download stops at once, with the signal's reason, and is not retried. */
  readonly stop?: AbortSignal;
  /** Where the archives read whole are kept, byte for byte, once verified (raw-archives.ts); none without R2. */
  readonly keep?: RawKeeper;
}

export interface ExtractOptions {
  readonly dataset: DatasetSpec;
  /**
   * Where the archives are, tried in order for each archive until one serves
   * it whole: the dataset's mirrors for an official run, else the run's source.
   */
  readonly mirrors: readonly Mirror[];
  /** Require the published MD5s and counts (runs from the dataset's own mirrors). */
  readonly official: boolean;
  readonly retry: RetryPolicy;
}

/** The places a run's source may hold a dataset's files: loose at the URL, or inside the dataset's zip there. */
export function sourceMirrors(dataset: DatasetSpec, source: string): Mirror[] {
  if (!dataset.zip) return [{ url: source, packaging: "files" }];
  if (/\.zip$/i.test(new URL(source).pathname)) return [{ url: source, packaging: "zip" }];
  return [
    { url: source, packaging: "files" },
    { url: source, packaging: "zip" },
  ];
}

export interface SplitLabels {
  readonly split: Split;
  readonly count: number;
  /** labels[i] is image i's class, each checked to be in range. */
  readonly labels: Uint8Array;
}

/** What the images files' headers say: the images as stored, and as loaded (upright). */
export interface ImagesLayout {
  readonly stored: Shape;
  readonly shape: Shape;
}

/** Consecutive images of one split, with their raw pixels (count × pixels per image). */
export interface ImageChunk {
  readonly split: Split;
  readonly start: number;
  readonly count: number;
  readonly pixels: Uint8Array;
}

/**
 * Phase 1: the labels files — small, and they say how many images each split
 * has, so the run can be planned before the images arrive. Each label is checked
 * to be a class. Each archive's MD5 goes to `checksums` once it is known.
 */
export async function extractLabels(
  opts: ExtractOptions,
  deps: ExtractDeps,
  checksums: ChecksumSink,
): Promise<SplitLabels[]> {
  const out: SplitLabels[] = [];
  for (const spec of opts.dataset.splits) {
    const file = spec.labels.file;
    const labels = await fetchVerified(
      opts,
      deps,
      file,
      spec.labels.md5,
      checksums,
      inflateInto(file, () => new LabelsSink(file)),
    );
    // An empty split would complete as a dataset of no rows, replacing a real one.
    if (labels.length === 0) throw new EtlError(`${file}: header says 0 labels: the ${spec.split} split is empty`);
    if (opts.official && labels.length !== spec.count) {
      throw new EtlError(`${file}: expected ${spec.count} labels, header says ${labels.length}`);
    }
    const classes = opts.dataset.classes;
    const bad = classes ? labels.findIndex((l) => l >= classes.length) : -1;
    if (classes && bad >= 0) {
      throw new EtlError(
        `${file}: label ${labels[bad]} at index ${bad} is outside 0–${classes.length - 1} (${classes.length} classes)`,
      );
    }
    out.push({ split: spec.split, count: labels.length, labels });
  }
  return out;
}

/**
 * Phase 1b: the images files' headers only (the download stops once they are
 * inflated): how many images, and of what shape, before anything is loaded,
 * so that the run can be planned, sized and refused up front. Every split must
 * agree with its labels file, with the other split, and with the dataset's
 * published shape if it has one.
 */
export async function peekImages(
  opts: ExtractOptions,
  deps: ExtractDeps,
  labels: readonly SplitLabels[],
): Promise<ImagesLayout> {
  let stored: Shape | undefined;
  let from = "";
  for (const spec of opts.dataset.splits) {
    const file = spec.images.file;
    const header = await fetchVerified(
      opts,
      deps,
      file,
      undefined,
      async () => {},
      () => headerOnly(file),
    );
    const { count, shape } = expectImages(header, file);
    const expected = labels.find((l) => l.split === spec.split)?.count;
    if (count !== expected) {
      throw new EtlError(`${spec.labels.file}: header says ${expected} labels but ${file} says ${count} images`);
    }
    const want = opts.dataset.shape;
    const upright = opts.dataset.transposed ? transposedShape(shape) : shape;
    if (want && describeShape(upright) !== describeShape(want)) {
      throw new EtlError(
        `${file}: ${opts.dataset.name} images are ${describeShape(want)}, header says ${describeShape(upright)}`,
      );
    }
    if (stored && describeShape(shape) !== describeShape(stored)) {
      throw new EtlError(`${file}: images are ${describeShape(shape)}, but ${from} has ${describeShape(stored)}`);
    }
    stored = shape;
    from = file;
  }
  if (!stored) throw new EtlError(`${opts.dataset.name}: no splits`);
  return { stored, shape: opts.dataset.transposed ? transposedShape(stored) : stored };
}

/** The header is all that is wanted: the reader stops the download as soon as it has it. */
class HeaderFound extends Interrupt {
  constructor(readonly header: IdxHeader) {
    super("header read");
  }
}

/** An archive read no further than its IDX header, which HeaderSink throws out as HeaderFound. */
const headerOnly = (file: string): ArchiveReader<IdxHeader> => ({
  ...inflateInto(file, () => new HeaderSink(file))(),
  partial: true,
});

/**
 * Only the MD5s of the images archives (downloaded, not inflated): enough to
 * tell that a source still serves the archives of the last complete run, which
 * was fully verified when it loaded.
 */
export async function hashImages(opts: ExtractOptions, deps: ExtractDeps, checksums: ChecksumSink): Promise<void> {
  // Not kept: a source found unchanged loads nothing, and a changed one is read again to load it.
  const hashing = { ...deps, keep: undefined };
  for (const spec of opts.dataset.splits) {
    await fetchVerified(opts, hashing, spec.images.file, spec.images.md5, checksums, hashOnly);
  }
}

/**
 * Phase 2: the images files, cut into chunks of `chunkImages` images handed to
 * `onChunk` as they inflate, so loading can begin while the rest still
 * downloads — except each file's last chunk, handed over only after the whole
 * archive passed its MD5, CRC, length and count checks: a run cannot have all
 * its chunks (and so complete) before every archive is verified.
 */
export async function extractImages(
  opts: ExtractOptions,
  deps: ExtractDeps,
  labels: readonly SplitLabels[],
  layout: ImagesLayout,
  chunkImages: number,
  onChunk: (chunk: ImageChunk) => Promise<void>,
  checksums: ChecksumSink,
  /** The splits to read (default: all); a later job segment skips those the jobs before it finished. */
  needed: (split: Split) => boolean = () => true,
): Promise<void> {
  for (const spec of opts.dataset.splits) {
    if (!needed(spec.split)) continue;
    const count = labels.find((l) => l.split === spec.split)?.count ?? 0;
    const file = spec.images.file;
    const transposed = opts.dataset.transposed;
    const sink = () =>
      new ImagesSink(file, layout.stored, spec.split, spec.labels.file, count, chunkImages, async (chunk) =>
        onChunk(transposed ? { ...chunk, pixels: transposeImages(chunk.pixels, chunk.count, layout.stored) } : chunk),
      );
    await fetchVerified(opts, deps, file, spec.images.md5, checksums, inflateInto(file, sink));
  }
}

/** What is done with an archive's compressed bytes as they arrive. */
interface ArchiveReader<T> {
  /** Reads only the archive's beginning (it throws HeaderFound): no MD5 is taken or pinned. */
  readonly partial?: boolean;
  push(block: Uint8Array): Promise<void>;
  /** After the whole archive arrived: every check of its content (gzip CRC and length, IDX counts); throws if one fails. */
  verify(): Promise<void>;
  /** After verify and the MD5's checks: hands on what was held back, and returns what the archive yielded. */
  end(): Promise<T>;
  abort(reason: unknown): Promise<void>;
}

const hashOnly = (): ArchiveReader<void> => ({
  push: async () => {},
  verify: async () => {},
  end: async () => {},
  abort: async () => {},
});

/** gunzip (with its CRC and length checks) into an IDX sink; a fresh sink per attempt. */
const inflateInto =
  <T>(file: string, makeSink: () => Sink<T>) =>
  (): ArchiveReader<T> => {
    const gunzip = new VerifyingGunzip(file);
    const sink = makeSink();
    return {
      push: async (block) => {
        for (const out of gunzip.push(block)) await sink.write(out);
      },
      verify: async () => {
        for (const out of gunzip.finish()) await sink.write(out);
        sink.verify();
      },
      end: () => sink.finish(),
      abort: (reason) => sink.abort(reason),
    };
  };

/** Where inflated bytes go; `verify` checks they are all there, `finish` returns what the archive yielded. */
interface Sink<T> {
  write(chunk: Uint8Array): Promise<void>;
  verify(): void;
  finish(): Promise<T>;
  abort(reason: unknown): Promise<void>;
}

/** Where one archive is: a URL, or a member of a zip at a URL. */
type Location = { readonly url: string; readonly member?: string };

function locationOf(opts: ExtractOptions, mirror: Mirror, file: string): Location {
  if (mirror.packaging === "files") return { url: archiveUrl(mirror.url, file.replace(/^.*\//, "")) };
  const zip = opts.dataset.zip;
  if (!zip) throw new EtlError(`${opts.dataset.name} is not published as a zip`);
  const url = /\.zip$/i.test(new URL(mirror.url).pathname) ? mirror.url : archiveUrl(mirror.url, zip.file);
  return { url, member: file };
}

/** Zip directories read during this extraction, one per zip URL: each costs a request or two. */
const directories = new WeakMap<ExtractDeps, Map<string, ZipDirectory>>();

async function openLocation(
  opts: ExtractOptions,
  deps: ExtractDeps,
  loc: Location,
  file: string,
  signal: AbortSignal,
): Promise<ReadableStream<Uint8Array>> {
  if (loc.member === undefined) return openArchive(deps.fetch, loc.url, file, signal);
  let cache = directories.get(deps);
  if (!cache) directories.set(deps, (cache = new Map()));
  let dir = cache.get(loc.url);
  if (!dir) {
    dir = await readZipDirectory(deps.fetch, loc.url, signal);
    const zip = opts.dataset.zip;
    // Read whole (the server ignored Range requests): then the zip's published MD5 can be checked.
    if (opts.official && zip?.md5 && dir.wholeMd5 !== undefined && dir.wholeMd5 !== zip.md5) {
      throw new EtlError(`${zip.file}: MD5 ${dir.wholeMd5} does not match the published ${zip.md5}`);
    }
    cache.set(loc.url, dir);
  }
  return openZipMember(deps.fetch, dir, loc.member, signal);
}

/**
 * One archive from the first mirror that serves it whole, each mirror with its
 * own retries (as torchvision falls back from one mirror to the next). What
 * makes a run fail rather than move on: the run was stopped, or the archive
 * differs from the bytes the run already pinned.
 */
async function fetchVerified<T>(
  opts: ExtractOptions,
  deps: ExtractDeps,
  file: string,
  md5: string | undefined,
  checksums: ChecksumSink,
  makeReader: () => ArchiveReader<T>,
): Promise<T> {
  const failures: string[] = [];
  let retryable = false;
  for (const mirror of opts.mirrors) {
    const loc = locationOf(opts, mirror, file);
    try {
      return await fetchFrom(opts, deps, loc, file, md5, checksums, makeReader);
    } catch (err) {
      const final = err instanceof SourceChangedError || err instanceof Interrupt || opts.mirrors.length === 1;
      if (deps.stop?.aborted || final) throw err;
      retryable ||= isRetryable(err);
      failures.push(errorMessage(err));
      console.warn(
        `${file}: ${errorMessage(err)}${failures.length < opts.mirrors.length ? "; trying the next mirror" : ""}`,
      );
    }
  }
  throw new EtlError(
    `${file}: no mirror served it whole (${opts.mirrors.map((m) => redactUrl(m.packaging === "zip" ? locationOf(opts, m, file).url : m.url)).join(", ")}): ${failures.join("; ")}`,
    retryable,
  );
}

/** One archive from one place, with retries: download → MD5 → reader (a fresh one per attempt). */
async function fetchFrom<T>(
  opts: ExtractOptions,
  deps: ExtractDeps,
  loc: Location,
  file: string,
  md5: string | undefined,
  checksums: ChecksumSink,
  makeReader: () => ArchiveReader<T>,
): Promise<T> {
  const url = loc.member === undefined ? loc.url : `${loc.url} (member ${loc.member})`;
  return withRetries(
    opts.retry,
    async (attemptSignal, _n, progress) => {
      deps.stop?.throwIfAborted();
      const signal = deps.stop ? AbortSignal.any([attemptSignal, deps.stop]) : attemptSignal;
      const body = await openLocation(opts, deps, loc, file, signal).catch((err: unknown) => {
        deps.stop?.throwIfAborted();
        throw err;
      });
      const reader = makeReader();
      const digest = reader.partial ? undefined : deps.md5();
      const copy = reader.partial ? undefined : await deps.keep?.begin(file);
      try {
        try {
          // A header read takes each piece as it comes: it needs only the first few bytes.
          const blockBytes = reader.partial ? 1 : undefined;
          for await (const block of readBody(body, file, url, signal, progress, blockBytes)) {
            await digest?.update(block);
            await copy?.write(block);
            await reader.push(block);
          }
        } catch (err) {
          if (err instanceof HeaderFound) {
            await body.cancel().catch(() => {});
            return err.header as T;
          }
          throw err;
        }
        if (digest) {
          const actual = await digest.hex();
          if (opts.official && md5 !== undefined && actual !== md5) {
            throw new EtlError(`${file}: MD5 ${actual} does not match the published ${md5}`);
          }
          await reader.verify();
          // Pinned only once the archive proved whole: a corrupt download is not a version of the source.
          await checksums(file, actual);
          // Kept only once pinned, and before the last chunk goes on: a run completes with its archives kept.
          await copy?.commit(actual);
        } else await reader.verify();
        return await reader.end();
      } catch (err) {
        await copy?.abort();
        await reader.abort(err);
        await body.cancel().catch(() => {});
        deps.stop?.throwIfAborted();
        throw err;
      }
    },
    deps.sleep,
  );
}

/** Collects the IDX header bytes, then hands the body on. */
abstract class IdxSink<T> implements Sink<T> {
  private head: Uint8Array = new Uint8Array(0);
  protected header: IdxHeader | undefined;
  protected bodyBytes = 0;

  constructor(protected readonly file: string) {}

  async write(chunk: Uint8Array): Promise<void> {
    if (this.header === undefined) {
      const joined = concatBytes(this.head, chunk);
      const need = idxHeaderLength(joined);
      if (need === undefined || joined.length < need) {
        this.head = joined;
        return;
      }
      this.header = parseIdxHeader(joined, this.file);
      this.head = new Uint8Array(0);
      await this.begin(this.header);
      chunk = joined.subarray(need);
    }
    const room = this.header.bodyLength - this.bodyBytes;
    if (chunk.length > room) {
      throw new EtlError(
        `${this.file}: ${this.bodyBytes + chunk.length - this.header.bodyLength}+ extra bytes after the ${this.header.dims.join("×")} elements the header declares`,
      );
    }
    this.bodyBytes += chunk.length;
    if (chunk.length > 0) await this.body(chunk);
  }

  verify(): void {
    this.checkComplete();
  }

  protected checkComplete(): IdxHeader {
    if (this.header === undefined) parseIdxHeader(this.head, this.file); // throws: empty or truncated header
    const h = this.header!;
    if (this.bodyBytes !== h.bodyLength) {
      throw new EtlError(
        `${this.file}: truncated: ${this.bodyBytes} of ${h.bodyLength} bytes the header [${h.dims.join(", ")}] declares`,
      );
    }
    return h;
  }

  protected abstract begin(header: IdxHeader): Promise<void>;
  protected abstract body(chunk: Uint8Array): Promise<void>;
  abstract finish(): Promise<T>;
  abstract abort(reason: unknown): Promise<void>;
}

/** Wants only the header: stops the read there (HeaderFound), or says the file ended before it. */
class HeaderSink extends IdxSink<IdxHeader> {
  protected async begin(h: IdxHeader): Promise<void> {
    throw new HeaderFound(h);
  }

  protected async body(): Promise<void> {}

  async finish(): Promise<IdxHeader> {
    return this.checkComplete();
  }

  async abort(): Promise<void> {}
}

/** Largest labels file held in memory: 16M images, far beyond any IDX dataset. */
const MAX_LABELS = 16 * 1024 * 1024;

class LabelsSink extends IdxSink<Uint8Array> {
  private labels = new Uint8Array(0);

  protected async begin(h: IdxHeader): Promise<void> {
    const n = expectLabels(h, this.file);
    if (n > MAX_LABELS) throw new EtlError(`${this.file}: ${n} labels is more than the ${MAX_LABELS} supported`);
    this.labels = new Uint8Array(n);
  }

  protected async body(chunk: Uint8Array): Promise<void> {
    this.labels.set(chunk, this.bodyBytes - chunk.length);
  }

  async finish(): Promise<Uint8Array> {
    this.checkComplete();
    return this.labels;
  }

  async abort(): Promise<void> {}
}

/** Cuts an images file's pixels into chunks of `chunkImages` images. */
class ImagesSink extends IdxSink<void> {
  private chunk: Uint8Array | undefined;
  private chunkStart = 0;
  private filled = 0;
  private ppi = 0;
  private total = 0;

  constructor(
    file: string,
    private readonly stored: Shape,
    private readonly split: Split,
    private readonly labelsFile: string,
    private readonly labelCount: number,
    private readonly chunkImages: number,
    private readonly onChunk: (chunk: ImageChunk) => Promise<void>,
  ) {
    super(file);
  }

  protected async begin(h: IdxHeader): Promise<void> {
    const { count: n, shape } = expectImages(h, this.file);
    if (n !== this.labelCount) {
      throw new EtlError(`${this.labelsFile}: header says ${this.labelCount} labels but ${this.file} says ${n} images`);
    }
    // The headers were read before planning (peekImages): other ones now mean other files.
    if (describeShape(shape) !== describeShape(this.stored)) {
      throw new SourceChangedError(
        `${this.file}: images are now ${describeShape(shape)}, were ${describeShape(this.stored)}; start a new run`,
      );
    }
    this.ppi = pixelsPerImage(shape);
    this.total = n;
  }

  protected async body(bytes: Uint8Array): Promise<void> {
    while (bytes.length > 0) {
      // A fresh array per chunk: the message that carries it owns it.
      this.chunk ??= new Uint8Array(Math.min(this.chunkImages, this.total - this.chunkStart) * this.ppi);
      const piece = bytes.subarray(0, this.chunk.length - this.filled);
      this.chunk.set(piece, this.filled);
      this.filled += piece.length;
      bytes = bytes.subarray(piece.length);
      // The file's last chunk waits for finish(), after the archive is verified.
      if (this.filled === this.chunk.length && this.chunkStart + this.chunk.length / this.ppi < this.total) {
        await this.emit();
      }
    }
  }

  private async emit(): Promise<void> {
    const pixels = this.chunk!;
    const count = pixels.length / this.ppi;
    const start = this.chunkStart;
    this.chunk = undefined;
    this.filled = 0;
    this.chunkStart += count;
    await this.onChunk({ split: this.split, start, count, pixels });
  }

  async finish(): Promise<void> {
    this.checkComplete();
    if (this.chunk !== undefined) await this.emit();
  }

  async abort(): Promise<void> {
    this.chunk = undefined;
  }
}
