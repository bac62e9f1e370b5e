/**
 * The cost of one run, computed from the real code paths with the real
 * configuration: planChunks/chunkMessage/packBatches (plan.ts), chunksStatements
 * (load.ts) and the per-invocation budget (budget.ts).
 */
import { readFile } from "node:fs/promises";
import { parse } from "smol-toml";
import { FASHION_MNIST, pixelsPerImage, type Split } from "../../src/core/datasets";
import { QUEUES, readConfig, type Config } from "../../src/pipeline/config";
import { chunkInvocationCost, type InvocationCost } from "../../src/pipeline/budget";
import { chunksStatements } from "../../src/db/load";
import { chunkMessage, messageBytes, packBatches, planChunks } from "../../src/pipeline/plan";
import { BYTES_PER_VALUE } from "../../src/codec/transform";

export interface ConsumerSettings {
  readonly maxBatchSize: number;
  readonly maxBatchTimeout: number | null;
  readonly maxConcurrency: number | null;
}

export interface BenchConfig {
  readonly config: Config;
  readonly consumer: ConsumerSettings;
  readonly vars: Record<string, string>;
}

/** wrangler.toml's vars (with overrides, as `wrangler dev --var` would apply them) and the chunk consumer. */
export async function benchConfig(overrides: Record<string, string>): Promise<BenchConfig> {
  const toml = parse(await readFile("wrangler.toml", "utf8")) as unknown as {
    vars: Record<string, string>;
    queues: {
      consumers: { queue: string; max_batch_size?: number; max_batch_timeout?: number; max_concurrency?: number }[];
    };
  };
  const vars = { ...toml.vars, ...overrides };
  const c = toml.queues.consumers.find((q) => q.queue === QUEUES.chunks);
  if (!c?.max_batch_size) throw new Error(`wrangler.toml: no max_batch_size for ${QUEUES.chunks}`);
  return {
    config: readConfig(vars as unknown as Env),
    consumer: {
      maxBatchSize: c.max_batch_size,
      maxBatchTimeout: c.max_batch_timeout ?? null,
      maxConcurrency: c.max_concurrency ?? null,
    },
    vars,
  };
}

export interface RunCost {
  readonly rows: number;
  readonly queueMessages: { readonly jobs: number; readonly chunks: number; readonly largestChunkBytes: number };
  readonly sendBatchCalls: number;
  readonly consumerInvocationsAtLeast: number;
  readonly d1StatementsPerChunk: number;
  readonly d1StatementsTotal: number;
  readonly perConsumerInvocation: InvocationCost;
  readonly producerSubrequests: number;
  readonly bytesStored: { readonly d1Pixels: number };
  /** Bytes that go through idx-etl-chunks (the pixels ride in the messages). */
  readonly queueBytes: number;
}

export function runCost(counts: Record<Split, number>, bench: BenchConfig): RunCost {
  const { config, consumer } = bench;
  const ppi = pixelsPerImage(FASHION_MNIST);
  const messages = FASHION_MNIST.splits.flatMap((s) =>
    planChunks({ split: s.split, labels: new Uint8Array(counts[s.split]) }, config.chunkSize).map((p) =>
      chunkMessage({ runId: "00000000-0000-4000-8000-000000000000", attempt: 1 }, p, new Uint8Array(p.count * ppi)),
    ),
  );
  const batches = packBatches(messages);
  const rows = counts.train + counts.test;
  // Statement counts from the real builder, for deliveries of max_batch_size messages.
  let statements = 0;
  for (let i = 0; i < messages.length; i += consumer.maxBatchSize) {
    const delivery = messages
      .slice(i, i + consumer.maxBatchSize)
      .map((m) => ({ ...m, pixelsPerImage: ppi, digest: "0".repeat(32) }));
    statements += chunksStatements(delivery[0]!.runId, delivery, config.rowsPerStatement, "").length;
  }
  const perInvocation = chunkInvocationCost({
    batchSize: consumer.maxBatchSize,
    chunkSize: config.chunkSize,
    rowsPerStatement: config.rowsPerStatement,
    pixelsPerImage: ppi,
  });
  const completion = 3; // the completing invocation's batch: two DELETEs and the UPDATE
  return {
    rows,
    queueMessages: {
      jobs: 1,
      chunks: messages.length,
      largestChunkBytes: Math.max(...messages.map(messageBytes)),
    },
    sendBatchCalls: batches.length,
    consumerInvocationsAtLeast: Math.ceil(messages.length / consumer.maxBatchSize),
    d1StatementsPerChunk: perInvocation.statementsPerChunk,
    d1StatementsTotal: statements + completion,
    perConsumerInvocation: perInvocation,
    // job.ts with force: getRun, markExtracting, hasCompleteRun, markLoading, the
    // ledger read, recordChecksums (D1); four archive fetches; the sendBatch calls.
    producerSubrequests: 6 + FASHION_MNIST.splits.length * 2 + batches.length,
    bytesStored: { d1Pixels: rows * ppi * BYTES_PER_VALUE },
    queueBytes: messages.reduce((n, m) => n + messageBytes(m), 0),
  };
}
