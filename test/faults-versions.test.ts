/**
 * One version per run: a row in `images` always comes from the archive bytes
 * whose MD5s the run records — on a first load, a forced one, a resume, an
 * in-job retry and a redelivery — whatever the source does between them.
 * Each test is a sequence found by trying the pipeline that, before
 * migrations/0004_run_versions.sql, completed with rows of two versions.
 */
import { env } from "cloudflare:workers";
import { gzipSync } from "fflate";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { QUEUES } from "../src/pipeline/config";
import type { ChunkMessage, EtlMessage } from "../src/pipeline/messages";
import { database } from "../src/db/database";
import { failRun, markExtracting, markLoading } from "../src/db/runs";
import { runBatch } from "../src/db/batch";
import { swapStatements } from "../src/db/load";
import {
  counts,
  dataset,
  db,
  deliver,
  expectSynthetic,
  failActive,
  hits,
  loadingRun,
  postResume,
  queuedRun,
  rows,
  runStatus,
  withBatch,
} from "./faults-helpers";
import {
  getRun,
  idxBytes,
  publish,
  runToEnd,
  syntheticArchives,
  syntheticSplit,
  waitForRun,
  type ArchiveSet,
} from "./helpers";

const TRAIN_IMAGES = "train-images-idx3-ubyte.gz";
const TRAIN_LABELS = "train-labels-idx1-ubyte.gz";

afterEach(() => failActive());

let baseline: Awaited<ReturnType<typeof dataset>>;
beforeAll(async () => {
  expect((await runToEnd({ source: await publish(syntheticArchives(200, 20, 60)) })).status).toBe("complete");
  baseline = await dataset();
});

/** A gzip whose trailer's CRC-32 is off by one: it inflates fully and fails only at its end. */
function badCrc(gz: Uint8Array): Uint8Array {
  const out = gz.slice();
  const view = new DataView(out.buffer);
  view.setUint32(out.length - 8, (view.getUint32(out.length - 8, true) + 1) >>> 0, true);
  return out;
}

/** `archives` with the train split's images, or labels, taken from another seed. */
function withTrain(archives: ArchiveSet, part: "images" | "labels", count: number, seed: number): ArchiveSet {
  const other = syntheticSplit(count, seed);
  return part === "images"
    ? { ...archives, [TRAIN_IMAGES]: other.images }
    : { ...archives, [TRAIN_LABELS]: other.labelsGz };
}

/**
 * A train images archive of noise: it barely compresses, so a download cut
 * part-way has already handed whole chunks on (the reader gathers blocks of
 * hundreds of KB, more than a synthetic archive's whole size).
 */
function noisyTrainImages(count: number, seed: number): Uint8Array {
  let x = seed;
  const pixels = Uint8Array.from({ length: count * 784 }, () => {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    return x >>> 24;
  });
  return gzipSync(idxBytes([count, 28, 28], pixels));
}

/** Serve `body` at an uploaded fixture's URL from now on (the archive server replaces the fixture). */
async function replace(source: string, file: string, body: Uint8Array): Promise<void> {
  expect((await fetch(`${source}/${file}`, { method: "PUT", body })).status).toBe(201);
}

/**
 * Run a run's extraction job through the real queue handler, with a chunks
 * queue that hands every batch straight to the real chunk consumer, as
 * production's consumers load while the job still inflates.
 */
async function jobLoadingLive(runId: string, attempt = 1, force = true) {
  const sent: ChunkMessage[] = [];
  const CHUNKS = {
    send: async () => {
      throw new Error("the job sends batches");
    },
    sendBatch: async (batch: Iterable<MessageSendRequest<ChunkMessage>>) => {
      const bodies = [...batch].map((m) => m.body);
      sent.push(...bodies);
      await deliver(QUEUES.chunks, bodies);
    },
  } as unknown as Queue;
  const job: EtlMessage = { kind: "extract", runId, attempt, force, from: 0 };
  const { thrown } = await deliver(QUEUES.jobs, [job], { env: { CHUNKS } });
  return { sent, thrown };
}

