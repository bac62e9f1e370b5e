/**
 * `npm run bench`: our ETL against the Python baseline it replaces, side by side
 * on the same machine, in one invocation.
 *
 *   npm run bench -- [--data DIR] [--reps N] [--scale F|0] [--var NAME=VALUE ...] [--no-write]
 *
 * 1. Wall time, alternating: the baseline (`python3 seed_baseline.py`), then one
 *    full ETL on the local Worker (POST /runs force:true → GET /runs/:id shows
 *    complete; `wrangler dev` is started once, before timing, on a frozen bundle
 *    of src/index.ts in a state directory of its own: bench/lib/etl.ts), N times each.
 *    After each run completes, the bench waits (untimed in the ETL's figure) for
 *    the job that follows it to write the exports to R2 (pipeline/materialise.ts):
 *    GET /datasets/{name} shows the version with exportsStored; that wait is the
 *    materialisation time (materialise_s=).
 * 2. Peak memory: inside workerd, the Worker isolate's heap and buffers during a
 *    whole (untimed) run, read through the inspector (bench/lib/isolate.ts); and
 *    under Node on the same modules (bench/lib/memory.ts), the producer path and
 *    one chunk-consumer invocation apart; plus workerd's RSS. The producer must
 *    complete with V8 held to a 16 MB heap (producer_heap16=ok|fail; a failure
 *    fails the bench, after the report).
 * 2a. The read path: a Python client downloading the four .npy exports (from
 *    R2, where they were materialised after the load) and loading them with numpy, against the seed's users reading the same arrays
 *    out of its SQLite file (sqlite3 + np.frombuffer), alternating
 *    (bench/export_read.py): export_ratio=.
 * 2b. The local D1 write floor: local D1 alone (bench/floor/worker.ts) storing
 *    the same 70,000 rows with randomblob(), in several layouts and transaction
 *    sizes (bench/lib/floor.ts): the ETL's own (rowid table per split, its
 *    transactions), the same layout in one transaction, and the WITHOUT ROWID
 *    layout it replaced; alternating with the baseline too. The floor is the
 *    fastest of them; etl_over_floor= is our median over it.
 * 2c. The isolate under production concurrency (untimed): one run in which the
 *    extraction job and up to max_concurrency chunk-consumer invocations share
 *    one isolate (bench/concurrent/worker.ts), its memory read as in step 2.
 * 3. The cost: the plan from the real planning/statement code and config,
 *    cross-checked against the local D1 after the runs; and in dollars at
 *    Cloudflare's published prices (bench/lib/cost.ts PRICES) from what the
 *    meters counted (bench/metered/worker.ts, in a second dev server: the timed
 *    one runs the Worker bare; R2 calls counted by class) for one forced full load
 *    (its materialisation to R2 included), one unchanged daily cron run and one
 *    full export (read from R2: X-Export-Source must say r2).
 * 4. Scaling (bench/lib/scaling.ts): a synthetic set the size of EMNIST ByClass
 *    (F× it; 814,255 images at F = 1), generated into a temp directory, through
 *    the extraction job itself, job after job as JOB_MAX_CHUNKS segments it
 *    (bench/scale-job.ts, under Node), once as V8 pleases and once with its
 *    heap held to 16 MB; each job's chunks, sendBatch calls, D1 calls, CPU and
 *    peak memory against a queue consumer's per-invocation limits
 *    (scale_limits=ok|fail fails the bench); and the export of such a dataset,
 *    its pages and bytes per page against the query budget. The default
 *    dataset's job is run the same way beside it.
 * Writes bench/results.json and bench/results.md; the last line is a summary:
 *   ratio=… etl_over_floor=… export_ratio=… producer_heap16=ok|fail isolate_peak_mb=… usd_per_load=… (more fields)
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { cpus, tmpdir, totalmem } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs, promisify } from "node:util";
import { gunzipSync } from "node:zlib";
import { FASHION_MNIST, registryEntry } from "../src/core/registry";
import { bundle, probe } from "./lib/child";
import {
  chunkConsumerSettings,
  CONCURRENT_D1_LATENCY_MS,
  measureConcurrentIsolate,
  type ConcurrentResult,
} from "./lib/concurrent";
import {
  benchConfig,
  dollars,
  PRICES,
  r2StorageDollarsPerMonth,
  runCost,
  storageDollarsPerMonth,
  usageFromMeter,
  type Usage,
} from "./lib/cost";
import { removeEtlState, startEtl, type EtlServer, type EtlTiming, type Metered } from "./lib/etl";
import { benchVariants, etlTransactions, startFloor, type FloorResult, type FloorVariant } from "./lib/floor";
import { mb, type MemoryReport } from "./lib/memory";
import { renderMarkdown, type Results } from "./lib/report";
import { findIsolateInspector, sampleIsolate, totalBytes } from "./lib/isolate";
import { cpuSampler, rssSampler, workerdRssBytes } from "./lib/rss";
import {
  exportPlan,
  JOB_LIMITS,
  QUERY_LIMITS,
  SCALE_DATASET,
  scalingChecks,
  type JobRun,
  type ScalingResult,
} from "./lib/scaling";
import { round, summarise } from "./lib/stats";
import { syntheticDataset } from "./lib/synthetic";

/** V8 old-space cap for the "capped" memory probes (MB). */
const HEAP_CAP_MB = 16;
const HEAP_CAP_FLAG = `--max-old-space-size=${HEAP_CAP_MB}`;

