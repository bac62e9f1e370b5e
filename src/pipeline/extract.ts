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
import { imagesKey, type Staging, type StagingWriter } from "./staging";

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

export interface ExtractedSplit {
  readonly split: Split;
  readonly count: number;
  /** labels[i] is image i's class, each checked to be in range. */
  readonly labels: Uint8Array;
  /** Staging object: the inflated images IDX file, header included. */
  readonly imagesKey: string;
  readonly headerLength: number;
}

export interface Extracted {
  /** Archive file name → MD5 hex of the .gz as downloaded. */
  readonly checksums: Record<string, string>;
  readonly splits: readonly ExtractedSplit[];
}

export async function extract(opts: ExtractOptions, deps: ExtractDeps): Promise<Extracted> {
  const checksums: Record<string, string> = {};
  const splits: ExtractedSplit[] = [];
  for (const spec of opts.dataset.splits) {
    splits.push(await extractSplit(spec, opts, deps, checksums));
  }
  return { checksums, splits };
}

async function extractSplit(
  spec: SplitSpec,
  opts: ExtractOptions,
  deps: ExtractDeps,
  checksums: Record<string, string>,
): Promise<ExtractedSplit> {
  const { dataset } = opts;
  const labelsFile = spec.labels.file;
  const imagesFile = spec.images.file;

  // Labels first: small, and they tell how many images to expect.
  const labels = await fetchVerified(
    opts,
    deps,
    spec.labels.file,
    spec.labels.md5,
    checksums,
    () => new LabelsSink(labelsFile),
  );
  // An empty split would complete as a dataset of no rows, replacing a real one.
  if (labels.length === 0) throw new EtlError(`${labelsFile}: header says 0 labels: the ${spec.split} split is empty`);
  if (opts.official && labels.length !== spec.count) {
    throw new EtlError(`${labelsFile}: expected ${spec.count} labels, header says ${labels.length}`);
  }
  const bad = labels.findIndex((l) => l >= dataset.classes.length);
  if (bad >= 0) {
    throw new EtlError(
      `${labelsFile}: label ${labels[bad]} at index ${bad} is outside 0–${dataset.classes.length - 1}`,
    );
  }

  const key = imagesKey(opts.runId, spec.split);
  const headerLength = await fetchVerified(opts, deps, imagesFile, spec.images.md5, checksums, () => {
    return new ImagesSink(imagesFile, dataset, labelsFile, labels.length, (length) => deps.staging.create(key, length));
  });
  return { split: spec.split, count: labels.length, labels, imagesKey: key, headerLength };
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
      await this.begin(this.header, joined.subarray(0, need));
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

  protected abstract begin(header: IdxHeader, headerBytes: Uint8Array): Promise<void>;
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

class ImagesSink extends IdxSink<number> {
  private writer: StagingWriter | undefined;

  constructor(
    file: string,
    private readonly dataset: DatasetSpec,
    private readonly labelsFile: string,
    private readonly labelCount: number,
    private readonly open: (length: number) => StagingWriter,
  ) {
    super(file);
  }

  protected async begin(h: IdxHeader, headerBytes: Uint8Array): Promise<void> {
    const n = expectImages(h, this.file, this.dataset.rows, this.dataset.cols);
    if (n !== this.labelCount) {
      throw new EtlError(`${this.labelsFile}: header says ${this.labelCount} labels but ${this.file} says ${n} images`);
    }
    if (h.bodyLength !== n * pixelsPerImage(this.dataset)) {
      throw new EtlError(`${this.file}: ${h.bodyLength} pixel bytes do not make ${n} images`);
    }
    this.writer = this.open(headerBytes.length + h.bodyLength);
    await this.writer.write(headerBytes.slice());
  }

  protected async body(chunk: Uint8Array): Promise<void> {
    // fflate may reuse its output buffer; the staging stream keeps what it is given.
    await this.writer!.write(chunk.slice());
  }

  async finish(): Promise<number> {
    const h = this.checkComplete();
    await this.writer!.close();
    return h.headerLength;
  }

  async abort(reason: unknown): Promise<void> {
    await this.writer?.abort(reason);
  }
}
