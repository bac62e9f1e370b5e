/**
 * The cost of one run, computed from the real code paths with the real
 * configuration: planChunks/chunkMessage/packBatches (plan.ts), chunksStatements
 * (load.ts) and the per-invocation budget (budget.ts).
 */
import { readFile } from "node:fs/promises";
import { parse } from "smol-toml";
import { pixelsPerImage, type Split } from "../../src/core/datasets";
import { FASHION_MNIST } from "../../src/core/registry";
import { QUEUES, readConfig, type Config } from "../../src/pipeline/config";
import { chunkInvocationCost, type InvocationCost } from "../../test/budget";
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
  const ppi = pixelsPerImage(FASHION_MNIST.shape!);
  const messages = FASHION_MNIST.splits.flatMap((s) =>
    planChunks({ split: s.split, labels: new Uint8Array(counts[s.split]) }, config.chunkSize).map((p) =>
      chunkMessage(
        { runId: "00000000-0000-4000-8000-000000000000", attempt: 1, dataset: FASHION_MNIST.name },
        p,
        new Uint8Array(p.count * ppi),
      ),
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
    // job.ts, a forced load in one job: getRun, markExtracting, checkCapacity, markLoading,
    // the ledger read and a pin per archive (D1); a fetch per labels archive, two per
    // images archive (its header first); the sendBatch calls; heartbeats not included
    // (bench/scale-job.ts counts every call of the job as it runs).
    producerSubrequests: 5 + FASHION_MNIST.splits.length * 2 + FASHION_MNIST.splits.length * 3 + batches.length,
    bytesStored: { d1Pixels: rows * ppi * BYTES_PER_VALUE },
    queueBytes: messages.reduce((n, m) => n + messageBytes(m), 0),
  };
}

/**
 * Cloudflare's published prices (Workers Paid plan, USD), as read on the date
 * below from the pages named. Each figure is the rate beyond the plan's monthly
 * inclusions: within them (10M requests, 30M CPU-ms, 1M queue operations, 25B
 * rows read, 50M rows written, 5 GB of D1) the marginal cost is $0, and the plan
 * costs $5 a month whatever is used. R2's own free tier (1M class A and 10M
 * class B operations, 10 GB-month of standard storage) comes with any account.
 */
export const PRICES = {
  retrieved: "2026-11-27",
  note: "from stored copies of the pages below, not fetched live; check them before relying on a figure",
  currency: "USD",
  monthlyMinimum: 5,
  workers: {
    source: "https://developers.cloudflare.com/workers/platform/pricing/",
    perMillionRequests: 0.3,
    perMillionCpuMs: 0.02,
    includedRequests: 10_000_000,
    includedCpuMs: 30_000_000,
  },
  queues: {
    source: "https://developers.cloudflare.com/queues/platform/pricing/",
    perMillionOperations: 0.4,
    includedOperations: 1_000_000,
    /** An operation per 64 KB (1 KB = 1,000 bytes) written, read or deleted; each message carries ~100 B of metadata. */
    operationBytes: 64_000,
  },
  d1: {
    source: "https://developers.cloudflare.com/d1/platform/pricing/",
    perMillionRowsRead: 0.001,
    perMillionRowsWritten: 1.0,
    perGbMonth: 0.75,
    includedRowsRead: 25_000_000_000,
    includedRowsWritten: 50_000_000,
    includedGb: 5,
  },
  r2: {
    source: "https://developers.cloudflare.com/r2/pricing/",
    /** Class A: put, list, createMultipartUpload, uploadPart, completeMultipartUpload (standard storage). */
    perMillionClassA: 4.5,
    /** Class B: get, head. Deletes (and aborting a multipart upload) are free operations. */
    perMillionClassB: 0.36,
    perGbMonth: 0.015,
    includedClassA: 1_000_000,
    includedClassB: 10_000_000,
    includedGbMonth: 10,
  },
} as const;

