/**
 * Streaming gunzip with fflate that also checks what fflate's streaming API
 * leaves unchecked: the trailer's CRC-32 and length, and that the archive holds
 * exactly one gzip member. No I/O: push compressed bytes in, get inflated bytes
 * back, and every failure is an EtlError that names the file.
 */
import { buf as crc32 } from "crc-32";
import { Gunzip } from "fflate";
import { EtlError, errorMessage } from "../core/errors";

/**
 * Compressed bytes inflated in one step. fflate hands back a step's output
 * whole, and deflate expands a byte up to 1032 times, so this bounds what a
 * step holds, a gzip bomb's included (about 16 MB). Larger slices inflate real
 * archives only slightly faster (bench/decisions.md).
 */
export const INFLATE_SLICE_BYTES = 16 * 1024;

export class VerifyingGunzip {
  private readonly inflater: Gunzip;
  private out: Uint8Array[] = [];
  private crc = 0;
  private inflated = 0;
  private compressed = 0;
  /** The last 8 compressed bytes seen: the gzip trailer once the stream ends. */
  private readonly tail = new Uint8Array(8);

  constructor(private readonly file: string) {
    this.inflater = new Gunzip((chunk) => {
      this.crc = crc32(chunk, this.crc);
      this.inflated += chunk.length;
      this.out.push(chunk);
    });
    this.inflater.onmember = () => {
      throw new EtlError(
        `${file}: a second gzip member follows the first (files joined by \`cat a.gz b.gz\`, or written by bgzip); ` +
          `only single-member archives are read: recompress it with \`zcat ${file} | gzip > NEW.gz\``,
      );
    };
  }

  /**
   * Feed compressed bytes; yields what they inflate to, a slice at a time and
   * only as the reader asks: a reader that stops (a header read) inflates no
   * further, and one slice's output is all that is held at once.
   */
  *push(chunk: Uint8Array): Generator<Uint8Array> {
    for (let at = 0; at < chunk.length; at += INFLATE_SLICE_BYTES) {
      const slice = chunk.subarray(at, at + INFLATE_SLICE_BYTES);
      this.remember(slice);
      this.run(() => this.inflater.push(slice, false));
      yield* this.drain();
    }
  }

  /** End of input: returns the last inflated bytes, then checks the trailer. */
  finish(): Uint8Array[] {
    if (this.compressed === 0) throw new EtlError(`${this.file}: archive is empty (0 bytes)`);
    this.run(() => this.inflater.push(new Uint8Array(0), true));
    const last = this.drain();
    const view = new DataView(this.tail.buffer);
    const crc = view.getUint32(0, true);
    const size = view.getUint32(4, true);
    if (size !== this.inflated % 2 ** 32) {
      throw new EtlError(
        `${this.file}: gzip trailer says ${size} bytes, inflated ${this.inflated}: archive is corrupt`,
      );
    }
    if (crc !== this.crc >>> 0) {
      throw new EtlError(
        `${this.file}: CRC-32 mismatch (trailer 0x${crc.toString(16)}, data 0x${(this.crc >>> 0).toString(16)}): archive is corrupt`,
      );
    }
    return last;
  }

  private run(step: () => void): void {
    try {
      step();
    } catch (err) {
      if (err instanceof EtlError) throw err;
      const msg = errorMessage(err);
      const hint = msg === "unexpected EOF" ? "archive is truncated" : "archive is corrupt";
      throw new EtlError(`${this.file}: ${hint} (gzip: ${msg} after ${this.compressed} compressed bytes)`);
    }
  }

  private drain(): Uint8Array[] {
    const out = this.out;
    this.out = [];
    return out;
  }

  private remember(chunk: Uint8Array): void {
    this.compressed += chunk.length;
    if (chunk.length >= 8) {
      this.tail.set(chunk.subarray(chunk.length - 8));
    } else {
      this.tail.copyWithin(0, chunk.length);
      this.tail.set(chunk, 8 - chunk.length);
    }
  }
}
