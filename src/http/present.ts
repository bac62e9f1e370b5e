/** The JSON shape of a run, as GET /runs and GET /runs/:id answer it: URLs in it redacted (it is public). */
import type { Run } from "../db/schema";
import { redactText, redactUrl } from "../codec/source";
import type { RunView } from "./schemas";

export function presentRun(run: Run): RunView {
  const end = run.finishedAt ?? run.updatedAt;
  return {
    id: run.id,
    trigger: run.trigger,
    source: redactUrl(run.source),
    status: run.status,
    unchanged: run.unchanged,
    splits: {
      train: { expected: run.trainExpected, loaded: run.trainLoaded },
      test: { expected: run.testExpected, loaded: run.testLoaded },
    },
    chunksTotal: run.chunksTotal,
    /** 1, then one more per resume. */
    attempt: run.attempt,
    /** Whether POST /runs/:id/resume may pick it up (refused still if a later run has started). */
    resumable: run.status === "failed" && run.resumable && run.chunksTotal !== null,
    checksums: run.checksums,
    error: run.error === null ? null : redactText(run.error),
    /** While active: the last error of a step that will be retried. */
    retrying: run.retrying === null ? null : redactText(run.retrying),
    createdAt: run.createdAt,
    updatedAt: run.updatedAt,
    finishedAt: run.finishedAt,
    durationMs: Date.parse(end) - Date.parse(run.createdAt),
  };
}
