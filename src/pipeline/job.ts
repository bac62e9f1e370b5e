/**
 * The extraction job (idx-etl-jobs consumer): extract and stage the archives
 * and fan the chunks out on idx-etl-chunks.
 *
 * Two schedules, one outcome. When there is nothing the new archives could
 * merely repeat (no complete dataset yet, a forced reload, or a resumed run),
 * chunks are sent as soon as their staging segment is stored, so loading
 * overlaps the download. Otherwise the archives are verified first, so that an
 * unchanged source completes without writing a row. Either way the rows go to
 * the shadow table and only a fully loaded, verified run is swapped in.
 */
import { FASHION_MNIST, pixelsPerImage, type Split } from "../datasets";
import type { Config } from "../env";
import { EtlError, errorMessage, isRetryable } from "../errors";
import { extractImages, extractLabels, type Digest, type ExtractOptions, type StagedSegment } from "./extract";
import type { ChunkMessage, ExtractMessage } from "./messages";
import { packBatches, planChunks } from "./plan";
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
import { r2Staging } from "./staging";

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
  const staging = r2Staging(env.STAGING);
  const run = await getRun(db, msg.runId);
  // A redelivered job for a run that is loading re-sends what the ledger lacks
  // (idempotent); for a finished run there is nothing left to do.
  if (!run || !(run.status === "loading" || (await markExtracting(db, run.id)))) return;
  const opts: ExtractOptions = {
    runId: run.id,
    dataset: FASHION_MNIST,
    source: run.source,
    official: run.source === cfg.defaultSource,
    retry: cfg.retry,
  };
  const deps = { fetch: (url: string, init?: RequestInit) => fetch(url, init), staging, md5: workersMd5 };
  try {
    const checksums: Record<string, string> = {};
    const labels = await extractLabels(opts, deps, checksums);
    const expected = Object.fromEntries(labels.map((l) => [l.split, l.count])) as Record<Split, number>;
    const planned = labels.flatMap((l) =>
      planChunks(run.id, l, cfg.chunkSize, cfg.segmentImages, pixelsPerImage(FASHION_MNIST)),
    );
    const plan = { expected, chunksTotal: planned.length };
    const verifyFirst = run.status !== "loading" && !msg.force && (await hasCompleteRun(db));
    const fanOut = new FanOut(db, env.CHUNKS, run.id, planned);

    if (!verifyFirst) {
      if (!(await markLoading(db, run.id, { ...plan, checksums }))) return;
      await fanOut.readLedger();
    }
    const staged: StagedSegment[] = [];
    const onSegment = async (segment: StagedSegment): Promise<void> => {
      if (verifyFirst) staged.push(segment);
      else await fanOut.send(segment);
    };
    await extractImages(opts, deps, labels, cfg.segmentImages, onSegment, checksums);

    const changed = Object.entries(run.checksums ?? {}).find(([file, md5]) => checksums[file] !== md5);
    if (changed)
      throw new EtlError(
        `${changed[0]} changed while the run was loading (MD5 ${checksums[changed[0]]}, was ${changed[1]}); start a new run`,
      );

    if (verifyFirst) {
      if (await unchangedSince(db, checksums, expected)) {
        await completeUnchanged(db, run.id, { checksums, expected });
        await staging.removeRun(run.id);
        return;
      }
      if (!(await markLoading(db, run.id, { ...plan, checksums }))) return;
      await fanOut.readLedger();
      for (const segment of staged) await fanOut.send(segment);
    } else {
      await recordChecksums(db, run.id, checksums);
    }
    if (fanOut.sent === 0) await completeIfDone(db, run.id);
  } catch (err) {
    const reason = errorMessage(err);
    if (isRetryable(err)) {
      await noteRetry(db, run.id, reason);
      throw err;
    }
    console.error(`run ${run.id} failed: ${reason}`);
    await failRun(db, run.id, reason);
    await staging.removeRun(run.id);
  }
}

/** Sends a staged segment's chunks, skipping those the ledger already has. */
class FanOut {
  private committed = new Set<string>();
  sent = 0;

  constructor(
    private readonly db: Db,
    private readonly queue: Queue,
    private readonly runId: string,
    private readonly planned: readonly ChunkMessage[],
  ) {}

  /**
   * A redelivered or resumed job sends only what the ledger lacks. If the
   * ledger holds chunks of another plan (CHUNK_SIZE changed before a resume),
   * it cannot say what is loaded: forget it and load everything again.
   */
  async readLedger(): Promise<void> {
    this.committed = await committedChunks(this.db, this.runId);
    const plannedKeys = new Set(this.planned.map(chunkKey));
    if ([...this.committed].some((k) => !plannedKeys.has(k))) {
      await forgetChunks(this.db, this.runId);
      this.committed = new Set();
    }
  }

  async send(segment: StagedSegment): Promise<void> {
    const end = segment.start + segment.count;
    const messages = this.planned.filter(
      (m) => m.split === segment.split && m.start >= segment.start && m.start < end && !this.committed.has(chunkKey(m)),
    );
    for (const batch of packBatches(messages)) {
      await this.queue.sendBatch(batch.map((body) => ({ body, contentType: "json" as const })));
    }
    this.sent += messages.length;
  }
}
