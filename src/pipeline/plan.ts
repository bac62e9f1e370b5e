/**
 * Chunk planning: split each split's images into queue messages, and the
 * messages into sendBatch calls, within Cloudflare Queues' limits. Pure.
 */
import { MAX_DATASET_NAME, pixelsPerImage, type Shape, type Split } from "../core/datasets";
import { describeShape } from "../codec/idx";
import { D1_MAX_ROW_BYTES, MAX_IMAGE_BYTES } from "../db/tables";
import type { ChunkMessage, ChunkRange, InlineChunkMessage } from "./messages";

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

/** A chunk as planned, before its pixels are inflated: its range and its labels (one byte each). */
export interface PlannedChunk extends ChunkRange {
  readonly labels: Uint8Array;
}

/** The chunks of one split, in order, each of `chunkSize` images but the last. */
export function planChunks(input: SplitPlanInput, chunkSize: number): PlannedChunk[] {
  if (!Number.isSafeInteger(chunkSize) || chunkSize < 1) {
    throw new RangeError(`chunk size must be a positive integer, got ${chunkSize}`);
  }
  const out: PlannedChunk[] = [];
  for (let start = 0; start < input.labels.length; start += chunkSize) {
    // A copy, not a view: a message serializes a view's whole backing buffer (every label of the split).
    const labels = input.labels.slice(start, start + chunkSize);
    out.push({ split: input.split, start, count: labels.length, labels });
  }
  return out;
}

/** Which run, and which of its attempts, sends a message; and the run's dataset. */
export interface RunAttempt {
  readonly runId: string;
  readonly attempt: number;
  readonly dataset: string;
}

export const chunkMessage = (run: RunAttempt, chunk: PlannedChunk, pixels: Uint8Array): InlineChunkMessage => ({
  kind: "chunk",
  runId: run.runId,
  attempt: run.attempt,
  dataset: run.dataset,
  ...chunk,
  pixelsPerImage: pixels.length / chunk.count,
  pixels,
});

/** The message of a chunk whose pixels are staged in R2 under `key` (staging.ts). */
export const stagedChunkMessage = (
  run: RunAttempt,
  chunk: PlannedChunk,
  pixelsPerImage: number,
  key: string,
): ChunkMessage => ({
  kind: "chunk",
  runId: run.runId,
  attempt: run.attempt,
  dataset: run.dataset,
  ...chunk,
  pixelsPerImage,
  staged: key,
});

/** What V8's serializer adds to a byte array beyond its bytes (tags, lengths, view), rounded up. */
const BINARY_FIELD_OVERHEAD = 32;

/**
 * A message's size as Queues counts it (its serialized body), a little
 * overestimated: its JSON, with each byte array counted by its length (chunk
 * messages are sent with the v8 content type, which carries bytes as bytes).
 */
export function messageBytes(body: unknown): number {
  let binary = 0;
  const json = JSON.stringify(body, (_key, value: unknown) => {
    if (!(value instanceof Uint8Array)) return value;
    binary += value.byteLength + BINARY_FIELD_OVERHEAD;
    return undefined;
  });
  return new TextEncoder().encode(json).length + binary;
}

/**
 * The most images a chunk message can carry within QUEUE_LIMITS.messageBytes:
 * a byte per pixel and a byte of label per image, plus the message's fields at
 * their largest (a UUID run id, the longest dataset name, a nine-digit start).
 */
export function maxChunkImages(pixelsPerImage: number, limits = QUEUE_LIMITS): number {
  const fields = messageBytes(
    chunkMessage(
      { runId: "00000000-0000-0000-0000-000000000000", attempt: 999_999_999, dataset: "x".repeat(MAX_DATASET_NAME) },
      { split: "train", start: 999_999_999, count: 999_999_999, labels: new Uint8Array(0) },
      new Uint8Array(0),
    ),
  );
  return Math.floor((limits.messageBytes - limits.metadataBytes - fields) / (pixelsPerImage + 1));
}

/**
 * Raw pixels per chunk when chunks travel through R2: a delivery of up to four
 * such chunks holds their pixels, float32 and hex text (up to 8 characters a
 * pixel) in one isolate at once, so a few megabytes in all.
 */
export const R2_CHUNK_BYTES = 512 * 1024;

/**
 * How a run's chunks travel: `message`, their pixels inside the queue message
 * (images that fit one); `r2`, their pixels staged in R2, the message naming
 * the object (larger images, when a bucket is bound); with the images per chunk.
 */
export interface Transport {
  readonly via: "message" | "r2";
  readonly images: number;
}

/**
 * The transport for images of `shape`, at most `chunkSize` per chunk, or why
 * none can carry them: larger than D1 stores (MAX_IMAGE_BYTES), or larger than
 * a message with no R2 bucket bound. `file` names the images file in a refusal.
 */
export function chunkTransport(
  shape: Shape,
  chunkSize: number,
  r2: boolean,
  file: string,
): Transport | { readonly refused: string } {
  const ppi = pixelsPerImage(shape);
  const one = `${file}: one image of ${describeShape(shape)} is ${ppi} bytes`;
  if (ppi > MAX_IMAGE_BYTES)
    return {
      refused: `${one}; D1 stores at most ${MAX_IMAGE_BYTES} bytes per image (as float32, 4 bytes a pixel, in its ${D1_MAX_ROW_BYTES}-byte row limit)`,
    };
  const inMessage = maxChunkImages(ppi);
  if (inMessage >= 1) return { via: "message", images: Math.min(chunkSize, inMessage) };
  if (!r2)
    return {
      refused: `${one}, more than a queue message (128 KB) can carry; bind an R2 bucket as EXPORTS (wrangler.toml [[r2_buckets]]) and images up to ${MAX_IMAGE_BYTES} bytes travel through it`,
    };
  return { via: "r2", images: Math.max(1, Math.min(chunkSize, Math.floor(R2_CHUNK_BYTES / ppi))) };
}

/**
 * Collects messages into sendBatch calls: `add` returns the batch to send
 * first when the new message would not fit in the current one.
 */
export class BatchBuilder<T> {
  private current: T[] = [];
  private bytes = 0;

  constructor(private readonly limits = QUEUE_LIMITS) {}

  add(message: T): T[] | undefined {
    const size = messageBytes(message) + this.limits.metadataBytes;
    if (size > this.limits.messageBytes) {
      throw new RangeError(`queue message of ${size} bytes exceeds ${this.limits.messageBytes}`);
    }
    let full: T[] | undefined;
    if (this.current.length === this.limits.batchMessages || this.bytes + size > this.limits.batchBytes) {
      full = this.drain();
    }
    this.current.push(message);
    this.bytes += size;
    return full;
  }

  /** The messages not yet handed out (possibly none). */
  drain(): T[] {
    const out = this.current;
    this.current = [];
    this.bytes = 0;
    return out;
  }
}

/** Group messages into sendBatch calls; throws if one message alone exceeds the limit. */
export function packBatches<T>(messages: readonly T[], limits = QUEUE_LIMITS): T[][] {
  const builder = new BatchBuilder<T>(limits);
  const batches: T[][] = [];
  for (const m of messages) {
    const full = builder.add(m);
    if (full) batches.push(full);
  }
  const last = builder.drain();
  if (last.length > 0) batches.push(last);
  return batches;
}
