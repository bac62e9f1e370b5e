/**
 * Concurrency and interruption: one active run at a time whatever triggers it
 * (HTTP, cron, racing requests), and a run interrupted mid-way either resumed
 * (POST /runs/:id/resume) or replaced by a new run — ending with exactly the
 * expected rows either way.
 */
import { createExecutionContext, createScheduledController } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it } from "vitest";
import { QUEUES } from "../src/pipeline/config";
import worker from "../src/index";
import {
  counts,
  dataset,
  deliver,
  expectSynthetic,
  failActive,
  loadingRun,
  postResume,
  queuedRun,
  rows,
  silentFor,
} from "./faults-helpers";
import { getRun, postRun, publish, runToEnd, syntheticArchives, syntheticSplit, waitForRun } from "./helpers";

afterEach(() => failActive());

const runCount = async () => (await rows<{ n: number }>("SELECT COUNT(*) AS n FROM runs"))[0]!.n;

/** Make a run look as if nothing had happened to it for 31 minutes. */
const makeStale = (id: string) => silentFor(id, 31 * 60_000);

describe("a second trigger while a run is active", () => {
  it("HTTP answers 409 with the active run's id and starts nothing", async () => {
    const active = await queuedRun(await publish(syntheticArchives(10, 10)));
    const before = await runCount();
    const res = await postRun({ source: await publish(syntheticArchives(20, 10)) });
    expect(res.status).toBe(409);
    const body = (await res.json()) as { error: string; activeRunId: string; run: { id: string; status: string } };
    expect(body.error).toBe(`run ${active} of fashion-mnist is already queued`);
    expect(body.activeRunId).toBe(active);
    expect(body.run.id).toBe(active);
    expect(await runCount()).toBe(before);
  });

  it("cron starts nothing while a run is active, and starts a run when none is", async () => {
    const source = await publish(syntheticArchives(30, 10, 41));
    const active = await queuedRun(source);
    const before = await runCount();
    const cron = () =>
      (worker.scheduled as ExportedHandlerScheduledHandler<Env>)(
        createScheduledController({ cron: "17 3 * * *" }),
        { ...env, DEFAULT_SOURCE: source },
        createExecutionContext(),
      );
    await cron();
    expect(await runCount()).toBe(before);
    expect((await getRun(active)).status).toBe("queued");

    await failActive();
    await cron();
    expect(await runCount()).toBe(before + 1);
    const [started] = await rows<{ id: string; trigger: string }>(
      "SELECT id, trigger FROM runs ORDER BY created_at DESC LIMIT 1",
    );
    expect(started!.trigger).toBe("cron");
    expect((await waitForRun(started!.id)).status).toBe("complete");
    await expectSynthetic(30, 10, 41);
  });

  it("of six racing POSTs exactly one starts a run; the others get 409 naming it", async () => {
    const source = await publish(syntheticArchives(20, 10, 42));
    const answers = await Promise.all(Array.from({ length: 6 }, () => postRun({ source })));
    const bodies = (await Promise.all(answers.map((r) => r.json()))) as {
      run: { id: string };
      activeRunId?: string;
    }[];
    const statuses = answers.map((r) => r.status).sort();
    expect(statuses).toEqual([202, 409, 409, 409, 409, 409]);
    const winner = bodies[answers.findIndex((r) => r.status === 202)]!.run.id;
    for (const [i, r] of answers.entries()) if (r.status === 409) expect(bodies[i]!.activeRunId).toBe(winner);
    expect((await waitForRun(winner)).status).toBe("complete");
    await expectSynthetic(20, 10, 42);
  });
});

