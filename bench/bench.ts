/**
 * `npm run bench`: the ETL against the seed's script it replaces and against
 * the floors a Worker must pay, on this machine, in one invocation.
 *
 *   npm run bench -- [--data DIR] [--reps N] [--seed FILE] [--var NAME=VALUE ...] [--no-write]
 *
 * Every ratio is over figures of this one run, and each timed section
 * alternates with the seed's script (bench/README.md says what each figure
 * means). Writes bench/results.md; the last line printed is the summary.
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { cpus, tmpdir, totalmem } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs, promisify } from "node:util";
import { busyProbe, busyReport, type BusyProbe } from "./lib/busy";
import { benchConfig, dollars, usageFromMeter } from "./lib/cost";
import { startEtl, type EtlServer, type EtlTiming, type Metered } from "./lib/etl";
import {
  BENCH_VARIANTS,
  STACK_PARTS,
  startFloor,
  type FillResult,
  type FloorServer,
  type FloorVariant,
  type StackPart,
  type StackRun,
} from "./lib/floor";
import { findInspector, profileCpu, sampleIsolate, totalBytes, type CpuShare } from "./lib/isolate";
import { project } from "./lib/projection";
import { renderMarkdown, type Results } from "./lib/report";
import { seedOnce, type SeedRun } from "./lib/seed";
import { loadAverage, summarise } from "./lib/stats";
import { wholeCommandOnce } from "./lib/whole";

const { values } = parseArgs({
  options: {
    data: { type: "string", default: "../shared/fashion-mnist" },
    reps: { type: "string", default: "3" },
    seed: { type: "string", default: "../shared/seed_baseline.py" },
    var: { type: "string", multiple: true, default: [] },
    "no-write": { type: "boolean", default: false },
  },
});
const dataDir = resolve(values.data);
const seedScript = resolve(values.seed);
const reps = Number(values.reps);
if (!(Number.isInteger(reps) && reps >= 1)) throw new Error("--reps must be a positive integer");
const overrides = Object.fromEntries(
  values.var.map((v) => {
    const at = v.indexOf("=");
    if (at < 1) throw new Error(`--var wants NAME=VALUE, got "${v}"`);
    return [v.slice(0, at), v.slice(at + 1)];
  }),
);
const log = (s: string) => console.log(s);
const run = promisify(execFile);
const mb = (bytes: number) => Math.round(bytes / 1e5) / 10;
/** The Worker's name in wrangler.toml: its isolate is `core:user:<name>`. */
const WORKER = "idx-etl";
/** The floor's Worker (bench/floor/wrangler.toml). */
const FLOOR_WORKER = "idx-etl-bench-floor";

/** Every isolate of a dev server's workerd profiled from now until `until` resolves. */
async function profiled(pid: number, worker: string, until: (stop: () => Promise<void>) => Promise<unknown>) {
  const profile = await profileCpu(await findInspector(pid, worker));
  let cpu: CpuShare | undefined;
  await until(async () => void (cpu ??= await profile.stop()));
  cpu ??= await profile.stop();
  return cpu;
}

async function machine() {
  const version = async (pkg: string) =>
    (JSON.parse(await readFile(`node_modules/${pkg}/package.json`, "utf8")) as { version: string }).version;
  return {
    cpus: `${cpus().length} × ${cpus()[0]?.model ?? "unknown"}`,
    memGb: Math.round(totalmem() / 1e8) / 10,
    node: process.version,
    workerd: await version("workerd"),
    wrangler: await version("wrangler"),
    python: (await run("python3", ["--version"])).stdout.trim(),
    date: new Date().toISOString(),
  };
}

/**
 * The seed, the ETL and every floor variant in turn, N times after a warm-up round (the floors' own dev server
 * idles while the ETL runs, and the other way round); then, untimed, the ETL's memory, the busy API, a profile of a
 * load and of the floor's ETL-shaped variant, and the read path.
 */
