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
 *
 * One version per run: every archive's MD5 is pinned to the run the first time
 * the run reads the whole archive, and every chunk's bytes are compared with
 * what the run already holds for it (produce.ts, and the consumer against the
 * ledger). Bytes that differ fail the run for good, whatever the path.
 */
import { FASHION_MNIST, type Split } from "../core/datasets";
import type { Config } from "./config";
import { EtlError, SourceChangedError, errorMessage, isRetryable } from "../core/errors";
import {
  extractImages,
  extractLabels,
  hashImages,
  type ChecksumSink,
  type Digest,
  type ExtractOptions,
} from "./extract";
import { parseMessage, type ExtractMessage } from "./messages";
import { planChunks } from "./plan";
import { Producer } from "./produce";
import { sameSource } from "../codec/source";
import {
  committedChunks,
  completeIfDone,
  completeUnchanged,
  database,
  failRun,
  forgetChunks,
  getRun,
  hasCompleteRun,
  heartbeat,
  HEARTBEATS_PER_LEASE,
  markExtracting,
  markLoading,
  noteRetry,
  pinChecksum,
  unchangedSince,
  type Db,
} from "../db/runs";

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

/** The run stopped being this job's (abandoned, failed elsewhere, resumed as a new attempt): stop quietly. */
class RunGone extends EtlError {
  constructor(runId: string) {
    super(`run ${runId} is no longer active in this attempt; extraction stopped`, false);
  }
}

/**
 * Pins each archive's MD5 to the run the first time the run sees it, and
 * refuses an archive whose bytes differ from those the run already used (by an
 * earlier pass, download attempt, job delivery or resume). `values` keeps
 * what was pinned, for the unchanged-source check.
 */
function pinner(db: Db, runId: string): { sink: ChecksumSink; values: Record<string, string> } {
  const values: Record<string, string> = {};
  const sink: ChecksumSink = async (file, md5) => {
    const pinned = await pinChecksum(db, runId, file, md5);
    if (pinned === undefined) throw new RunGone(runId);
    if (pinned !== md5)
      throw new SourceChangedError(
        `${file} changed while the run was loading (MD5 ${md5}, was ${pinned}); start a new run`,
      );
    values[file] = md5;
  };
  return { sink, values };
}

/**
 * Renews the run's lease while the job works, so a crashed job is noticed
 * within a lease but a long download is not mistaken for one. Learns, too,
 * when the run is no longer this job's, so the job stops early.
 */
class Lease {
  private readonly gone = new AbortController();
  private readonly timer: ReturnType<typeof setInterval>;

  constructor(db: Db, runId: string, attempt: number, everyMs: number) {
    this.timer = setInterval(() => {
      heartbeat(db, runId, attempt).then(
        (alive) => {
          if (!alive) this.gone.abort(new RunGone(runId));
        },
        (err: unknown) => console.warn(`run ${runId}: heartbeat failed (${errorMessage(err)})`),
      );
    }, everyMs);
  }

  /** Aborted, with a RunGone reason, once the run is no longer this job's. */
  get signal(): AbortSignal {
    return this.gone.signal;
  }

  end(): void {
    clearInterval(this.timer);
  }
}

/**
 * The jobs queue's consumer (max_batch_size = 1: one extraction per
 * invocation). Like the chunk consumer it settles each message itself: a
 * retryable failure is retried with `msg.retry()` (after the consumer's
 * retry_delay), anything else is acked; nothing is thrown at the runtime.
 */
export async function consumeJobs(batch: MessageBatch<unknown>, env: Env, cfg: Config): Promise<void> {
  for (const msg of batch.messages) {
    const m = parseMessage(msg.body);
    if (m?.kind !== "extract") {
      console.error(`idx-etl-jobs: dropping malformed message ${msg.id}`);
      msg.ack();
    } else if ((await runExtractJob(m, env, cfg)) === "retry") msg.retry();
    else msg.ack();
  }
}

/** What became of a job: done (whatever the run's outcome), or worth another delivery. */
export type JobOutcome = "done" | "retry";

export async function runExtractJob(msg: ExtractMessage, env: Env, cfg: Config): Promise<JobOutcome> {
  const db = database(env.DB);
  const run = await getRun(db, msg.runId);
  // A job of an earlier attempt (a resume superseded it) does nothing.
  if (!run || run.attempt !== msg.attempt) return "done";
  // A redelivered job for a run that is loading re-sends what the ledger lacks
  // (idempotent); for a finished run there is nothing left to do.
  if (!(run.status === "loading" || (await markExtracting(db, run.id)))) return "done";
  const opts: ExtractOptions = {
    dataset: FASHION_MNIST,
    source: run.source,
    // Spelled differently (a trailing slash, the host's case), the default source is still held to the published MD5s.
    official: sameSource(run.source, cfg.defaultSource),
    retry: cfg.retry,
  };
  const lease = new Lease(db, run.id, run.attempt, cfg.leaseMs / HEARTBEATS_PER_LEASE);
  const deps = {
    fetch: (url: string, init?: RequestInit) => fetch(url, init),
    md5: workersMd5,
    stop: lease.signal,
  };
  try {
    const pins = pinner(db, run.id);
    const labels = await extractLabels(opts, deps, pins.sink);
    const expected = Object.fromEntries(labels.map((l) => [l.split, l.count])) as Record<Split, number>;
    const planned = labels.flatMap((l) => planChunks(l, cfg.chunkSize));

    if (run.status !== "loading" && !msg.force && (await hasCompleteRun(db))) {
      await hashImages(opts, deps, pins.sink);
      if (await unchangedSince(db, pins.values, expected)) {
        await completeUnchanged(db, run.id, { expected });
        return "done";
      }
    }
    if (!(await markLoading(db, run.id, { expected, chunksTotal: planned.length }))) return "done";
    let committed = await committedChunks(db, run.id);
    if (!Producer.ledgerFits(planned, committed)) {
      // Another plan's ledger (CHUNK_SIZE changed before a resume) cannot say what is loaded: load everything again.
      await forgetChunks(db, run.id);
      committed = new Map();
    }
    const producer = new Producer({
      run: { runId: run.id, attempt: run.attempt },
      planned,
      committed,
      // v8: the pixels travel as bytes (JSON would spell each one out as a number).
      send: async (messages) => {
        await env.CHUNKS.sendBatch(messages.map((body) => ({ body, contentType: "v8" as const })));
      },
      check: () => lease.signal.throwIfAborted(),
    });
    // Each images file's last chunk is handed over only after its archive passed every check.
    await extractImages(opts, deps, labels, cfg.chunkSize, (chunk) => producer.add(chunk), pins.sink);
    await producer.flush();
    if (producer.sent === 0) await completeIfDone(db, run.id);
    return "done";
  } catch (err) {
    const reason = errorMessage(err);
    if (err instanceof RunGone || lease.signal.aborted) {
      console.warn(reason);
      return "done";
    }
    if (isRetryable(err)) {
      console.warn(`run ${run.id}: ${reason} (the job will be retried)`);
      await noteRetry(db, run.id, reason);
      return "retry";
    }
    console.error(`run ${run.id} failed: ${reason}`);
    await failRun(db, run.id, reason, {
      resumable: !(err instanceof SourceChangedError),
      attempt: run.attempt,
    });
    return "done";
  } finally {
    lease.end();
  }
}
