/**
 * The bill: the configuration the Worker runs with (wrangler.toml), what the
 * meters counted (bench/metered/worker.ts) in Cloudflare's billing units, and
 * those units in dollars at the published prices.
 */
import { readFile } from "node:fs/promises";
import { parse } from "smol-toml";
import type { Meter } from "../metered/worker";

export interface BenchConfig {
  readonly vars: Record<string, string>;
  readonly chunkSize: number;
  readonly rowsPerStatement: number;
  /** The chunk queue's consumer. */
  readonly maxBatchSize: number;
  readonly maxBatchTimeout: number | null;
  readonly maxConcurrency: number | null;
}

interface Toml {
  vars: Record<string, string>;
  queues: {
    producers: { binding: string; queue: string }[];
    consumers: { queue: string; max_batch_size?: number; max_batch_timeout?: number; max_concurrency?: number }[];
  };
}

/** wrangler.toml's vars (with the bench's overrides) and the consumer of the queue bound as CHUNKS. */
export async function benchConfig(overrides: Record<string, string>): Promise<BenchConfig> {
  const toml = parse(await readFile("wrangler.toml", "utf8")) as unknown as Toml;
  const vars = { ...toml.vars, ...overrides };
  const queue = toml.queues.producers.find((p) => p.binding === "CHUNKS")?.queue;
  const c = toml.queues.consumers.find((q) => q.queue === queue);
  if (!c?.max_batch_size) throw new Error(`wrangler.toml: no max_batch_size for the CHUNKS queue (${queue})`);
  return {
    vars,
    chunkSize: Number(vars.CHUNK_SIZE ?? 160),
    rowsPerStatement: Number(vars.ROWS_PER_STATEMENT ?? 100),
    maxBatchSize: c.max_batch_size,
    maxBatchTimeout: c.max_batch_timeout ?? null,
    maxConcurrency: c.max_concurrency ?? null,
  };
}

/**
 * Cloudflare's published prices (Workers Paid plan, USD), beyond the plan's
 * monthly inclusions (within them the marginal cost is $0; the plan is $5 a
 * month). From stored copies of the pages named, not fetched live.
 */
export const PRICES = {
  retrieved: "2026-11-27",
  workers: {
    source: "https://developers.cloudflare.com/workers/platform/pricing/",
    perMillionRequests: 0.3,
    perMillionCpuMs: 0.02,
  },
  queues: {
    source: "https://developers.cloudflare.com/queues/platform/pricing/",
    perMillionOperations: 0.4,
    /** An operation per 64 KB (1 KB = 1,000 bytes) written, read or deleted. */
    operationBytes: 64_000,
  },
  d1: {
    source: "https://developers.cloudflare.com/d1/platform/pricing/",
    perMillionRowsRead: 0.001,
    perMillionRowsWritten: 1.0,
    perGbMonth: 0.75,
  },
  r2: {
    source: "https://developers.cloudflare.com/r2/pricing/",
    /** Class A: put, list, multipart create / part / complete. Class B: get, head. Deletes are free. */
    perMillionClassA: 4.5,
    perMillionClassB: 0.36,
    perGbMonth: 0.015,
  },
} as const;

/** What one piece of work used, in the units Cloudflare bills. */
export interface Usage {
  /** Invocations: HTTP requests, cron triggers, queue consumer invocations. */
  readonly requests: number;
  /** The Worker isolate's CPU (a V8 profile, bench/lib/isolate.ts), not local D1's, Queues' or R2's. */
  readonly cpuMs: number;
  /** 64 KB units written, read and deleted. */
  readonly queueOperations: number;
  readonly d1RowsRead: number;
  readonly d1RowsWritten: number;
  readonly r2ClassA: number;
  readonly r2ClassB: number;
}

export type Dollars = Record<"requests" | "cpu" | "queues" | "d1RowsRead" | "d1RowsWritten" | "r2" | "total", number>;

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

/**
 * The billing units of a metered piece of work. Queue operations: each message
 * written counts its 64 KB units once written and once deleted (acked), and
 * once more per delivery.
 */
export function usageFromMeter(m: Meter, cpuSeconds: number): Usage {
  const sum = (r: Record<string, { units: number }>) => Object.values(r).reduce((n, x) => n + x.units, 0);
  return {
    requests:
      m.invocations.fetch + m.invocations.scheduled + Object.values(m.invocations.queue).reduce((a, b) => a + b, 0),
    cpuMs: Math.round(cpuSeconds * 1000),
    queueOperations: 2 * sum(m.sent) + sum(m.delivered),
    d1RowsRead: m.d1.rowsRead,
    d1RowsWritten: m.d1.rowsWritten,
    r2ClassA: m.r2.classA,
    r2ClassB: m.r2.classB,
  };
}

/** A month of `bytes` stored, at the rate beyond the free allowance. */
export const d1StorageDollarsPerMonth = (bytes: number): number => (bytes / 1e9) * PRICES.d1.perGbMonth;
export const r2StorageDollarsPerMonth = (bytes: number): number => (bytes / 1e9) * PRICES.r2.perGbMonth;
