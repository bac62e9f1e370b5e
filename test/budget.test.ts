/**
 * The chunk consumer within the per-invocation limits (free plan: 50 D1
 * queries, 50 subrequests), counted: a real run's last delivery, at
 * wrangler.toml's batch size and vars, goes to the Worker's queue handler with
 * bindings that count every call they are asked (counting-bindings.ts).
 */
import { env } from "cloudflare:workers";
import { parse } from "smol-toml";
import { afterEach, describe, expect, it } from "vitest";
import wranglerToml from "../wrangler.toml?raw";
import { pixelsPerImage } from "../src/core/datasets";
import { FASHION_MNIST } from "../src/core/registry";
import { QUEUES, readConfig } from "../src/pipeline/config";
import type { ChunkMessage, ExtractMessage } from "../src/pipeline/messages";
import { MAX_ROWS_PER_STATEMENT } from "../src/db/load";
import { shadowTable } from "../src/db/tables";
import { chunkMessage, packBatches, planChunks, QUEUE_LIMITS, messageBytes } from "../src/pipeline/plan";
import { chunkInvocationCost, INVOCATION_LIMITS } from "./budget";
import { countingBinding, countingD1, newCounts, type Counts } from "./counting-bindings";
import { capturingQueue, trigger } from "./dataset-fixtures";
import { deliver, failActive, runStatus } from "./faults-helpers";
import { publish, syntheticArchives } from "./helpers";

interface Consumer {
  queue: string;
  max_batch_size?: number;
  max_concurrency?: number;
}
const toml = parse(wranglerToml) as unknown as { queues: { consumers: Consumer[] }; vars: Record<string, string> };
const chunksConsumer = toml.queues.consumers.find((c) => c.queue === QUEUES.chunks);
const ppi = pixelsPerImage(FASHION_MNIST.shape!);

afterEach(() => failActive());

let seed = 900;

/**
 * A run of exactly one delivery's worth of full chunks, extracted by the real
 * job, whose chunk messages are then delivered as one batch to the Worker's
 * queue handler, with D1 and the queues counting. `stray` first puts a row in
 * the shadow table that no chunk wrote: D1 then counts more rows than expected
 * and the completion check takes its longest path (the swap refused, the rows
 * counted, the run failed).
 */
async function lastDelivery(opts: { stray?: boolean; vars?: Partial<Env> } = {}) {
  const vars = opts.vars ?? {};
  const batchSize = chunksConsumer!.max_batch_size!;
  const chunkSize = readConfig({ ...env, ...vars } as Env).chunkSize;
  const source = await publish(syntheticArchives((batchSize - 1) * chunkSize, chunkSize, seed++));
  const jobs = capturingQueue<ExtractMessage>();
  const chunks = capturingQueue<ChunkMessage>();
  const run = await trigger({ dataset: FASHION_MNIST.name, source }, { jobs: jobs.queue, force: true });
  const job = await deliver(QUEUES.jobs, jobs.sent, { env: { ...vars, JOBS: jobs.queue, CHUNKS: chunks.queue } });
  expect(job.thrown).toBeUndefined();
  expect(chunks.sent.map((c) => c.count)).toEqual(Array(batchSize).fill(chunkSize));
  if (opts.stray) {
    await env.DB.prepare(`INSERT INTO ${shadowTable(FASHION_MNIST.name, "train")} VALUES (9999999, 0, zeroblob(?))`)
      .bind(ppi * 4)
      .run();
  }

  // The queues record rather than deliver: the export job a completed run asks for is not this invocation's.
  const counts: Counts = newCounts();
  const counted: Partial<Env> = {
    ...vars,
    DB: countingD1(env.DB, counts),
    JOBS: countingBinding(capturingQueue().queue, "JOBS", counts),
    CHUNKS: countingBinding(capturingQueue().queue, "CHUNKS", counts),
    ...(env.EXPORTS ? { EXPORTS: countingBinding(env.EXPORTS, "EXPORTS", counts) } : {}),
  };
  const { result, thrown } = await deliver(QUEUES.chunks, chunks.sent, { env: counted });
  expect(thrown).toBeUndefined();
  expect(result.retryMessages).toEqual([]);
  return { runId: run.id, counts, batchSize, chunkSize };
}

