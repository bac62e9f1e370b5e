import { env } from "cloudflare:workers";
import { parse } from "smol-toml";
import { describe, expect, it } from "vitest";
import wranglerToml from "../wrangler.toml?raw";
import { pixelsPerImage } from "../src/core/datasets";
import { FASHION_MNIST } from "../src/core/registry";
import { QUEUES, readConfig } from "../src/pipeline/config";
import { chunkInvocationCost, INVOCATION_LIMITS } from "../src/pipeline/budget";
import { MAX_ROWS_PER_STATEMENT } from "../src/db/load";
import { chunkMessage, packBatches, planChunks, QUEUE_LIMITS, messageBytes } from "../src/pipeline/plan";

interface Consumer {
  queue: string;
  max_batch_size?: number;
  max_concurrency?: number;
}
const toml = parse(wranglerToml) as unknown as { queues: { consumers: Consumer[] }; vars: Record<string, string> };
const chunksConsumer = toml.queues.consumers.find((c) => c.queue === QUEUES.chunks);
const ppi = pixelsPerImage(FASHION_MNIST.shape!);

describe("the configured chunk consumer stays within per-invocation limits (free plan)", () => {
  it("wrangler.toml sets max_batch_size for idx-etl-chunks explicitly", () => {
    expect(chunksConsumer?.max_batch_size).toBeGreaterThan(0);
  });

  it("≤ 50 D1 queries and ≤ 50 subrequests per invocation, with wrangler.toml's batch size and vars", () => {
    // env: the Worker's vars from wrangler.toml, as the test pool loads them.
    const cfg = readConfig(env);
    expect(String(cfg.chunkSize)).toBe(toml.vars.CHUNK_SIZE);
    const cost = chunkInvocationCost({
      batchSize: chunksConsumer!.max_batch_size!,
      chunkSize: cfg.chunkSize,
      rowsPerStatement: cfg.rowsPerStatement,
      pixelsPerImage: ppi,
    });
    expect(cost.d1Queries).toBeLessThanOrEqual(INVOCATION_LIMITS.d1Queries);
    expect(cost.subrequests).toBeLessThanOrEqual(INVOCATION_LIMITS.subrequests);
  });

  it("the budget catches a configuration that would exceed the limits", () => {
    const cost = chunkInvocationCost({ batchSize: 10, chunkSize: 160, rowsPerStatement: 40, pixelsPerImage: ppi });
    expect(cost.statementsPerChunk).toBe(Math.ceil(160 / 40) + 1);
    expect(cost.d1Queries).toBeGreaterThan(INVOCATION_LIMITS.d1Queries);
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
