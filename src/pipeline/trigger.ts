/**
 * Starting a run, the same for cron, HTTP and the CLI: record it (the database
 * refuses a second active run), then hand extraction to the jobs queue, where
 * it gets a consumer's time budget and automatic retries.
 */
import { errorMessage } from "../core/errors";
import type { ExtractMessage } from "./messages";
import { createRun, resumeRun, type ResumeResult, type StartRequest, type StartResult } from "../db/run-start";
import { failRun } from "../db/runs";
import type { Db } from "../db/database";

export interface TriggerRequest extends StartRequest {
  readonly force: boolean;
}

export async function startRun(db: Db, jobs: Queue, req: TriggerRequest, leaseMs: number): Promise<StartResult> {
  const result = await createRun(db, req, leaseMs);
  if (!result.started) return result;
  const message: ExtractMessage = {
    kind: "extract",
    runId: result.run.id,
    attempt: result.run.attempt,
    force: req.force,
    from: 0,
  };
  try {
    await jobs.send(message, { contentType: "json" });
  } catch (err) {
    // Without its job the run would block every later trigger until it went stale.
    await failRun(db, result.run.id, `could not queue the extraction job: ${errorMessage(err)}`);
    throw err;
  }
  return result;
}

/**
 * Resume a failed run that had begun loading: re-extract its archives (their
 * MD5s and chunks must match what it already has) and load only the chunks its
 * ledger lacks, into the shadow rows it already has.
 */
export async function resume(db: Db, jobs: Queue, id: string, leaseMs: number): Promise<ResumeResult> {
  const result = await resumeRun(db, id, leaseMs);
  if (!result.resumed) return result;
  // Not `force`: that means "reload an unchanged source"; a resumed run is loading, which already skips the hashing pass.
  const message: ExtractMessage = { kind: "extract", runId: id, attempt: result.run.attempt, force: false, from: 0 };
  try {
    await jobs.send(message, { contentType: "json" });
  } catch (err) {
    await failRun(db, id, `could not queue the extraction job to resume: ${errorMessage(err)}`);
    throw err;
  }
  return result;
}