const run = promisify(execFile);
const BASELINE = "/work/shared/seed_baseline.py";

const { values } = parseArgs({
  options: {
    data: { type: "string", default: "../shared/fashion-mnist" },
    reps: { type: "string", default: "3" },
    scale: { type: "string", default: "1" },
    var: { type: "string", multiple: true, default: [] },
    "no-write": { type: "boolean", default: false },
  },
});
const dataDir = resolve(values.data);
const reps = Number(values.reps);
const scale = Number(values.scale);
if (!(Number.isInteger(reps) && reps >= 1)) throw new Error("--reps must be a positive integer");
if (!(Number.isFinite(scale) && scale >= 0))
  throw new Error(`--scale must be 0 (skip) or a multiple of ${SCALE_DATASET}'s size`);
const overrides = Object.fromEntries(
  values.var.map((v) => {
    const at = v.indexOf("=");
    if (at < 1) throw new Error(`--var wants NAME=VALUE, got "${v}"`);
    return [v.slice(0, at), v.slice(at + 1)];
  }),
);

const log = (s: string) => console.log(s);

async function baselineOnce(outDb: string): Promise<{ seconds: number; wallSeconds: number; rows: number }> {
  const t0 = performance.now();
  const { stdout } = await run("python3", [BASELINE, dataDir, outDb]);
  const wallSeconds = (performance.now() - t0) / 1000;
  const m = /rows=(\d+) seconds=([\d.]+)/.exec(stdout);
  if (!m) throw new Error(`baseline printed no "rows=… seconds=…": ${stdout}`);
  return { rows: Number(m[1]), seconds: Number(m[2]), wallSeconds };
}

interface ExportTimes {
  ours: number[];
  seed: number[];
  bytes: number;
}

/** The read path both ways, alternating, in one Python process (bench/export_read.py). */
async function exportTimes(url: string, seedDb: string, n: number): Promise<ExportTimes> {
  const { stdout } = await run("python3", ["bench/export_read.py", url, seedDb, String(n)], {
    maxBuffer: 16 * 1024 * 1024,
  });
  return JSON.parse(stdout.trim().split("\n").pop() ?? "") as ExportTimes;
}

/**
 * One full export as a client makes it (the four files, read to the end), for
 * the meters. Each must come from the files materialised in R2 after the load.
 */
async function exportOnce(url: string): Promise<number> {
  let bytes = 0;
  for (const f of ["train", "train-labels", "test", "test-labels"]) {
    const res = await fetch(`${url}/export/${f}.npy`);
    if (!res.ok) throw new Error(`GET /export/${f}.npy: HTTP ${res.status}`);
    const source = res.headers.get("X-Export-Source");
    bytes += (await res.arrayBuffer()).byteLength;
    if (source !== "r2")
      throw new Error(
        `GET /export/${f}.npy was served from ${source ?? "(no X-Export-Source header)"}, not from R2: the metered export must read the files materialised after the load`,
      );
  }
  return bytes;
}

/** The wait for a run's exports to reach R2 (bench/lib/etl.ts): the bench needs the bucket bound. */
function materialiseSeconds(t: EtlTiming): number {
  if (t.exportSeconds === null)
    throw new Error("wrangler.toml binds no EXPORTS bucket: the bench times and meters exports materialised in R2");
  return t.exportSeconds;
}