async function etlSection(seedDb: string, token: string, floor: FloorServer, shape: FloorVariant, chunk: number) {
  const etl = await startEtl({ dataDir, vars: overrides, token, metered: false });
  try {
    log(`etl and floors (${BENCH_VARIANTS.map((v) => v.name).join(", ")}): a warm-up round …`);
    await etl.run();
    for (const v of BENCH_VARIANTS) await floor.once(v);
    for (const part of STACK_PARTS) await floor.stack(part, chunk);
    const seed: SeedRun[] = [];
    const ours: EtlTiming[] = [];
    const floors = new Map<string, FillResult[]>();
    const stack = new Map<StackPart, StackRun[]>();
    for (let i = 0; i < reps; i++) {
      seed.push(await seedOnce(seedScript, dataDir, seedDb));
      ours.push(await etl.run());
      for (const v of BENCH_VARIANTS) floors.set(v.name, [...(floors.get(v.name) ?? []), await floor.once(v)]);
      for (const p of STACK_PARTS) stack.set(p, [...(stack.get(p) ?? []), await floor.stack(p, chunk)]);
      const o = ours.at(-1)!;
      log(
        `rep ${i + 1}/${reps}: seed ${seed.at(-1)!.seconds.toFixed(2)} s | etl ${o.seconds.toFixed(2)} s (${o.rows} rows), then exports ${o.exportSeconds.toFixed(2)} s | ${[...floors, ...stack].map(([k, r]) => `${k} ${r.at(-1)!.seconds.toFixed(2)} s`).join(", ")} | load ${loadAverage()}`,
      );
    }

    log("memory: the Worker isolate over one more run (untimed) …");
    const sampler = await sampleIsolate((await findInspector(etl.dev.pid, WORKER)).worker);
    const sampled = await etl.run();
    const samples = await sampler.stop();
    const peak = (xs: typeof samples) => Math.max(0, ...xs.map((x) => totalBytes(x.usage)));
    const memory = {
      restMb: mb(totalBytes(samples[0]!.usage)),
      loadPeakMb: mb(peak(samples.filter((x) => x.at <= sampled.completeAt))),
      exportPeakMb: mb(peak(samples.filter((x) => x.at > sampled.completeAt))),
      samples: samples.length,
    };

    log("busy: GET /runs/{id} and GET /datasets/{name} every 250 ms through a forced run and its export job …");
    let probe: BusyProbe | undefined;
    const busyRun = await etl.run({
      watch: ({ id, dataset }) => (probe = busyProbe(etl.dev.url, [`/runs/${id}`, `/datasets/${dataset}`])),
    });
    const busy = busyReport(probe!, busyRun.completeAt);

    log("profile: every isolate of workerd through one more load, until it completes …");
    const loadCpu = await profiled(etl.dev.pid, WORKER, (stop) => etl.run({ onComplete: stop }));
    log(`profile: every isolate of workerd through one more \`${shape.name}\` …`);
    const floorCpu = { variant: shape.name, share: await profiled(floor.pid, FLOOR_WORKER, () => floor.once(shape)) };

    log(`read path: the four .npy exports with numpy vs the seed's SQLite file, ${reps} each, alternating …`);
    const { stdout } = await run("python3", ["bench/export_read.py", etl.dev.url, seedDb, String(reps)], {
      maxBuffer: 1 << 24,
    });
    const read = JSON.parse(stdout.trim().split("\n").pop()!) as { ours: number[]; seed: number[]; bytes: number };
    return { seed, ours, floors, stack, memory, busy, busyRun, read, loadCpu, floorCpu };
  } finally {
    await etl.stop();
    await etl.remove();
  }
}

