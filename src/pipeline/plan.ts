/**
 * Chunk planning: split each split's images into queue messages, and the
 * messages into sendBatch calls, within Cloudflare Queues' limits. Pure.
 */
import type { Split } from "../datasets";
import type { ChunkMessage } from "./messages";
import { segmentKey } from "./staging";

/** Queues: a message is at most 128 KB, a sendBatch at most 100 messages and 256 KB (1 KB = 1000 B). */
export const QUEUE_LIMITS = {
  messageBytes: 128_000,
  batchMessages: 100,
  batchBytes: 256_000,
  /** Internal metadata Queues may add to each message. */
  metadataBytes: 100,
} as const;

export interface SplitPlanInput {
  readonly split: Split;
  /** labels[i] is image i's label, already validated. */
  readonly labels: Uint8Array;
}

/**
 * The chunk messages of one split. Staging holds the split's pixels in
 * segments of `segmentImages` images (a multiple of `chunkSize`, so no chunk
 * straddles two), and each message carries its segment's key and offset.
 */
export function planChunks(
  runId: string,
  input: SplitPlanInput,
  chunkSize: number,
  segmentImages: number,
  pixelsPerImage: number,
): ChunkMessage[] {
  if (!Number.isSafeInteger(chunkSize) || chunkSize < 1) {
    throw new RangeError(`chunk size must be a positive integer, got ${chunkSize}`);
  }
  if (!Number.isSafeInteger(segmentImages) || segmentImages < chunkSize || segmentImages % chunkSize !== 0) {
    throw new RangeError(`segment of ${segmentImages} images is not a multiple of the chunk size ${chunkSize}`);
  }
  const out: ChunkMessage[] = [];
  for (let start = 0; start < input.labels.length; start += chunkSize) {
    const slice = input.labels.subarray(start, start + chunkSize);
    const segment = start - (start % segmentImages);
    out.push({
      kind: "chunk",
      runId,
      split: input.split,
      start,
      count: slice.length,
      labels: slice.join(""),
      object: segmentKey(runId, input.split, segment),
      offset: (start - segment) * pixelsPerImage,
    });
  }
  return out;
}

export const messageBytes = (body: unknown): number => new TextEncoder().encode(JSON.stringify(body)).length;

/** Group messages into sendBatch calls; throws if one message alone exceeds the limit. */
export function packBatches<T>(messages: readonly T[], limits = QUEUE_LIMITS): T[][] {
  const batches: T[][] = [];
  let current: T[] = [];
  let bytes = 0;
  for (const m of messages) {
    const size = messageBytes(m) + limits.metadataBytes;
    if (size > limits.messageBytes)
      throw new RangeError(`queue message of ${size} bytes exceeds ${limits.messageBytes}`);
    if (current.length === limits.batchMessages || bytes + size > limits.batchBytes) {
      batches.push(current);
      current = [];
      bytes = 0;
    }
    current.push(m);
    bytes += size;
  }
  if (current.length > 0) batches.push(current);
  return batches;
}
