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
 *
 * Any size: a dataset's chunks are sent by as many jobs as it takes to keep
 * each invocation within JOB_MAX_CHUNKS sends. A job that reaches its limit
 * queues the next one, which downloads and inflates the archives again (a
 * gzip stream cannot be entered midway) but sends only from where it stopped.
 */
import { classNames, type Split } from "../core/datasets";
import type { Config } from "./config";
import { EtlError, Interrupt, SourceChangedError, errorMessage, isRetryable } from "../core/errors";
import { Archives, type ChecksumSink, type ExtractOptions } from "./archive";
import { workersMd5 } from "../codec/digest";
import { extractImages, extractLabels, hashImages, peekImages, type SplitLabels } from "./extract";
import { parseMessage, type ExportMessage, type ExtractMessage } from "./messages";
import { materialiseExports, recordDigests, requestExports } from "./materialise";
import { pruneRawArchives, rawKeeper } from "./raw-archives";
import { chunkTransport, planChunks } from "./plan";
import { Producer } from "./produce";
import { stageChunk, sweepStaged } from "./staging";
import { runDataset } from "./dataset";
import { checkCapacity } from "./capacity";
import { committedChunks, forgetChunks, pinChecksum } from "../db/ledger";
import { completeIfDone, completeUnchanged, failRun, markExtracting, markLoading, noteRetry } from "../db/runs";
import { database, type Db } from "../db/database";
import { getRun } from "../db/run-reads";
import { hasCompleteRun, unchangedSince } from "../db/run-checks";
import { heartbeat, HEARTBEATS_PER_LEASE } from "../db/run-start";

/** The run stopped being this job's (abandoned, failed elsewhere, resumed as a new attempt): stop quietly. */
class RunGone extends Interrupt {
  constructor(runId: string) {
    super(`run ${runId} is no longer active in this attempt; extraction stopped`);
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
    if (m?.kind === "export") {
      if ((await runExportJob(m, env)) === "retry") msg.retry();
      else msg.ack();
    } else if (m?.kind !== "extract") {
      console.error(`idx-etl-jobs: dropping malformed message ${msg.id}`);
      msg.ack();
    } else if ((await runExtractJob(m, env, cfg)) === "retry") msg.retry();
    else msg.ack();
  }
}

/** What became of a job: done (whatever the run's outcome), or worth another delivery. */
export type JobOutcome = "done" | "retry";

/**
 * Materialise a dataset's exports (without a bucket: record their digests); a
 * failure leaves exports reading D1, as before, so it is only logged.
 */
export async function runExportJob(msg: ExportMessage, env: Env): Promise<JobOutcome> {
  try {
    if (!env.EXPORTS) {
      const done = await recordDigests(env, msg.dataset);
      if (done === "recorded") console.log(`${msg.dataset}: its export files' SHA-256s are recorded`);
      return "done";
    }
    const done = await materialiseExports(env, msg.dataset);
    if (done.kind === "exported" && done.written > 0)
      console.log(
        `${msg.dataset} ${done.version}: ${done.written} export files written to R2 (${done.bytes} bytes stored in all)`,
      );
    return "done";
  } catch (err) {
    console.warn(`${msg.dataset}: materialising its exports failed (${errorMessage(err)}); will retry`);
    return "retry";
  }
}