/** The bill: the same Worker with meters, its isolate's CPU profiled, for a forced load, a cron run, an export. */
async function billSection(token: string) {
  const etl: EtlServer = await startEtl({ dataDir, vars: overrides, token, metered: true });
  try {
    log("bill: a first load, then a metered and profiled forced load, an unchanged cron run, a full export …");
    await etl.run();
    const inspector = await findInspector(etl.dev.pid, WORKER);
    const billed = async <T>(work: () => Promise<T>) => {
      const profile = await profileCpu(inspector);
      const m: Metered<T> = await etl.metered(work);
      const cpu = await profile.stop();
      const usage = usageFromMeter(m.meter, cpu.seconds);
      return { ...m, cpu, cpuSeconds: cpu.seconds, usage, dollars: dollars(usage) };
    };
    const load = await billed(() => etl.run());
    const cron = await billed(() => etl.cron());
    if (!cron.result.unchanged) throw new Error(`the cron run ${cron.result.runId} was not recognised as unchanged`);
    const exportAll = await billed(async () => {
      let bytes = 0;
      for (const f of ["train", "train-labels", "test", "test-labels"]) {
        const res = await fetch(`${etl.dev.url}/export/${f}.npy`);
        if (!res.ok || res.headers.get("X-Export-Source") !== "r2")
          throw new Error(
            `GET /export/${f}.npy: HTTP ${res.status}, source ${res.headers.get("X-Export-Source")}, not r2`,
          );
        bytes += (await res.arrayBuffer()).byteLength;
      }
      return bytes;
    });
    log(
      `bill: load ${load.cpuSeconds.toFixed(2)} Worker CPU s (${(load.cpu.share * 100).toFixed(0)}% of workerd's ${load.cpu.processSeconds.toFixed(2)} s), $${load.dollars.total.toFixed(4)}`,
    );
    return { load, cron, exportAll };
  } finally {
    await etl.stop();
    await etl.remove();
  }
}

/** Each floor variant's times, by its median. */
const floorRows = (runs: ReadonlyMap<string, FillResult[]>) =>
  BENCH_VARIANTS.map((v) => {
    const r = runs.get(v.name)!;
    return {
      ...v,
      ...summarise(r.map((x) => x.seconds)),
      buildSeconds: summarise(r.map((x) => x.buildSeconds)).median,
      transactions: r[0]!.transactions,
      textBytes: r[0]!.textBytes,
    };
  });

/**
 * Each part of the required stack: its time on workerd's thread, the lesser of its wall time and workerd's CPU
 * over it (a part that waits, as the queue does between deliveries, leaves the thread to other work in a load).
 */
const stackRows = (runs: ReadonlyMap<StackPart, StackRun[]>) =>
  STACK_PARTS.map((part) => {
    const r = runs.get(part)!;
    return {
      part,
      wall: summarise(r.map((x) => x.seconds)),
      cpu: summarise(r.map((x) => x.cpuSeconds)),
      thread: summarise(r.map((x) => Math.min(x.seconds, x.cpuSeconds))),
    };
  });

/** `npm run etl -- --source DIR` whole, in a fresh state each time, beside the seed's wall time. */
async function wholeSection(seedDb: string) {
  const seed: SeedRun[] = [];
  const whole: number[] = [];
  for (let i = 0; i < reps; i++) {
    seed.push(await seedOnce(seedScript, dataDir, seedDb));
    whole.push(await wholeCommandOnce(dataDir, i + 1));
    log(
      `whole ${i + 1}/${reps}: seed ${seed.at(-1)!.wallSeconds.toFixed(2)} s wall | npm run etl ${whole.at(-1)!.toFixed(2)} s`,
    );
  }
  return { seed, whole };
}