describe("a source that changes before a resume", () => {
  it("images changed: the resumed run fails for good, names the file, and never mixes the two versions", async () => {
    const a = syntheticArchives(800, 100, 61);
    const source = await publish({ ...a, [TRAIN_IMAGES]: badCrc(a[TRAIN_IMAGES]!) });
    const runId = await queuedRun(source);
    const first = await jobLoadingLive(runId);
    expect(first.sent.length).toBeGreaterThan(0);
    const failed = await getRun(runId);
    expect(failed.status).toBe("failed");
    expect(failed.error).toMatch(/^train-images-idx3-ubyte\.gz: CRC-32 mismatch/);
    // Train 0–319 of version A sit in the shadow: sent two to a batch, and the file's last chunk is held for the checks.
    expect(failed.splits.train.loaded).toBe(320);

    // The source now serves other train images (same labels), and someone resumes.
    await replace(source, TRAIN_IMAGES, withTrain(a, "images", 800, 62)[TRAIN_IMAGES]!);
    expect((await postResume(runId)).status).toBe(202);
    const resumed = await waitForRun(runId);
    expect(resumed.status).toBe("failed");
    expect(resumed.error).toMatch(
      /^train images 0–159 changed while the run was loading \(their bytes differ from those the run already has\); start a new run$/,
    );
    expect(await dataset()).toEqual(baseline);

    // Not resumable again, with a reason; the pinned MD5s are the first version's, never replaced.
    const again = await postResume(runId);
    expect(again.status).toBe(409);
    expect(((await again.json()) as { error: string }).error).toBe(
      `run ${runId} cannot be resumed: its source changed while it ran, so the rows it loaded cannot be completed; start a new run`,
    );
    expect(resumed.checksums).toEqual(failed.checksums);

    // A new run from the source as it is now loads it whole and exactly, and is not "unchanged".
    const fresh = await runToEnd({ source });
    expect(fresh.status).toBe("complete");
    expect(fresh.unchanged).toBe(false);
    const b = syntheticSplit(800, 62);
    const [row] = await rows<{ h: string }>("SELECT hex(pixels) AS h FROM images WHERE split = 'train' AND idx = 0");
    expect(row!.h).toBe(
      [...new Uint8Array(Float32Array.from(b.pixels.subarray(0, 784), (p) => p / 255).buffer)]
        .map((x) => x.toString(16).padStart(2, "0").toUpperCase())
        .join(""),
    );
    expect((await runToEnd({ source: await publish(syntheticArchives(200, 20, 60)) })).status).toBe("complete");
    expect(await dataset()).toEqual(baseline);
  });

  it("only the labels changed: the resume fails at the labels, before a chunk is sent", async () => {
    const a = syntheticArchives(800, 100, 63);
    const source = await publish({ ...a, [TRAIN_IMAGES]: badCrc(a[TRAIN_IMAGES]!) });
    const runId = await queuedRun(source);
    await jobLoadingLive(runId);
    const failed = await getRun(runId);
    expect(failed.splits.train.loaded).toBe(320);

    await replace(source, TRAIN_IMAGES, a[TRAIN_IMAGES]!); // the CRC is mended…
    await replace(source, TRAIN_LABELS, withTrain(a, "labels", 800, 64)[TRAIN_LABELS]!); // …and the labels changed
    expect((await postResume(runId)).status).toBe(202);
    const resumed = await waitForRun(runId);
    expect(resumed.status).toBe("failed");
    expect(resumed.error).toMatch(
      /^train-labels-idx1-ubyte\.gz changed while the run was loading \(MD5 [0-9a-f]{32}, was [0-9a-f]{32}\); start a new run$/,
    );
    expect(resumed.checksums![TRAIN_LABELS]).toBe(failed.checksums![TRAIN_LABELS]);
    expect(resumed.splits.train.loaded).toBe(320);
    expect(await dataset()).toEqual(baseline);
  });

  it("nothing changed: the same resume completes with exactly the one version", async () => {
    const a = syntheticArchives(800, 100, 65);
    const source = await publish({ ...a, [TRAIN_IMAGES]: badCrc(a[TRAIN_IMAGES]!) });
    const runId = await queuedRun(source);
    await jobLoadingLive(runId);
    await replace(source, TRAIN_IMAGES, a[TRAIN_IMAGES]!);
    expect((await postResume(runId)).status).toBe(202);
    const resumed = await waitForRun(runId);
    expect(resumed.error).toBeNull();
    expect(resumed.status).toBe("complete");
    await expectSynthetic(800, 100, 65);
    // Restore the baseline for the tests after this one.
    expect((await runToEnd({ source: await publish(syntheticArchives(200, 20, 60)) })).status).toBe("complete");
  });
});