describe("a run interrupted mid-way (its remaining messages lost)", () => {
  // Chunks of 160: train 0–159, 160–319, 320–399 and test 0–99.
  const TRAIN = 400;
  const TEST = 100;

  it("can be resumed: it loads only what is missing and ends with exactly the expected rows", async () => {
    expect((await runToEnd({ source: await publish(syntheticArchives(400, 40, 43)) })).status).toBe("complete");
    const before = await dataset();
    const { runId, chunks } = await loadingRun(syntheticArchives(TRAIN, TEST, 44));
    await deliver(QUEUES.chunks, [chunks[1]!, chunks[3]!]); // then the other two are lost
    await makeStale(runId);
    expect(await dataset()).toEqual(before); // the half-loaded run is invisible
    // A marker in a committed chunk's shadow row: it survives only if the resume does not reload that chunk.
    await env.DB.prepare("UPDATE images__fashion_mnist__train__next SET label = 7 WHERE idx = 161").run();

    const res = await postResume(runId);
    expect(res.status).toBe(202);
    const run = await waitForRun(runId);
    expect(run.error).toBeNull();
    expect(run.status).toBe("complete");
    expect(run.splits).toEqual({ train: { expected: TRAIN, loaded: TRAIN }, test: { expected: TEST, loaded: TEST } });
    expect(await rows("SELECT start FROM run_chunks WHERE run_id = ? ORDER BY split, start", runId)).toHaveLength(4);
    expect(await rows("SELECT label FROM images WHERE split = 'train' AND idx = 161")).toEqual([{ label: 7 }]);
    // The marker put back, every other row is exactly the dataset's.
    await env.DB.prepare("UPDATE images__fashion_mnist__train SET label = ? WHERE idx = 161")
      .bind(syntheticSplit(TRAIN, 44).labels[161])
      .run();
    await expectSynthetic(TRAIN, TEST, 44);
  });

  it("or a new run replaces it: the stale run is abandoned and its partial rows do not mix in", async () => {
    const { runId, chunks } = await loadingRun(syntheticArchives(TRAIN, TEST, 45));
    await deliver(QUEUES.chunks, [chunks[2]!, chunks[3]!]); // train 320–399 and the test split, then lost
    await makeStale(runId);

    const run = await runToEnd({ source: await publish(syntheticArchives(700, 90, 46)) });
    expect(run.status).toBe("complete");
    const stale = await getRun(runId);
    expect(stale.status).toBe("failed");
    expect(stale.error).toMatch(/^abandoned: no progress since \d{4}-/);
    await expectSynthetic(700, 90, 46);
    expect(await counts("shadow")).toEqual({});
  });

  it("resume is refused, saying why, when it cannot give the right rows", async () => {
    // Failed before loading: nothing to resume.
    const early = await runToEnd({
      source: await publish(syntheticArchives(10, 10), { "t10k-images-idx3-ubyte.gz": "status:404" }),
    });
    expect(early.status).toBe("failed");
    let res = await postResume(early.id);
    expect(res.status).toBe(409);
    expect(await res.json()).toEqual({
      error: `run ${early.id} cannot be resumed: it failed before loading began (nothing to resume); start a new run`,
    });

    // A later run has emptied the shadow since.
    const { runId } = await loadingRun(syntheticArchives(600, 10, 47));
    await failActive("interrupted");
    expect((await runToEnd({ source: await publish(syntheticArchives(20, 10, 48)) })).status).toBe("complete");
    res = await postResume(runId);
    expect(res.status).toBe(409);
    expect(((await res.json()) as { error: string }).error).toBe(
      `run ${runId} cannot be resumed: a later fashion-mnist run has started since; start a new run`,
    );

    // A complete run, an unknown run, and a resume while another run is active.
    const latest = (await rows<{ id: string }>("SELECT id FROM runs ORDER BY created_at DESC LIMIT 1"))[0]!.id;
    res = await postResume(latest);
    expect(res.status).toBe(409);
    expect(((await res.json()) as { error: string }).error).toBe(`run ${latest} cannot be resumed: it is complete`);
    res = await postResume("no-such-run");
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({ error: "no run no-such-run" });

    const second = await loadingRun(syntheticArchives(600, 10, 49));
    await failActive("interrupted");
    const active = await queuedRun(await publish(syntheticArchives(10, 10)));
    res = await postResume(second.runId);
    expect(res.status).toBe(409);
    expect(((await res.json()) as { activeRunId: string }).activeRunId).toBe(active);
    expect(await counts()).toEqual({ train: 20, test: 10 });
  });
});
