/**
 * Where the export job's bytes go, a file at a time: gathered into parts of
 * PART_BYTES, each part hashed (SHA-256, for croissant.json) and, when a
 * bucket is given, uploaded as one part of an R2 multipart upload before the
 * next is gathered. Bounded parts keep the isolate's memory at a few parts
 * however large the file, and the await on each upload hands the event loop
 * to other requests between parts, where one long streamed put would hold a
 * stream open for the whole file. A file no larger than a part is one put.
 */
import { errorMessage } from "../core/errors";

/**
 * Bytes per part: R2 wants at least 5 MiB for every part but the last, and
 * the same size for all of those; 10,000 parts at most, so a file of up to
 * 100 GiB can be written.
 */
export const PART_BYTES = 10 * 2 ** 20;
export const MAX_PARTS = 10_000;

export interface Written {
  readonly bytes: number;
  /** Lower-case hex. */
  readonly sha256: string;
}

export interface FileSink {
  /** Take these bytes, next in the file; resolves once they are buffered or their part is uploaded. */
  write(pieces: readonly Uint8Array[]): Promise<void>;
  /** The last part, the upload's completion, the file's size and digest. */
  close(): Promise<Written>;
  /** Give up: an unfinished multipart upload is aborted. Never throws. */
  abort(): Promise<void>;
}

const hex = (digest: ArrayBuffer): string =>
  Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");

/** A part's worth of bytes at a time, hashed; `flush` decides what else becomes of each part. */
abstract class PartSink implements FileSink {
  readonly #digest = new crypto.DigestStream("SHA-256");
  readonly #hash = this.#digest.getWriter();
  /** Allocated at the first write and dropped at close: a sink holds a part only while its file is written. */
  #part: Uint8Array | undefined;
  #fill = 0;
  #bytes = 0;

  constructor(protected readonly size: number) {}

  async write(pieces: readonly Uint8Array[]): Promise<void> {
    this.#part ??= new Uint8Array(Math.min(this.size, PART_BYTES));
    for (const piece of pieces) {
      for (let at = 0; at < piece.length;) {
        const n = Math.min(piece.length - at, this.#part.length - this.#fill);
        if (n <= 0) throw new RangeError(`more than the file's ${this.size} bytes were written`);
        this.#part.set(piece.subarray(at, at + n), this.#fill);
        this.#fill += n;
        at += n;
        if (this.#fill === this.#part.length && this.#bytes + this.#fill < this.size) await this.#emit(false);
      }
    }
  }

  async #emit(last: boolean): Promise<void> {
    const part = (this.#part ?? new Uint8Array(0)).subarray(0, this.#fill);
    await this.#hash.write(part);
    await this.flush(part, last);
    this.#bytes += this.#fill;
    this.#fill = 0;
  }

  async close(): Promise<Written> {
    if (this.#bytes + this.#fill !== this.size)
      throw new RangeError(`${this.#bytes + this.#fill} bytes were written of a file of ${this.size}`);
    await this.#emit(true);
    this.#part = undefined;
    await this.#hash.close();
    return { bytes: this.#bytes, sha256: hex(await this.#digest.digest) };
  }

  /** Do what the sink is for with a full part (or the last); the buffer is reused once this resolves. */
  protected abstract flush(part: Uint8Array, last: boolean): Promise<void>;

  abstract abort(): Promise<void>;
}

/** Bytes only counted and hashed: a file already in R2 whose digest is not recorded, or no bucket at all. */
export class DigestSink extends PartSink {
  protected async flush(): Promise<void> {}
  async abort(): Promise<void> {}
}

/** A file written to R2: one put if it fits one part, else a multipart upload of PART_BYTES parts. */
export class R2Sink extends PartSink {
  #upload: R2MultipartUpload | undefined;
  readonly #parts: R2UploadedPart[] = [];

  constructor(
    private readonly bucket: R2Bucket,
    readonly key: string,
    size: number,
    private readonly options: R2PutOptions & R2MultipartOptions,
  ) {
    super(size);
    if (Math.ceil(size / PART_BYTES) > MAX_PARTS)
      throw new RangeError(`${key}: ${size} bytes need more than ${MAX_PARTS} parts of ${PART_BYTES}`);
  }

  protected async flush(part: Uint8Array, last: boolean): Promise<void> {
    if (last && this.#upload === undefined) {
      await this.bucket.put(this.key, part, this.options);
      return;
    }
    this.#upload ??= await this.bucket.createMultipartUpload(this.key, this.options);
    this.#parts.push(await this.#upload.uploadPart(this.#parts.length + 1, part));
    if (last) await this.#upload.complete(this.#parts);
  }

  async abort(): Promise<void> {
    try {
      await this.#upload?.abort();
    } catch (err) {
      console.warn(`${this.key}: aborting its multipart upload failed (${errorMessage(err)})`);
    }
  }
}
