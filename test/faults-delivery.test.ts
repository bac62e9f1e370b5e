/**
 * Delivery faults: Queues deliver at least once, in any order, and a consumer
 * can die half-way. Chunk messages are delivered by hand to the Worker's real
 * queue handler (real D1); the dead-letter path also runs through the real
 * queues.
 */
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it } from "vitest";
import { QUEUES } from "../src/pipeline/config";
import { runBatch } from "../src/db/batch";
import { swapStatements } from "../src/db/load";
import { liveTable, shadowTable } from "../src/db/tables";
import {
  counts,
  dataset,
  deliver,
  expectSynthetic,
  failActive,
  failingD1,
  withBatch,
  loadingRun,
  postResume,
  rows,
  runStatus,
} from "./faults-helpers";
import { getRun, publish, runToEnd, startRun, syntheticArchives, waitForRun } from "./helpers";

afterEach(() => failActive());

// 400 train + 100 test images in chunks of 160: train 0–159, 160–319, 320–399 and test 0–99.
const TRAIN = 400;
const TEST = 100;

describe("a chunk delivered more than once", () => {
  it("writes its rows once and counts its progress once, even after the run completed", async () => {
    const { runId, chunks } = await loadingRun(syntheticArchives(TRAIN, TEST, 11));
    expect(chunks).toHaveLength(4);
    // Every chunk twice in one batch: the second copy finds its rows and ledger entry already there.
    const { result, ids } = await deliver(QUEUES.chunks, [...chunks, ...chunks]);
    expect(result.retryMessages).toEqual([]);
    expect(result.explicitAcks.sort()).toEqual(ids.sort());
    const run = await runStatus(runId);
    expect(run.status).toBe("complete");
    expect([run.trainLoaded, run.testLoaded]).toEqual([TRAIN, TEST]);
    await expectSynthetic(TRAIN, TEST, 11);
    const before = await dataset();

    // A late copy after completion (and after the swap) is acknowledged and writes nothing.
    const late = await deliver(QUEUES.chunks, [chunks[0]!, chunks[3]!], { attempts: 3 });
    expect(late.result.explicitAcks.sort()).toEqual(late.ids.sort());
    expect(await dataset()).toEqual(before);
    expect(await counts("shadow")).toEqual({});
    expect(await rows("SELECT run_id FROM dataset_swaps WHERE run_id = ?", runId)).toHaveLength(1);
  });
});

describe("chunks delivered out of order", () => {
  it("completes only when the last one lands, with every row in place", async () => {
    const { runId, chunks } = await loadingRun(syntheticArchives(TRAIN, TEST, 12));
    for (const chunk of [...chunks].reverse().slice(0, -1)) {
      await deliver(QUEUES.chunks, [chunk]);
      expect((await runStatus(runId)).status).toBe("loading");
    }
    await deliver(QUEUES.chunks, [chunks[0]!]);
    expect((await runStatus(runId)).status).toBe("complete");
    await expectSynthetic(TRAIN, TEST, 12);
  });
});

