/** bench/results.md: the figures as tables, then the hand-kept notes on alternatives tried. */
import { readFileSync } from "node:fs";
import type { Dollars, MeterReading, PRICES, RunCost, Usage } from "./cost";
import type { ScalingResult, Segment } from "./scaling";
import type { Summary } from "./stats";

export interface Results {
  machine: Record<string, string | number>;
  config: {
    maxBatchSize: number;
    maxBatchTimeout: number | null;
    maxConcurrency: number | null;
    chunkSize: number;
    rowsPerStatement: number;
    vars: Record<string, string>;
  };
  reps: number;
  baseline: Summary & { rowsPerS: number };
  ours: Summary & {
    rowsPerS: number;
    extractSeconds: Summary;
    loadSeconds: Summary;
    /** CPU of all workerd processes (Worker, local D1, Queues) over each timed run (trigger → complete). */
    workerdCpuSeconds: Summary;
    /**
     * After complete, not in the run's time: until the job that follows it had
     * written the exports to R2 (GET /datasets/{name}: the version, exportsStored).
     */
    materialiseSeconds: Summary;
    /** workerd's CPU over that wait. */
    materialiseWorkerdCpuSeconds: Summary;
    /** Trigger → the first GET /runs/:id that showed complete (after the export job, locally). */
    observedSeconds: Summary;
  };
  ratio: number;
  /**
   * Local D1 alone storing the same rows (bench/floor/worker.ts), in each
   * layout / transaction size the bench runs; the floor is the fastest.
   */
  floor: FloorRow & { etlLayout: { name: string; median: number; ratio: number }; variants: FloorRow[] };
  /** Our median over the fastest floor's. */
  etlOverFloor: number;
  /** Our median over the floor of the ETL's own layout and transactions. */
  etlOverEtlLayoutFloor: number;
  /** The four .npy exports downloaded and loaded with numpy, vs the seed's SQLite file read with sqlite3 + np.frombuffer. */
  readPath: { files: string[]; bytes: number; ours: Summary; seed: Summary; ratio: number };
  memory: {
    method: string;
    producerPeakMb: number;
    producerLivePeakMb: number;
    /** Peaks with V8's old space capped at heapCapMb: the run must complete inside it (null: it did not). */
    producerCappedPeakMb: number | null;
    /** The bench's check: the producer completes with V8 held to heapCapMb. */
    producerHeap16: "ok" | "fail";
    producerHeap16Error: string | null;
    consumerCappedPeakMb: number;
    heapCapMb: number;
    producerSeconds: number;
    consumerPeakMb: number;
    consumerLivePeakMb: number;
    consumerParamMb: number;
    /** Inside workerd: the Worker isolate's JS heap + buffers + embedder heap at its peak over a whole run, garbage included. */
    isolatePeakMb: number;
    /** The same once the producer is done: consumers only. */
    isolateConsumersOnlyPeakMb: number;
    /** The isolate before the run: what earlier runs left, garbage included. */
    isolateRestMb: number;
    isolateSamples: number;
    /** The same isolate after the run completed, while the export job wrote the files to R2. */
    isolateMaterialisePeakMb: number;
    isolateMaterialiseSeconds: number;
    /** Few: the inspector hardly answers while the export job runs (the local runtime answers nothing then). */
    isolateMaterialiseSamples: number;
    /**
     * Inside workerd, production's scheduling (bench/concurrent/worker.ts): the
     * extraction job and up to max_concurrency chunk-consumer invocations in one
     * isolate, garbage included.
     */
    isolateConcurrentPeakMb: number;
    /** The same while the extraction job was still running. */
    isolateConcurrentJobPeakMb: number;
    isolateConcurrentRestMb: number;
    isolateConcurrentSamples: number;
    /** The same scheduling in another run, the garbage collected before each sample. */
    isolateConcurrentLivePeakMb: number;
    isolateConcurrentLiveSamples: number;
    isolateConcurrency: {
      maxConcurrency: number;
      /** False when wrangler.toml sets no max_concurrency and the bench's fallback was used. */
      configured: boolean;
      maxBatchSize: number;
      /** Added before each D1 batch so that invocations overlap as against a remote D1. */
      d1LatencyMs: number;
      /** The lesser of the two runs' (garbage-inclusive and live). */
      maxInFlight: number;
      maxInFlightDuringJob: number;
      deliveries: number;
      rows: number;
      seconds: number;
    };
    workerdRssIdleMb: number;
    workerdRssPeakMb: number;
  };
  cost: RunCost;
  /** Dollars at Cloudflare's published prices, from the meters (bench/metered/worker.ts). */
  bill: {
    prices: typeof PRICES;
    load: Billed;
    cron: Billed;
    export: Billed & { bytes: number };
    /** D1: one copy of the dataset (size_after). */
    storage: { bytes: number; dollarsPerMonth: number };
    /** R2: one copy of the four export files (what a full export reads); bytesPut: what the forced load wrote. */
    r2Storage: { bytes: number; bytesPut: number; dollarsPerMonth: number };
  };
  crossCheck: { d1Rows: number; d1PixelBytes: number; runChunks: number; chunksTotal: number; agrees: boolean };
  /** The job on a synthetic set the size of EMNIST ByClass, job by job (bench/lib/scaling.ts); undefined: --scale 0. */
  scaling: ScalingResult | undefined;
}