/** What one piece of work used, in the units Cloudflare bills. */
export interface Usage {
  /** Worker invocations: HTTP requests, cron triggers, queue consumer invocations. */
  readonly requests: number;
  /** CPU milliseconds of those invocations (here an upper bound: see BilledUsage). */
  readonly cpuMs: number;
  /** Queue operations: 64 KB units written, read and deleted. */
  readonly queueOperations: number;
  readonly d1RowsRead: number;
  readonly d1RowsWritten: number;
  /**
   * R2 operations on the exports bucket: the files written after a load
   * (pipeline/materialise.ts) and read by the exports. The pipeline itself
   * does not use R2 (the pixels ride in the queue messages).
   */
  readonly r2ClassA: number;
  readonly r2ClassB: number;
  /** Deletes (the older versions' files): free operations, shown but not priced. */
  readonly r2Free: number;
  /** Bytes of the objects put (not billed as such: storage is, by GB-month). */
  readonly r2BytesPut: number;
}

export interface Dollars {
  readonly requests: number;
  readonly cpu: number;
  readonly queues: number;
  readonly d1RowsRead: number;
  readonly d1RowsWritten: number;
  readonly r2: number;
  readonly total: number;
}

export function dollars(u: Usage): Dollars {
  const p = PRICES;
  const d = {
    requests: (u.requests / 1e6) * p.workers.perMillionRequests,
    cpu: (u.cpuMs / 1e6) * p.workers.perMillionCpuMs,
    queues: (u.queueOperations / 1e6) * p.queues.perMillionOperations,
    d1RowsRead: (u.d1RowsRead / 1e6) * p.d1.perMillionRowsRead,
    d1RowsWritten: (u.d1RowsWritten / 1e6) * p.d1.perMillionRowsWritten,
    r2: (u.r2ClassA / 1e6) * p.r2.perMillionClassA + (u.r2ClassB / 1e6) * p.r2.perMillionClassB,
  };
  return { ...d, total: Object.values(d).reduce((a, b) => a + b, 0) };
}

/** The meters of bench/metered/worker.ts (structurally; that module is a Worker's). */
export interface MeterReading {
  d1: { rowsRead: number; rowsWritten: number; sizeAfter: number };
  invocations: { fetch: number; scheduled: number; queue: Record<string, number> };
  delivered: Record<string, { messages: number; units: number }>;
  sent: Record<string, { messages: number; units: number }>;
  r2: { classA: number; classB: number; free: number; bytesPut: number };
}

/**
 * The bill's units from a metered piece of work. Queue operations: each message
 * written counts its 64 KB units once written and once deleted (acked), and once
 * more per delivery (a retry reads it again). CPU: all of workerd's CPU time
 * over the work — the Worker's JavaScript, but also local D1's SQLite and the
 * local queue broker, which Cloudflare does not bill as Workers CPU — so an
 * upper bound for what the Worker would be billed. R2: the calls on the exports
 * bucket, by the class R2 bills them as (bench/metered/worker.ts).
 */
export function usageFromMeter(m: MeterReading, workerdCpuSeconds: number): Usage {
  const sum = (r: Record<string, { units: number }>) => Object.values(r).reduce((n, x) => n + x.units, 0);
  return {
    requests:
      m.invocations.fetch + m.invocations.scheduled + Object.values(m.invocations.queue).reduce((a, b) => a + b, 0),
    cpuMs: Math.round(workerdCpuSeconds * 1000),
    queueOperations: 2 * sum(m.sent) + sum(m.delivered),
    d1RowsRead: m.d1.rowsRead,
    d1RowsWritten: m.d1.rowsWritten,
    r2ClassA: m.r2.classA,
    r2ClassB: m.r2.classB,
    r2Free: m.r2.free,
    r2BytesPut: m.r2.bytesPut,
  };
}

/** D1 storage of one copy of the dataset for a month, at the rate beyond the 5 GB included. */
export const storageDollarsPerMonth = (bytes: number): number => (bytes / 1e9) * PRICES.d1.perGbMonth;

/** R2 storage of one copy of the exports for a month, at the rate beyond R2's 10 GB-month free. */
export const r2StorageDollarsPerMonth = (bytes: number): number => (bytes / 1e9) * PRICES.r2.perGbMonth;
