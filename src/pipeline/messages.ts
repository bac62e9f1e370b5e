/**
 * What travels through the queues. Messages only describe work (claim-check):
 * the pixels stay in staging and each consumer reads its own byte range.
 */
import { isSplit, type Split } from "../datasets";

/** idx-etl-jobs: download, verify, inflate and stage one run's archives, then fan out. */
export interface ExtractMessage {
  readonly kind: "extract";
  readonly runId: string;
  /** Reload even when the archives are identical to the last complete run's. */
  readonly force: boolean;
}

/** idx-etl-chunks: transform and load images [start, start + count) of one split. */
export interface ChunkMessage {
  readonly kind: "chunk";
  readonly runId: string;
  readonly split: Split;
  readonly start: number;
  readonly count: number;
  /** The chunk's labels as decimal digits, one character per image (validated 0–9 at extract). */
  readonly labels: string;
  /** The claim: the staging object holding the chunk's pixels, and where in it they start. */
  readonly object: string;
  readonly offset: number;
}

export type EtlMessage = ExtractMessage | ChunkMessage;

const isIndex = (n: unknown): n is number => typeof n === "number" && Number.isSafeInteger(n) && n >= 0;

/** Messages come from our own producers, but a queue is an API: check before trusting. */
export function parseMessage(body: unknown): EtlMessage | undefined {
  if (typeof body !== "object" || body === null) return undefined;
  const m = body as Record<string, unknown>;
  if (typeof m.runId !== "string" || m.runId === "") return undefined;
  if (m.kind === "extract" && typeof m.force === "boolean") {
    return { kind: "extract", runId: m.runId, force: m.force };
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
    typeof m.object === "string" &&
    m.object !== "" &&
    isIndex(m.offset)
  ) {
    const { runId, split, start, count, labels, object, offset } = m;
    return { kind: "chunk", runId, split, start, count, labels, object, offset };
  }
  return undefined;
}

export const describeChunk = (c: Pick<ChunkMessage, "split" | "start" | "count">): string =>
  `${c.split} images ${c.start}–${c.start + c.count - 1}`;
