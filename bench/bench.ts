/**
 * `npm run bench`: our ETL against the Python baseline it replaces, side by side
 * on the same machine, in one invocation.
 *
 *   npm run bench -- [--data DIR] [--reps N] [--scale K|0] [--var NAME=VALUE ...] [--no-write]
 *
 * 1. Wall time, alternating: the baseline (`python3 seed_baseline.py`), then one
 *    full ETL on the local Worker (POST /runs force:true → GET /runs/:id shows
 *    complete; `wrangler dev` is started once, before timing), N times each.
 * 2. Peak memory: inside workerd, the Worker isolate's heap and buffers during a
 *    whole (untimed) run, read through the inspector (bench/lib/isolate.ts); and
 *    under Node on the same modules (bench/lib/memory.ts), the producer path and
 *    one chunk-consumer invocation apart; plus workerd's RSS.
 * 2b. The local D1 write floor: the same rows and transactions written by local
 *    D1 alone (bench/floor/worker.ts), alternating with the baseline too.
 * 2c. The isolate under production concurrency (untimed): one run in which the
 *    extraction job and up to max_concurrency chunk-consumer invocations share
 *    one isolate (bench/concurrent/worker.ts), its memory read as in step 2.
 * 3. The cost of one run, from the real planning/statement code and config,
 *    cross-checked against the local D1 after the runs.
 * 4. Scaling: the producer path on a K× Fashion-MNIST synthetic set.
 * Writes bench/results.json and bench/results.md; the last line is a summary.
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { cpus, tmpdir, totalmem } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs, promisify } from "node:util";
import { gunzipSync } from "node:zlib";
import { serveArchives } from "../scripts/lib/archive-server";
import { applyLocalMigrations, localD1, startDevServer, type DevServer } from "../scripts/lib/dev-server";
import { FASHION_MNIST } from "../src/core/datasets";
import { bundle, probe } from "./lib/child";
import {
  chunkConsumerSettings,
  CONCURRENT_D1_LATENCY_MS,
  measureConcurrentIsolate,
  type ConcurrentResult,
} from "./lib/concurrent";
import { benchConfig, runCost } from "./lib/cost";
import { mb, type MemoryReport } from "./lib/memory";
import { renderMarkdown, type Results } from "./lib/report";
import { findIsolateInspector, sampleIsolate, totalBytes } from "./lib/isolate";
import { rssSampler, workerdRssBytes } from "./lib/rss";
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
    scale: { type: "string", default: "10" },
    var: { type: "string", multiple: true, default: [] },
    "no-write": { type: "boolean", default: false },
  },
});
const dataDir = resolve(values.data);
const reps = Number(values.reps);
const scale = Number(values.scale);
if (!(Number.isInteger(reps) && reps >= 1)) throw new Error("--reps must be a positive integer");
if (!(Number.isInteger(scale) && scale >= 0)) throw new Error("--scale must be 0 (skip) or a positive integer");
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

interface RunJson {
  id: string;
  status: string;
  error: string | null;
  checksums: Record<string, string> | null;
  chunksTotal: number | null;
  splits: Record<"train" | "test", { expected: number | null; loaded: number }>;
}

interface EtlTiming {
  seconds: number;
  extractSeconds: number;
  /** Until the job recorded all four archives' checksums: the producer's work is done. */
  producerSeconds: number;
  rows: number;
  runId: string;
  chunksTotal: number;
}

