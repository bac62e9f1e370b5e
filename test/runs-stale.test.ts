/**
 * Runs that say what they are without waiting for a trigger: an active run
 * whose lease has expired reads `stale: true` with a hint naming the routes
 * that get past it, in GET /runs/{id}, the lists and GET /datasets; and a
 * failed run that a later run of its dataset superseded reads
 * `resumable: false`, as POST /runs/{id}/resume would answer.
 */
import { env, SELF } from "cloudflare:test";
import { expect, it } from "vitest";
import type { DatasetView } from "../src/http/schemas/datasets";
import type { RunList, RunResponse } from "../src/http/schemas/runs";
import { TOKEN } from "./helpers";

const get = async <T>(path: string) => (await (await SELF.fetch(`http://worker${path}`)).json()) as T;
const run = async (id: string) => (await get<RunResponse>(`/runs/${id}`)).run;

/** The Worker's lease in tests: RUN_LEASE_SECONDS is not set, so the default. */
const LEASE_MS = 60_000;

async function insertRun(id: string, dataset: string, status: string, updatedMsAgo: number, extra = "") {
  const created = new Date(Date.now() - updatedMsAgo - 1000).toISOString();
  const updated = new Date(Date.now() - updatedMsAgo).toISOString();
  await env.DB.prepare(
    `INSERT INTO runs (id, dataset, trigger, source, status, chunks_total, created_at, updated_at${extra ? ", finished_at" : ""})
     VALUES (?1, ?2, 'http', 'http://127.0.0.1:9/x', ?3, 4, ?4, ?5${extra ? ", ?5" : ""})`,
  )
    .bind(id, dataset, status, created, updated)
    .run();
  return updated;
}

it("an active run past its lease reads stale, with when it expired and what to do", async () => {
  const updated = await insertRun("stuck", "kmnist", "loading", 2 * LEASE_MS);
  const expired = new Date(Date.parse(updated) + LEASE_MS).toISOString();
  const view = await run("stuck");
  expect(view).toMatchObject({ status: "loading", stale: true });
  expect(view.hint).toBe(
    `its lease expired at ${expired} with no sign of life since ${updated}: it is presumed dead. POST /runs/stuck/abandon fails it now (then POST /runs/stuck/resume continues it if it had begun loading), and the next POST /runs of kmnist fails it and starts a new run`,
  );
  const listed = (await get<RunList>("/runs?dataset=kmnist")).runs.find((r) => r.id === "stuck");
  expect(listed).toMatchObject({ stale: true, hint: view.hint });
  expect((await get<RunList>("/datasets/kmnist/runs")).runs[0]).toMatchObject({ id: "stuck", stale: true });
  expect((await get<DatasetView>("/datasets/kmnist")).lastRun).toMatchObject({ id: "stuck", stale: true });

  // Reading did not change it: only a trigger or an abandon does.
  expect(await env.DB.prepare("SELECT status FROM runs WHERE id = 'stuck'").first()).toEqual({ status: "loading" });
  const abandoned = await SELF.fetch("http://worker/runs/stuck/abandon", {
    method: "POST",
    headers: { Authorization: `Bearer ${TOKEN}` },
  });
  expect(abandoned.status).toBe(200);
  expect(await run("stuck")).toMatchObject({ status: "failed", stale: false, hint: null, resumable: true });
});

it("an active run within its lease is not stale", async () => {
  await insertRun("alive", "emnist-digits", "extracting", 1000);
  expect(await run("alive")).toMatchObject({ status: "extracting", stale: false, hint: null });
});

it("a failed run superseded by a later run of its dataset is not resumable, and says why", async () => {
  await insertRun("older", "emnist-mnist", "failed", 10_000, "finished");
  expect(await run("older")).toMatchObject({ resumable: true, hint: null });
  await insertRun("newer", "emnist-mnist", "complete", 5_000, "finished");
  const older = await run("older");
  expect(older).toMatchObject({ status: "failed", resumable: false });
  expect(older.hint).toBe("a later emnist-mnist run has started since, so this one cannot be resumed; start a new run");
  expect((await get<RunList>("/runs?dataset=emnist-mnist")).runs.map((r) => [r.id, r.resumable])).toEqual([
    ["newer", false],
    ["older", false],
  ]);
  // What POST /runs/{id}/resume answers agrees.
  const resumed = await SELF.fetch("http://worker/runs/older/resume", {
    method: "POST",
    headers: { Authorization: `Bearer ${TOKEN}` },
  });
  expect(resumed.status).toBe(409);
  // Another dataset's later run supersedes nothing here.
  await insertRun("lonely", "emnist-letters", "failed", 20_000, "finished");
  await insertRun("elsewhere", "emnist-balanced", "complete", 1_000, "finished");
  expect(await run("lonely")).toMatchObject({ resumable: true });
});
