/**
 * The chunk consumer (idx-etl-chunks): transform the chunks of a delivery and
 * load them in one D1 transaction, then complete the run if that was its last
 * chunk. And the dead-letter consumer: a message that exhausted its retries
 * fails its run.
 */
import type { Config } from "./config";
import { backoffMs, type Backoff } from "../core/backoff";
import { EtlError, errorMessage, isRetryable } from "../core/errors";
import { chunkDigest } from "../codec/digest";
import { classifyD1Error } from "../db/d1-errors";
import { loadChunks, type ChunkRows, type LoadResult } from "../db/load";
import { describeChunk, parseMessage, type ChunkMessage } from "./messages";
import { requestExports } from "./materialise";
import { chunkPixels, sweepStaged, unstage } from "./staging";
import { chunkKey, committedChunks } from "../db/ledger";
import { completeIfDone, failRun, noteRetry, type Completion } from "../db/runs";
import { database, type Db } from "../db/database";
import { getRun } from "../db/run-reads";
import { nextTurn } from "../core/turn";

/**
 * The wait before a message's next delivery: steps of 2, 4, 8 … s capped at a
 * minute, with the one backoff's full jitter (core/backoff.ts) so that consumers
 * turned away together by an overloaded D1 do not all come back in the same second.
 */
export const QUEUE_RETRY_BACKOFF: Backoff = { baseMs: 2_000, capMs: 60_000 };

/** Seconds before the delivery after attempt `attempts` (msg.attempts, 1-based). */
export const retryDelaySeconds = (attempts: number, random: () => number = Math.random): number =>
  Math.ceil(backoffMs(attempts, QUEUE_RETRY_BACKOFF, random) / 1000);

/** A chunk message as delivered: its handle (to ack or retry) and its parsed body. */
interface ChunkDelivery {
  readonly msg: Message<unknown>;
  readonly chunk: ChunkMessage;
}

export async function consumeChunks(batch: MessageBatch<unknown>, env: Env, cfg: Config): Promise<void> {
  // Locally the broker delivers the next batch as soon as this one returns: requests get the loop in between.
  await nextTurn();
  const byRun = new Map<string, ChunkDelivery[]>();
  for (const msg of batch.messages) {
    const chunk = parseMessage(msg.body);
    if (chunk?.kind !== "chunk") {
      console.error(`idx-etl-chunks: dropping malformed message ${msg.id}`);
      msg.ack();
      continue;
    }
    byRun.set(chunk.runId, [...(byRun.get(chunk.runId) ?? []), { msg, chunk }]);
  }
  for (const [runId, deliveries] of byRun) await loadRun(env, cfg, runId, deliveries);
}

/**
 * A run's chunks of this delivery, as one transaction. Its writes are guarded
 * by the run being `loading`, so chunks of a failed, complete or unknown run
 * write nothing and are acked. Messages are acked only after the completion
 * check: if it fails, redelivery repeats the (idempotent) load and the check.
 */
async function loadRun(env: Env, cfg: Config, runId: string, deliveries: readonly ChunkDelivery[]): Promise<void> {
  const db = database(env.DB);
  const what = deliveries.map((d) => describeChunk(d.chunk)).join(", ");
  const settle = (verdict: "ack" | "retry") => {
    for (const { msg } of deliveries) {
      if (verdict === "ack") msg.ack();
      else msg.retry({ delaySeconds: retryDelaySeconds(msg.attempts) });
    }
  };
  let rows: ChunkRows[];
  let loaded: LoadResult;
  try {
    const settled = await withPixels(env, db, runId, deliveries);
    if (settled === "nothing-to-load") {
      settle("ack");
      return;
    }
    rows = settled;
    loaded = await loadChunks(env.DB, runId, rows, cfg.rowsPerStatement, new Date().toISOString());
  } catch (err) {
    const reason = `${what}: ${errorMessage(err)}`;
    // A CHECK or key refused the rows (pixels of another size than the run's tables hold):
    // the same rows would be refused on every delivery.
    if (isRetryable(err) && classifyD1Error(err) !== "constraint") {
      const attempts = Math.max(...deliveries.map((d) => d.msg.attempts));
      console.warn(`run ${runId}: ${reason} (attempt ${attempts}, will retry)`);
      await noteRetry(db, runId, reason).catch(() => {});
      settle("retry");
    } else {
      console.error(`run ${runId} failed: ${reason}`);
      await failRun(db, runId, reason);
      await unstage(
        env.EXPORTS,
        deliveries.map((d) => d.chunk),
      );
      settle("ack");
    }
    return;
  }
  // Settled either way (written, or refused by the run's state or its ledger): staged pixels are no longer needed.
  await unstage(
    env.EXPORTS,
    deliveries.map((d) => d.chunk),
  );
  const { state, ledger } = loaded;
  // The ledger kept another digest for a chunk: these bytes are another version of
  // images the run already has, and no row of theirs was written. Neither can win.
  const other = rows.find((r) =>
    ledger.some((e) => e.split === r.split && e.start === r.start && e.digest !== r.digest),
  );
  if (state?.status === "loading" && other) {
    const reason = `${describeChunk({ ...other, count: other.labels.length })} changed while the run was loading (a delivery carried other bytes than those already loaded); start a new run`;
    console.error(`run ${runId} failed: ${reason}`);
    await failRun(db, runId, reason, { resumable: false });
    settle("ack");
    return;
  }
  if (state?.status === "loading" && state.total !== null && state.committed >= state.total) {
    let completion: Completion;
    try {
      completion = await completeIfDone(db, runId);
    } catch (err) {
      console.warn(`run ${runId}: completion check failed (${errorMessage(err)}); its chunks will be redelivered`);
      settle("retry");
      return;
    }
    if (completion === "complete") await completed(env, deliveries[0]!.chunk.dataset);
  }
  settle("ack");
}

