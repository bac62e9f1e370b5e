/**
 * The producer: turns inflated chunks into chunk messages and hands them to
 * `send` packed into sendBatch calls, holding the last batch until `flush`.
 * One unit for the extraction job, the tests and the benchmarks, each of which
 * injects its own `send`.
 *
 * It also keeps one version per run. A chunk the run already has — committed
 * (the ledger, read when the job starts) or sent earlier by this job (a retried
 * download hands it over again) — is sent again only if never sent; either way
 * its bytes must be the ones the run already has, or the source changed under
 * the run and it stops with a SourceChangedError. Chunks committed after the
 * ledger was read are checked by the consumer against the ledger.
 */
import { nextTurn } from "../core/turn";
import { SourceChangedError } from "../core/errors";
import { chunkDigest } from "../codec/digest";
import type { ImageChunk } from "./extract";
import { describeChunk, type ChunkMessage } from "./messages";
import { chunkKey } from "../db/ledger";
import { BatchBuilder, chunkMessage, stagedChunkMessage, type PlannedChunk, type RunAttempt } from "./plan";
import { stagedKey } from "../read/bucket";

export type SendBatch = (messages: ChunkMessage[]) => Promise<void>;

/** Where this job's segment of the plan ends: chunk `next` (in plan order) and those after it are the next job's. */
export interface SegmentEnd {
  readonly next: number;
}

export interface ProducerOptions {
  readonly run: RunAttempt;
  readonly planned: readonly PlannedChunk[];
  /** What the ledger holds: chunk key → the digest of the rows committed for it. */
  readonly committed?: ReadonlyMap<string, string | null>;
  readonly send: SendBatch;
  /** Called before each chunk is taken: throws to stop the producer (e.g. the run was abandoned). */
  readonly check?: () => void;
  /**
   * This job's segment of the plan: chunks from index `from` (earlier ones were
   * sent by the jobs before it, and are only inflated past), at most `limit`
   * of them; `add` answers the chunk after the segment with SegmentEnd. Default: all.
   */
  readonly from?: number;
  readonly limit?: number;
  /**
   * Set for images too large for a message (plan.ts chunkTransport): each
   * chunk's pixels are put under their staged key first, and its message
   * names the key instead of carrying them.
   */
  readonly stage?: (key: string, pixels: Uint8Array) => Promise<void>;
}

export class Producer {
  private readonly plans = new Map<string, { plan: PlannedChunk; index: number }>();
  private readonly batch = new BatchBuilder<ChunkMessage>();
  /** Digests of the chunks the run has: committed before this job, or sent by it. */
  private readonly known: Map<string, string | null>;
  private sentCount = 0;

  constructor(private readonly opts: ProducerOptions) {
    opts.planned.forEach((plan, index) => this.plans.set(chunkKey(plan), { plan, index }));
    this.known = new Map(opts.committed ?? []);
  }

  /** Whether the ledger belongs to this plan; if not (CHUNK_SIZE changed before a resume) it cannot say what is loaded. */
  static ledgerFits(planned: readonly PlannedChunk[], committed: ReadonlyMap<string, unknown>): boolean {
    const keys = new Set(planned.map(chunkKey));
    return [...committed.keys()].every((k) => keys.has(k));
  }

  /** Messages handed to `send` so far. */
  get sent(): number {
    return this.sentCount;
  }

  /** Takes a chunk (sends it, or knows it already); a chunk past this job's segment is not taken. */
  async add(chunk: ImageChunk): Promise<SegmentEnd | undefined> {
    this.opts.check?.();
    const key = chunkKey(chunk);
    const planned = this.plans.get(key);
    if (planned === undefined) throw new Error(`chunk ${key} is not in the run's plan`);
    const { plan, index } = planned;
    const from = this.opts.from ?? 0;
    if (index < from) return undefined;
    if (this.opts.limit !== undefined && index >= from + this.opts.limit) return { next: index };
    const digest = await chunkDigest(plan.labels, chunk.pixels);
    if (this.known.has(key)) {
      if (this.known.get(key) === digest) return undefined;
      throw new SourceChangedError(
        `${describeChunk(plan)} changed while the run was loading (their bytes differ from those the run already has); start a new run`,
      );
    }
    this.known.set(key, digest);
    const full = this.batch.add(await this.message(plan, chunk.pixels));
    if (full) await this.send(full);
    return undefined;
  }

  /** The chunk's message: its pixels inside, or staged first and named. */
  private async message(plan: PlannedChunk, pixels: Uint8Array): Promise<ChunkMessage> {
    const { run, stage } = this.opts;
    if (!stage) return chunkMessage(run, plan, pixels);
    const key = stagedKey(run.dataset, run.runId, plan.split, plan.start);
    await stage(key, pixels);
    return stagedChunkMessage(run, plan, pixels.length / plan.count, key);
  }

  async flush(): Promise<void> {
    const last = this.batch.drain();
    if (last.length > 0) await this.send(last);
  }

  private async send(messages: ChunkMessage[]): Promise<void> {
    await this.opts.send(messages);
    this.sentCount += messages.length;
    await nextTurn();
  }
}
