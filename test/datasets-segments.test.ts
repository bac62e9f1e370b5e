/**
 * A dataset of more chunks than one extraction job may send (JOB_MAX_CHUNKS):
 * each job sends its segment and queues the next, until the last; every image
 * is sent and loaded exactly once. The jobs are delivered here, each with the
 * env override, to the real consumers (real D1); the jobs queue is a recorder.
 */
import { describe, expect, it } from "vitest";
import { registryEntry } from "../src/core/registry";
import { QUEUES } from "../src/pipeline/config";
import type { ChunkMessage, ExtractMessage } from "../src/pipeline/messages";
import {
  SHAPE_28,
  capturingQueue,
  expectDataset,
  makeSplit,
  publishFiles,
  rows,
  specArchives,
  trigger,
  waitForRun,
} from "./dataset-fixtures";
import { deliver } from "./faults-helpers";

const KMNIST = registryEntry("kmnist")!;

describe.each([
  // 8 train chunks (7 × 20 + 10) and 3 test chunks (20, 20, 10): six jobs, the last sending one chunk.
  { train: 150, test: 50, limit: 2, froms: [0, 2, 4, 6, 8, 10] },
  // 7 + 3 chunks: the fifth job's segment ends exactly at the plan's end, and no sixth job is queued.
  { train: 140, test: 60, limit: 2, froms: [0, 2, 4, 6, 8] },
  // A segment that runs from the train split into the test split.
  { train: 140, test: 60, limit: 3, froms: [0, 3, 6, 9] },
])("$train + $test images in chunks of 20, JOB_MAX_CHUNKS=$limit", ({ train, test, limit, froms }) => {
  it("completes through several job messages, each image loaded exactly once", async () => {
    const data = {
      train: makeSplit(train, SHAPE_28, (i) => i % 10, train + limit),
      test: makeSplit(test, SHAPE_28, (i) => (i * 3) % 10, test + limit),
    };
    const source = await publishFiles(specArchives(KMNIST, data));
    const jobs = capturingQueue<ExtractMessage>();
    // Chunks go straight to the real chunk consumer, as production's consumers load while the job inflates.
    const chunks = capturingQueue<ChunkMessage>(async (bodies) => {
      const { thrown, result } = await deliver(QUEUES.chunks, bodies);
      expect(thrown).toBeUndefined();
      expect(result.retryMessages).toEqual([]);
    });
    const run = await trigger({ dataset: KMNIST.name, source }, { jobs: jobs.queue, force: true });
    const env = { JOB_MAX_CHUNKS: String(limit), CHUNK_SIZE: "20", JOBS: jobs.queue, CHUNKS: chunks.queue };
    for (let i = 0; i < jobs.sent.length; i++) {
      if (i > froms.length) throw new Error(`more jobs than expected: ${JSON.stringify(jobs.sent)}`);
      const { result, thrown } = await deliver(QUEUES.jobs, [jobs.sent[i]!], { env });
      expect(thrown).toBeUndefined();
      expect(result.retryMessages).toEqual([]);
      // Each job sends at most its segment.
      expect(chunks.sent.length).toBeLessThanOrEqual((i + 1) * limit);
    }

    // The first job from startRun, then one continuation per full segment.
    expect(jobs.sent).toEqual(froms.map((from) => ({ kind: "extract", runId: run.id, attempt: 1, force: true, from })));
    const chunkCount = Math.ceil(train / 20) + Math.ceil(test / 20);
    expect(froms.length).toBe(Math.ceil(chunkCount / limit));
    // Every chunk of the plan sent once, in plan order, covering every image once.
    expect(chunks.sent.map((c) => `${c.split}:${c.start}:${c.count}`)).toEqual([
      ...Array.from({ length: Math.ceil(train / 20) }, (_, k) => `train:${k * 20}:${Math.min(20, train - k * 20)}`),
      ...Array.from({ length: Math.ceil(test / 20) }, (_, k) => `test:${k * 20}:${Math.min(20, test - k * 20)}`),
    ]);

    const done = await waitForRun(run.id);
    expect(done.error).toBeNull();
    expect(done).toMatchObject({
      status: "complete",
      chunksTotal: chunkCount,
      trainLoaded: train,
      testLoaded: test,
    });
    expect(await rows("SELECT COUNT(*) AS n FROM run_chunks WHERE run_id = ?", run.id)).toEqual([{ n: chunkCount }]);
    await expectDataset(KMNIST.name, data);
  });
});
