/**
 * Starting a run, the same for cron, HTTP and the CLI: record it (the database
 * refuses a second active run), then hand extraction to the jobs queue, where
 * it gets a consumer's time budget and automatic retries.
 */
import type { Trigger } from "../db/schema";
import { errorMessage } from "../errors";
import type { ExtractMessage } from "./messages";
import { createRun, failRun, type Db, type StartResult } from "./runs";

export interface TriggerRequest {
  readonly trigger: Trigger;
  readonly source: string;
  readonly force: boolean;
}

export async function startRun(db: Db, jobs: Queue, req: TriggerRequest): Promise<StartResult> {
  const result = await createRun(db, req);
  if (!result.started) return result;
  const message: ExtractMessage = { kind: "extract", runId: result.run.id, force: req.force };
  try {
    await jobs.send(message, { contentType: "json" });
  } catch (err) {
    // Without its job the run would block every later trigger until it went stale.
    await failRun(db, result.run.id, `could not queue the extraction job: ${errorMessage(err)}`);
    throw err;
  }
  return result;
}
