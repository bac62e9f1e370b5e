/**
 * A crash must not lock users out. A run that shows no sign of life for a
 * lease (RUN_LEASE_SECONDS) is presumed dead and replaced by the next trigger;
 * an authenticated POST /runs/:id/abandon stops one at once; and a live
 * extraction job renews the lease, and stops as soon as its run is abandoned.
 */
import { SELF } from "cloudflare:test";
import { gzipSync } from "fflate";
import { afterEach, describe, expect, it } from "vitest";
import { QUEUES } from "../src/pipeline/config";
import { DEFAULT_LEASE_MS } from "../src/db/run-start";
import {
  deliver,
  expectSynthetic,
  failActive,
  hits,
  loadingRun,
  postResume,
  queuedRun,
  rows,
  silentFor,
} from "./faults-helpers";
import { getRun, idxBytes, postRun, publish, syntheticArchives, TOKEN, waitForRun } from "./helpers";

afterEach(() => failActive());

const TRAIN_IMAGES = "train-images-idx3-ubyte.gz";

const abandon = (id: string, token: string | null = TOKEN) =>
  SELF.fetch(`http://worker/runs/${id}/abandon`, {
    method: "POST",
    headers: token === null ? {} : { Authorization: `Bearer ${token}` },
  });

describe("a run whose runtime died", () => {
  it("is presumed dead after a lease without a sign of life: the next trigger fails it and starts", async () => {
    // About a minute, not the half hour it once was: a crash must not lock users out for long.
    expect(DEFAULT_LEASE_MS).toBeLessThanOrEqual(60_000);
    const { runId, chunks } = await loadingRun(syntheticArchives(400, 100, 80));
    await deliver(QUEUES.chunks, [chunks[0]!]);

    // Within the lease the run may still be alive: 409, saying how to get past it.
    await silentFor(runId, DEFAULT_LEASE_MS / 3);
    const refused = await postRun({ source: await publish(syntheticArchives(20, 10, 81)) });
    expect(refused.status).toBe(409);
    const body = (await refused.json()) as { activeRunId: string; hint: string };
    expect(body.activeRunId).toBe(runId);
    expect(body.hint).toMatch(
      new RegExp(
        `^its last sign of life was \\d+ s ago; a run silent for ${DEFAULT_LEASE_MS / 1000} s is presumed dead .*POST /runs/${runId}/abandon$`,
      ),
    );

    // Resuming it within the lease gets the same answer.
    const early = await postResume(runId);
    expect(early.status).toBe(409);
    expect(((await early.json()) as { hint: string }).hint).toContain(`POST /runs/${runId}/abandon`);

    // A lease later it is presumed dead, and failed; the run that replaced it supersedes it, so it is no longer
    // resumable (POST /runs/:id/resume would refuse it), and says so.
    await silentFor(runId, DEFAULT_LEASE_MS + 1000);
    const started = await postRun({ source: await publish(syntheticArchives(20, 10, 82)) });
    expect(started.status).toBe(202);
    const dead = await getRun(runId);
    expect(dead.status).toBe("failed");
    expect(dead.error).toMatch(/^abandoned: no progress since \d{4}-/);
    expect(dead).toMatchObject({
      resumable: false,
      hint: "a later fashion-mnist run has started since, so this one cannot be resumed; start a new run",
    });
    const next = (await started.json()) as { run: { id: string } };
    expect((await waitForRun(next.run.id)).status).toBe("complete");
  });

  it("POST /runs/:id/abandon stops an active run at once; it can then be resumed to the exact rows", async () => {
    const { runId, chunks } = await loadingRun(syntheticArchives(400, 100, 83));
    await deliver(QUEUES.chunks, [chunks[1]!, chunks[3]!]); // the rest were lost with the runtime

    expect((await abandon(runId, null)).status).toBe(401);
    expect((await abandon("no-such-run")).status).toBe(404);
    const res = await abandon(runId);
    expect(res.status).toBe(200);
    const { run } = (await res.json()) as { run: { status: string; error: string; resumable: boolean } };
    expect(run).toMatchObject({ status: "failed", resumable: true });
    expect(run.error).toBe("abandoned by request (POST /runs/:id/abandon)");
    const again = await abandon(runId);
    expect(again.status).toBe(409);
    expect(await again.json()).toEqual({ error: `run ${runId} is failed; only an active run can be abandoned` });

    expect((await postResume(runId)).status).toBe(202);
    const resumed = await waitForRun(runId);
    expect(resumed.error).toBeNull();
    expect(resumed.status).toBe("complete");
    await expectSynthetic(400, 100, 83);
  });
});

describe("a live extraction job", () => {
  it("renews its run's lease while it downloads, and stops within a heartbeat once the run is abandoned", async () => {
    // Noise barely compresses: ~150 KB trickled at 10 KB/s keeps the job downloading for ~15 s.
    let x = 84;
    const noise = Uint8Array.from({ length: 200 * 784 }, () => (x = (Math.imul(x, 1103515245) + 12345) >>> 0) >>> 24);
    const source = await publish(
      { ...syntheticArchives(200, 20, 84), [TRAIN_IMAGES]: gzipSync(idxBytes([200, 28, 28], noise)) },
      { [TRAIN_IMAGES]: "trickle:500:50" },
    );
    const runId = await queuedRun(source);
    const sent: unknown[] = [];
    const CHUNKS = { sendBatch: async (b: Iterable<unknown>) => void sent.push(...b) } as unknown as Queue;
    // A 1 s lease: a heartbeat every 250 ms.
    const job = deliver(QUEUES.jobs, [{ kind: "extract", runId, attempt: 1, force: true }], {
      env: { CHUNKS, RUN_LEASE_SECONDS: "1", FETCH_MIN_BYTES_PER_S: "1000" },
    });

    const updatedAt = async () =>
      (await rows<{ u: string; s: string }>("SELECT updated_at AS u, status AS s FROM runs WHERE id = ?", runId))[0]!;
    const beats = new Set<string>();
    const watchUntil = Date.now() + 2000;
    while (Date.now() < watchUntil) {
      const r = await updatedAt();
      if (r.s === "extracting" || r.s === "loading") beats.add(r.u);
      await new Promise((ok) => setTimeout(ok, 100));
    }
    expect(beats.size).toBeGreaterThanOrEqual(4); // renewed while no byte of progress reached D1

    const stoppedAt = Date.now();
    expect((await abandon(runId)).status).toBe(200);
    const { thrown, result } = await job;
    expect(Date.now() - stoppedAt).toBeLessThan(3000); // not the ~13 s the download still had to go
    expect(thrown).toBeUndefined();
    expect(result.explicitAcks).toHaveLength(1);
    expect(sent).toEqual([]);
    expect(await hits(`${source}/${TRAIN_IMAGES}`)).toBe(1); // stopped, not retried
    const run = await getRun(runId);
    expect(run.status).toBe("failed");
    expect(run.error).toBe("abandoned by request (POST /runs/:id/abandon)");
  });
});
