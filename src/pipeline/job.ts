/**
 * The extraction job (idx-etl-jobs consumer): extract and stage the archives,
 * skip the load if the dataset in D1 is already this one, else plan the chunks
 * and fan them out on idx-etl-chunks.
 */
import { FASHION_MNIST, type Split } from "../datasets";
import type { Config } from "../env";
import { EtlError, errorMessage, isRetryable } from "../errors";
import { extract, type Digest, type Extracted } from "./extract";
import type { ExtractMessage } from "./messages";
import { packBatches, planChunks } from "./plan";
import {
  chunkKey,
  committedChunks,
  completeIfDone,
  completeUnchanged,
  database,
  forgetChunks,
  failRun,
  getRun,
  markExtracting,
  markLoading,
  noteRetry,
  unchangedSince,
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
  // A redelivered job for a run that is loading re-sends its chunks (idempotent);
  // for a finished run there is nothing left to do.
  if (!run || !(run.status === "loading" || (await markExtracting(db, run.id)))) return;
  let extracted: Extracted | undefined;
  try {
    extracted = await extract(
      {
        runId: run.id,
        dataset: FASHION_MNIST,
        source: run.source,
        official: run.source === cfg.defaultSource,
        retry: cfg.retry,
      },
      { fetch: (url, init) => fetch(url, init), staging, md5: workersMd5 },
    );
    const expected = Object.fromEntries(extracted.splits.map((s) => [s.split, s.count])) as Record<Split, number>;
    if (run.checksums && JSON.stringify(run.checksums) !== JSON.stringify(extracted.checksums)) {
      throw new EtlError(`source ${run.source} changed while the run was loading; start a new run`);
    }
    if (run.status !== "loading" && !msg.force && (await unchangedSince(db, extracted.checksums, expected))) {
      await completeUnchanged(db, run.id, { checksums: extracted.checksums, expected });
      await staging.remove(extracted.splits.map((s) => s.imagesKey));
      return;
    }
    const planned = extracted.splits.flatMap((s) => planChunks(run.id, s, cfg.chunkSize));
    if (!(await markLoading(db, run.id, { checksums: extracted.checksums, expected, chunksTotal: planned.length })))
      return;
    // A redelivered or resumed job sends only what the ledger lacks. If the
    // ledger holds chunks of another plan (CHUNK_SIZE changed before a resume),
    // it cannot say what is loaded: forget it and load everything again.
    let committed = await committedChunks(db, run.id);
    const plannedKeys = new Set(planned.map(chunkKey));
    if ([...committed].some((k) => !plannedKeys.has(k))) {
      await forgetChunks(db, run.id);
      committed = new Set();
    }
    const messages = planned.filter((m) => !committed.has(chunkKey(m)));
    for (const batch of packBatches(messages)) {
      await env.CHUNKS.sendBatch(batch.map((body) => ({ body, contentType: "json" as const })));
    }
    if (messages.length === 0) await completeIfDone(db, run.id);
  } catch (err) {
    const reason = errorMessage(err);
    if (isRetryable(err)) {
      await noteRetry(db, run.id, reason);
      throw err;
    }
    console.error(`run ${run.id} failed: ${reason}`);
    await failRun(db, run.id, reason);
    if (extracted) await staging.remove(extracted.splits.map((s) => s.imagesKey));
  }
}
