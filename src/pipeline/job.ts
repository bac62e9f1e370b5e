/**
 * The extraction job (idx-etl-jobs consumer): extract the archives and fan the
 * chunks out on idx-etl-chunks, each message carrying its images' pixels.
 *
 * Two schedules, one outcome. When there is nothing the new archives could
 * merely repeat (no complete dataset yet, a forced reload, or a resumed run),
 * the archives are inflated and sent in one pass, so loading overlaps the
 * download. Otherwise the images archives are first only hashed, so that an
 * unchanged source completes without inflating a byte or writing a row; a
 * changed one is then downloaded again and loaded. Either way the rows go to
 * the shadow table and only a fully loaded, verified run is swapped in.
 */
import { FASHION_MNIST, type Split } from "../datasets";
import type { Config } from "../env";
import { EtlError, errorMessage, isRetryable } from "../errors";
import { extractImages, extractLabels, hashImages, type Digest, type ExtractOptions, type ImageChunk } from "./extract";
import type { ChunkMessage, ExtractMessage } from "./messages";
import { BatchBuilder, chunkMessage, planChunks, type ChunkPlan } from "./plan";
import {
  chunkKey,
  committedChunks,
  completeIfDone,
  completeUnchanged,
  database,
  failRun,
  forgetChunks,
  getRun,
  hasCompleteRun,
  markExtracting,
  markLoading,
  noteRetry,
  recordChecksums,
  unchangedSince,
  type Db,
} from "./runs";

/** MD5 with the runtime's DigestStream, fed chunk by chunk. */
export const workersMd5 = (): Digest => {
  const stream = new crypto.DigestStream("MD5");
  const writer = stream.getWriter();
  return {
    update: (chunk) => writer.write(chunk),
    hex: async () => {
      await writer.close();
      return [...new Uint8Array(await stream.digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
    },
  };
};

export async function runExtractJob(msg: ExtractMessage, env: Env, cfg: Config): Promise<void> {
  const db = database(env.DB);
  const run = await getRun(db, msg.runId);
  // A redelivered job for a run that is loading re-sends what the ledger lacks
  // (idempotent); for a finished run there is nothing left to do.
  if (!run || !(run.status === "loading" || (await markExtracting(db, run.id)))) return;
  const opts: ExtractOptions = {
    dataset: FASHION_MNIST,
    source: run.source,
    official: run.source === cfg.defaultSource,
    retry: cfg.retry,
  };
  const deps = { fetch: (url: string, init?: RequestInit) => fetch(url, init), md5: workersMd5 };
  try {
    const checksums: Record<string, string> = {};
    const labels = await extractLabels(opts, deps, checksums);
    const expected = Object.fromEntries(labels.map((l) => [l.split, l.count])) as Record<Split, number>;
    const planned = labels.flatMap((l) => planChunks(l, cfg.chunkSize));
    const plan = { expected, chunksTotal: planned.length };

    if (run.status !== "loading" && !msg.force && (await hasCompleteRun(db))) {
      await hashImages(opts, deps, checksums);
      if (await unchangedSince(db, checksums, expected)) {
        await completeUnchanged(db, run.id, { checksums, expected });
        return;
      }
    }
    if (!(await markLoading(db, run.id, { ...plan, checksums }))) return;
    // What the archives must still hash to once inflated: the ones hashed above, and
    // for a resumed or redelivered run the ones it began loading with.
    const pinned = { ...(run.checksums ?? {}), ...checksums };
    const fanOut = new FanOut(db, env.CHUNKS, run.id, planned);
    await fanOut.readLedger();
    await extractImages(opts, deps, labels, cfg.chunkSize, (chunk) => fanOut.add(chunk), checksums);

    const changed = Object.entries(pinned).find(([file, md5]) => checksums[file] !== md5);
    if (changed)
      throw new EtlError(
        `${changed[0]} changed while the run was loading (MD5 ${checksums[changed[0]]}, was ${changed[1]}); start a new run`,
      );
    await recordChecksums(db, run.id, checksums);
    // Only now the last chunks go out: no run completes before every check above passed.
    await fanOut.flush();
    if (fanOut.sent === 0) await completeIfDone(db, run.id);
  } catch (err) {
    const reason = errorMessage(err);
    if (isRetryable(err)) {
      await noteRetry(db, run.id, reason);
      throw err;
    }
    console.error(`run ${run.id} failed: ${reason}`);
    await failRun(db, run.id, reason);
  }
}

/**
 * Turns inflated chunks into messages and sends them, packed into sendBatch
 * calls, skipping the chunks the ledger already has and any a retried download
 * hands over again. The last batch is held until `flush`.
 */
class FanOut {
  private readonly plans = new Map<string, ChunkPlan>();
  private readonly batch = new BatchBuilder<ChunkMessage>();
  private skip = new Set<string>();
  sent = 0;

  constructor(
    private readonly db: Db,
    private readonly queue: Queue,
    private readonly runId: string,
    planned: readonly ChunkPlan[],
  ) {
    for (const p of planned) this.plans.set(chunkKey(p), p);
  }

  /**
   * A redelivered or resumed job sends only what the ledger lacks. If the
   * ledger holds chunks of another plan (CHUNK_SIZE changed before a resume),
   * it cannot say what is loaded: forget it and load everything again.
   */
  async readLedger(): Promise<void> {
    const committed = await committedChunks(this.db, this.runId);
    if ([...committed].some((k) => !this.plans.has(k))) {
      await forgetChunks(this.db, this.runId);
      this.skip = new Set();
    } else {
      this.skip = committed;
    }
  }

  async add(chunk: ImageChunk): Promise<void> {
    const key = chunkKey(chunk);
    const plan = this.plans.get(key);
    if (plan === undefined) throw new Error(`chunk ${key} is not in the run's plan`);
    if (this.skip.has(key)) return;
    this.skip.add(key);
    const full = this.batch.add(chunkMessage(this.runId, plan, chunk.pixels));
    if (full) await this.send(full);
  }

  async flush(): Promise<void> {
    const last = this.batch.drain();
    if (last.length > 0) await this.send(last);
  }

  private async send(messages: ChunkMessage[]): Promise<void> {
    // v8: the pixels travel as bytes (JSON would spell each one out as a number).
    await this.queue.sendBatch(messages.map((body) => ({ body, contentType: "v8" as const })));
    this.sent += messages.length;
  }
}
