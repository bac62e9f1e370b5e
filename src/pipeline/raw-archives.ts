/**
 * Keeping the archives a run reads, byte for byte, in R2, so that the Worker
 * can serve them as a mirror (GET /datasets/{name}/raw/{file}; torchvision's
 * downloader accepts them by their published MD5s). The compressed bytes are
 * teed as they are read: an archive of up to one part is one put, a larger
 * one a multipart upload of equal parts. Nothing becomes visible until the
 * archive passed every check and its MD5 was pinned to the run (`commit`):
 * a multipart upload is invisible until completed, and a failed or abandoned
 * read aborts it.
 *
 * Once per run and file: the key is the run's and the file's, a read of an
 * archive the run keeps already (a later job segment, a retried job, a
 * resume) writes nothing, and two reads of it could only write the same
 * bytes, since a run's archive must match the MD5 it pinned. R2 is asked
 * whether the run keeps it already only when there is something to write (a
 * full part, or the commit), so a read of an archive's header costs nothing
 * and a read the keeper has seen kept costs nothing either. Keeping is a
 * service beside the load, never a condition of it: an R2 failure is logged,
 * the copy dropped, and the run goes on.
 */
import { errorMessage } from "../core/errors";
import { rawDatasetPrefix, rawKey, rawRunPrefix, readKeptRuns } from "../read/raw-archives";

/** One read's copy of an archive, written block by block as the archive is read. */
export interface RawCopy {
  write(block: Uint8Array): Promise<void>;
  /** The archive passed every check and `md5` is pinned: the copy becomes the run's. */
  commit(md5: string): Promise<void>;
  /** The read failed or stopped: nothing is kept. */
  abort(): Promise<void>;
}

/** Where a run's archives are kept: a copy to write as `file` is read, or none if this keeper saw it kept. */
export interface RawKeeper {
  begin(file: string): RawCopy | undefined;
}

/**
 * Bytes per part of a multipart upload: R2's least for every part but the
 * last, which must all be the same size (developers.cloudflare.com/r2/objects/multipart-objects).
 * An archive is held in memory at most one part being filled and one uploading.
 */
export const RAW_PART_BYTES = 5 * 2 ** 20;

/** A RawKeeper for run `runId` of `dataset` in `bucket`. */
export function rawKeeper(bucket: R2Bucket, dataset: string, runId: string, partBytes = RAW_PART_BYTES): RawKeeper {
  const kept = new Set<string>();
  return {
    begin(file) {
      const key = rawKey(dataset, runId, file);
      if (kept.has(key)) return undefined;
      return new R2Copy(bucket, key, partBytes, { dataset, run: runId }, () => kept.add(key));
    },
  };
}

class R2Copy implements RawCopy {
  private part: Uint8Array;
  private filled = 0;
  private upload: R2MultipartUpload | undefined;
  private readonly parts: R2UploadedPart[] = [];
  /** Parts handed to R2 so far: they upload one after another, numbered from 1. */
  private sent = 0;
  /** The part being uploaded while the next one fills. */
  private inflight: Promise<void> = Promise.resolve();
  /** Set by the first R2 failure: the copy is dropped, the read goes on. */
  private failed = false;
  /** Whether R2 was asked if the run keeps this archive already, and what it said. */
  private checked = false;
  private already = false;

  constructor(
    private readonly bucket: R2Bucket,
    private readonly key: string,
    private readonly partBytes: number,
    private readonly metadata: Record<string, string>,
    private readonly onKept: () => void,
  ) {
    this.part = new Uint8Array(partBytes);
  }

  async write(block: Uint8Array): Promise<void> {
    while (!this.failed && !this.already && block.length > 0) {
      const piece = block.subarray(0, this.partBytes - this.filled);
      this.part.set(piece, this.filled);
      this.filled += piece.length;
      block = block.subarray(piece.length);
      if (this.filled === this.partBytes) await this.sendPart();
    }
  }

  /** Upload the full part in the background once the one before it is done; a fresh buffer fills meanwhile. */
  private async sendPart(): Promise<void> {
    const bytes = this.part;
    this.part = new Uint8Array(this.partBytes);
    this.filled = 0;
    await this.inflight;
    if (!(await this.writable())) return;
    const number = ++this.sent;
    this.inflight = this.guard(async () => {
      this.upload ??= await this.bucket.createMultipartUpload(this.key, this.options());
      this.parts.push(await this.upload.uploadPart(number, bytes));
    });
  }

  async commit(md5: string): Promise<void> {
    await this.inflight;
    if (!(await this.writable())) {
      if (this.already) this.onKept();
      return this.abort();
    }
    await this.guard(async () => {
      const last = this.part.subarray(0, this.filled);
      if (this.sent === 0) {
        // One part or less: a single put, which R2 checks against the MD5.
        await this.bucket.put(this.key, last, { ...this.options(), md5 });
      } else {
        this.upload ??= await this.bucket.createMultipartUpload(this.key, this.options());
        if (last.length > 0) this.parts.push(await this.upload.uploadPart(++this.sent, last));
        await this.upload.complete(this.parts);
      }
      this.onKept();
    });
    if (this.failed) await this.abort();
  }

  async abort(): Promise<void> {
    await this.inflight.catch(() => {});
    this.failed = true;
    const upload = this.upload;
    this.upload = undefined;
    if (upload === undefined) return;
    try {
      await upload.abort();
    } catch (err) {
      // Left to R2, whose default lifecycle aborts an incomplete upload after 7 days.
      console.warn(`${this.key}: the incomplete upload could not be aborted (${errorMessage(err)})`);
    }
  }

  /** False once R2 failed, or said the run keeps this archive already (asked once, before the first write). */
  private async writable(): Promise<boolean> {
    if (!this.checked) {
      this.checked = true;
      await this.guard(async () => {
        this.already = (await this.bucket.head(this.key)) !== null;
      });
    }
    return !this.failed && !this.already;
  }

  private options(): R2PutOptions & R2MultipartOptions {
    return { httpMetadata: { contentType: "application/gzip" }, customMetadata: this.metadata };
  }

  /** Runs an R2 step; a failure drops the copy (logged) instead of failing the read. */
  private async guard(step: () => Promise<void>): Promise<void> {
    try {
      await step();
    } catch (err) {
      if (!this.failed) console.warn(`${this.key}: not kept (${errorMessage(err)}); the run goes on without it`);
      this.failed = true;
    }
  }
}

/**
 * Delete the kept archives of every run of `dataset` but its current version
 * and its runs still active: a finished run that is not current (replaced,
 * failed, or unchanged) is served by nothing. A run's first job calls it, so
 * the version a run replaces keeps its archives until the next run starts.
 * Returns how many objects it deleted.
 */
export async function pruneRawArchives(bucket: R2Bucket, db: D1Database, dataset: string): Promise<number> {
  const keep = (await readKeptRuns(db, dataset)).map((run) => rawRunPrefix(dataset, run));
  let deleted = 0;
  let cursor: string | undefined;
  do {
    const page = await bucket.list({ prefix: rawDatasetPrefix(dataset), ...(cursor ? { cursor } : {}) });
    const stale = page.objects.map((o) => o.key).filter((k) => !keep.some((p) => k.startsWith(p)));
    if (stale.length > 0) await bucket.delete(stale);
    deleted += stale.length;
    cursor = page.truncated ? page.cursor : undefined;
  } while (cursor);
  return deleted;
}
