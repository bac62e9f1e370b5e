import { describe, expect, it } from "vitest";
import { parseMessage } from "../src/pipeline/messages";
import { QUEUE_LIMITS, messageBytes, packBatches, planChunks } from "../src/pipeline/plan";

const labels = (n: number) => Uint8Array.from({ length: n }, (_, i) => i % 10);

describe("chunk planning", () => {
  it("covers every image exactly once, in order, with a ragged last chunk", () => {
    const chunks = planChunks("r1", { split: "train", labels: labels(1234) }, 500, 1000, 784);
    expect(chunks.map((c) => [c.start, c.count])).toEqual([
      [0, 500],
      [500, 500],
      [1000, 234],
    ]);
    // Each chunk points into its staging segment of 1,000 images.
    expect(chunks.map((c) => [c.object, c.offset])).toEqual([
      ["runs/r1/train-images-000000000.u8", 0],
      ["runs/r1/train-images-000000000.u8", 500 * 784],
      ["runs/r1/train-images-000001000.u8", 0],
    ]);
    expect(chunks.map((c) => c.labels).join("")).toBe(Array.from(labels(1234)).join(""));
    expect(chunks.every((c) => parseMessage(c) !== undefined)).toBe(true);
  });

  it("plans nothing for an empty split and refuses a nonsense chunk size", () => {
    expect(planChunks("r1", { split: "test", labels: labels(0) }, 500, 5000, 784)).toEqual([]);
    expect(() => planChunks("r1", { split: "test", labels: labels(3) }, 0, 5000, 784)).toThrow(RangeError);
    expect(() => planChunks("r1", { split: "test", labels: labels(3) }, 500, 750, 784)).toThrow("not a multiple");
  });

  it("packs Fashion-MNIST's 140 chunk messages into sendBatch calls within Queues' limits", () => {
    const messages = [
      ...planChunks("run", { split: "train", labels: labels(60000) }, 500, 5000, 784),
      ...planChunks("run", { split: "test", labels: labels(10000) }, 500, 5000, 784),
    ];
    const batches = packBatches(messages);
    expect(batches.flat()).toEqual(messages);
    for (const b of batches) {
      expect(b.length).toBeLessThanOrEqual(QUEUE_LIMITS.batchMessages);
      const bytes = b.reduce((n, m) => n + messageBytes(m) + QUEUE_LIMITS.metadataBytes, 0);
      expect(bytes).toBeLessThanOrEqual(QUEUE_LIMITS.batchBytes);
    }
    expect(batches.length).toBeGreaterThanOrEqual(2);
  });

  it("splits by bytes when messages are large, and rejects a message over 128 KB", () => {
    const big = Array.from({ length: 5 }, (_, i) => ({ i, pad: "x".repeat(100_000) }));
    expect(packBatches(big).map((b) => b.length)).toEqual([2, 2, 1]);
    expect(() => packBatches([{ pad: "x".repeat(130_000) }])).toThrow("exceeds 128000");
  });
});

describe("queue message parsing", () => {
  it("accepts well-formed messages and nothing else", () => {
    expect(parseMessage({ kind: "extract", runId: "r", force: false })).toEqual({
      kind: "extract",
      runId: "r",
      force: false,
    });
    const chunk = {
      kind: "chunk",
      runId: "r",
      split: "test",
      start: 5,
      count: 3,
      labels: "019",
      object: "k",
      offset: 0,
    };
    expect(parseMessage(chunk)).toEqual(chunk);
    for (const bad of [
      null,
      "x",
      { kind: "extract", runId: "r" },
      { ...chunk, split: "validation" },
      { ...chunk, start: -1 },
      { ...chunk, count: 0, labels: "" },
      { ...chunk, labels: "01" },
      { ...chunk, labels: "0a9" },
      { ...chunk, runId: "" },
      { ...chunk, object: "" },
      { ...chunk, offset: -784 },
    ]) {
      expect(parseMessage(bad)).toBeUndefined();
    }
  });
});