describe("a consumer that fails half-way through a run", () => {
  it("a delivery is one transaction: a failed one commits nothing and is retried whole, without duplicates", async () => {
    const before = await dataset();
    const { runId, chunks } = await loadingRun(syntheticArchives(TRAIN, TEST, 13));
    // The first delivery commits; D1 is unavailable for the second.
    const first = await deliver(QUEUES.chunks, [chunks[0]!]);
    expect(first.result.explicitAcks).toEqual(first.ids);
    const { result, ids } = await deliver(QUEUES.chunks, chunks.slice(1, 3), { env: { DB: failingD1(0) } });
    expect(result.explicitAcks).toEqual([]);
    expect(result.retryMessages.map((m) => m.msgId).sort()).toEqual(ids.sort());
    const midway = await runStatus(runId);
    expect(midway.status).toBe("loading");
    expect(midway.trainLoaded).toBe(160); // the first delivery's transaction committed, and only it
    expect(await counts("shadow")).toEqual({ train: 160 });
    expect(await dataset()).toEqual(before); // nothing reached `images`

    // Queues redeliver the two (and the fourth arrives); a duplicate of the first rewrites its rows.
    const again = await deliver(QUEUES.chunks, chunks, { attempts: 2 });
    expect(again.result.explicitAcks.sort()).toEqual(again.ids.sort());
    const run = await runStatus(runId);
    expect(run.status).toBe("complete");
    expect([run.trainLoaded, run.testLoaded]).toEqual([TRAIN, TEST]);
    expect(run.error).toBeNull();
    await expectSynthetic(TRAIN, TEST, 13);
  });

  it("records the retryable error on the run while it retries", async () => {
    const { runId, chunks } = await loadingRun(syntheticArchives(600, 100, 14));
    const { result } = await deliver(QUEUES.chunks, [chunks[0]!], { env: { DB: failingD1(0) } });
    expect(result.retryMessages).toHaveLength(1);
    expect((await runStatus(runId)).status).toBe("loading");
    const run = await getRun(runId);
    expect(run.error).toBeNull();
    expect(run.retrying).toBe("train images 0–159: D1_ERROR: injected fault: database unavailable");
  });
});

describe("a message that keeps failing", () => {
  it("a chunk in the dead-letter queue fails its run with the reason, and the last dataset stays", async () => {
    expect((await runToEnd({ source: await publish(syntheticArchives(700, 50, 15)) })).status).toBe("complete");
    const before = await dataset();

    const { runId, chunks } = await loadingRun(syntheticArchives(TRAIN, TEST, 16));
    await deliver(QUEUES.chunks, [chunks[0]!, chunks[3]!]); // half the run lands in the shadow
    await deliver(QUEUES.chunks, [chunks[1]!], { attempts: 6, env: { DB: failingD1(0) } });
    // Queues moves a message to the DLQ after max_retries; the DLQ consumer gets the same body.
    const { result } = await deliver(QUEUES.deadLetter, [chunks[1]!]);
    expect(result.explicitAcks).toHaveLength(1);

    const run = await getRun(runId);
    expect(run.status).toBe("failed");
    expect(run.error).toBe(
      "train images 160–319 failed on every delivery and went to the dead-letter queue; last error: train images 160–319: D1_ERROR: injected fault: database unavailable",
    );
    expect(await dataset()).toEqual(before); // no partial overwrite, no mix of the two sources

    // A late copy of a chunk of the failed run writes nothing anywhere.
    await deliver(QUEUES.chunks, [chunks[2]!]);
    expect(await dataset()).toEqual(before);
    expect((await rows("SELECT * FROM run_chunks WHERE run_id = ? AND start = 320", runId)).length).toBe(0);
  });

  it("a dead letter whose rows committed anyway (every delivery reported an error after its commit) completes the run", async () => {
    const { runId, chunks } = await loadingRun(syntheticArchives(TRAIN, TEST, 31));
    await deliver(QUEUES.chunks, chunks.slice(0, 3));
    // D1 commits the last chunk's batch, then reports it failed, every time.
    const lying = withBatch(async (real, statements) => {
      await real(statements);
      throw new Error("D1_ERROR: injected: reported after commit");
    });
    const { result } = await deliver(QUEUES.chunks, [chunks[3]!], { attempts: 6, env: { DB: lying } });
    expect(result.retryMessages).toHaveLength(1);
    expect((await getRun(runId)).status).toBe("loading");
    await deliver(QUEUES.deadLetter, [chunks[3]!]);
    const run = await getRun(runId);
    expect(run.status).toBe("complete");
    await expectSynthetic(TRAIN, TEST, 31);
  });

  it("an extraction job that fails on every delivery lands in the real DLQ and fails the run", async () => {
    const source = await publish(syntheticArchives(10, 10), { "train-labels-idx1-ubyte.gz": "status:503" });
    const run = await waitForRun((await startRun({ source })).id);
    expect(run.status).toBe("failed");
    expect(run.error).toBe(
      `extraction failed on every delivery and went to the dead-letter queue; last error: train-labels-idx1-ubyte.gz: HTTP 503 Service Unavailable from ${source}/train-labels-idx1-ubyte.gz (after 3 attempts)`,
    );
    // 3 deliveries (max_retries = 2) × 3 fetch attempts each.
    expect(Number(await (await fetch(`${source}/train-labels-idx1-ubyte.gz/hits`)).text())).toBe(9);
  });
});