/** After a run's swap: its exports to write, and no staged chunk of its dataset needed any more. */
async function completed(env: Env, dataset: string): Promise<void> {
  await requestExports(env, dataset);
  await sweepStaged(env.EXPORTS, dataset);
}

/**
 * The delivery's chunks with their pixels (read from R2 for a staged chunk)
 * and digests. A staged chunk whose object is gone was settled by an earlier
 * delivery if the ledger holds it, or belongs to a run no longer loading: it
 * is left out, and if nothing is left, there is nothing to load. Gone while
 * its run still needs it, it fails the run (a resume stages it again).
 */
async function withPixels(
  env: Env,
  db: Db,
  runId: string,
  deliveries: readonly ChunkDelivery[],
): Promise<ChunkRows[] | "nothing-to-load"> {
  const pixels = await Promise.all(deliveries.map(({ chunk }) => chunkPixels(env.EXPORTS, chunk)));
  const gone = deliveries.filter((_, i) => pixels[i] === "gone");
  if (gone.length > 0) {
    const committed = await committedChunks(db, runId);
    const lost = gone.find((d) => !committed.has(chunkKey(d.chunk)));
    if (lost && (await getRun(db, runId))?.status === "loading")
      throw new EtlError(
        `its staged pixels (${lost.chunk.staged}) are gone, and the chunk is not loaded; resume the run to stage it again`,
      );
  }
  const rows = await Promise.all(
    deliveries.flatMap(({ chunk }, i) => {
      const p = pixels[i]!;
      return p === "gone" ? [] : [chunkDigest(chunk.labels, p).then((digest) => ({ ...chunk, pixels: p, digest }))];
    }),
  );
  return rows.length > 0 ? rows : "nothing-to-load";
}

export async function consumeDeadLetters(batch: MessageBatch<unknown>, env: Env): Promise<void> {
  const db = database(env.DB);
  for (const msg of batch.messages) {
    const m = parseMessage(msg.body);
    if (m?.kind === "chunk" && (await loadedAlready(env, db, m))) {
      // Its rows committed, though every delivery reported an error (after the commit,
      // or in the completion check): nothing is lost, so finish the run instead of failing it.
      try {
        if ((await completeIfDone(db, m.runId)) === "complete") await completed(env, m.dataset);
      } catch (err) {
        // The swap itself failed on every delivery: say so; a resume tries it again.
        const reason = `every chunk was loaded, but swapping them in failed on every delivery: ${errorMessage(err)}`;
        if (await failRun(db, m.runId, reason, { attempt: m.attempt }))
          console.error(`run ${m.runId} failed: ${reason}`);
      }
    } else if (m?.kind === "export") {
      // The run is complete either way; its exports read D1 until a later run's job succeeds.
      console.error(`${m.dataset}: materialising its exports to R2 failed on every delivery`);
    } else if (m) {
      const run = await getRun(db, m.runId);
      const what = m.kind === "chunk" ? describeChunk(m) : "extraction";
      const last = run?.retrying ? `; last error: ${run.retrying}` : "";
      const reason = `${what} failed on every delivery and went to the dead-letter queue${last}`;
      // Only the attempt that sent it: a resumed run re-sends what it lacks.
      if (await failRun(db, m.runId, reason, { attempt: m.attempt })) console.error(`run ${m.runId} failed: ${reason}`);
    } else {
      console.error(`idx-etl-dlq: dropping malformed message ${msg.id}`);
    }
    msg.ack();
  }
}

/**
 * Whether the ledger holds this very chunk: its key with its bytes' digest (a
 * staged chunk whose object is gone: its key, the object being deleted only
 * once a delivery settled).
 */
async function loadedAlready(env: Env, db: Db, chunk: ChunkMessage): Promise<boolean> {
  const committed = await committedChunks(db, chunk.runId);
  const pixels = await chunkPixels(env.EXPORTS, chunk).catch(() => "gone" as const);
  if (pixels === "gone") return committed.has(chunkKey(chunk));
  return committed.get(chunkKey(chunk)) === (await chunkDigest(chunk.labels, pixels));
}