describe("a source that changes during one job", () => {
  it("replaced mid-download, then the connection drops: the retry's other bytes fail the run, nothing mixes", async () => {
    const a = { ...syntheticArchives(800, 100, 66), [TRAIN_IMAGES]: noisyTrainImages(800, 66) };
    const source = await publish(a);
    // The header is read (request 1), then the download of the train images stops part-way
    // (request 2); from the third request on, other images are served.
    const cut = Math.floor(a[TRAIN_IMAGES]!.length * 0.9);
    await fetch(`${source}/${TRAIN_IMAGES}?fault=cut:${cut}:2`, { method: "PUT", body: a[TRAIN_IMAGES]! });
    await fetch(`${source}/${TRAIN_IMAGES}?fault=next:2`, { method: "PUT", body: noisyTrainImages(800, 67) });
    const runId = await queuedRun(source);
    const { sent } = await jobLoadingLive(runId);
    expect(sent.map((m) => `${m.split}:${m.start}`)).toEqual(["train:0", "train:160"]); // the first attempt's, loaded
    expect(await hits(`${source}/${TRAIN_IMAGES}`)).toBe(3);
    const run = await getRun(runId);
    expect(run.status).toBe("failed");
    expect(run.error).toMatch(/^train images 0–159 changed while the run was loading/);
    expect((await postResume(runId)).status).toBe(409); // the run holds rows of the first version only
    expect(await dataset()).toEqual(baseline);
  });

  it("a dropped connection with the same bytes behind it: the retry skips what was sent and the run completes", async () => {
    const a = syntheticArchives(400, 100, 68);
    const source = await publish(a);
    const cut = Math.floor(a[TRAIN_IMAGES]!.length * 0.6);
    // Cut twice: the header read (which needs only the start), then the first download.
    await fetch(`${source}/${TRAIN_IMAGES}?fault=cut:${cut}:2`, { method: "PUT", body: a[TRAIN_IMAGES]! });
    const runId = await queuedRun(source);
    const { sent } = await jobLoadingLive(runId);
    expect(await hits(`${source}/${TRAIN_IMAGES}`)).toBe(3);
    expect(sent.map((m) => `${m.split}:${m.start}`)).toEqual(["train:0", "train:160", "train:320", "test:0"]);
    expect((await runStatus(runId)).status).toBe("complete");
    await expectSynthetic(400, 100, 68);
    expect((await runToEnd({ source: await publish(syntheticArchives(200, 20, 60)) })).status).toBe("complete");
  });

  it("a late delivery of another version of a loaded chunk writes nothing and fails the run for good", async () => {
    const { runId, chunks } = await loadingRun(syntheticArchives(400, 100, 69));
    await deliver(QUEUES.chunks, [chunks[0]!, chunks[3]!]);
    const stale = { ...chunks[0]!, pixels: chunks[0]!.pixels.map((p) => 255 - p) };
    const { result } = await deliver(QUEUES.chunks, [stale, chunks[1]!]);
    expect(result.explicitAcks).toHaveLength(2);
    const run = await getRun(runId);
    expect(run.status).toBe("failed");
    expect(run.error).toBe(
      "train images 0–159 changed while the run was loading (a delivery carried other bytes than those already loaded); start a new run",
    );
    // chunks[0]'s rows are still the first version's (the same transaction loaded chunks[1], an honest chunk).
    const [first] = await rows<{ px: number[] }>(
      "SELECT pixels AS px FROM images__fashion_mnist__train__next WHERE idx = 0",
    );
    expect(Math.round(new Float32Array(Uint8Array.from(first!.px).buffer)[5]! * 255)).toBe(chunks[0]!.pixels[5]);
    expect(await counts("shadow")).toEqual({ train: 320, test: 100 });
    expect((await postResume(runId)).status).toBe(409);
    expect(await dataset()).toEqual(baseline);
  });
});

