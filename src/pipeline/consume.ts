/**
 * The chunk consumer (idx-etl-chunks): read the chunk's pixels from staging,
 * transform, load in one D1 transaction, then see whether the run is complete.
 * And the dead-letter consumer: a message that exhausted its retries fails its run.
 */
import { FASHION_MNIST, pixelsPerImage } from "../datasets";
import type { RunStatus } from "../db/schema";
import type { Config } from "../env";
import { errorMessage, isRetryable } from "../errors";
import { chunkStatements, runBatch } from "./load";
import { describeChunk, parseMessage, type ChunkMessage } from "./messages";
import { completeIfDone, database, failRun, getRun, noteRetry, type Db } from "./runs";
import { r2Staging, type Staging } from "./staging";

/** Seconds before retry n (1-based): 2, 4, 8 … capped at a minute. */
export const retryDelaySeconds = (attempts: number): number => Math.min(60, 2 ** Math.max(1, attempts));

export async function consumeChunks(batch: MessageBatch<unknown>, env: Env, cfg: Config): Promise<void> {
  const db = database(env.DB);
  const staging = r2Staging(env.STAGING);
  const statuses = new Map<string, RunStatus | undefined>();
  // Loaded messages are acked only after their run's completion check: if the
  // check fails, redelivery repeats the (idempotent) load and the check.
  const loaded = new Map<string, Message<unknown>[]>();
  for (const msg of batch.messages) {
    const m = parseMessage(msg.body);
    if (m?.kind !== "chunk") {
      console.error(`idx-etl-chunks: dropping malformed message ${msg.id}: ${JSON.stringify(msg.body).slice(0, 200)}`);
      msg.ack();
      continue;
    }
    if (!statuses.has(m.runId)) statuses.set(m.runId, (await getRun(db, m.runId))?.status);
    if (statuses.get(m.runId) !== "loading") {
      // Failed, complete or unknown: the chunk is no longer wanted.
      msg.ack();
      continue;
    }
    try {
      await loadChunk(env.DB, staging, m, cfg);
      loaded.set(m.runId, [...(loaded.get(m.runId) ?? []), msg]);
    } catch (err) {
      const reason = `${describeChunk(m)}: ${errorMessage(err)}`;
      if (isRetryable(err)) {
        console.warn(`run ${m.runId}: ${reason} (attempt ${msg.attempts}, will retry)`);
        await noteRetry(db, m.runId, reason).catch(() => {});
        msg.retry({ delaySeconds: retryDelaySeconds(msg.attempts) });
      } else {
        console.error(`run ${m.runId} failed: ${reason}`);
        await failRun(db, m.runId, reason);
        statuses.set(m.runId, "failed");
        msg.ack();
      }
    }
  }
  for (const [runId, messages] of loaded) {
    try {
      await finishIfDone(db, staging, runId);
      for (const msg of messages) msg.ack();
    } catch (err) {
      console.warn(`run ${runId}: completion check failed (${errorMessage(err)}); its chunks will be redelivered`);
      for (const msg of messages) msg.retry({ delaySeconds: retryDelaySeconds(msg.attempts) });
    }
  }
}

async function loadChunk(d1: D1Database, staging: Staging, m: ChunkMessage, cfg: Config): Promise<void> {
  const ppi = pixelsPerImage(FASHION_MNIST);
  const pixels = await staging.read(m.object, m.offset, m.count * ppi);
  const rows = { split: m.split, start: m.start, labels: m.labels, pixels, pixelsPerImage: ppi };
  await runBatch(d1, chunkStatements(m.runId, rows, cfg.rowsPerStatement, new Date().toISOString()));
}

async function finishIfDone(db: Db, staging: Staging, runId: string): Promise<void> {
  const outcome = await completeIfDone(db, runId);
  if (outcome !== "pending") await staging.removeRun(runId);
}

export async function consumeDeadLetters(batch: MessageBatch<unknown>, env: Env): Promise<void> {
  const db = database(env.DB);
  const staging = r2Staging(env.STAGING);
  for (const msg of batch.messages) {
    const m = parseMessage(msg.body);
    if (m) {
      const run = await getRun(db, m.runId);
      const what = m.kind === "chunk" ? describeChunk(m) : "extraction";
      const last = run?.error ? `; last error: ${run.error.replace(/^retrying: /, "")}` : "";
      const reason = `${what} failed on every delivery and went to the dead-letter queue${last}`;
      if (await failRun(db, m.runId, reason)) {
        console.error(`run ${m.runId} failed: ${reason}`);
        await staging.removeRun(m.runId);
      }
    } else {
      console.error(`idx-etl-dlq: dropping malformed message ${msg.id}`);
    }
    msg.ack();
  }
}