async function main(): Promise<void> {
  // As `npm run etl` runs the Worker (scripts/lib/local-worker.ts): Miniflare's trace collector and data explorer
  // serve `wrangler dev`'s pages, and the collector's work on workerd's one thread would be timed with the ETL's
  // (whose wrangler.toml enables observability) and not with the floor's.
  process.env.X_LOCAL_OBSERVABILITY ??= "false";
  process.env.X_LOCAL_EXPLORER ??= "false";
  const m = await machine();
  const cfg = await benchConfig(overrides);
  const load0 = loadAverage();
  log(`machine: ${m.cpus}, ${m.memGb} GB, node ${m.node}, workerd ${m.workerd}, load ${load0}`);
  const tmp = await mkdtemp(join(tmpdir(), "idx-etl-bench-"));
  const seedDb = join(tmp, "seed.db");
  const token = randomBytes(24).toString("hex");
  try {
    // The floor variant in the ETL's transaction shape: profiled beside a load, and the projection's time per transaction.
    const perTransaction = cfg.chunkSize * cfg.maxBatchSize;
    const shape = BENCH_VARIANTS.find((v) => v.kind === "rows" && v.perTransaction === perTransaction && !v.inflight);
    if (!shape) throw new Error(`no floor variant at the ETL's ${perTransaction}-row transactions`);
    const floorServer = await startFloor(dataDir);
    let etl: Awaited<ReturnType<typeof etlSection>>;
    try {
      etl = await etlSection(seedDb, token, floorServer, shape, cfg.chunkSize);
    } finally {
      await floorServer.stop();
    }
    const bill = await billSection(token);
    const whole = await wholeSection(seedDb);
    const floor = { variants: floorRows(etl.floors) };

    const seed = summarise(etl.seed.map((x) => x.seconds));
    const ours = summarise(etl.ours.map((x) => x.seconds));
    const rows = floor.variants.filter((v) => v.kind === "rows");
    const workerFloor = rows.reduce((a, v) => (v.median < a.median ? v : a));
    const blobFloor = floor.variants.find((v) => v.kind === "blob")!;
    const etlShape = rows.find((v) => v.name === shape.name)!;
    const stack = stackRows(etl.stack);
    const stackFloor = workerFloor.median + stack.reduce((a, p) => a + p.thread.median, 0);
    // D1's part of a transaction: the Worker floor's time less its encoding and statement building.
    const execMs = ((etlShape.median - etlShape.buildSeconds) * 1000) / etlShape.transactions;
    const projections = ["fashion-mnist", "emnist-byclass"].map((d) =>
      project(d, {
        chunkSize: cfg.chunkSize,
        batchSize: cfg.maxBatchSize,
        concurrency: cfg.maxConcurrency ?? 1,
        execMs,
      }),
    );
    const wholeS = summarise(whole.whole);
    const seedWall = summarise(whole.seed.map((x) => x.wallSeconds));
    const results: Results = {
      machine: { ...m, loadStart: load0, loadEnd: loadAverage() },
      config: cfg,
      reps,
      seed,
      ours,
      rows: etl.ours[0]!.rows,
      extract: summarise(etl.ours.map((x) => x.extractSeconds)),
      exportWait: summarise(etl.ours.map((x) => x.exportSeconds)),
      ratio: ours.median / seed.median,
      floor: {
        variants: floor.variants,
        worker: workerFloor,
        blob: blobFloor,
      },
      stack: { parts: stack, floor: stackFloor },
      etlOverWorkerFloor: ours.median / workerFloor.median,
      etlOverStackFloor: ours.median / stackFloor,
      etlOverFloor: ours.median / blobFloor.median,
      read: { ...etl.read, ratio: summarise(etl.read.ours).median / summarise(etl.read.seed).median },
      whole: { whole: wholeS, seedWall, ratio: wholeS.median / seedWall.median },
      busy: { ...etl.busy, exportSeconds: etl.busyRun.exportSeconds },
      cpu: { load: etl.loadCpu, floor: etl.floorCpu.share, floorVariant: etl.floorCpu.variant },
      memory: etl.memory,
      bill,
      projections,
    };
    const md = renderMarkdown(results);
    if (!values["no-write"]) await writeFile("bench/results.md", md);
    log("");
    // results.md ends with the summary line: the last line printed.
    log(md.trimEnd());
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  process.exit(1);
});