describe("the configured chunk consumer stays within per-invocation limits (free plan)", () => {
  it("wrangler.toml sets max_batch_size for idx-etl-chunks explicitly", () => {
    expect(chunksConsumer?.max_batch_size).toBeGreaterThan(0);
  });

  it("a delivery that completes its run: ≤ 50 D1 queries and ≤ 50 subrequests, counted", async () => {
    expect(String(readConfig(env).chunkSize)).toBe(toml.vars.CHUNK_SIZE);
    const { runId, counts } = await lastDelivery();
    expect((await runStatus(runId)).status).toBe("complete");
    // The load, then the completion check's swap: both batches seen; and the export job asked for.
    expect(counts.batches).toHaveLength(2);
    expect(counts.byMethod["JOBS.send"]).toBe(env.EXPORTS ? 1 : undefined);
    expect(counts.d1Queries).toBeLessThanOrEqual(INVOCATION_LIMITS.d1Queries);
    expect(counts.subrequests).toBeLessThanOrEqual(INVOCATION_LIMITS.subrequests);
  });

  it("the longest path, a completion check that fails the run: within the limits, as the bench's model says", async () => {
    const { runId, counts, batchSize, chunkSize } = await lastDelivery({ stray: true });
    const run = await runStatus(runId);
    expect(run.status).toBe("failed");
    expect(run.error).toMatch(/D1 holds \d+ train and \d+ test rows for this run/);
    expect(counts.d1Queries).toBeLessThanOrEqual(INVOCATION_LIMITS.d1Queries);
    expect(counts.subrequests).toBeLessThanOrEqual(INVOCATION_LIMITS.subrequests);
    // test/budget.ts, which the bench prints for other configurations, predicts exactly what was counted.
    const model = chunkInvocationCost({
      batchSize,
      chunkSize,
      rowsPerStatement: readConfig(env).rowsPerStatement,
      pixelsPerImage: ppi,
    });
    expect({ d1Queries: counts.d1Queries, subrequests: counts.subrequests }).toEqual({
      d1Queries: model.d1Queries,
      subrequests: model.subrequests,
    });
    expect(counts.batches[0]).toBe(batchSize * model.statementsPerChunk + 3);
  });

  it("the count catches a configuration that would exceed the limits", async () => {
    // 10 rows a statement: 16 inserts and a ledger row per chunk of 160, 68 statements in the load alone.
    const { runId, counts, batchSize, chunkSize } = await lastDelivery({ vars: { ROWS_PER_STATEMENT: "10" } });
    expect((await runStatus(runId)).status).toBe("complete");
    expect(counts.batches[0]).toBe(batchSize * (Math.ceil(chunkSize / 10) + 1) + 3);
    expect(counts.d1Queries).toBeGreaterThan(INVOCATION_LIMITS.d1Queries);
  });

  it("a full chunk's messages fit the queue limits, and its statements D1's", () => {
    const cfg = readConfig(env);
    const labels = new Uint8Array(60_000).fill(9);
    const messages = planChunks({ split: "train", labels }, cfg.chunkSize).map((p) =>
      chunkMessage(
        { runId: "00000000-0000-4000-8000-000000000000", attempt: 1, dataset: "fashion-mnist" },
        p,
        new Uint8Array(p.count * ppi),
      ),
    );
    expect(Math.max(...messages.map(messageBytes)) + QUEUE_LIMITS.metadataBytes).toBeLessThanOrEqual(
      QUEUE_LIMITS.messageBytes,
    );
    expect(packBatches(messages).every((b) => b.length <= QUEUE_LIMITS.batchMessages)).toBe(true);
    expect(Math.min(cfg.rowsPerStatement, MAX_ROWS_PER_STATEMENT)).toBeGreaterThan(0);
  });
});