async function etlOnce(dev: DevServer, token: string, source: string): Promise<EtlTiming> {
  const t0 = performance.now();
  const res = await fetch(`${dev.url}/runs`, {
    method: "POST",
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: JSON.stringify({ trigger: "cli", source, force: true }),
  });
  const started = (await res.json()) as { run?: RunJson; error?: string };
  if (res.status !== 202 || !started.run) throw new Error(`POST /runs: HTTP ${res.status}: ${started.error}`);
  let extractSeconds = NaN;
  let producerSeconds = NaN;
  const archives = FASHION_MNIST.splits.length * 2;
  for (;;) {
    const { run } = (await (await fetch(`${dev.url}/runs/${started.run.id}`)).json()) as { run: RunJson };
    const elapsed = (performance.now() - t0) / 1000;
    if (Number.isNaN(extractSeconds) && (run.status === "loading" || run.status === "complete"))
      extractSeconds = elapsed;
    if (Number.isNaN(producerSeconds) && Object.keys(run.checksums ?? {}).length === archives)
      producerSeconds = elapsed;
    if (run.status === "failed") throw new Error(`run ${run.id} failed: ${run.error}`);
    if (run.status === "complete") {
      return {
        seconds: elapsed,
        extractSeconds,
        producerSeconds,
        rows: run.splits.train.loaded + run.splits.test.loaded,
        runId: run.id,
        chunksTotal: run.chunksTotal ?? 0,
      };
    }
    if (elapsed > 600) throw new Error(`run ${run.id} still ${run.status} after 600 s`);
    await new Promise((r) => setTimeout(r, 50));
  }
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
    loadavg: (await readFile("/proc/loadavg", "utf8")).split(" ").slice(0, 3).join(" "),
    date: new Date().toISOString(),
  };
  const cfg = await benchConfig(overrides);
  log(
    `machine: ${machine.nproc} × ${machine.cpu}, node ${machine.node}, workerd ${machine.workerd}, load ${machine.loadavg}`,
  );
  log(
    `config: CHUNK_SIZE=${cfg.config.chunkSize} ROWS_PER_STATEMENT=${cfg.config.rowsPerStatement} max_batch_size=${cfg.consumer.maxBatchSize} max_batch_timeout=${cfg.consumer.maxBatchTimeout} max_concurrency=${cfg.consumer.maxConcurrency ?? "default"}`,
  );

  // 1. Wall time, alternating.
  const tmp = await mkdtemp(join(tmpdir(), "idx-etl-bench-"));
  const archives = await serveArchives(dataDir);
  const token = randomBytes(24).toString("hex");
  let dev: DevServer | undefined;
  const baseline: Awaited<ReturnType<typeof baselineOnce>>[] = [];
  const ours: EtlTiming[] = [];
  let rssPeak = 0;
  let rssIdle = 0;
  let isolate: { samples: number; restBytes: number; peakBytes: number; consumersOnlyPeakBytes: number } | undefined;
  try {
    await applyLocalMigrations();
    await localD1(
      "UPDATE runs SET status = 'failed', error = 'interrupted: the local dev server stopped before the run finished', finished_at = strftime('%Y-%m-%dT%H:%M:%fZ') WHERE status IN ('queued', 'extracting', 'loading')",
    );
    dev = await startDevServer({ vars: { ...overrides, ETL_TOKEN: token } });
    // One untimed run warms the Worker, the local D1 file and its indexes.
    log("warm-up run …");
    await etlOnce(dev, token, archives.url);
    rssIdle = await workerdRssBytes(dev.pid);
    for (let i = 0; i < reps; i++) {
      const b = await baselineOnce(join(tmp, "baseline.db"));
      baseline.push(b);
      const sampler = rssSampler(dev.pid);
      const o = await etlOnce(dev, token, archives.url);
      rssPeak = Math.max(rssPeak, await sampler.stop());
      ours.push(o);
      log(
        `rep ${i + 1}/${reps}: baseline ${b.seconds.toFixed(2)} s (${b.rows} rows) | ours ${o.seconds.toFixed(2)} s (${o.rows} rows; extract ${o.extractSeconds.toFixed(2)} s, load ${(o.seconds - o.extractSeconds).toFixed(2)} s)`,
      );
    }
    // 2. The isolate's memory inside workerd, over one more run (sampling slows it: untimed).
    log("memory: the Worker isolate inside workerd, over one more run …");
    const sampler = await sampleIsolate(await findIsolateInspector(dev.pid, "idx-etl"));
    const t0 = performance.now();
    const sampled = await etlOnce(dev, token, archives.url);
    const samples = await sampler.stop();
    const producerDone = t0 + sampled.producerSeconds * 1000;
    const peak = (xs: typeof samples) => Math.max(0, ...xs.map((x) => totalBytes(x.usage)));
    isolate = {
      samples: samples.length,
      restBytes: totalBytes(samples[0]!.usage),
      peakBytes: peak(samples),
      consumersOnlyPeakBytes: peak(samples.filter((x) => x.at > producerDone)),
    };
  } finally {
    await dev?.stop();
    await archives.close();
  }

  // 2b. The local D1 write floor, alternating with the baseline again.
  log("floor: local D1 alone writing the same rows in the same transactions …");
  const floorState = await mkdtemp(join(tmpdir(), "idx-etl-floor-"));
  const floorServer = await startDevServer({
    config: "bench/floor/wrangler.toml",
    persistTo: floorState,
    readyPath: "/ready",
  });
  const floor: { seconds: number; transactions: number }[] = [];
  try {
    const perTransaction = cfg.config.chunkSize * cfg.consumer.maxBatchSize;
    const rows = FASHION_MNIST.splits.reduce((n, s) => n + s.count, 0);
    const floorOnce = async () => {
      const res = await fetch(
        `${floorServer.url}/floor?rows=${rows}&perTransaction=${perTransaction}&perStatement=${cfg.config.rowsPerStatement}`,
        { method: "POST" },
      );
      if (!res.ok) throw new Error(`floor: HTTP ${res.status}: ${await res.text()}`);
      return (await res.json()) as { seconds: number; transactions: number };
    };
    await floorOnce(); // warm-up: the first fill appends to an empty file, later ones reuse freed pages
    for (let i = 0; i < reps; i++) {
      const b = await baselineOnce(join(tmp, "baseline.db"));
      baseline.push(b);
      const f = await floorOnce();
      floor.push(f);
      log(
        `floor ${i + 1}/${reps}: baseline ${b.seconds.toFixed(2)} s | local D1 writes alone ${f.seconds.toFixed(2)} s`,
      );
    }
  } finally {
    await floorServer.stop();
    await rm(floorState, { recursive: true, force: true });
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
  const [d1] = await localD1<{ train: number; test: number; bytes: number; chunks: number; total: number }>(
    `SELECT (SELECT COUNT(*) FROM images WHERE split = 'train') AS train, (SELECT COUNT(*) FROM images WHERE split = 'test') AS test,
            (SELECT SUM(length(pixels)) FROM images) AS bytes,
            (SELECT COUNT(*) FROM run_chunks WHERE run_id = '${last.runId}') AS chunks,
            (SELECT chunks_total FROM runs WHERE id = '${last.runId}') AS total`,
  );
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
  // completing under the cap, and its peak there, is the bound that matters.
  const producerCapped = await probe<ProducerOut>(producerProbe, [dataDir], [HEAP_CAP_FLAG]);
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

  // 4. Scaling: the producer path on K× the data.
  let scaling: Results["scaling"];
  if (scale > 0) {
    log(`scaling: generating a ${scale}× synthetic set …`);
    const big = await syntheticDataset(dataDir, scale);
    try {
      const p = await probe<ProducerOut>(producerProbe, [big.dir]);
      const live = await probe<ProducerOut>(producerProbe, [big.dir, "--gc", String(2 * scale)]);
      const scaled = runCost({ train: d1!.train * scale, test: d1!.test * scale }, cfg);
      scaling = {
        chunks: scaled.queueMessages.chunks,
        sendBatchCalls: scaled.sendBatchCalls,
        producerSubrequests: scaled.producerSubrequests,
        times: scale,
        rows: p.rows,
        peakMb: mb(p.peakBytes),
        livePeakMb: mb(live.livePeakBytes),
        seconds: round(p.seconds),
      };
    } finally {
      await rm(big.dir, { recursive: true, force: true });
    }
  }
  await rm(tmp, { recursive: true, force: true });

  const b = summarise(baseline.map((x) => x.seconds));
  const o = summarise(ours.map((x) => x.seconds));
  const rows = ours[0]!.rows;
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
    },
    ratio: o.median / b.median,
    floor: {
      ...summarise(floor.map((x) => x.seconds)),
      transactions: floor[0]!.transactions,
      ratio: summarise(floor.map((x) => x.seconds)).median / b.median,
    },
    memory: {
      method:
        "inside workerd, the Worker isolate's Runtime.getHeapUsage (JS heap + ArrayBuffer backing stores + embedder heap) through workerd's inspector every ~10 ms over one untimed run, garbage included (workerd does not answer a forced GC); under Node 24 --expose-gc, the same modules bundled with esbuild, process.memoryUsage() heapUsed + external (ArrayBuffers) sampled at each sendBatch / statement build and every 5 ms, minus the settled baseline",
      producerPeakMb: mb(producer.peakBytes),
      producerLivePeakMb: mb(producerLive.livePeakBytes),
      producerCappedPeakMb: mb(producerCapped.peakBytes),
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
    crossCheck,
    scaling,
  };

  if (!values["no-write"]) {
    await writeFile("bench/results.json", JSON.stringify(results, null, 2) + "\n");
    await writeFile("bench/results.md", renderMarkdown(results));
  }
  log("");
  log(renderMarkdown(results, { brief: true }));
  log(
    `ratio=${round(results.ratio)} floor_ratio=${round(results.floor.ratio)} rows_per_s=${results.ours.rowsPerS} isolate_peak_mb=${results.memory.isolatePeakMb} isolate_concurrent_peak_mb=${results.memory.isolateConcurrentPeakMb} isolate_concurrent_live_peak_mb=${results.memory.isolateConcurrentLivePeakMb} producer_peak_mb=${results.memory.producerPeakMb} consumer_peak_mb=${results.memory.consumerPeakMb} producer_capped_mb=${results.memory.producerCappedPeakMb} consumer_capped_mb=${results.memory.consumerCappedPeakMb} producer_live_mb=${results.memory.producerLivePeakMb} consumer_live_mb=${results.memory.consumerLivePeakMb}`,
  );
}

main().catch((err: unknown) => {
  console.error(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  process.exit(1);
});