describe("messages of an earlier attempt", () => {
  it("a stale dead letter or extraction job cannot fail, or re-extract, a resumed run", async () => {
    const { runId, chunks } = await loadingRun(syntheticArchives(400, 100, 70));
    await deliver(QUEUES.chunks, [chunks[0]!]);
    await failRun(db(), runId, "interrupted");
    expect((await postResume(runId)).status).toBe(202);
    // Attempt 1's leftovers: a chunk that exhausted its retries, and a redelivered job.
    await deliver(QUEUES.deadLetter, [{ ...chunks[2]!, attempt: 1 }]);
    await deliver(QUEUES.jobs, [{ kind: "extract", runId, attempt: 1, force: true, from: 0 }]);
    const resumed = await waitForRun(runId);
    expect(resumed.error).toBeNull();
    expect(resumed.status).toBe("complete");
    await expectSynthetic(400, 100, 70);
    const [attempt] = await rows<{ attempt: number }>("SELECT attempt FROM runs WHERE id = ?", runId);
    expect(attempt!.attempt).toBe(2);

    // The dead letter of the current attempt still fails a run.
    const next = await loadingRun(syntheticArchives(400, 100, 71));
    await deliver(QUEUES.deadLetter, [next.chunks[1]!]);
    expect((await getRun(next.runId)).status).toBe("failed");
    expect((await runToEnd({ source: await publish(syntheticArchives(200, 20, 60)) })).status).toBe("complete");
  });
});

/** A D1 binding that adds up meta.rows_written of every batch run through it: what D1 bills as written. */
function billedD1(): { db: D1Database; written: () => number } {
  let written = 0;
  const db = withBatch(async (real, statements) => {
    const results = await real(statements);
    for (const r of results) written += r.meta.rows_written ?? 0;
    return results;
  });
  return { db, written: () => written };
}

describe("emptying the shadow table", () => {
  it("costs tens of rows written, not one per row left behind, and never drops a loading run's rows", async () => {
    // A failed run leaves 560 rows in the shadow.
    const left = await loadingRun(syntheticArchives(600, 100, 72));
    await deliver(QUEUES.chunks, left.chunks.slice(0, 3));
    await failActive("interrupted");
    expect(await counts("shadow")).toEqual({ train: 480 });

    const { db: billed, written } = billedD1();
    const source = await publish(syntheticArchives(10, 10));
    const run = { id: await queuedRun(source), dataset: "fashion-mnist" };
    expect(await markExtracting(database(billed), run)).toBe(true);
    expect(await counts("shadow")).toEqual({});
    expect(written()).toBeLessThan(50);

    // A redelivered job of a run that has begun loading drops nothing.
    const plan = {
      expected: { train: 10, test: 10 },
      chunksTotal: 2,
      shape: { rows: 28, cols: 28, channels: 1 },
      classNames: [],
    };
    expect(await markLoading(db(), run, plan)).toBe(true);
    await env.DB.prepare(
      `INSERT INTO images__fashion_mnist__test__next (idx, label, pixels) VALUES (0, 1, zeroblob(3136))`,
    ).run();
    expect(await markExtracting(db(), run)).toBe(false);
    expect(await markLoading(db(), run, plan)).toBe(true);
    expect(await counts("shadow")).toEqual({ test: 1 });
  });

  it("the swap too bills tens of rows, not the old dataset's", async () => {
    const { runId, chunks } = await loadingRun(syntheticArchives(600, 100, 73));
    await deliver(QUEUES.chunks, chunks);
    // Swapping again is refused (the run swapped already); measure a fresh swap instead.
    expect((await runStatus(runId)).status).toBe("complete");
    const next = await loadingRun(syntheticArchives(600, 100, 74));
    await deliver(
      QUEUES.chunks,
      next.chunks.filter((c) => c !== next.chunks.at(-1)),
    );
    const { db: billed, written } = billedD1();
    // The last delivery through a consumer whose D1 is measured: rows of one chunk, the ledger, the swap.
    const last = next.chunks.at(-1)!;
    await deliver(QUEUES.chunks, [last], { env: { DB: billed } });
    expect((await runStatus(next.runId)).status).toBe("complete");
    // One chunk's rows plus the swap's statements: the class counts (≤ 20) and a few bookkeeping rows — not 700.
    expect(written()).toBeLessThan(last.count + 80);
    expect(await counts()).toEqual({ train: 600, test: 100 });
    await expect(
      runBatch(
        env.DB,
        swapStatements(
          { id: next.runId, dataset: "fashion-mnist" },
          {
            expected: { train: 600, test: 100 },
            others: ["fashion-mnist"],
            view: { dataset: "fashion-mnist", others: [] },
            classNames: [],
            provenance: { official: false, source: "" },
          },
          new Date().toISOString(),
        ),
      ),
    ).rejects.toThrow(/constraint failed|no such table/i);
    expect((await runToEnd({ source: await publish(syntheticArchives(200, 20, 60)) })).status).toBe("complete");
  });
});
