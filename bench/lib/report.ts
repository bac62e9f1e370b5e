/** bench/results.md (one page, generated) and the summary line, from one run's figures. */
import type { BusyPath } from "./busy";
import type { BenchConfig, Dollars, Usage } from "./cost";
import { PRICES } from "./cost";
import type { Metered } from "./etl";
import type { FloorVariant, StackPart } from "./floor";
import { topFunctions, type CpuShare } from "./isolate";
import type { Projection } from "./projection";
import { round, type Summary } from "./stats";

type Billed<T> = Metered<T> & { cpu: CpuShare; cpuSeconds: number; usage: Usage; dollars: Dollars };
type FloorRow = FloorVariant & Summary & { buildSeconds: number; transactions: number; textBytes: number };
type StackRow = { part: StackPart; wall: Summary; cpu: Summary; thread: Summary };

export interface Results {
  machine: Record<string, string | number>;
  config: BenchConfig;
  reps: number;
  seed: Summary;
  ours: Summary;
  rows: number;
  extract: Summary;
  exportWait: Summary;
  ratio: number;
  floor: { variants: FloorRow[]; worker: FloorRow; blob: FloorRow };
  /** What the required stack adds, part by part, and the Worker floor plus their thread time. */
  stack: { parts: StackRow[]; floor: number };
  etlOverWorkerFloor: number;
  etlOverStackFloor: number;
  etlOverFloor: number;
  read: { ours: number[]; seed: number[]; bytes: number; ratio: number };
  whole: { whole: Summary; seedWall: Summary; ratio: number };
  busy: { p99: number; exportSeconds: number; paths: BusyPath[] };
  /** Every isolate profiled through a load (until complete) and through the floor's ETL-shaped variant. */
  cpu: { load: CpuShare; floor: CpuShare; floorVariant: string };
  memory: { restMb: number; loadPeakMb: number; exportPeakMb: number; samples: number };
  bill: { load: Billed<unknown>; cron: Billed<unknown>; exportAll: Billed<number> };
  projections: Projection[];
}

const STACK_LABELS: Record<StackPart, string> = {
  archives: "the four archives checked and inflated (fflate, CRC-32 and length, MD5)",
  queue: "the load's chunk messages through local Queues (v8, CHUNK_SIZE images each)",
  mirror: "the four archives stored in local R2 (the raw-archive mirror)",
};

const s2 = (x: number) => x.toFixed(2);
const range = (s: Summary) => `${s2(s.median)} (${s2(s.min)}–${s2(s.max)})`;
const usd = (x: number) => `$${x < 0.001 ? x.toFixed(6) : x.toFixed(4)}`;
const int = (x: number) => Math.round(x).toLocaleString("en-US");
const ms = (x: number) => (Number.isFinite(x) ? int(x) : "–");
const table = (head: string[], rows: (string | number)[][]) =>
  [`| ${head.join(" | ")} |`, `|${head.map(() => "---").join("|")}|`, ...rows.map((r) => `| ${r.join(" | ")} |`)].join(
    "\n",
  );

/** The isolates that used the most of workerd's thread, by their share of the profile samples. */
function threadShares(cpu: CpuShare): string {
  const total = Object.values(cpu.samples).reduce((a, b) => a + b, 0);
  return Object.entries(cpu.samples)
    .filter(([, n]) => n / total >= 0.01)
    .sort((a, b) => b[1] - a[1])
    .map(([id, n]) => `${id} ${((100 * n) / total).toFixed(0)}%`)
    .join(", ");
}