export interface FloorRow extends Summary {
  name: string;
  label: string;
  layout: string;
  mode: string;
  perTransaction: number;
  perStatement: number | null;
  transactions: number;
  statements: number;
  rowsWritten: number;
  bytes: number;
  ratio: number;
}

export interface Billed {
  usage: Usage;
  dollars: Dollars;
  meter: MeterReading;
  wallSeconds: number;
}

const s = (x: number) => x.toFixed(2);
const usd = (x: number) => `$${x < 0.01 ? x.toFixed(6) : x.toFixed(4)}`;
/** A unit price with at least two decimals and all of its own ($0.30, $0.001, $0.015). */
const price = (x: number) => `$${x.toFixed(Math.max(2, (String(x).split(".")[1] ?? "").length))}`;
const int = (x: number) => Math.round(x).toLocaleString("en-US");
const table = (head: string[], rows: (string | number)[][]) =>
  [`| ${head.join(" | ")} |`, `|${head.map(() => "---").join("|")}|`, ...rows.map((r) => `| ${r.join(" | ")} |`)].join(
    "\n",
  );

export function renderMarkdown(r: Results, opts: { brief?: boolean } = {}): string {
  const timing = table(
    ["", "median s", "min s", "max s", "rows/s"],
    [
      [
        "Python baseline (numpy + sqlite3 executemany)",
        s(r.baseline.median),
        s(r.baseline.min),
        s(r.baseline.max),
        r.baseline.rowsPerS,
      ],
      ["idx-etl on local Worker (trigger → complete)", s(r.ours.median), s(r.ours.min), s(r.ours.max), r.ours.rowsPerS],
      [
        "  of which extract (trigger → loading)",
        s(r.ours.extractSeconds.median),
        s(r.ours.extractSeconds.min),
        s(r.ours.extractSeconds.max),
        "",
      ],
      [
        "  of which load (loading → complete)",
        s(r.ours.loadSeconds.median),
        s(r.ours.loadSeconds.min),
        s(r.ours.loadSeconds.max),
        "",
      ],
      [
        "  after complete: the exports written to R2 (not in ours; complete → GET /datasets/{name} shows exportsStored)",
        s(r.ours.materialiseSeconds.median),
        s(r.ours.materialiseSeconds.min),
        s(r.ours.materialiseSeconds.max),
        "",
      ],
      ["**ratio ours / baseline (medians)**", `**${s(r.ratio)}**`, "", "", ""],
      [
        `local D1 alone, fastest layout (${r.floor.name}: ${r.floor.label}), randomblob() instead of pixels: **the floor**`,
        s(r.floor.median),
        s(r.floor.min),
        s(r.floor.max),
        "",
      ],
      ["ratio floor / baseline (medians)", s(r.floor.ratio), "", "", ""],
      [`**etl_over_floor: ours / floor (medians)**`, `**${s(r.etlOverFloor)}**`, "", "", ""],
      [
        `local D1 alone in the ETL's own layout and transactions (${r.floor.etlLayout.name}); ours over it`,
        s(r.floor.etlLayout.median),
        "",
        "",
        "",
      ],
      ["  ours / that floor (medians): the gap our code adds", s(r.etlOverEtlLayoutFloor), "", "", ""],
    ],
  );
  const floors = table(
    [
      "floor variant",
      "layout",
      "rows / transaction",
      "transactions",
      "INSERTs",
      "D1 rows_written",
      "DB size MB",
      "median s",
      "min s",
      "max s",
      "/ baseline",
      "ours / it",
    ],
    r.floor.variants.map((v) => [
      v.name === r.floor.name ? `**${v.name}** (fastest)` : v.name,
      v.label,
      v.perTransaction,
      v.transactions,
      v.statements,
      v.rowsWritten,
      (v.bytes / 1e6).toFixed(1),
      s(v.median),
      s(v.min),
      s(v.max),
      s(v.ratio),
      s(r.ours.median / v.median),
    ]),
  );
  const rp = r.readPath;
  const readPath = table(
    ["read path (same arrays, bit-identical: checked)", "median s", "min s", "max s"],
    [
      [
        `ours: GET ${rp.files.join(", ")} from the local Worker (streamed from R2: X-Export-Source r2, checked), each np.load-ed`,
        s(rp.ours.median),
        s(rp.ours.min),
        s(rp.ours.max),
      ],
      [
        "the seed's: SELECT image, label FROM train / test ORDER BY id (sqlite3) + np.frombuffer",
        s(rp.seed.median),
        s(rp.seed.min),
        s(rp.seed.max),
      ],
      ["**export_ratio: ours / seed (medians)**", `**${s(rp.ratio)}**`, "", ""],
    ],
  );
  const m = r.memory;
  const memory = table(
    [
      "",
      "peak MB (heap + external, garbage included)",
      `peak MB with V8 held to a ${m.heapCapMb} MB heap (completes)`,
      "live peak MB (forced GC)",
      "target",
    ],
    [
      [
        `inside workerd: the whole Worker isolate (JS heap + buffers), producer and consumers together, ${m.isolateRestMb} MB before the run (${m.isolateSamples} samples)`,
        m.isolatePeakMb,
        "",
        "",
        "< 128 (the isolate limit)",
      ],
      ["inside workerd: the same once the producer is done (consumers only)", m.isolateConsumersOnlyPeakMb, "", "", ""],
      [
        `inside workerd: the same isolate after the run completed, while the export job wrote the four files to R2 (${s(m.isolateMaterialiseSeconds)} s; only ${m.isolateMaterialiseSamples} samples: workerd's inspector, like every request, is hardly answered while the job runs)`,
        m.isolateMaterialisePeakMb,
        "",
        "",
        "< 128 (the isolate limit)",
      ],
      [
        `inside workerd, production concurrency: the extraction job and up to ${m.isolateConcurrency.maxConcurrency}${m.isolateConcurrency.configured ? "" : " (no max_concurrency in wrangler.toml: fallback)"} chunk-consumer invocations of ${m.isolateConcurrency.maxBatchSize} messages in one isolate (bench/concurrent/worker.ts; each D1 batch held ${m.isolateConcurrency.d1LatencyMs} ms; seen ${m.isolateConcurrency.maxInFlight} in flight at once, ${m.isolateConcurrency.maxInFlightDuringJob} while the job ran; ${m.isolateConcurrency.rows} rows), ${m.isolateConcurrentRestMb} MB before the run (${m.isolateConcurrentSamples} samples; live: ${m.isolateConcurrentLiveSamples}); ${m.isolateConcurrentJobPeakMb} MB while the job ran`,
        m.isolateConcurrentPeakMb,
        "",
        m.isolateConcurrentLivePeakMb,
        "< 128 (the isolate limit)",
      ],
      [
        "producer: download → MD5 → gunzip → chunk messages → sendBatch",
        m.producerPeakMb,
        m.producerCappedPeakMb === null ? `**FAILED**: ${m.producerHeap16Error}` : m.producerCappedPeakMb,
        m.producerLivePeakMb,
        "≤ 64",
      ],
      [
        `one consumer invocation (${r.config.maxBatchSize} chunks of ${r.config.chunkSize})`,
        m.consumerPeakMb,
        m.consumerCappedPeakMb,
        m.consumerLivePeakMb,
        "≤ 32",
      ],
      [
        "workerd RSS, whole local runtime incl. D1 and Queues (idle → peak)",
        `${m.workerdRssIdleMb} → ${m.workerdRssPeakMb}`,
        "",
        "",
        "context only",
      ],
    ],
  );
  const c = r.cost;
  const inv = c.perConsumerInvocation;
  const cost = table(
    ["cost of one run", "value"],
    [
      ["rows written", c.rows],
      [
        "queue messages (jobs + chunks)",
        `${c.queueMessages.jobs} + ${c.queueMessages.chunks} (largest chunk message ${c.queueMessages.largestChunkBytes} B)`,
      ],
      ["sendBatch calls", c.sendBatchCalls],
      ["consumer invocations (at least)", c.consumerInvocationsAtLeast],
      [
        "D1 statements per chunk",
        `${c.d1StatementsPerChunk} (${inv.insertsPerChunk} INSERTs + ledger row; a delivery's chunks share one batch, plus progress and run state)`,
      ],
      ["D1 statements per consumer invocation, worst case", `${inv.d1Queries} (limit 50)`],
      ["subrequests per consumer invocation, worst case", `${inv.subrequests} (limit 50)`],
      [
        "subrequests of the producer invocation",
        `${c.producerSubrequests} (limit 1,000 per invocation; heartbeats besides: see Scaling)`,
      ],
      ["D1 statements in the whole run", c.d1StatementsTotal],
      ["bytes stored: D1 pixel BLOBs", c.bytesStored.d1Pixels],
      ["bytes through idx-etl-chunks (the pixels ride in the messages)", c.queueBytes],
      [
        "cross-check in local D1 after the last run",
        `${r.crossCheck.d1Rows} rows, ${r.crossCheck.d1PixelBytes} pixel bytes, ${r.crossCheck.runChunks}/${r.crossCheck.chunksTotal} chunks in run_chunks: ${r.crossCheck.agrees ? "agrees" : "**DISAGREES**"}`,
      ],
    ],
  );
  const bl = r.bill;
  const P = bl.prices;
  const cols = [bl.load, bl.cron, bl.export];
  const bill = table(
    ["billed unit", "one full load (forced)", "one unchanged daily cron run", "one full export (4 files)"],
    [
      ["Workers requests (HTTP, cron, queue consumer invocations)", ...cols.map((c) => int(c.usage.requests))],
      [
        "Workers CPU ms (upper bound: all of workerd's CPU, local D1 and Queues included)",
        ...cols.map((c) => int(c.usage.cpuMs)),
      ],
      ["Queues operations (64 KB units written + read + deleted)", ...cols.map((c) => int(c.usage.queueOperations))],
      ["D1 rows read (meta.rows_read)", ...cols.map((c) => int(c.usage.d1RowsRead))],
      ["D1 rows written (meta.rows_written)", ...cols.map((c) => int(c.usage.d1RowsWritten))],
      [
        "R2 class A operations (put, list, multipart create / part / complete)",
        ...cols.map((c) => int(c.usage.r2ClassA)),
      ],
      ["R2 class B operations (get, head)", ...cols.map((c) => int(c.usage.r2ClassB))],
      ["R2 deletes (free operations)", ...cols.map((c) => int(c.usage.r2Free))],
      ["R2 bytes put (billed as storage, below)", ...cols.map((c) => int(c.usage.r2BytesPut))],
      ["$ Workers requests", ...cols.map((c) => usd(c.dollars.requests))],
      ["$ Workers CPU", ...cols.map((c) => usd(c.dollars.cpu))],
      ["$ Queues", ...cols.map((c) => usd(c.dollars.queues))],
      ["$ D1 rows read", ...cols.map((c) => usd(c.dollars.d1RowsRead))],
      ["$ D1 rows written", ...cols.map((c) => usd(c.dollars.d1RowsWritten))],
      ["$ R2 operations", ...cols.map((c) => usd(c.dollars.r2))],
      ["**$ total**", ...cols.map((c) => `**${usd(c.dollars.total)}**`)],
    ],
  );
  const prices = table(
    [
      "product",
      "unit",
      `price (${P.currency}, beyond the Workers Paid plan's monthly inclusion)`,
      "included per month",
      "source",
    ],
    [
      [
        "Workers",
        "requests",
        `${price(P.workers.perMillionRequests)} / million`,
        int(P.workers.includedRequests),
        P.workers.source,
      ],
      [
        "Workers",
        "CPU time",
        `${price(P.workers.perMillionCpuMs)} / million CPU-ms`,
        int(P.workers.includedCpuMs),
        P.workers.source,
      ],
      [
        "Queues",
        `operations (one per ${P.queues.operationBytes / 1000} KB written, read or deleted, per message)`,
        `${price(P.queues.perMillionOperations)} / million`,
        int(P.queues.includedOperations),
        P.queues.source,
      ],
      ["D1", "rows read", `${price(P.d1.perMillionRowsRead)} / million`, int(P.d1.includedRowsRead), P.d1.source],
      [
        "D1",
        "rows written (an index entry is one more)",
        `${price(P.d1.perMillionRowsWritten)} / million`,
        int(P.d1.includedRowsWritten),
        P.d1.source,
      ],
      ["D1", "storage", `${price(P.d1.perGbMonth)} / GB-month`, `${P.d1.includedGb} GB`, P.d1.source],
      [
        "R2 (the exports)",
        "class A / class B operations (deletes are free), storage",
        `${price(P.r2.perMillionClassA)} / ${price(P.r2.perMillionClassB)} per million, ${price(P.r2.perGbMonth)} / GB-month`,
        `${int(P.r2.includedClassA)} / ${int(P.r2.includedClassB)}, ${P.r2.includedGbMonth} GB-month (R2's free tier)`,
        P.r2.source,
      ],
    ],
  );
  const scaling = r.scaling ? renderScaling(r.scaling) : "(skipped: --scale 0)";
  const cfg = r.config;
  const config = `CHUNK_SIZE=${cfg.chunkSize}, ROWS_PER_STATEMENT=${cfg.rowsPerStatement}, idx-etl-chunks max_batch_size=${cfg.maxBatchSize}, max_batch_timeout=${cfg.maxBatchTimeout}, max_concurrency=${cfg.maxConcurrency ?? "default"}${Object.keys(cfg.vars).length ? `; --var ${JSON.stringify(cfg.vars)}` : ""}`;
  if (opts.brief) return [timing, "", floors, "", readPath, "", memory, "", cost, "", bill, "", scaling].join("\n");
  const machine = Object.entries(r.machine)
    .map(([k, v]) => `${k}: ${v}`)
    .join(", ");
  let notes = "";
  try {
    notes = readFileSync("bench/alternatives.md", "utf8");
  } catch {}
  return `# Benchmark: idx-etl vs the Python baseline

Generated by \`npm run bench\` (${r.reps} alternating repetitions each, after one untimed warm-up run).
Machine: ${machine}.
Config: ${config}.

Baseline time is the script's own \`seconds=\` (decompress + normalise + insert + commit, excluding interpreter start);
ours is wall time from POST /runs to the run's \`finishedAt\` (its swap committed; the server's clock is this machine's; runs
polled every 50 ms), with \`wrangler dev\` already up (a frozen bundle of src/index.ts: bench/lib/etl.ts). Not the first
GET /runs/:id that shows \`complete\`, as before exports were materialised: locally, a request sent around the completion
is answered only after the export job queued then has finished (even /openapi.json, which touches neither D1 nor R2; on
an idle dev server the same job leaves requests answered within milliseconds), so that sighting came a median ${s(r.ours.observedSeconds.median)} s after the trigger. workerd's CPU over each timed run (to
\`finishedAt\`, from samples every 100 ms): median ${s(r.ours.workerdCpuSeconds.median)} s
(${s(r.ours.workerdCpuSeconds.min)}–${s(r.ours.workerdCpuSeconds.max)}): the local runtime is busy for nearly all of the wall time, on one thread.
After \`finishedAt\` the bench waits, outside that time, until GET /datasets/{name} shows the run's version with
\`exportsStored\`: the job queued after the run (src/pipeline/materialise.ts) has written its four .npy files to R2
(reading them from D1: each split's rows once for its images file and once for its labels file). The jobs queue runs one job at a time, so without that wait the next run's extraction would queue
behind it and the next baseline would overlap it. That materialisation took a median ${s(r.ours.materialiseSeconds.median)} s
(${s(r.ours.materialiseSeconds.min)}–${s(r.ours.materialiseSeconds.max)}; workerd CPU ${s(r.ours.materialiseWorkerdCpuSeconds.median)} s).

## Time

${timing}

### The floor: local D1 alone, in each layout and transaction size

Each variant stores the same 70,000 rows (60,000 train + 10,000 test) of \`randomblob(3136)\` in the same workerd D1
the ETL uses, timed from the first transaction to the last commit; afterwards (untimed) \`SELECT split, idx, label,
pixels FROM floor_images\` must return every row at its size (the data contract's shape). Variants run round-robin
after one warm-up round, alternating with the baseline. \`rows_written\` is what D1 reports (and bills); DB size is
D1's \`size_after\`.

${floors}

## Read path

The same run, after the timed loads, in one Python process (bench/export_read.py), alternating and after one untimed
round of each, ${rp.ours.samples.length} times each; ${(rp.bytes / 1e6).toFixed(1)} MB of arrays. Ours streams the files
materialised in R2 after the load (the untimed round checks that every response says \`X-Export-Source: r2\`): no
image row is read from D1, only the catalog row. For context, not measured here: the D1-read path the exports took
before (every page of rows read from D1 and encoded per request) last measured a median 7.92 s for the four files,
export_ratio 3.83 (2026-11-27 08:48, the same machine).

${readPath}

## Memory

Method: ${m.method}. The consumer probe builds the real D1 statements (${m.consumerParamMb} MB of bound parameters per invocation) but cannot see the copy workerd makes when it sends them to D1.

${memory}

The bench's check \`producer_heap16\`: **${m.producerHeap16}** — the producer ${m.producerHeap16 === "ok" ? "completed" : `did not complete (${m.producerHeap16Error})`} with V8's heap held to ${m.heapCapMb} MB (\`--max-old-space-size\`); \`npm run bench\` exits non-zero when it does not.

## Cost

${cost}

### In dollars

What the meters counted (bench/metered/worker.ts: each D1 query's \`meta.rows_read\` / \`rows_written\`, each
invocation, each message written and delivered with its 64 KB units, each call on the exports' R2 bucket by the class
R2 bills it as) in a second dev server running the same Worker with the meters around it, for one forced full load
(after a first), one unchanged daily cron run (the cron handler, then its job finding the same archive MD5s) and one
full export (the four .npy files, each checked to be served from R2), priced at the rates below. The load's column
includes the export job that follows it (the bench waits for it): the materialisation's cost in the ETL measured, its
D1 rows read (each split's rows once per file, images and labels), its R2 heads, puts and list, and its delete of the
older version's files. The
cron run queues that job too, which finds the files stored and writes nothing. Queue consumer invocations are counted as requests. Within the plan's monthly inclusions
each of these costs $0 at the margin; the plan itself is $${P.monthlyMinimum} a month.
One copy of the dataset in D1 takes ${(bl.storage.bytes / 1e6).toFixed(1)} MB (\`size_after\`): ${usd(bl.storage.dollarsPerMonth)} a month
at the storage rate, $0 inside the 5 GB included; a load holds two copies until its swap.
One copy of the exports in R2 takes ${(bl.r2Storage.bytes / 1e6).toFixed(1)} MB (the four files; the forced load put ${(bl.r2Storage.bytesPut / 1e6).toFixed(1)} MB):
${usd(bl.r2Storage.dollarsPerMonth)} a month at R2's storage rate, $0 inside its ${P.r2.includedGbMonth} GB-month free; a load holds two
versions' files from its export job's puts until that job deletes the older ones.

${bill}

Prices: Cloudflare's published pricing pages, read ${P.retrieved} (${P.note}):

${prices}

## Scaling

${scaling}

${notes}`;
}