export async function runExtractJob(msg: ExtractMessage, env: Env, cfg: Config): Promise<JobOutcome> {
  const db = database(env.DB);
  const run = await getRun(db, msg.runId);
  // A job of an earlier attempt (a resume superseded it) does nothing.
  if (!run || run.attempt !== msg.attempt) return "done";
  const target = runDataset(run, cfg);
  if (!target) {
    await failRun(db, run.id, `dataset ${run.dataset} is not in the registry`, { attempt: run.attempt });
    return "done";
  }
  // A redelivered job for a run that is loading re-sends what the ledger lacks
  // (idempotent); for a finished run there is nothing left to do.
  if (!(run.status === "loading" || (await markExtracting(db, run)))) return "done";
  const opts: ExtractOptions = {
    dataset: target.spec,
    mirrors: target.mirrors,
    official: target.official,
    retry: cfg.retry,
  };
  const lease = new Lease(db, run.id, run.attempt, cfg.leaseMs / HEARTBEATS_PER_LEASE);
  const deps = {
    fetch: (url: string, init?: RequestInit) => fetch(url, init),
    md5: workersMd5,
    stop: lease.signal,
    ...(env.EXPORTS ? { keep: rawKeeper(env.EXPORTS, run.dataset, run.id) } : {}),
  };
  try {
    // A run's first job deletes the archives that finished runs kept and nothing serves (a replaced version's).
    if (msg.from === 0 && env.EXPORTS)
      await pruneRawArchives(env.EXPORTS, env.DB, run.dataset).catch((err: unknown) =>
        console.warn(`${run.dataset}: could not delete the archives older runs kept (${errorMessage(err)})`),
      );
    const pins = pinner(db, run.id);
    const archives = new Archives(opts, deps, pins.sink);
    const labels = await extractLabels(archives);
    const expected = Object.fromEntries(labels.map((l) => [l.split, l.count])) as Record<Split, number>;

    if (run.status !== "loading" && !msg.force && (await hasCompleteRun(db, run.dataset))) {
      await hashImages(archives);
      if (await unchangedSince(db, run, pins.values, expected)) {
        await completeUnchanged(db, run.id, { expected });
        // Files of this version are in R2 already, unless the bucket was bound after its load.
        await requestExports(env, run.dataset);
        return "done";
      }
    }
    const layout = await peekImages(archives, labels);
    // Images too large for a message travel by R2, if a bucket is bound; larger than D1 stores, not at all.
    const transport = chunkTransport(layout.shape, cfg.chunkSize, !!env.EXPORTS, target.spec.splits[0]!.images.file);
    if ("refused" in transport) throw new EtlError(transport.refused);
    const chunkSize = transport.images;
    const bucket = env.EXPORTS;
    const planned = labels.flatMap((l) => planChunks(l, chunkSize));
    if (run.status !== "loading") await checkCapacity(env.DB, run, expected, layout.shape, cfg);
    const loading = {
      expected,
      chunksTotal: planned.length,
      shape: layout.shape,
      classNames: classNames(target.spec, classCount(target.spec.classes, labels)),
    };
    if (!(await markLoading(db, run, loading))) return "done";
    let committed = await committedChunks(db, run.id);
    if (!Producer.ledgerFits(planned, committed)) {
      // Another plan's ledger (CHUNK_SIZE changed before a resume) cannot say what is loaded: load everything again.
      await forgetChunks(db, run.id);
      committed = new Map();
    }
    const producer = new Producer({
      run: { runId: run.id, attempt: run.attempt, dataset: run.dataset },
      planned,
      committed,
      from: msg.from,
      limit: cfg.jobMaxChunks,
      // v8: the pixels travel as bytes (JSON would spell each one out as a number).
      send: async (messages) => {
        await env.CHUNKS.sendBatch(messages.map((body) => ({ body, contentType: "v8" as const })));
      },
      check: () => lease.signal.throwIfAborted(),
      ...(transport.via === "r2" && bucket
        ? { stage: (key: string, px: Uint8Array) => stageChunk(bucket, key, px) }
        : {}),
    });
    // A later segment skips an images archive whose chunks the jobs before it all sent: sending its
    // last chunk took reading it whole, so it is verified and pinned already.
    const lastOf = new Map<Split, number>();
    planned.forEach((p, i) => lastOf.set(p.split, i));
    const needed = (split: Split) => (lastOf.get(split) ?? -1) >= msg.from;
    // Each images file's last chunk comes only after its archive passed every check.
    for await (const chunk of extractImages(archives, labels, layout, chunkSize, needed)) {
      const end = await producer.add(chunk);
      if (end === undefined) continue;
      // The segment is full: the rest is for the next job (leaving the loop stops the download).
      await producer.flush();
      await env.JOBS.send({ ...msg, from: end.next } satisfies ExtractMessage, { contentType: "json" });
      console.log(
        `run ${run.id}: sent chunks ${msg.from}–${end.next - 1} of ${planned.length}; the next job sends the rest`,
      );
      return "done";
    }
    await producer.flush();
    if (producer.sent === 0 && (await completeIfDone(db, run.id)) === "complete") {
      await requestExports(env, run.dataset);
      await sweepStaged(env.EXPORTS, run.dataset);
    }
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

/** Labels 0 … n - 1 are classes: as many as the spec names, else up to the largest label seen. */
function classCount(classes: readonly string[] | undefined, labels: readonly SplitLabels[]): number {
  if (classes) return classes.length;
  let max = 0;
  for (const l of labels) for (const v of l.labels) if (v > max) max = v;
  return max + 1;
}