/** Each isolate's CPU seconds (its share of the samples × workerd's CPU) in the load and in the floor. */
function whereTimeGoes(r: Results): string {
  // Isolate → CPU seconds, the Worker's (another id in each server) under one name.
  const byIsolate = (cpu: CpuShare) => {
    const total = Object.values(cpu.samples).reduce((a, b) => a + b, 0);
    return new Map(
      Object.entries(cpu.samples).map(([id, n]) => [
        id === cpu.workerId ? "the Worker" : id,
        total > 0 ? (cpu.processSeconds * n) / total : 0,
      ]),
    );
  };
  const { load, floor } = r.cpu;
  const [inLoad, inFloor] = [byIsolate(load), byIsolate(floor)];
  const rows = [...new Set([...inLoad.keys(), ...inFloor.keys()])]
    .map((name) => ({ name, load: inLoad.get(name) ?? 0, floor: inFloor.get(name) ?? 0 }))
    .filter((x) => x.load >= 0.05 || x.floor >= 0.05)
    .sort((a, b) => b.load - a.load);
  const top = (cpu: CpuShare) =>
    topFunctions(cpu.profiles[cpu.workerId]!, 8)
      .map((f) => `${f.name} ${(100 * f.share).toFixed(0)}%`)
      .join(", ");
  return `${table(
    ["isolate", "the ETL, trigger → complete (CPU s)", `the Worker floor \`${r.cpu.floorVariant}\` (CPU s)`],
    [
      ...rows.map((x) => [x.name, s2(x.load), s2(x.floor)]),
      ["**workerd in all**", `**${s2(load.processSeconds)}**`, `**${s2(floor.processSeconds)}**`],
    ],
  )}

The Worker isolate's busiest functions (share of its samples): in the ETL ${top(load)}; in the floor ${top(floor)}.`;
}

export function summaryLine(r: Results): string {
  return [
    `ratio=${round(r.ratio)}`,
    `etl_over_worker_floor=${round(r.etlOverWorkerFloor)}`,
    `etl_over_stack_floor=${round(r.etlOverStackFloor)}`,
    `etl_over_floor=${round(r.etlOverFloor)}`,
    `export_ratio=${round(r.read.ratio)}`,
    `whole_command_ratio=${round(r.whole.ratio)}`,
    `busy_p99_ms=${Math.round(r.busy.p99)}`,
    `isolate_peak_mb=${r.memory.loadPeakMb}`,
    `usd_per_load=${r.bill.load.dollars.total.toFixed(4)}`,
    `worker_cpu_s=${round(r.bill.load.cpuSeconds)}`,
    `etl_s=${round(r.ours.median)}`,
    `seed_s=${round(r.seed.median)}`,
    `worker_floor_s=${round(r.floor.worker.median)}`,
    `stack_floor_s=${round(r.stack.floor)}`,
    `floor_s=${round(r.floor.blob.median)}`,
    `whole_s=${round(r.whole.whole.median)}`,
    `export_wait_s=${round(r.exportWait.median)}`,
    `usd_per_cron=${r.bill.cron.dollars.total.toFixed(6)}`,
    `usd_per_export=${r.bill.exportAll.dollars.total.toFixed(6)}`,
  ].join(" ");
}

