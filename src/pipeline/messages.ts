/**
 * What travels through the queues. A chunk message carries its images' raw
 * pixels (one byte each, as in the IDX file): at the configured chunk size it
 * stays under Queues' 128 KB per message (plan.ts sizes it), so the consumer
 * needs nothing but the message. Images too large for a message travel by R2
 * instead: the message names the object that holds the chunk's pixels
 * (staging.ts), and carries everything else.
 */
import { isDatasetName, isSplit, type Split } from "../core/datasets";
import { stagedKey } from "../read/bucket";

/** idx-etl-jobs: download, verify and inflate one run's archives, and fan the chunks out. */
export interface ExtractMessage {
  readonly kind: "extract";
  readonly runId: string;
  /** The run's attempt that queued it (runs.attempt): a job of an earlier attempt does nothing. */
  readonly attempt: number;
  /** Reload even when the archives are identical to the last complete run's. */
  readonly force: boolean;
  /**
   * The first chunk (in plan order) this job sends: 0, or where the segment
   * before it stopped to stay within an invocation's limits (job.ts).
   */
  readonly from: number;
}

/**
 * A chunk: images [start, start + count) of one split, the unit the job plans
 * (PlannedChunk), inflates (ImageChunk), sends (ChunkMessage) and the ledger records.
 */
export interface ChunkRange {
  readonly split: Split;
  readonly start: number;
  readonly count: number;
}

/** What every chunk message says: which images, of which run, and their labels. */
interface ChunkHead extends ChunkRange {
  readonly kind: "chunk";
  readonly runId: string;
  /** The run's attempt whose job sent it: as a dead letter it fails only that attempt. */
  readonly attempt: number;
  /** The run's dataset, whose shadow tables the rows go to (the load checks the run agrees). */
  readonly dataset: string;
  /** The chunk's labels, one byte per image (validated against the classes at extract). */
  readonly labels: Uint8Array;
  /** Bytes of one image (rows × cols × channels): the consumer checks the pixels against it. */
  readonly pixelsPerImage: number;
}

/** idx-etl-chunks: transform and load one chunk's images, its pixels in the message. */
export interface InlineChunkMessage extends ChunkHead {
  /** count × pixelsPerImage raw uint8 pixels, upright, row-major (HWC). */
  readonly pixels: Uint8Array;
  readonly staged?: undefined;
}

/** idx-etl-chunks: the same, its pixels in R2 (images too large for a message). */
export interface StagedChunkMessage extends ChunkHead {
  readonly pixels?: undefined;
  /** The EXPORTS bucket's object that holds the pixels: always read/bucket.ts stagedKey of this chunk. */
  readonly staged: string;
}

export type ChunkMessage = InlineChunkMessage | StagedChunkMessage;

/**
 * idx-etl-jobs: write the dataset's current version's .npy files to R2
 * (materialise.ts). Names no version: the job serves whatever is current when
 * it runs, so a late or repeated one is harmless.
 */
export interface ExportMessage {
  readonly kind: "export";
  readonly dataset: string;
}

export type EtlMessage = ExtractMessage | ChunkMessage | ExportMessage;

const isIndex = (n: unknown): n is number => typeof n === "number" && Number.isSafeInteger(n) && n >= 0;

/** Messages come from our own producers, but a queue is an API: check before trusting. */
export function parseMessage(body: unknown): EtlMessage | undefined {
  if (typeof body !== "object" || body === null) return undefined;
  const m = body as Record<string, unknown>;
  if (m.kind === "export") return isDatasetName(m.dataset) ? { kind: "export", dataset: m.dataset } : undefined;
  if (typeof m.runId !== "string" || m.runId === "") return undefined;
  // Messages queued before runs had attempts belong to the first one.
  const attempt = m.attempt === undefined ? 1 : m.attempt;
  if (!isIndex(attempt) || attempt < 1) return undefined;
  if (m.kind === "extract" && typeof m.force === "boolean") {
    // A job queued before jobs had segments starts at the first chunk.
    const from = m.from === undefined ? 0 : m.from;
    if (!isIndex(from)) return undefined;
    return { kind: "extract", runId: m.runId, attempt, force: m.force, from };
  }
  // Chunks queued before runs had datasets are Fashion-MNIST's.
  const dataset = m.dataset === undefined ? "fashion-mnist" : m.dataset;
  if (m.kind === "chunk" && m.staged !== undefined) return parseStaged(m, attempt, dataset);
  if (
    m.kind === "chunk" &&
    isDatasetName(dataset) &&
    isSplit(m.split) &&
    isIndex(m.start) &&
    isIndex(m.count) &&
    m.count > 0 &&
    m.labels instanceof Uint8Array &&
    m.labels.length === m.count &&
    m.pixels instanceof Uint8Array &&
    m.pixels.length > 0 &&
    m.pixels.length % m.count === 0
  ) {
    const { runId, split, start, count, labels, pixels } = m;
    // Chunks queued before messages named it carry whole images of one size.
    const pixelsPerImage = m.pixelsPerImage === undefined ? pixels.length / count : m.pixelsPerImage;
    if (!isIndex(pixelsPerImage) || pixelsPerImage < 1) return undefined;
    return { kind: "chunk", runId, attempt, dataset, split, start, count, labels, pixelsPerImage, pixels };
  }
  return undefined;
}

/** A staged chunk message: its object must be the one its own fields name, so no message reaches another. */
function parseStaged(m: Record<string, unknown>, attempt: number, dataset: unknown): StagedChunkMessage | undefined {
  const { runId, split, start, count, labels, pixelsPerImage, staged } = m;
  if (
    typeof runId !== "string" ||
    !isDatasetName(dataset) ||
    !isSplit(split) ||
    !isIndex(start) ||
    !isIndex(count) ||
    count < 1 ||
    !(labels instanceof Uint8Array) ||
    labels.length !== count ||
    !isIndex(pixelsPerImage) ||
    pixelsPerImage < 1 ||
    m.pixels !== undefined ||
    staged !== stagedKey(dataset, runId, split, start)
  )
    return undefined;
  return { kind: "chunk", runId, attempt, dataset, split, start, count, labels, pixelsPerImage, staged };
}

export const describeChunk = (c: ChunkRange): string => `${c.split} images ${c.start}–${c.start + c.count - 1}`;
