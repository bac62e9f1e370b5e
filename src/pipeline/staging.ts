/**
 * Chunks of images too large for a queue message travel by R2: the job puts
 * a chunk's raw pixels in the EXPORTS bucket (read/bucket.ts stagedKey)
 * before it sends the chunk's message, which names the object; the consumer
 * reads them back and deletes the object once its delivery is settled. A
 * redelivery after that finds the object gone and the ledger holding the
 * chunk, which is all it needs to know. A run's completion sweeps whatever
 * its dataset's staging prefix still holds (objects of deliveries that
 * failed, of runs that never finished).
 *
 * The EXPORTS bucket rather than one of its own: nothing more to create and
 * bind, a prefix no dataset's exports can take, and a dataset's deletion
 * sweeps both.
 */
import { EtlError, errorMessage } from "../core/errors";
import { stagingPrefix } from "../read/bucket";
import type { ChunkMessage } from "./messages";

/** Put a chunk's pixels where its message says they are. */
export async function stageChunk(bucket: R2Bucket, key: string, pixels: Uint8Array): Promise<void> {
  await bucket.put(key, pixels, { httpMetadata: { contentType: "application/octet-stream" } });
}

/** A chunk's pixels: from its message, or from R2; `gone` if its object is no longer there. */
export async function chunkPixels(bucket: R2Bucket | undefined, chunk: ChunkMessage): Promise<Uint8Array | "gone"> {
  if (chunk.staged === undefined) return chunk.pixels;
  if (!bucket) {
    throw new EtlError(
      `${chunk.staged}: the chunk's pixels are staged in R2, but no bucket is bound as EXPORTS; bind it again and resume the run`,
    );
  }
  const object = await bucket.get(chunk.staged);
  if (object === null) return "gone";
  const pixels = new Uint8Array(await object.arrayBuffer());
  if (pixels.length !== chunk.count * chunk.pixelsPerImage)
    throw new EtlError(
      `${chunk.staged}: ${pixels.length} bytes staged for ${chunk.count} images of ${chunk.pixelsPerImage}`,
    );
  return pixels;
}

/** Delete the staged objects of these chunks; a failure is only logged (the completion sweep gets them). */
export async function unstage(bucket: R2Bucket | undefined, chunks: readonly ChunkMessage[]): Promise<void> {
  const keys = chunks.flatMap((c) => (c.staged === undefined ? [] : [c.staged]));
  if (!bucket || keys.length === 0) return;
  await bucket
    .delete(keys)
    .catch((err: unknown) => console.warn(`R2: could not delete ${keys.join(", ")}: ${errorMessage(err)}`));
}

/** Delete every staged object of a dataset: its run completed, so none is needed any more. */
export async function sweepStaged(bucket: R2Bucket | undefined, dataset: string): Promise<void> {
  if (!bucket) return;
  try {
    let cursor: string | undefined;
    do {
      const page = await bucket.list({ prefix: stagingPrefix(dataset), ...(cursor ? { cursor } : {}) });
      if (page.objects.length > 0) await bucket.delete(page.objects.map((o) => o.key));
      cursor = page.truncated ? page.cursor : undefined;
    } while (cursor);
  } catch (err) {
    console.warn(`R2: could not sweep ${stagingPrefix(dataset)}: ${errorMessage(err)}`);
  }
}
