/**
 * Extract: download the four archives, verify them (checksums where known,
 * gzip CRC and length always, IDX headers and counts), inflate them as a
 * stream, keep the labels (one byte per image) and stream the images into
 * staging. Everything that can be validated is validated here, before the first
 * row is written to D1. Peak memory is a few fflate buffers, not a split.
 */
import { pixelsPerImage, type DatasetSpec, type Split, type SplitSpec } from "../datasets";
import { EtlError } from "../errors";
import { openArchive, readBody, withRetries, type Fetch, type RetryPolicy } from "./download";
import { VerifyingGunzip } from "./gunzip";
import { expectImages, expectLabels, idxHeaderLength, parseIdxHeader, type IdxHeader } from "./idx";
import { segmentKey, type Staging, type StagingWriter } from "./staging";

/** An incremental MD5: Workers have crypto.DigestStream, Node has createHash. */
export interface Digest {
  update(chunk: Uint8Array): void | Promise<void>;
  hex(): Promise<string>;
}

export interface ExtractDeps {
  readonly fetch: Fetch;
  readonly staging: Staging;
  readonly md5: () => Digest;
  readonly sleep?: (ms: number) => Promise<void>;
}

export interface ExtractOptions {
  readonly runId: string;
  readonly dataset: DatasetSpec;
  /** Base URL; each archive is `${source}/${file}`. */
  readonly source: string;
  /** Require the published MD5s and counts (runs from the default source). */
  readonly official: boolean;
  readonly retry: RetryPolicy;
}

export interface SplitLabels {
  readonly split: Split;
  readonly count: number;
  /** labels[i] is image i's class, each checked to be in range. */
  readonly labels: Uint8Array;
}

/** A run of consecutive images of one split, stored whole in staging. */
export interface StagedSegment {
  readonly split: Split;
  readonly start: number;
  readonly count: number;
  readonly key: string;
}

/**
 * Phase 1: the labels files — small, and they say how many images each split
 * has, so the run can be planned before the images arrive. Each label is checked
 * to be a class. `checksums` collects the archives' MD5s.
 */
export async function extractLabels(
  opts: ExtractOptions,
  deps: ExtractDeps,
  checksums: Record<string, string>,
): Promise<SplitLabels[]> {
  const out: SplitLabels[] = [];
  for (const spec of opts.dataset.splits) {
    const file = spec.labels.file;
    const labels = await fetchVerified(opts, deps, file, spec.labels.md5, checksums, () => new LabelsSink(file));
    // An empty split would complete as a dataset of no rows, replacing a real one.
    if (labels.length === 0) throw new EtlError(`${file}: header says 0 labels: the ${spec.split} split is empty`);
    if (opts.official && labels.length !== spec.count) {
      throw new EtlError(`${file}: expected ${spec.count} labels, header says ${labels.length}`);
    }
    const bad = labels.findIndex((l) => l >= opts.dataset.classes.length);
    if (bad >= 0) {
      throw new EtlError(
        `${file}: label ${labels[bad]} at index ${bad} is outside 0–${opts.dataset.classes.length - 1}`,
      );
    }
    out.push({ split: spec.split, count: labels.length, labels });
  }
  return out;
}

/**
 * Phase 2: the images files, streamed into staging in segments of
 * `segmentImages` images. `onSegment` hears of each segment once it is stored,
 * so loading can begin while the rest still downloads — except a file's last
 * segment, reported only after the whole archive passed its MD5, CRC, length
 * and count checks: a run cannot have all its chunks (and so complete) before
 * every archive is verified.
 */
export async function extractImages(
  opts: ExtractOptions,
  deps: ExtractDeps,
  labels: readonly SplitLabels[],
  segmentImages: number,
  onSegment: (segment: StagedSegment) => Promise<void>,
  checksums: Record<string, string>,
): Promise<void> {
  const ppi = pixelsPerImage(opts.dataset);
  for (const spec of opts.dataset.splits) {
    const count = labels.find((l) => l.split === spec.split)?.count ?? 0;
    const key = (start: number) => segmentKey(opts.runId, spec.split, start);
    await fetchVerified(opts, deps, spec.images.file, spec.images.md5, checksums, () => {
      return new ImagesSink(spec.images.file, opts.dataset, spec.labels.file, count, {
        segmentImages,
        open: (start, n) => deps.staging.create(key(start), n * ppi),
        staged: (start, n) => onSegment({ split: spec.split, start, count: n, key: key(start) }),
      });
    });
  }
}

