/**
 * The runs `npm run etl` did not see to the end: its own, abandoned after
 * SIGINT or SIGTERM; a dead command's, abandoned by the next; and those a
 * trigger closed or left alone. Each is told in one line, with what D1 then
 * holds of its dataset.
 */
import type { ErrorBody } from "../../src/http/schemas/common";
import type { D1File, RunState } from "./d1-file";
import type { StopSignal } from "./interrupt";
import type { LocalWorker } from "./local-worker";
import type { Holder } from "./state-lock";

/**
 * The run this command started, abandoned after SIGINT or SIGTERM, and one
 * line saying what D1 now holds.
 *
 * Through a fresh Worker on the same state: a Ctrl-C in a terminal signals
 * the whole process group, the runtime too, and wrangler's proxy does not
 * answer again after Miniflare restarts it; a SIGTERM to this process alone
 * leaves the runtime busy with the load. The fresh one answers at once and
 * holds none of the run's queued work (Miniflare keeps it in memory).
 */
export async function abandonInterrupted(
  signal: StopSignal,
  runId: string | undefined,
  d1: D1File | undefined,
  startWorker: () => Promise<LocalWorker>,
  token: string,
): Promise<void> {
  if (runId === undefined || d1 === undefined) {
    console.error(`etl: ${signal}: stopped; no run of its own had started`);
    return;
  }
  console.error(`etl: ${signal}: abandoning run ${runId} (a second ${signal} quits at once)…`);
  let refused: string | undefined;
  try {
    const fresh = await startWorker();
    try {
      refused = await abandonRun(fresh.url, token, runId);
    } finally {
      await fresh.stop();
    }
  } catch (err) {
    refused = err instanceof Error ? err.message : String(err);
  }
  const run = d1.run(runId);
  if (!run) {
    console.error(`etl: ${signal}: run ${runId} could not be read back from the local D1 (${refused ?? "abandoned"})`);
    return;
  }
  const loaded = `${run.splits.train.loaded} train and ${run.splits.test.loaded} test images loaded`;
  if (ACTIVE.has(run.status)) {
    console.error(
      `etl: ${signal}: run ${runId} is still ${run.status} (${loaded}): it could not be abandoned (${refused}); the next npm run etl on this state abandons it.`,
    );
    return;
  }
  console.error(
    run.status === "complete"
      ? `etl: ${signal}: run ${runId} had completed (${loaded}).`
      : `etl: ${signal}: run ${runId} ${refused === undefined ? "abandoned" : `had failed: ${run.error}`}, ${loaded}; ${datasetInD1(d1, run.dataset)}.`,
  );
}

/** src/db/schema.ts's ACTIVE_STATUSES: importing that module would load drizzle-orm (see d1-file.ts). */
export const ACTIVE: ReadonlySet<string> = new Set(["queued", "extracting", "loading"]);

/** POST /runs/{id}/abandon: undefined once done, else why not (a run no longer active is not abandoned). */
async function abandonRun(url: string, token: string, id: string): Promise<string | undefined> {
  const res = await fetch(`${url}/runs/${encodeURIComponent(id)}/abandon`, {
    method: "POST",
    headers: { Authorization: `Bearer ${token}` },
    signal: AbortSignal.timeout(30_000),
  });
  if (res.ok) return undefined;
  const body = (await res.json().catch(() => ({}))) as Partial<ErrorBody>;
  return `HTTP ${res.status}: ${body.error ?? "no detail"}`;
}

/**
 * The run of a `npm run etl` that died without its clean stop (SIGKILL), if
 * still active: its queued work died with that process's runtime, so it can
 * never finish, and it would block its dataset for a lease. It is abandoned,
 * not resumed: its stored source may be the dead process's own archive
 * server (--source DIR). This command then starts its own run, as asked.
 */
export async function abandonOrphan(url: string, token: string, d1: D1File, holder: Holder): Promise<void> {
  if (holder.runId === undefined) return;
  const run = d1.run(holder.runId);
  if (!run || !ACTIVE.has(run.status)) return;
  const what = `run ${run.id} (${run.dataset}, ${run.splits.train.loaded} train and ${run.splits.test.loaded} test images loaded)`;
  const refused = await abandonRun(url, token, run.id);
  console.log(
    refused === undefined
      ? `${what} was held by npm run etl (pid ${holder.pid}), which ended without stopping it: its queued work is gone with it, so it is abandoned. ${datasetInD1(d1, run.dataset)}.`
      : `${what} was held by npm run etl (pid ${holder.pid}), which ended without stopping it, and could not be abandoned: ${refused}`,
  );
}

/**
 * What became of the runs that were active before this command's trigger.
 * Local queues live in the runtime that holds them, so a run whose runtime
 * stopped can never finish; but a run may as well be loading in a `npm run
 * dev` on the same state. Its lease tells them apart: the trigger closed
 * those silent for longer than a lease, and a run still active is alive.
 */
export function reportEarlierRuns(before: readonly RunState[], d1: D1File, conflicting: string | undefined): void {
  for (const was of before) {
    const now = d1.run(was.id);
    const what = `run ${was.id} (${was.dataset}, ${was.splits.train.loaded} train and ${was.splits.test.loaded} test images loaded)`;
    const silent = `${Math.round((Date.now() - Date.parse(was.updatedAt)) / 1000)} s`;
    if (now && (now.status === "queued" || now.status === "extracting" || now.status === "loading")) {
      // The dataset's own active run is the 409's subject: its error and hint say it.
      if (now.id !== conflicting)
        console.log(
          `${what} is still ${now.status}, its last sign of life ${silent} ago, within its lease: a dev server on this state is presumably loading it, so it is left alone.`,
        );
    } else if (now?.status === "failed" && now.error?.startsWith("abandoned")) {
      console.log(
        `${what} was still ${was.status} with no sign of life for ${silent}, longer than its lease: the runtime that held its queued work is presumed stopped, so it is closed as abandoned (resumable). ${datasetInD1(d1, was.dataset)}.`,
      );
    } else if (now) {
      console.log(`${what} has ended meanwhile: ${now.status}${now.error ? ` (${now.error})` : ""}.`);
    }
  }
}

/** What `images` holds of a dataset whose run stopped short: the stopped run changed none of it. */
function datasetInD1(d1: D1File, dataset: string): string {
  return d1.hasCompleteLoad(dataset)
    ? `${dataset} in D1 is as its last complete run left it`
    : `${dataset} has no complete run: D1 holds none of its images`;
}
