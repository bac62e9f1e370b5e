/**
 * An estimate, not a measurement: how long a load would take on Cloudflare,
 * from D1's documented model ("Each individual D1 database is inherently
 * single-threaded, and processes queries one at a time":
 * developers.cloudflare.com/d1/platform/limits/), the product's transactions
 * (a delivery of max_batch_size chunks of CHUNK_SIZE images is one), a
 * per-transaction latency stated below, and the chunk consumer's concurrency.
 *
 * - D1 executes the transactions one after another: at least N × exec.
 * - Each consumer invocation waits exec + roundTrip per transaction, and
 *   `concurrency` of them run at once: at least N × (exec + roundTrip) / c.
 * The estimate is the larger. `exec` is the local Worker floor's time per
 * transaction at the ETL's shape less the Worker's statement building: the
 * text crossing into D1, parsed, decoded and written by SQLite, assuming
 * Cloudflare's hosts run SQLite as fast as this machine. The
 * extraction job overlaps the loads and is left out: a dataset that takes
 * longer to inflate than to write would take longer than this.
 */
import { registryEntry } from "../../src/core/registry";

/** Assumed, not measured: a Worker → D1 primary round trip plus the commit's durable acknowledgement. */
export const ROUND_TRIP_MS = 50;

export interface Projection {
  readonly dataset: string;
  readonly rows: number;
  readonly transactions: number;
  readonly execMs: number;
  readonly roundTripMs: number;
  readonly concurrency: number;
  readonly writerSeconds: number;
  readonly consumerSeconds: number;
  readonly estimateSeconds: number;
}

export function project(
  dataset: string,
  opts: { chunkSize: number; batchSize: number; concurrency: number; execMs: number; roundTripMs?: number },
): Projection {
  const spec = registryEntry(dataset);
  if (!spec) throw new Error(`no registry dataset ${dataset}`);
  const counts = spec.splits.map((s) => s.count ?? 0);
  const chunks = counts.reduce((n, c) => n + Math.ceil(c / opts.chunkSize), 0);
  const transactions = Math.ceil(chunks / opts.batchSize);
  const roundTripMs = opts.roundTripMs ?? ROUND_TRIP_MS;
  const writerSeconds = (transactions * opts.execMs) / 1000;
  const consumerSeconds = (transactions * (opts.execMs + roundTripMs)) / opts.concurrency / 1000;
  return {
    dataset,
    rows: counts.reduce((a, b) => a + b, 0),
    transactions,
    execMs: opts.execMs,
    roundTripMs,
    concurrency: opts.concurrency,
    writerSeconds,
    consumerSeconds,
    estimateSeconds: Math.max(writerSeconds, consumerSeconds),
  };
}
