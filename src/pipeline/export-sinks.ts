/**
 * Where the export job's bytes go, a file at a time: hashed (SHA-256, for
 * croissant.json) and, when a bucket is given, streamed into R2 as they come.
 * Nothing is gathered: each file is one put of a FixedLengthStream (a file
 * larger than one upload takes is a multipart upload whose parts are such
 * streams), written in pieces of PIECE_BYTES with a timer's turn after each, so
 * the isolate holds no more than a piece per file, and requests to it (and,
 * locally, to the same workerd) are answered while the job runs.
 */
import { nextTurn } from "../core/turn";
import { errorMessage } from "../core/errors";

/** Bytes written at a time: small enough that one write never holds the event loop for long. */
export const PIECE_BYTES = 256 * 1024;
/** R2's largest single upload, and largest part: 5 MiB less than 5 GiB. */
export const MAX_UPLOAD_BYTES = 5 * 2 ** 30 - 5 * 2 ** 20;
/** Part size of a file larger than one upload: R2 wants every part but the last the same size. */
export const PART_BYTES = 2 ** 30;
export const MAX_PARTS = 10_000;
/** R2's largest object: 5 GiB less than 5 TiB. */
export const MAX_OBJECT_BYTES = 5 * 2 ** 40 - 5 * 2 ** 30;

export interface Written {
  readonly bytes: number;
  /** Lower-case hex. */
  readonly sha256: string;
}

export interface FileSink {
  /** Take these bytes, next in the file; resolves once R2 has read them (or they are hashed). */
  write(pieces: readonly Uint8Array[]): Promise<void>;
  /** The upload's completion, the file's size and digest. */
  close(): Promise<Written>;
  /** Give up: an unfinished upload is cancelled, a multipart one aborted. Never throws. */
  abort(): Promise<void>;
}

const hex = (digest: ArrayBuffer): string =>
  Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");

/** A file's bytes in pieces, hashed; `take` decides what else becomes of each piece. */
abstract class HashingSink implements FileSink {
  readonly #digest = new crypto.DigestStream("SHA-256");
  readonly #hash = this.#digest.getWriter();
  #bytes = 0;

  constructor(protected readonly size: number) {}

  async write(pieces: readonly Uint8Array[]): Promise<void> {
    for (const piece of pieces) {
      for (let at = 0; at < piece.length; at += PIECE_BYTES) {
        const bit = piece.subarray(at, at + PIECE_BYTES);
        if (this.#bytes + bit.length > this.size)
          throw new RangeError(`more than the file's ${this.size} bytes were written`);
        await this.#hash.write(bit);
        await this.take(bit);
        this.#bytes += bit.length;
        await nextTurn();
      }
    }
  }

  async close(): Promise<Written> {
    if (this.#bytes !== this.size) throw new RangeError(`${this.#bytes} bytes were written of a file of ${this.size}`);
    await this.finish();
    await this.#hash.close();
    return { bytes: this.#bytes, sha256: hex(await this.#digest.digest) };
  }

  /** Do what the sink is for with the next piece; it may be reused once this resolves. */
  protected abstract take(bit: Uint8Array): Promise<void>;
  /** Every byte was taken. */
  protected abstract finish(): Promise<void>;
  abstract abort(): Promise<void>;
}

/** Bytes only counted and hashed: a file already in R2 whose digest is not recorded, or no bucket at all. */
export class DigestSink extends HashingSink {
  protected async take(): Promise<void> {}
  protected async finish(): Promise<void> {}
  async abort(): Promise<void> {}
}

/** One upload of a known length (a put, or a part) fed through a FixedLengthStream as its bytes come. */
class StreamedUpload<T> {
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #sent: Promise<T>;
  /** Rejects if the upload settles before every byte was written: R2 refused it. */
  readonly #endedEarly: Promise<never>;
  left: number;

  constructor(length: number, send: (body: ReadableStream) => Promise<T>) {
    const { readable, writable } = new FixedLengthStream(length);
    this.left = length;
    this.#writer = writable.getWriter();
    this.#sent = send(readable);
    this.#endedEarly = this.#sent.then(() => {
      throw new Error("the upload ended before its bytes were written");
    });
    // Observed by write() and finish(); an upload given up on is not an unhandled rejection.
    this.#endedEarly.catch(() => {});
  }

  async write(bit: Uint8Array): Promise<void> {
    // A refused upload stops reading its body: its error, not a write that waits for ever.
    await Promise.race([this.#writer.write(bit), this.#endedEarly]);
    this.left -= bit.length;
  }

  async finish(): Promise<T> {
    await Promise.race([this.#writer.close(), this.#endedEarly]);
    return this.#sent;
  }

  cancel(reason: string): void {
    this.#writer.abort(new Error(reason)).catch(() => {});
  }
}

/**
 * A file written to R2: one streamed put if one upload takes it, else a
 * multipart upload of `partBytes` parts, each streamed the same way.
 */
export class R2Sink extends HashingSink {
  #current: StreamedUpload<unknown> | undefined;
  #multipart: R2MultipartUpload | undefined;
  readonly #parts: R2UploadedPart[] = [];
  #offset = 0;

  constructor(
    private readonly bucket: R2Bucket,
    readonly key: string,
    size: number,
    private readonly options: R2PutOptions & R2MultipartOptions,
    private readonly limits = { uploadBytes: MAX_UPLOAD_BYTES, partBytes: PART_BYTES },
  ) {
    super(size);
    if (size > MAX_OBJECT_BYTES || Math.ceil(size / limits.partBytes) > MAX_PARTS)
      throw new RangeError(`${key}: ${size} bytes is more than one R2 object holds`);
  }

  protected async take(bit: Uint8Array): Promise<void> {
    for (let at = 0; at < bit.length;) {
      const upload = (this.#current ??= await this.#open());
      const n = Math.min(bit.length - at, upload.left);
      await upload.write(bit.subarray(at, at + n));
      at += n;
      this.#offset += n;
      if (upload.left === 0) await this.#settle();
    }
  }

  /** The upload that takes the bytes from the current offset on. */
  async #open(): Promise<StreamedUpload<unknown>> {
    if (this.size <= this.limits.uploadBytes)
      return new StreamedUpload(this.size, (body) => this.bucket.put(this.key, body, this.options));
    const multipart = (this.#multipart ??= await this.bucket.createMultipartUpload(this.key, this.options));
    const number = this.#parts.length + 1;
    const length = Math.min(this.limits.partBytes, this.size - this.#offset);
    return new StreamedUpload(length, (body) => multipart.uploadPart(number, body));
  }

  async #settle(): Promise<void> {
    const done = await this.#current!.finish();
    this.#current = undefined;
    if (this.#multipart) this.#parts.push(done as R2UploadedPart);
  }

  protected async finish(): Promise<void> {
    if (this.size === 0) await this.bucket.put(this.key, new Uint8Array(0), this.options);
    else if (this.#multipart) await this.#multipart.complete(this.#parts);
  }

  async abort(): Promise<void> {
    this.#current?.cancel(`${this.key}: the export was given up`);
    this.#current = undefined;
    try {
      await this.#multipart?.abort();
    } catch (err) {
      console.warn(`${this.key}: aborting its multipart upload failed (${errorMessage(err)})`);
    }
  }
}
