/** The JSON shape of a run, as GET /runs and GET /runs/:id answer it. */
import type { Run } from "../db/schema";

export function presentRun(run: Run) {
  const end = run.finishedAt ?? run.updatedAt;
  return {
    id: run.id,
    trigger: run.trigger,
    source: run.source,
    status: run.status,
    unchanged: run.unchanged,
    splits: {
      train: { expected: run.trainExpected, loaded: run.trainLoaded },
      test: { expected: run.testExpected, loaded: run.testLoaded },
    },
    chunksTotal: run.chunksTotal,
    checksums: run.checksums,
    error: run.error,
    createdAt: run.createdAt,
    updatedAt: run.updatedAt,
    finishedAt: run.finishedAt,
    durationMs: Date.parse(end) - Date.parse(run.createdAt),
  };
}
