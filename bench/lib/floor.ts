/**
 * The local D1 write floor (bench/floor/worker.ts), driven from Node: a frozen
 * bundle of the floor Worker in its own state directory, and one fill per call
 * in any layout, transaction size and statement shape. Used by `npm run bench`
 * and by bench/floor/run.ts.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startDevServer, type DevServer } from "../../scripts/lib/dev-server";
import type { FloorResult, Layout, Mode } from "../floor/worker";
import { pixelsPerImage } from "../../src/core/datasets";
import { FASHION_MNIST } from "../../src/core/registry";
import { insertsPerChunk } from "../../test/budget";
import { maxChunkImages } from "../../src/pipeline/plan";
import type { BenchConfig } from "./cost";
import { frozenConfig } from "./frozen";

export type { FloorResult, Layout, Mode };

export interface FloorVariant {
  /** Short name, as printed. */
  readonly name: string;
  readonly layout: Layout;
  readonly mode: Mode;
  /** Rows per transaction (one D1 batch); the whole 70,000 for one transaction. */
  readonly perTransaction: number;
  /** Rows per INSERT (mode=values). */
  readonly perStatement?: number;
  /** What it stands for. */
  readonly label: string;
}

export const ROWS = 70_000;

/**
 * The variants the bench runs. `etl` is the ETL's own layout and transactions
 * (the rowid table per split of src/db/tables.ts, one transaction per delivery
 * of max_batch_size chunks, its rows per INSERT); the rest are the fastest
 * shapes found for each layout (bench/floor/run.ts explores more), so that the
 * fastest of them is the floor, and `wor-…` the layout the ETL used before.
 */
export function benchVariants(perTransaction: number, perStatement: number): FloorVariant[] {
  return [
    {
      name: "etl",
      layout: "rowid",
      mode: "values",
      perTransaction,
      perStatement,
      label: `the ETL's layout (rowid table per split, idx INTEGER PRIMARY KEY, + view), its ${perTransaction}-row transactions, ${perStatement} rows per INSERT`,
    },
    {
      name: "rowid-1tx",
      layout: "rowid",
      mode: "cte",
      perTransaction: ROWS,
      label: "the ETL's layout, one transaction, one INSERT per split",
    },
    {
      name: "rowid-1tx-5000",
      layout: "rowid",
      mode: "values",
      perTransaction: ROWS,
      perStatement: 5_000,
      label: "the ETL's layout, one transaction, 5,000 rows per INSERT",
    },
    {
      name: "wor-640",
      layout: "wor",
      mode: "values",
      perTransaction,
      perStatement,
      label: `the ETL's layout before (WITHOUT ROWID, key (split, idx)), its ${perTransaction}-row transactions and ${perStatement}-row INSERTs`,
    },
    {
      name: "wor-1tx",
      layout: "wor",
      mode: "cte",
      perTransaction: ROWS,
      label: "WITHOUT ROWID, one transaction, one INSERT per split",
    },
  ];
}

/**
 * How the ETL writes the default dataset: a transaction per delivery of
 * max_batch_size chunks, each chunk's rows spread evenly over its INSERTs
 * (load.ts buildInsertStatements).
 */
export function etlTransactions(bench: BenchConfig): { perTransaction: number; perStatement: number } {
  const chunk = Math.min(bench.config.chunkSize, maxChunkImages(pixelsPerImage(FASHION_MNIST.shape!)));
  return {
    perTransaction: chunk * bench.consumer.maxBatchSize,
    perStatement: Math.ceil(chunk / insertsPerChunk(chunk, bench.config.rowsPerStatement)),
  };
}

export interface FloorServer {
  once(v: FloorVariant): Promise<FloorResult>;
  stop(): Promise<void>;
}

/** readFull: also time reading the whole train split back after each fill (bench/floor/worker.ts). */
export async function startFloor(opts: { readFull?: boolean } = {}): Promise<FloorServer> {
  const state = await mkdtemp(join(tmpdir(), "idx-etl-floor-"));
  let server: DevServer | undefined;
  try {
    const config = await frozenConfig({
      entry: "bench/floor/worker.ts",
      config: "bench/floor/wrangler.toml",
      dir: state,
    });
    server = await startDevServer({ config, persistTo: state, readyPath: "/ready" });
  } catch (err) {
    await rm(state, { recursive: true, force: true });
    throw err;
  }
  const dev = server;
  return {
    async once(v) {
      const q = new URLSearchParams({
        layout: v.layout,
        mode: v.mode,
        perTransaction: String(v.perTransaction),
        ...(v.perStatement ? { perStatement: String(v.perStatement) } : {}),
        ...(opts.readFull ? { readFull: "1" } : {}),
      });
      const res = await fetch(`${dev.url}/floor?${q}`, { method: "POST" });
      const body = (await res.json()) as FloorResult & { error?: string };
      if (!res.ok) throw new Error(`floor ${v.name}: HTTP ${res.status}: ${body.error}`);
      if (!body.verified) throw new Error(`floor ${v.name}: the contract's SELECT did not return the rows written`);
      return body;
    },
    async stop() {
      await dev.stop();
      await rm(state, { recursive: true, force: true });
    },
  };
}
