/**
 * The claim-check store: the producer streams each inflated images file into
 * it, consumers read back only their byte range. R2 in production and in
 * Miniflare; any object store with range reads would do.
 */
import { EtlError } from "../errors";

export interface StagingWriter {
  write(chunk: Uint8Array): Promise<void>;
  /** Resolves once the object is stored whole. */
  close(): Promise<void>;
  abort(reason: unknown): Promise<void>;
}

export interface Staging {
  /** An object of exactly `length` bytes; fewer or more is an error, never a short object. */
  create(key: string, length: number): StagingWriter;
  read(key: string, offset: number, length: number): Promise<Uint8Array>;
  /** Delete every object a run staged. */
  removeRun(runId: string): Promise<void>;
}

export const stagingPrefix = (runId: string): string => `runs/${runId}/`;
/** A segment: the raw pixels (no IDX header) of images [start, start + n) of a split. */
export const segmentKey = (runId: string, split: string, start: number): string =>
  `${stagingPrefix(runId)}${split}-images-${String(start).padStart(9, "0")}.u8`;

export function r2Staging(bucket: R2Bucket): Staging {
  return {
    create(key, length) {
      // R2 needs the length of a streamed body up front: FixedLengthStream
      // gives it, and errors if we write a byte more or less.
      const { readable, writable } = new FixedLengthStream(length);
      const writer = writable.getWriter();
      const stored = bucket.put(key, readable);
      // Surface a failed put while we are still writing, not only at close.
      const failed = stored.then(
        () => new Promise<never>(() => {}),
        (err: unknown) => {
          throw new EtlError(`staging ${key}: ${String(err)}`, true);
        },
      );
      failed.catch(() => {});
      return {
        write: (chunk) => Promise.race([writer.write(chunk), failed]),
        close: async () => {
          await Promise.race([writer.close(), failed]);
          await stored;
        },
        abort: async (reason) => {
          await writer.abort(reason).catch(() => {});
          await stored.catch(() => {});
        },
      };
    },
    async read(key, offset, length) {
      const object = await bucket.get(key, { range: { offset, length } });
      if (object === null) {
        throw new EtlError(`staging object ${key} is missing (deleted or expired); resume the run or start a new one`);
      }
      const bytes = new Uint8Array(await object.arrayBuffer());
      if (bytes.length !== length) {
        throw new EtlError(`staging object ${key}: read ${bytes.length} bytes at ${offset}, expected ${length}`);
      }
      return bytes;
    },
    async removeRun(runId) {
      // R2 lists and deletes at most 1,000 keys a call; a run stages ~14.
      for (;;) {
        const listed = await bucket.list({ prefix: stagingPrefix(runId), limit: 1000 });
        if (listed.objects.length > 0) await bucket.delete(listed.objects.map((o) => o.key));
        if (!listed.truncated) return;
      }
    },
  };
}