describe("a chunk whose pixels do not match its count", () => {
  it("fails the run saying so, keeps the last dataset, and the run can be resumed to the exact rows", async () => {
    expect((await runToEnd({ source: await publish(syntheticArchives(700, 50, 17)) })).status).toBe("complete");
    const before = await dataset();

    const { runId, chunks } = await loadingRun(syntheticArchives(TRAIN, TEST, 18));
    await deliver(QUEUES.chunks, [chunks[3]!]); // test split loaded
    const bad = { ...chunks[0]!, pixels: chunks[0]!.pixels.subarray(0, 160 * 783) };
    const { result } = await deliver(QUEUES.chunks, [bad]);
    expect(result.explicitAcks).toHaveLength(1); // retrying cannot mend it

    const failed = await getRun(runId);
    expect(failed.status).toBe("failed");
    expect(failed.error).toBe("train images 0–159: chunk train 0: 125280 pixel bytes for 160 images of 784");
    expect(await dataset()).toEqual(before);

    // Resume: the archives are downloaded again and only the missing chunks are loaded.
    const res = await postResume(runId);
    expect(res.status).toBe(202);
    const resumed = await waitForRun(runId);
    expect(resumed.error).toBeNull();
    expect(resumed.status).toBe("complete");
    expect(resumed.splits).toEqual({
      train: { expected: TRAIN, loaded: TRAIN },
      test: { expected: TEST, loaded: TEST },
    });
    await expectSynthetic(TRAIN, TEST, 18);
  });
});