/** Where inflated bytes go; `finish` returns what the archive yielded. */
interface Sink<T> {
  write(chunk: Uint8Array): Promise<void>;
  finish(): Promise<T>;
  abort(reason: unknown): Promise<void>;
}

/** One archive, with retries: download → MD5 → gunzip → sink. */
async function fetchVerified<T>(
  opts: ExtractOptions,
  deps: ExtractDeps,
  file: string,
  md5: string,
  checksums: Record<string, string>,
  makeSink: () => Sink<T>,
): Promise<T> {
  const url = `${opts.source.replace(/\/+$/, "")}/${file}`;
  return withRetries(
    opts.retry,
    async (signal, _n, progress) => {
      const body = await openArchive(deps.fetch, url, file, signal);
      const digest = deps.md5();
      const gunzip = new VerifyingGunzip(file);
      const sink = makeSink();
      try {
        for await (const chunk of readBody(body, file, signal, progress)) {
          await digest.update(chunk);
          for (const out of gunzip.push(chunk)) await sink.write(out);
        }
        const actual = await digest.hex();
        checksums[file] = actual;
        if (opts.official && actual !== md5) {
          throw new EtlError(`${file}: MD5 ${actual} does not match the published ${md5}`);
        }
        for (const out of gunzip.finish()) await sink.write(out);
        return await sink.finish();
      } catch (err) {
        await sink.abort(err);
        await body.cancel().catch(() => {});
        throw err;
      }
    },
    deps.sleep,
  );
}

/** Collects the IDX header bytes, then hands the body on. */
abstract class IdxSink<T> implements Sink<T> {
  private head = new Uint8Array(0);
  protected header: IdxHeader | undefined;
  protected bodyBytes = 0;

  constructor(protected readonly file: string) {}

  async write(chunk: Uint8Array): Promise<void> {
    if (this.header === undefined) {
      const joined = new Uint8Array(this.head.length + chunk.length);
      joined.set(this.head);
      joined.set(chunk, this.head.length);
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

interface Segments {
  readonly segmentImages: number;
  open(start: number, count: number): StagingWriter;
  staged(start: number, count: number): Promise<void>;
}

/** Streams an images file's pixels into staging, one segment object at a time. */
class ImagesSink extends IdxSink<void> {
  private writer: StagingWriter | undefined;
  private segmentStart = 0;
  private segmentCount = 0;
  private segmentBytes = 0;
  private ppi = 0;
  private total = 0;

  constructor(
    file: string,
    private readonly dataset: DatasetSpec,
    private readonly labelsFile: string,
    private readonly labelCount: number,
    private readonly segments: Segments,
  ) {
    super(file);
  }

  protected async begin(h: IdxHeader): Promise<void> {
    const n = expectImages(h, this.file, this.dataset.rows, this.dataset.cols);
    if (n !== this.labelCount) {
      throw new EtlError(`${this.labelsFile}: header says ${this.labelCount} labels but ${this.file} says ${n} images`);
    }
    this.ppi = pixelsPerImage(this.dataset);
    this.total = n;
  }

  protected async body(chunk: Uint8Array): Promise<void> {
    while (chunk.length > 0) {
      if (this.writer === undefined) {
        this.segmentCount = Math.min(this.segments.segmentImages, this.total - this.segmentStart);
        this.segmentBytes = 0;
        this.writer = this.segments.open(this.segmentStart, this.segmentCount);
      }
      const piece = chunk.subarray(0, this.segmentCount * this.ppi - this.segmentBytes);
      // No copy: fflate hands each output to ondata as a fresh array (slc), never reused.
      await this.writer.write(piece);
      this.segmentBytes += piece.length;
      chunk = chunk.subarray(piece.length);
      const full = this.segmentBytes === this.segmentCount * this.ppi;
      // The file's last segment waits for finish(), after the archive is verified.
      if (full && this.segmentStart + this.segmentCount < this.total) await this.closeSegment();
    }
  }

  private async closeSegment(): Promise<void> {
    await this.writer!.close();
    this.writer = undefined;
    const { segmentStart, segmentCount } = this;
    this.segmentStart += segmentCount;
    await this.segments.staged(segmentStart, segmentCount);
  }

  async finish(): Promise<void> {
    this.checkComplete();
    if (this.writer !== undefined) await this.closeSegment();
  }

  async abort(reason: unknown): Promise<void> {
    await this.writer?.abort(reason);
  }
}