export function renderMarkdown(r: Results): string {
  const m = r.machine;
  const c = r.config;
  const { load, cron, exportAll } = r.bill;
  const bills = [load, cron, exportAll];
  // The bench itself keeps about one core busy: more than all of them means other work ran beside it.
  const cores = Number(String(m.cpus).split(" ")[0]);
  const shared = [m.loadStart, m.loadEnd].some((l) => Number(String(l).split(" ")[0]) > cores);
  return `# Benchmark: idx-etl against the seed's script and the floors

Generated by \`npm run bench\` (bench/README.md says what each figure means), ${r.reps} alternating repetitions after
a warm-up, ${m.date}. Machine: ${m.cpus}, ${m.memGb} GB, Node ${m.node}, workerd ${m.workerd}, wrangler ${m.wrangler},
${m.python}; load average ${m.loadStart} at the start, ${m.loadEnd} at the end${shared ? ": **a shared machine**, other sessions' work ran beside the bench, so figures move between runs; compare ratios, which are taken within this run" : ""}.
Config: CHUNK_SIZE=${c.chunkSize}, ROWS_PER_STATEMENT=${c.rowsPerStatement}, chunk consumer max_batch_size=${c.maxBatchSize},
max_batch_timeout=${c.maxBatchTimeout}, max_concurrency=${c.maxConcurrency}.

${table(
  ["figure", "value", "goal"],
  [
    ["ratio: the ETL (trigger → complete) / the seed's script", s2(r.ratio), "–"],
    ["etl_over_worker_floor: the ETL / the Worker floor", s2(r.etlOverWorkerFloor), "≤ 1.5"],
    [
      "etl_over_stack_floor: the ETL / the Worker floor plus what the required stack adds",
      s2(r.etlOverStackFloor),
      "–",
    ],
    ["etl_over_floor: the ETL / local D1's randomblob() floor (context)", s2(r.etlOverFloor), "–"],
    ["export_ratio: the four .npy files read with numpy / the seed's SQLite read", s2(r.read.ratio), "≤ 2"],
    [
      "whole_command_ratio: `npm run etl -- --source DIR`, fresh state / the seed's wall time",
      s2(r.whole.ratio),
      "≤ 6",
    ],
    ["busy_p99_ms: GET /runs/{id} and /datasets/{name} through a load and its export job", ms(r.busy.p99), "≤ 500"],
    ["isolate_peak_mb: the Worker isolate during a load, garbage included", r.memory.loadPeakMb, "< 128"],
    ["usd_per_load: a forced load and its export job at Cloudflare's prices", usd(load.dollars.total), "–"],
  ],
)}

## Time (seconds: median (min–max), ${r.rows} rows)

${table(
  ["what", "s"],
  [
    ["the seed's script (its own `seconds=`), beside the ETL", range(r.seed)],
    ["the ETL, trigger → the run's finishedAt", range(r.ours)],
    ["  of which extraction (trigger → loading)", range(r.extract)],
    ["  then the export job, until exportsStored (not in the ETL's time)", range(r.exportWait)],
    ...r.floor.variants.map((v) => [
      v.kind === "rows"
        ? `Worker floor \`${v.name}\`: ${v.perTransaction}-row transactions${v.inflight ? `, ${v.inflight} in flight` : ""} (building ${s2(v.buildSeconds)} s)${v === r.floor.worker ? " **fastest**" : ""}`
        : `randomblob() floor \`${v.name}\`: ${v.transactions} transaction(s)`,
      range(v),
    ]),
    ["`npm run etl -- --source DIR`, whole, fresh state", range(r.whole.whole)],
    ["the seed's script as a process (wall time), beside it", range(r.whole.seedWall)],
  ],
)}

The Worker floor binds the real rows' packed hex (${(r.floor.worker.textBytes / 1e6).toFixed(0)} MB of text, ${r.floor.worker.perStatement}
rows per INSERT) from a Worker into local D1; "building" is its encoding and statement building, part of its time.
The randomblob() floor writes the rows in SQL: no bytes cross the binding.

What the required stack adds to the Worker floor, each part alone in the floor's Worker (bench/floor/stack.ts), beside
the ETL in every repetition. A part counts for its time on workerd's thread: the lesser of its wall time and workerd's
CPU over it (the queue waits between deliveries, time a load fills with other work). The Worker floor plus these
is **${s2(r.stack.floor)} s**: ${s2(r.stack.floor / r.floor.worker.median)}× the Worker floor, before any of the
product's own work (chunk digests, the ledger, the count before the swap, extraction's requests).

${table(
  ["part", "wall s", "workerd CPU s", "on the thread s"],
  r.stack.parts.map((p) => [STACK_LABELS[p.part], range(p.wall), range(p.cpu), range(p.thread)]),
)}

Read path (bench/export_read.py, ${(r.read.bytes / 1e6).toFixed(1)} MB of arrays, bit-identical, ours streamed from R2): ours
${r.read.ours.map(s2).join(", ")} s, the seed's ${r.read.seed.map(s2).join(", ")} s.

## The API while a job runs

Each path requested every 250 ms whether or not the last answer came (open loop), from the forced run's trigger until
its exports were stored (${s2(r.busy.exportSeconds)} s after complete). Latency in ms.

${table(
  ["path", "requests", "p50", "p99", "max", "p99 during the load", "p99 during the export job"],
  r.busy.paths.map((p) => [p.path, p.count, ms(p.p50), ms(p.p99), ms(p.max), ms(p.loadP99), ms(p.exportP99)]),
)}

## Where the load's time goes

