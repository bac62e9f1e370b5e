import { describe, expect, it } from "vitest";
import { parseMessage } from "../src/pipeline/messages";
import {
  QUEUE_LIMITS,
  chunkMessage,
  maxChunkImages,
  messageBytes,
  packBatches,
  planChunks,
} from "../src/pipeline/plan";

const labels = (n: number) => Uint8Array.from({ length: n }, (_, i) => i % 10);

describe("chunk planning", () => {
  it("covers every image exactly once, in order, with a ragged last chunk", () => {
    const chunks = planChunks({ split: "train", labels: labels(1234) }, 500);
    expect(chunks.map((c) => [c.start, c.count])).toEqual([
      [0, 500],
      [500, 500],
      [1000, 234],
    ]);
    expect(chunks.flatMap((c) => Array.from(c.labels))).toEqual(Array.from(labels(1234)));
    // Each chunk owns its labels: a view would carry every label of the split in its message.
    expect(chunks.every((c) => c.labels.buffer.byteLength === c.count)).toBe(true);
  });

  it("plans nothing for an empty split and refuses a nonsense chunk size", () => {
    expect(planChunks({ split: "test", labels: labels(0) }, 500)).toEqual([]);
    expect(() => planChunks({ split: "test", labels: labels(3) }, 0)).toThrow(RangeError);
    expect(() => planChunks({ split: "test", labels: labels(3) }, 1.5)).toThrow(RangeError);
  });

  it("sizes chunks so that a message with its pixels fits 128 KB", () => {
    const most = maxChunkImages(784);
    expect(most).toBe(162);
    const full = chunkMessage(
      { runId: "6f1c0c4e-8a0b-4c43-9a38-2a1c1c1c1c1c", attempt: 12, dataset: "x".repeat(40) },
      { split: "train", start: 59_840, count: most, labels: new Uint8Array(most).fill(7) },
      new Uint8Array(most * 784),
    );
    expect(parseMessage(full)).toEqual(full);
    expect(messageBytes(full) + QUEUE_LIMITS.metadataBytes).toBeLessThanOrEqual(QUEUE_LIMITS.messageBytes);
    // One image more would not fit.
    const over = {
      ...full,
      count: most + 1,
      labels: new Uint8Array(most + 1).fill(7),
      pixels: new Uint8Array((most + 1) * 784),
    };
    expect(messageBytes(over) + QUEUE_LIMITS.metadataBytes).toBeGreaterThan(QUEUE_LIMITS.messageBytes);
  });

  it("packs Fashion-MNIST's chunk messages two to a sendBatch, within Queues' limits", () => {
    const messages = [
      ...planChunks({ split: "train", labels: labels(60000) }, 160),
      ...planChunks({ split: "test", labels: labels(10000) }, 160),
    ].map((p) =>
      chunkMessage(
        { runId: "6f1c0c4e-8a0b-4c43-9a38-2a1c1c1c1c1c", attempt: 1, dataset: "fashion-mnist" },
        p,
        new Uint8Array(p.count * 784),
      ),
    );
    expect(messages).toHaveLength(375 + 63);
    const batches = packBatches(messages);
    expect(batches.flat()).toEqual(messages);
    for (const b of batches) {
      expect(b.length).toBeLessThanOrEqual(QUEUE_LIMITS.batchMessages);
      const bytes = b.reduce((n, m) => n + messageBytes(m) + QUEUE_LIMITS.metadataBytes, 0);
      expect(bytes).toBeLessThanOrEqual(QUEUE_LIMITS.batchBytes);
    }
    expect(batches.map((b) => b.length)).toEqual([...Array<number>(219).fill(2)]);
  });

  it("splits by bytes when messages are large, and rejects a message over 128 KB", () => {
    const big = Array.from({ length: 5 }, (_, i) => ({ i, pad: "x".repeat(100_000) }));
    expect(packBatches(big).map((b) => b.length)).toEqual([2, 2, 1]);
    expect(() => packBatches([{ pad: "x".repeat(130_000) }])).toThrow("exceeds 128000");
    expect(() => packBatches([{ pixels: new Uint8Array(128_000) }])).toThrow("exceeds 128000");
  });
});

describe("queue message parsing", () => {
  it("accepts well-formed messages and nothing else", () => {
    expect(parseMessage({ kind: "extract", runId: "r", attempt: 2, force: false, from: 800 })).toEqual({
      kind: "extract",
      runId: "r",
      attempt: 2,
      force: false,
      from: 800,
    });
    // A message queued before runs had attempts (or jobs segments) belongs to the first one, from the start.
    expect(parseMessage({ kind: "extract", runId: "r", force: true })).toEqual({
      kind: "extract",
      runId: "r",
      attempt: 1,
      force: true,
      from: 0,
    });
    const chunk = {
      kind: "chunk",
      runId: "r",
      attempt: 3,
      dataset: "emnist-letters",
      split: "test",
      start: 5,
      count: 3,
      labels: Uint8Array.of(0, 26, 61),
      pixelsPerImage: 784,
      pixels: new Uint8Array(3 * 784),
    };
    expect(parseMessage(chunk)).toEqual(chunk);
    // A chunk queued before runs had datasets is Fashion-MNIST's, of whole images.
    const { dataset: _, pixelsPerImage: __, ...old } = chunk;
    expect(parseMessage(old)).toEqual({ ...chunk, dataset: "fashion-mnist" });
    for (const bad of [
      null,
      "x",
      { kind: "extract", runId: "r" },
      { ...chunk, split: "validation" },
      { ...chunk, start: -1 },
      { ...chunk, count: 0, labels: new Uint8Array(0) },
      { ...chunk, labels: Uint8Array.of(0, 1) },
      { ...chunk, labels: "019" },
      { ...chunk, dataset: "Fashion_MNIST" },
      { ...chunk, dataset: "a".repeat(41) },
      { ...chunk, pixelsPerImage: 0 },
      { ...chunk, pixelsPerImage: 1.5 },
      { kind: "extract", runId: "r", force: true, from: -1 },
      { ...chunk, runId: "" },
      { ...chunk, attempt: 0 },
      { ...chunk, attempt: "2" },
      { ...chunk, pixels: undefined },
      { ...chunk, pixels: Array.from({ length: 3 * 784 }, () => 0) },
      { ...chunk, pixels: new Uint8Array(0) },
      { ...chunk, pixels: new Uint8Array(3 * 784 + 1) },
    ]) {
      expect(parseMessage(bad)).toBeUndefined();
    }
  });
});