const mbOf = (bytes: number) => (bytes / 1e6).toFixed(1);

function segmentRows(segs: readonly Segment[], capped: readonly Segment[] | undefined): (string | number)[][] {
  return segs.map((g, i) => [
    i + 1,
    g.from,
    g.chunks,
    g.sendBatchCalls,
    g.fetches,
    `${g.d1.total} (${g.d1.pin} pins, ${g.d1.ledger} ledger, ${g.d1.heartbeat} heartbeats, ${g.d1.run} run state)`,
    g.queueSends,
    `**${g.subrequests}**`,
    s(g.cpuSeconds),
    capped?.[i] ? s(capped[i]!.cpuSeconds) : "",
    s(g.wallSeconds),
    g.peakMb,
    capped?.[i] ? capped[i]!.peakMb : "",
  ]);
}

function renderScaling(sc: ScalingResult): string {
  const L = sc.limits;
  const head = [
    "job",
    "from chunk",
    "chunks sent",
    "sendBatch calls",
    "fetches",
    "D1 calls",
    "jobs queued",
    "subrequests",
    "CPU s",
    `CPU s (${sc.heapCapMb} MB heap)`,
    "wall s",
    "peak MB (heap + buffers)",
    `peak MB (${sc.heapCapMb} MB heap)`,
  ];
  const run = sc.run;
  const jobs = table(head, segmentRows(run.segments, sc.capped?.segments));
  const small = table(head, segmentRows(sc.small.segments, undefined));
  const m = sc.maxima;
  const c = sc.checks;
  const verdict = (x: string) => (x === "ok" ? "ok" : "**FAIL**");
  const limits = table(
    ["per invocation (a queue consumer, Workers Paid)", "most in any job", "limit", ""],
    [
      [
        "subrequests (fetches + D1 calls + sendBatch + send), as measured",
        m.subrequests,
        int(L.subrequests),
        verdict(m.subrequests <= L.subrequests ? "ok" : "fail"),
      ],
      [
        `  with the heartbeats of a job that ran for the whole ${L.wallSeconds / 60}-minute wall-time limit`,
        m.subrequestsAtWallLimit,
        int(L.subrequests),
        verdict(c.subrequests),
      ],
      [
        "CPU seconds (V8 collecting by its own heuristics)",
        s(m.cpuSeconds),
        `${L.cpuSeconds} (default)`,
        verdict(c.cpu),
      ],
      [
        `  V8 held to a ${sc.heapCapMb} MB heap (collecting all the time: pessimistic, no isolate is held so)`,
        sc.cappedMaxima ? s(sc.cappedMaxima.cpuSeconds) : "",
        "",
        "",
      ],
      [
        `memory: peak MB, V8 held to a ${sc.heapCapMb} MB heap (must complete)`,
        sc.cappedMaxima ? sc.cappedMaxima.peakMb : `did not complete: ${sc.cappedError}`,
        L.memoryMb,
        verdict(c.memory),
      ],
      ["memory: peak MB, V8 collecting lazily (garbage included)", m.peakMb, L.memoryMb, ""],
      [
        "every planned chunk sent exactly once, the run left loading",
        `${run.chunksSent} of ${run.chunksTotal}, ${run.duplicates} twice, run ${run.runStatus}`,
        "",
        verdict(c.whole),
      ],
    ],
  );
  const ex = sc.export;
  const exports = table(
    [
      "file",
      "rows",
      "rows / page",
      "pages",
      "D1 queries",
      "MB / page (as hex from D1)",
      "file MB",
      `free plan (${ex.limits.free})`,
      `paid plan (${int(ex.limits.paid)})`,
    ],
    ex.files.map((f) => [
      f.file,
      int(f.rows),
      int(f.pageRows),
      f.pages,
      f.queries,
      f.pageHexChars > 0 ? `${mbOf(f.pageBytes)} (${mbOf(f.pageHexChars)})` : mbOf(f.pageBytes),
      mbOf(f.fileBytes),
      verdict(f.free),
      verdict(f.paid),
    ]),
  );
  const rows = sc.counts.train + sc.counts.test;
  return `A synthetic set the size of ${sc.dataset}${sc.scale === 1 ? "" : ` × ${sc.scale}`}: ${int(sc.counts.train)} train + ${int(sc.counts.test)} test images
(${int(rows)}), 28×28, ${sc.dataset}'s file names, labels i mod its class count, images Fashion-MNIST's taken in turn
(they compress worse than EMNIST's handwriting: a conservative stand-in for inflating), ${mbOf(sc.archiveBytes)} MB of gzip
generated in ${s(sc.generateSeconds)} s into a temp directory and removed after. The extraction job itself (src/pipeline/job.ts
consumeJobs, bench/scale-job.ts) runs under Node (${"`"}node --expose-gc${"`"}) with the archives read from disk as fetch
Responses, D1 as Node's SQLite with the migrations (every call through the binding counted, by what its SQL is for),
and queues that keep what they are sent; each job queued is delivered after the one before, as the jobs queue
(max_concurrency = 1) does, and the ledger gets the rows the chunk consumers would have committed in between.
JOB_MAX_CHUNKS=${run.jobMaxChunks}, CHUNK_SIZE=${run.chunkSize}, a heartbeat every ${run.leaseSeconds / 4} s. CPU is the
process's (process.cpuUsage: every thread, GC and SQLite included), on this machine; the memory peak is V8's heap in
use plus external memory (ArrayBuffers), sampled every 5 ms and at each sendBatch. Largest chunk message
${int(run.maxMessageBytes)} B serialized, largest sendBatch ${int(run.maxBatchBytes)} B in ${run.maxBatchMessages} messages.
Every job downloads and inflates the archives from their start (a gzip stream cannot be entered midway) and sends
only its own segment, so the last job inflates the whole dataset.

${jobs}

${limits}

The default dataset's job, the same way (${int(sc.small.rows)} images, one job):

${small}

The export of such a dataset (src/read/export.ts pageRows, MAX_PAGE_BYTES; each request also reads the catalog
and the split's extent): one request for a whole file, against the D1 queries one invocation may make.

${exports}`;
}