Locally one workerd thread runs every isolate, so the ETL's time is the CPU of all of them. Each was profiled
through one more load (trigger → complete) and one more run of the floor's shape, and workerd's CPU (/proc) is shared
out by their samples (bench/lib/isolate.ts; a profiled run is slower than an unprofiled one).

${whereTimeGoes(r)}

## Memory and CPU

The Worker isolate (Runtime.getHeapUsage through workerd's inspector, ${r.memory.samples} samples, garbage included):
${r.memory.restMb} MB before the run, **${r.memory.loadPeakMb} MB** peak until complete, ${r.memory.exportPeakMb} MB during the export job.
Worker CPU: every isolate of workerd (the Worker, local D1, Queues, R2 run on one thread) profiled at once, and the
Worker's share of the samples applied to the CPU the workerd process used (bench/lib/isolate.ts; workerd reports no
CPU time in local tail events); workerd's CPU is shown for context. Of workerd's thread during the load and its
export job: ${threadShares(load.cpu)}.

${table(
  ["billed unit", "a forced load + its export job", "an unchanged cron run", "a full export (4 files from R2)"],
  [
    ["Worker CPU s (profiled)", ...bills.map((b) => s2(b.cpuSeconds))],
    ["workerd CPU s (context)", ...bills.map((b) => s2(b.workerdCpuSeconds))],
    ["wall s", ...bills.map((b) => s2(b.wallSeconds))],
    ["Workers requests (HTTP, cron, queue invocations)", ...bills.map((b) => int(b.usage.requests))],
    ["Queues operations (64 KB units)", ...bills.map((b) => int(b.usage.queueOperations))],
    ["D1 rows read / written", ...bills.map((b) => `${int(b.usage.d1RowsRead)} / ${int(b.usage.d1RowsWritten)}`)],
    ["R2 class A / class B", ...bills.map((b) => `${b.usage.r2ClassA} / ${b.usage.r2ClassB}`)],
    ["$ Workers CPU", ...bills.map((b) => usd(b.dollars.cpu))],
    ["**$ total**", ...bills.map((b) => `**${usd(b.dollars.total)}**`)],
  ],
)}

Prices in USD beyond the Workers Paid plan's monthly inclusions (Cloudflare's pricing pages for Workers, Queues, D1
and R2, stored copies read ${PRICES.retrieved}; bench/lib/cost.ts): requests $${PRICES.workers.perMillionRequests}/M,
CPU $${PRICES.workers.perMillionCpuMs}/M ms, queue operations $${PRICES.queues.perMillionOperations}/M, D1 rows read
$${PRICES.d1.perMillionRowsRead}/M and written $${PRICES.d1.perMillionRowsWritten}/M, R2 class A
$${PRICES.r2.perMillionClassA}/M and B $${PRICES.r2.perMillionClassB}/M.
One copy in D1: ${(load.meter.d1.sizeAfter / 1e6).toFixed(1)} MB; the exports in R2: ${(exportAll.result / 1e6).toFixed(1)} MB.

## Production estimate (not measured)

From D1's documented model (one database executes one query at a time): a transaction's execution is the Worker
floor's time per ${c.chunkSize * c.maxBatchSize}-row transaction here less its statement building (so it assumes
Cloudflare's SQLite is as fast as this machine's${shared ? ", which was busy" : ""}), plus an assumed round trip, with
max_concurrency consumers (bench/lib/projection.ts). The extraction job overlaps the loads and is left out.

${table(
  [
    "dataset",
    "rows",
    "transactions",
    "execution ms (measured here)",
    "round trip ms (assumed)",
    "consumers",
    "D1 serial s",
    "consumers s",
    "**estimate s**",
  ],
  r.projections.map((p) => [
    p.dataset,
    int(p.rows),
    int(p.transactions),
    p.execMs.toFixed(1),
    p.roundTripMs,
    p.concurrency,
    p.writerSeconds.toFixed(1),
    p.consumerSeconds.toFixed(1),
    `**${p.estimateSeconds.toFixed(0)}**`,
  ]),
)}

${summaryLine(r)}
`;
}
