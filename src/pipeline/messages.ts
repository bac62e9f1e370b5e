/**
 * What travels through the queues. A chunk message carries its images' raw
 * pixels (one byte each, as in the IDX file): at the configured chunk size it
 * stays under Queues' 128 KB per message (plan.ts sizes it), so the consumer
 * needs nothing but the message — no side store to write, read back and clean up.
 */
import { isSplit, type Split } from "../core/datasets";

/** idx-etl-jobs: download, verify and inflate one run's archives, and fan the chunks out. */
export interface ExtractMessage {
  readonly kind: "extract";
  readonly runId: string;
  /** The run's attempt that queued it (runs.attempt): a job of an earlier attempt does nothing. */
  readonly attempt: number;
  /** Reload even when the archives are identical to the last complete run's. */
  readonly force: boolean;
}

/** idx-etl-chunks: transform and load images [start, start + count) of one split. */
export interface ChunkMessage {
  readonly kind: "chunk";
  readonly runId: string;
  /** The run's attempt whose job sent it: as a dead letter it fails only that attempt. */
  readonly attempt: number;
  readonly split: Split;
  readonly start: number;
  readonly count: number;
  /** The chunk's labels as decimal digits, one character per image (validated 0–9 at extract). */
  readonly labels: string;
  /** count × pixels-per-image raw uint8 pixels, row-major, exactly as in the IDX file. */
  readonly pixels: Uint8Array;
}

export type EtlMessage = ExtractMessage | ChunkMessage;

const isIndex = (n: unknown): n is number => typeof n === "number" && Number.isSafeInteger(n) && n >= 0;

/** Messages come from our own producers, but a queue is an API: check before trusting. */
export function parseMessage(body: unknown): EtlMessage | undefined {
  if (typeof body !== "object" || body === null) return undefined;
  const m = body as Record<string, unknown>;
  if (typeof m.runId !== "string" || m.runId === "") return undefined;
  // Messages queued before runs had attempts belong to the first one.
  const attempt = m.attempt === undefined ? 1 : m.attempt;
  if (!isIndex(attempt) || attempt < 1) return undefined;
  if (m.kind === "extract" && typeof m.force === "boolean") {
    return { kind: "extract", runId: m.runId, attempt, force: m.force };
  }
  if (
    m.kind === "chunk" &&
    isSplit(m.split) &&
    isIndex(m.start) &&
    isIndex(m.count) &&
    m.count > 0 &&
    typeof m.labels === "string" &&
    m.labels.length === m.count &&
    /^[0-9]*$/.test(m.labels) &&
    m.pixels instanceof Uint8Array &&
    m.pixels.length > 0 &&
    m.pixels.length % m.count === 0
  ) {
    const { runId, split, start, count, labels, pixels } = m;
    return { kind: "chunk", runId, attempt, split, start, count, labels, pixels };
  }
  return undefined;
}

export const describeChunk = (c: Pick<ChunkMessage, "split" | "start" | "count">): string =>
  `${c.split} images ${c.start}–${c.start + c.count - 1}`;