/** The real D1, except that every batch holding a swap fails with `error` (nothing of it runs). */
function swapFails(error: string): D1Database {
  const sqlOf = new WeakMap<D1PreparedStatement, string>();
  return new Proxy(env.DB, {
    get(target, prop) {
      if (prop === "prepare")
        return (query: string) => {
          const statement = target.prepare(query);
          const bind = statement.bind.bind(statement);
          // The statement a batch gets is the one bind returns: remember its SQL too.
          statement.bind = (...values: unknown[]) => {
            const bound = bind(...values);
            sqlOf.set(bound, query);
            return bound;
          };
          sqlOf.set(statement, query);
          return statement;
        };
      if (prop === "batch")
        return (statements: D1PreparedStatement[]) =>
          statements.some((st) => sqlOf.get(st)?.startsWith("INSERT INTO dataset_swaps"))
            ? Promise.reject(new Error(error))
            : target.batch(statements);
      const value = Reflect.get(target, prop) as unknown;
      return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}

describe("the swap that publishes a run's rows", () => {
  it("an SQL error in the swap fails the run at once, instead of retrying for ever, and keeps the last dataset", async () => {
    const before = await dataset();
    const { runId, chunks } = await loadingRun(syntheticArchives(TRAIN, TEST, 21));
    await deliver(QUEUES.chunks, chunks.slice(0, 3));
    const broken = swapFails("D1_ERROR: too many terms in compound SELECT: SQLITE_ERROR");
    const { result } = await deliver(QUEUES.chunks, [chunks[3]!], { env: { DB: broken } });
    expect(result.retryMessages).toEqual([]);
    expect(result.explicitAcks).toHaveLength(1);
    const run = await getRun(runId);
    expect(run.status).toBe("failed");
    expect(run.error).toBe(
      "the swap failed: Error: D1_ERROR: too many terms in compound SELECT: SQLITE_ERROR. The previous dataset was left as it was",
    );
    expect(await dataset()).toEqual(before);
  });

  it("a dead letter whose swap fails too fails the run saying so; a resume then swaps it in", async () => {
    const before = await dataset();
    const { runId, chunks } = await loadingRun(syntheticArchives(TRAIN, TEST, 22));
    const down = swapFails("D1_ERROR: injected: the swap's batch failed");
    // Every chunk commits, but the completion check fails each time: the last one is retried, then dead-lettered.
    const { result } = await deliver(QUEUES.chunks, chunks, { env: { DB: down } });
    expect(result.retryMessages.length).toBeGreaterThan(0);
    expect((await getRun(runId)).status).toBe("loading");
    await deliver(QUEUES.deadLetter, [chunks[3]!], { env: { DB: down } });
    const failed = await getRun(runId);
    expect(failed.status).toBe("failed");
    expect(failed.error).toBe(
      "every chunk was loaded, but swapping them in failed on every delivery: D1_ERROR: injected: the swap's batch failed",
    );
    expect(await dataset()).toEqual(before);
    // Nothing was lost: a resume finds every chunk in the ledger and swaps.
    expect((await postResume(runId)).status).toBe(202);
    expect((await waitForRun(runId)).status).toBe("complete");
    await expectSynthetic(TRAIN, TEST, 22);
  });

  it("refuses rows that D1 does not count, failing the run and keeping the last dataset", async () => {
    const before = await dataset();
    const { runId, chunks } = await loadingRun(syntheticArchives(TRAIN, TEST, 19));
    await deliver(QUEUES.chunks, chunks.slice(0, 3));
    // Rows lost behind the ledger's back: every chunk will be recorded, yet D1 will not hold them all.
    await env.DB.prepare("DELETE FROM images__fashion_mnist__train__next WHERE idx >= 390").run();
    await deliver(QUEUES.chunks, [chunks[3]!]);
    const run = await getRun(runId);
    expect(run.status).toBe("failed");
    expect(run.error).toBe(
      "all 4 chunks were recorded but D1 holds 390 train and 100 test rows for this run; expected 400 and 100. The previous dataset was left as it was",
    );
    expect(await dataset()).toEqual(before);
  });

  it("happens once per run: a second swap of the same run rolls back whole", async () => {
    const { runId, chunks } = await loadingRun(syntheticArchives(TRAIN, TEST, 20));
    await deliver(QUEUES.chunks, chunks);
    expect((await getRun(runId)).status).toBe("complete");
    const before = await dataset();
    // Shadow tables again, holding as many rows as the run expects but with other labels: only
    // the swap's guard row stands between them and the dataset.
    for (const split of ["train", "test"] as const) {
      await env.DB.prepare(
        `CREATE TABLE ${shadowTable("fashion-mnist", split)} AS SELECT idx, (label + 1) % 10 AS label, pixels FROM ${liveTable("fashion-mnist", split)}`,
      ).run();
    }
    const again = () =>
      runBatch(
        env.DB,
        swapStatements(
          { id: runId, dataset: "fashion-mnist" },
          {
            expected: { train: TRAIN, test: TEST },
            others: ["fashion-mnist"],
            view: { dataset: "fashion-mnist", others: [] },
            classNames: [],
            provenance: { official: false, source: "" },
          },
          new Date().toISOString(),
        ),
      );
    // The run is complete: the guard's CHECK refuses it.
    await expect(again()).rejects.toThrow(/CHECK constraint failed/);
    expect(await dataset()).toEqual(before);
    // Were it loading again, the run's row in dataset_swaps would still refuse a second swap.
    await env.DB.prepare("UPDATE runs SET status = 'loading' WHERE id = ?").bind(runId).run();
    await expect(again()).rejects.toThrow(/UNIQUE constraint failed: dataset_swaps\.run_id/);
    await env.DB.prepare("UPDATE runs SET status = 'complete' WHERE id = ?").bind(runId).run();
    expect(await dataset()).toEqual(before);
    expect(await counts()).toEqual({ train: TRAIN, test: TEST });
  });
});