/** A metered piece of work, in the bill's units and dollars. */
function billed<T>(m: Metered<T>) {
  const usage: Usage = usageFromMeter(m.meter, m.workerdCpuSeconds);
  return { usage, dollars: dollars(usage), meter: m.meter, wallSeconds: round(m.wallSeconds) };
}

async function main(): Promise<void> {
  const machine = {
    nproc: cpus().length,
    cpu: cpus()[0]?.model ?? "unknown",
    memGb: round(totalmem() / 1e9, 1),
    node: process.version,
    workerd: JSON.parse(await readFile("node_modules/workerd/package.json", "utf8")).version as string,
    wrangler: JSON.parse(await readFile("node_modules/wrangler/package.json", "utf8")).version as string,
    python: (await run("python3", ["--version"])).stdout.trim(),
    numpy: (await run("python3", ["-c", "import numpy; print(numpy.__version__)"])).stdout.trim(),
    loadavg: (await readFile("/proc/loadavg", "utf8")).split(" ").slice(0, 3).join(" "),
    date: new Date().toISOString(),
  };
  const cfg = await benchConfig(overrides);
  log(
    `machine: ${machine.nproc} × ${machine.cpu}, ${machine.memGb} GB, node ${machine.node}, workerd ${machine.workerd}, load ${machine.loadavg}`,
  );
  log(
    `config: CHUNK_SIZE=${cfg.config.chunkSize} ROWS_PER_STATEMENT=${cfg.config.rowsPerStatement} max_batch_size=${cfg.consumer.maxBatchSize} max_batch_timeout=${cfg.consumer.maxBatchTimeout} max_concurrency=${cfg.consumer.maxConcurrency ?? "default"}`,
  );

  // 1. Wall time, alternating.
  const tmp = await mkdtemp(join(tmpdir(), "idx-etl-bench-"));
  const seedDb = join(tmp, "baseline.db");
  const token = randomBytes(24).toString("hex");
  const baseline: Awaited<ReturnType<typeof baselineOnce>>[] = [];
  const ours: EtlTiming[] = [];
  const ourCpu: number[] = [];
  const materialiseCpu: number[] = [];
  let load: Metered<EtlTiming> | undefined;
  let rssPeak = 0;
  let rssIdle = 0;
  let isolate:
    | {
        samples: number;
        restBytes: number;
        peakBytes: number;
        consumersOnlyPeakBytes: number;
        materialisePeakBytes: number;
        materialiseSeconds: number;
        materialiseSamples: number;
      }
    | undefined;
  let cron: Metered<EtlTiming> | undefined;
  let exportMeter: Metered<number> | undefined;
  let exportRead: ExportTimes | undefined;
  let etl: EtlServer | undefined;
  try {
    // The product bundle as it is: no meters around it while it is timed or its memory sampled.
    etl = await startEtl({ dataDir, vars: overrides, token, metered: false });
    const server = etl;
    // One untimed run warms the Worker, the local D1 file and its indexes.
    log("warm-up run …");
    await server.run();
    rssIdle = await workerdRssBytes(server.dev.pid);
    for (let i = 0; i < reps; i++) {
      const b = await baselineOnce(seedDb);
      baseline.push(b);
      const sampler = rssSampler(server.dev.pid);
      // Sampled: the run's completion is known only afterwards (its finishedAt), and its CPU is read at that moment.
      const cpu = cpuSampler(server.dev.pid, "workerd");
      const o = await server.run();
      const cpuRead = await cpu.stop();
      const cpuComplete = cpuRead.at(o.completeAt);
      ourCpu.push(cpuComplete - cpuRead.first);
      materialiseCpu.push(cpuRead.last - cpuComplete);
      rssPeak = Math.max(rssPeak, await sampler.stop());
      ours.push(o);
      log(
        `rep ${i + 1}/${reps}: baseline ${b.seconds.toFixed(2)} s (${b.rows} rows) | ours ${o.seconds.toFixed(2)} s (${o.rows} rows; extract ${o.extractSeconds.toFixed(2)} s, load ${(o.seconds - o.extractSeconds).toFixed(2)} s; workerd CPU ${ourCpu.at(-1)!.toFixed(2)} s) | then the exports to R2: ${materialiseSeconds(o).toFixed(2)} s after complete (not in ours; workerd CPU ${materialiseCpu.at(-1)!.toFixed(2)} s)`,
      );
    }
    const mat = summarise(ours.map(materialiseSeconds));
    log(
      `materialise: the exports written to R2 after each run completed (not in ours): median ${mat.median.toFixed(2)} s (${mat.min.toFixed(2)}–${mat.max.toFixed(2)})`,
    );
    // 2. The isolate's memory inside workerd, over one more run (sampling slows it: untimed).
    log("memory: the Worker isolate inside workerd, over one more run …");
    const sampler = await sampleIsolate(await findIsolateInspector(server.dev.pid, "idx-etl"));
    const t0 = performance.now();
    const sampled = await server.run();
    const samples = await sampler.stop();
    const producerDone = t0 + sampled.producerSeconds * 1000;
    // run() returns once the exports are in R2: the run's own figures stop at complete, the export job's follow it.
    const complete = sampled.completeAt;
    const peak = (xs: typeof samples) => Math.max(0, ...xs.map((x) => totalBytes(x.usage)));
    const inRun = samples.filter((x) => x.at <= complete);
    isolate = {
      samples: inRun.length,
      restBytes: totalBytes(samples[0]!.usage),
      peakBytes: peak(inRun),
      consumersOnlyPeakBytes: peak(inRun.filter((x) => x.at > producerDone)),
      materialisePeakBytes: peak(samples.filter((x) => x.at > complete)),
      materialiseSamples: samples.filter((x) => x.at > complete).length,
      materialiseSeconds: materialiseSeconds(sampled),
    };
    // 2a. The read path.
    log(`read path: the four .npy exports with numpy vs the seed's SQLite file, alternating, ${reps} each …`);
    // The last run waited for its exports to reach R2: the timed reads are the R2 path (export_read.py checks).
    exportRead = await exportTimes(server.dev.url, seedDb, reps);
    log(
      `read path: ours ${exportRead.ours.map((x) => x.toFixed(2)).join(", ")} s | seed ${exportRead.seed.map((x) => x.toFixed(2)).join(", ")} s`,
    );
  } finally {
    await etl?.stop();
  }

  // 3. The bill: the same Worker with meters around it (bench/metered/worker.ts), in a
  // state of its own: a forced load after a first one, an unchanged cron run, an export.
  log(
    "cost: the metered Worker: one forced load (after a first; its exports' materialisation to R2 included), one unchanged daily cron run, one full export (from R2) …",
  );
  const meteredEtl = await startEtl({ dataDir, vars: overrides, token });
  try {
    await meteredEtl.run();
    load = await meteredEtl.metered(() => meteredEtl.run());
    cron = await meteredEtl.metered(() => meteredEtl.cron());
    if (!cron.result.unchanged) throw new Error(`the cron run ${cron.result.runId} was not recognised as unchanged`);
    exportMeter = await meteredEtl.metered(() => exportOnce(meteredEtl.dev.url));
    const r2 = (m: Metered<unknown>) =>
      `R2 class A ${m.meter.r2.classA}, class B ${m.meter.r2.classB}, free ${m.meter.r2.free}, ${m.meter.r2.bytesPut} bytes put; D1 rows read ${m.meter.d1.rowsRead}`;
    log(
      `cost: load ${r2(load)} (materialised ${materialiseSeconds(load.result).toFixed(2)} s after complete) | cron ${r2(cron)} | export ${r2(exportMeter)}`,
    );
    if (exportMeter.meter.r2.classB !== 4)
      log(
        `cost: WARNING: the export made ${exportMeter.meter.r2.classB} R2 class B calls, expected 4 (one get per file)`,
      );
  } finally {
    await meteredEtl.stop();
    await removeEtlState(meteredEtl);
  }

  // 2b. The local D1 write floor, alternating with the baseline again.
  const etlTx = etlTransactions(cfg);
  const variants = benchVariants(etlTx.perTransaction, etlTx.perStatement);
  log(`floor: local D1 alone storing the same 70,000 rows, ${variants.length} layouts / transaction sizes …`);
  const floorRuns = new Map<string, FloorResult[]>();
  const floorServer = await startFloor();
  try {
    // Warm-up round: the first fill appends to an empty file, later ones reuse freed pages.
    for (const v of variants) await floorServer.once(v);
    for (let i = 0; i < reps; i++) {
      const b = await baselineOnce(seedDb);
      baseline.push(b);
      const line: string[] = [];
      for (const v of variants) {
        const f = await floorServer.once(v);
        floorRuns.set(v.name, [...(floorRuns.get(v.name) ?? []), f]);
        line.push(`${v.name} ${f.seconds.toFixed(2)} s`);
      }
      log(`floor ${i + 1}/${reps}: baseline ${b.seconds.toFixed(2)} s | ${line.join(", ")}`);
    }
  } finally {
    await floorServer.stop();
  }

  // 2c. The isolate under production concurrency: Miniflare's broker delivers one
  // batch at a time, so the bench's own Worker schedules the consumers instead.
  const chunkConsumer = await chunkConsumerSettings();
  log(
    `memory: isolate under production concurrency (untimed): the job and up to ${chunkConsumer.maxConcurrency} chunk-consumer invocations of ${chunkConsumer.maxBatchSize} in one isolate${chunkConsumer.configured ? "" : " (wrangler.toml sets no max_concurrency: fallback)"} …`,
  );
  const concurrent: ConcurrentResult = await measureConcurrentIsolate({
    dataDir,
    concurrency: chunkConsumer.maxConcurrency,
    batch: chunkConsumer.maxBatchSize,
    maxRetries: chunkConsumer.maxRetries,
    retryDelay: chunkConsumer.retryDelay,
    vars: cfg.vars,
    d1LatencyMs: CONCURRENT_D1_LATENCY_MS,
    live: true,
    log,
  });
  const cg = concurrent.garbage;
  const cl = concurrent.live!;
  log(
    `concurrent: peak ${mb(cg.peakBytes)} MB garbage included, ${mb(cl.peakBytes)} MB live; ${cg.report.rows} rows, max ${cg.report.maxInFlight} invocations in flight (${cg.report.maxInFlightDuringJob} while the job ran)`,
  );

  // 3. Cross-check the last run in the local D1 (dev server stopped: no writer).
  const last = ours[ours.length - 1]!;
  const [d1] = await etl!.d1<{ train: number; test: number; bytes: number; chunks: number; total: number }>(
    `SELECT (SELECT COUNT(*) FROM images WHERE split = 'train') AS train, (SELECT COUNT(*) FROM images WHERE split = 'test') AS test,
            (SELECT SUM(length(pixels)) FROM images) AS bytes,
            (SELECT COUNT(*) FROM run_chunks WHERE run_id = '${last.runId}') AS chunks,
            (SELECT chunks_total FROM runs WHERE id = '${last.runId}') AS total`,
  );
  await removeEtlState(etl!);
  const cost = runCost({ train: d1!.train, test: d1!.test }, cfg);
  const crossCheck = {
    d1Rows: d1!.train + d1!.test,
    d1PixelBytes: d1!.bytes,
    runChunks: d1!.chunks,
    chunksTotal: d1!.total,
    agrees:
      d1!.train + d1!.test === cost.rows &&
      d1!.bytes === cost.bytesStored.d1Pixels &&
      d1!.chunks === cost.queueMessages.chunks,
  };

  // 2. Memory, in child processes.
  log("memory: producer and consumer probes under Node …");
  const producerProbe = await bundle("bench/producer-memory.ts");
  const consumerProbe = await bundle("bench/consumer-memory.ts");
  type ProducerOut = MemoryReport & { rows: number; sentBytes: number; seconds: number };
  const producer = await probe<ProducerOut>(producerProbe, [dataDir]);
  const producerLive = await probe<ProducerOut>(producerProbe, [dataDir, "--gc", "2"]);
  // V8 collects lazily while memory is plentiful; held to a small heap it must
  // collect as it goes, as an isolate near its 128 MB limit would. The run
  // completing under the cap, and its peak there, is the bound that matters:
  // a check the bench fails on.
  const expectedRows = FASHION_MNIST.splits.reduce((n, s) => n + (s.count ?? 0), 0);
  let producerCapped: ProducerOut | undefined;
  let producerCappedError: string | undefined;
  try {
    producerCapped = await probe<ProducerOut>(producerProbe, [dataDir], [HEAP_CAP_FLAG]);
    if (producerCapped.rows !== expectedRows)
      producerCappedError = `completed with ${producerCapped.rows} rows, expected ${expectedRows}`;
  } catch (err) {
    producerCappedError = (err instanceof Error ? err.message : String(err)).split("\n").slice(0, 3).join(" ");
  }
  const producerHeap16: "ok" | "fail" = producerCappedError === undefined ? "ok" : "fail";
  log(
    `producer with V8 held to a ${HEAP_CAP_MB} MB heap: ${producerHeap16}${producerCappedError ? ` (${producerCappedError})` : ""}`,
  );
  const trainImages = join(tmp, "train-images.idx");
  await writeFile(trainImages, gunzipSync(await readFile(join(dataDir, FASHION_MNIST.splits[0]!.images.file))));
  const consumerArgs = [
    trainImages,
    String(cfg.config.chunkSize),
    String(cfg.consumer.maxBatchSize),
    String(cfg.config.rowsPerStatement),
  ];
  type ConsumerOut = MemoryReport & { statements: number; paramBytes: number };
  const consumer = await probe<ConsumerOut>(consumerProbe, consumerArgs);
  const consumerLive = await probe<ConsumerOut>(consumerProbe, [...consumerArgs, "--gc"]);
  const consumerCapped = await probe<ConsumerOut>(consumerProbe, consumerArgs, [HEAP_CAP_FLAG]);

  // 4. Scaling: the job, segment by segment, on a set the size of EMNIST ByClass.
  let scaling: ScalingResult | undefined;
  if (scale > 0) {
    const spec = registryEntry(SCALE_DATASET)!;
    log(
      `scaling: generating a synthetic ${SCALE_DATASET} set (${scale}× its ${spec.splits.map((x) => x.count).join(" + ")} images) …`,
    );
    const t0 = performance.now();
    const big = await syntheticDataset(dataDir, spec, scale);
    const generateSeconds = (performance.now() - t0) / 1000;
    try {
      const jobProbe = await bundle("bench/scale-job.ts");
      const vars = JSON.stringify(cfg.vars);
      log(
        `scaling: the default dataset's job, then ${SCALE_DATASET}'s jobs (JOB_MAX_CHUNKS=${cfg.config.jobMaxChunks}) …`,
      );
      const small = await probe<JobRun>(jobProbe, [dataDir, FASHION_MNIST.name, vars]);
      const bigRun = await probe<JobRun>(jobProbe, [big.dir, SCALE_DATASET, vars]);
      log(`scaling: the same with V8 held to a ${HEAP_CAP_MB} MB heap …`);
      let capped: JobRun | null = null;
      let cappedError: string | null = null;
      try {
        capped = await probe<JobRun>(jobProbe, [big.dir, SCALE_DATASET, vars], [HEAP_CAP_FLAG]);
      } catch (err) {
        cappedError = (err instanceof Error ? err.message : String(err)).split("\n").slice(0, 3).join(" ");
      }
      const { maxima, cappedMaxima, checks } = scalingChecks(bigRun, capped);
      scaling = {
        dataset: SCALE_DATASET,
        scale,
        counts: big.counts,
        archiveBytes: big.bytes,
        generateSeconds: round(generateSeconds),
        run: bigRun,
        capped,
        cappedError,
        heapCapMb: HEAP_CAP_MB,
        small,
        maxima,
        cappedMaxima,
        limits: JOB_LIMITS,
        checks,
        export: { files: exportPlan(SCALE_DATASET, big.counts, spec.shape!), limits: QUERY_LIMITS },
      };
      log(
        `scaling: ${bigRun.segments.length} jobs; at most ${maxima.subrequests} subrequests (${maxima.subrequestsAtWallLimit} with a 15-minute invocation's heartbeats), ${maxima.cpuSeconds} s CPU, ${maxima.peakMb} MB; ${Object.entries(
          checks,
        )
          .map(([k, v]) => `${k} ${v}`)
          .join(", ")}`,
      );
    } finally {
      await rm(big.dir, { recursive: true, force: true });
    }
  }
  await rm(tmp, { recursive: true, force: true });

  const b = summarise(baseline.map((x) => x.seconds));
  const o = summarise(ours.map((x) => x.seconds));
  const rows = ours[0]!.rows;
  const floorVariants = variants.map((v: FloorVariant) => {
    const runs = floorRuns.get(v.name)!;
    const t = summarise(runs.map((r) => r.seconds));
    return {
      name: v.name,
      label: v.label,
      layout: v.layout,
      mode: v.mode,
      perTransaction: v.perTransaction,
      perStatement: runs[0]!.perStatement,
      transactions: runs[0]!.transactions,
      statements: runs[0]!.statements,
      rowsWritten: runs[0]!.rowsWritten,
      bytes: runs[0]!.bytes,
      ...t,
      ratio: t.median / b.median,
    };
  });
  const fastest = floorVariants.reduce((a, x) => (x.median < a.median ? x : a));
  const etlLayout = floorVariants.find((x) => x.name === "etl")!;
  const exportSeed = summarise(exportRead!.seed);
  const exportOurs = summarise(exportRead!.ours);
  const results = {
    machine,
    config: {
      ...cfg.consumer,
      chunkSize: cfg.config.chunkSize,
      rowsPerStatement: cfg.config.rowsPerStatement,
      vars: overrides,
    },
    reps,
    baseline: {
      ...b,
      rowsPerS: Math.round(baseline[0]!.rows / b.median),
      wallSeconds: baseline.map((x) => round(x.wallSeconds)),
    },
    ours: {
      ...o,
      rowsPerS: Math.round(rows / o.median),
      extractSeconds: summarise(ours.map((x) => x.extractSeconds)),
      loadSeconds: summarise(ours.map((x) => x.seconds - x.extractSeconds)),
      /** After complete, not in the figures above: until the exports were in R2 (pipeline/materialise.ts). */
      materialiseSeconds: summarise(ours.map(materialiseSeconds)),
      materialiseWorkerdCpuSeconds: summarise(materialiseCpu),
      /** Trigger → the first GET /runs/:id that showed complete: locally only after the export job (bench/lib/etl.ts). */
      observedSeconds: summarise(ours.map((x) => x.observedSeconds)),
      workerdCpuSeconds: summarise(ourCpu),
    },
    ratio: o.median / b.median,
    floor: {
      ...fastest,
      etlLayout: { name: etlLayout.name, median: etlLayout.median, ratio: etlLayout.ratio },
      variants: floorVariants,
    },
    etlOverFloor: o.median / fastest.median,
    etlOverEtlLayoutFloor: o.median / etlLayout.median,
    readPath: {
      files: ["train.npy", "train-labels.npy", "test.npy", "test-labels.npy"],
      bytes: exportRead!.bytes,
      ours: exportOurs,
      seed: exportSeed,
      ratio: exportOurs.median / exportSeed.median,
    },
    memory: {
      method:
        "inside workerd, the Worker isolate's Runtime.getHeapUsage (JS heap + ArrayBuffer backing stores + embedder heap) through workerd's inspector every ~10 ms over one untimed run, garbage included (workerd does not answer a forced GC); under Node 24 --expose-gc, the same modules bundled with esbuild, process.memoryUsage() heapUsed + external (ArrayBuffers) sampled at each sendBatch / statement build and every 5 ms, minus the settled baseline",
      producerPeakMb: mb(producer.peakBytes),
      producerLivePeakMb: mb(producerLive.livePeakBytes),
      producerCappedPeakMb: producerCapped ? mb(producerCapped.peakBytes) : null,
      producerHeap16,
      producerHeap16Error: producerCappedError ?? null,
      consumerCappedPeakMb: mb(consumerCapped.peakBytes),
      heapCapMb: HEAP_CAP_MB,
      producerSeconds: round(producer.seconds),
      consumerPeakMb: mb(consumer.peakBytes),
      consumerLivePeakMb: mb(consumerLive.livePeakBytes),
      consumerParamMb: mb(consumer.paramBytes),
      isolatePeakMb: mb(isolate!.peakBytes),
      isolateConsumersOnlyPeakMb: mb(isolate!.consumersOnlyPeakBytes),
      isolateRestMb: mb(isolate!.restBytes),
      isolateSamples: isolate!.samples,
      isolateMaterialisePeakMb: mb(isolate!.materialisePeakBytes),
      isolateMaterialiseSeconds: round(isolate!.materialiseSeconds),
      isolateMaterialiseSamples: isolate!.materialiseSamples,
      isolateConcurrentPeakMb: mb(cg.peakBytes),
      isolateConcurrentJobPeakMb: mb(cg.jobPeakBytes),
      isolateConcurrentRestMb: mb(cg.restBytes),
      isolateConcurrentSamples: cg.samples,
      isolateConcurrentLivePeakMb: mb(cl.peakBytes),
      isolateConcurrentLiveSamples: cl.samples,
      isolateConcurrency: {
        maxConcurrency: chunkConsumer.maxConcurrency,
        configured: chunkConsumer.configured,
        maxBatchSize: chunkConsumer.maxBatchSize,
        d1LatencyMs: cg.report.d1LatencyMs,
        maxInFlight: Math.min(cg.report.maxInFlight, cl.report.maxInFlight),
        maxInFlightDuringJob: Math.min(cg.report.maxInFlightDuringJob, cl.report.maxInFlightDuringJob),
        deliveries: cg.report.deliveries,
        rows: cg.report.rows,
        seconds: round(cg.wallSeconds),
      },
      workerdRssIdleMb: mb(rssIdle),
      workerdRssPeakMb: mb(rssPeak),
    },
    cost,
    bill: {
      prices: PRICES,
      load: billed(load!),
      cron: billed(cron!),
      export: { ...billed(exportMeter!), bytes: exportMeter!.result },
      storage: {
        bytes: load!.meter.d1.sizeAfter,
        dollarsPerMonth: storageDollarsPerMonth(load!.meter.d1.sizeAfter),
      },
      // One copy of the four files: what a full export reads (a load's put replaces the older version's, then deletes them).
      r2Storage: {
        bytes: exportMeter!.result,
        bytesPut: load!.meter.r2.bytesPut,
        dollarsPerMonth: r2StorageDollarsPerMonth(exportMeter!.result),
      },
    },
    crossCheck,
    scaling,
  };

  if (!values["no-write"]) {
    await writeFile("bench/results.json", JSON.stringify(results, null, 2) + "\n");
    await writeFile("bench/results.md", renderMarkdown(results));
  }
  log("");
  log(renderMarkdown(results, { brief: true }));
  const usd = (x: number) => x.toFixed(4);
  const scaleLimits = !scaling ? "skipped" : Object.values(scaling.checks).every((c) => c === "ok") ? "ok" : "fail";
  log(
    `ratio=${round(results.ratio)} etl_over_floor=${round(results.etlOverFloor)} export_ratio=${round(results.readPath.ratio)} producer_heap16=${producerHeap16} isolate_peak_mb=${results.memory.isolatePeakMb} usd_per_load=${usd(results.bill.load.dollars.total)} floor_ratio=${round(results.floor.ratio)} floor_s=${round(results.floor.median)} floor_layout=${results.floor.name} etl_layout_floor_ratio=${round(results.floor.etlLayout.ratio)} etl_over_etl_layout_floor=${round(results.etlOverEtlLayoutFloor)} usd_per_cron=${usd(results.bill.cron.dollars.total)} usd_per_export=${usd(results.bill.export.dollars.total)} rows_per_s=${results.ours.rowsPerS} isolate_concurrent_peak_mb=${results.memory.isolateConcurrentPeakMb} isolate_concurrent_live_peak_mb=${results.memory.isolateConcurrentLivePeakMb} producer_peak_mb=${results.memory.producerPeakMb} consumer_peak_mb=${results.memory.consumerPeakMb} producer_capped_mb=${results.memory.producerCappedPeakMb} consumer_capped_mb=${results.memory.consumerCappedPeakMb} producer_live_mb=${results.memory.producerLivePeakMb} consumer_live_mb=${results.memory.consumerLivePeakMb} scale_limits=${scaleLimits}${scaling ? ` scale_jobs=${scaling.run.segments.length} scale_max_subrequests=${scaling.maxima.subrequestsAtWallLimit} scale_max_cpu_s=${scaling.maxima.cpuSeconds} scale_max_peak_mb=${scaling.maxima.peakMb} scale_export_pages=${Math.max(...scaling.export.files.map((f) => f.pages))}` : ""} materialise_s=${round(results.ours.materialiseSeconds.median)} usd_r2_storage_month=${results.bill.r2Storage.dollarsPerMonth.toFixed(6)}`,
  );
  if (producerHeap16 !== "ok" || scaleLimits === "fail") process.exitCode = 1;
}

main().catch((err: unknown) => {
  console.error(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  process.exit(1);
});
