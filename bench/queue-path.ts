/**
 * The queue path in parts: what the ETL's ~3.4 s beyond the product's own statements sent
 * straight to D1 (bench/gap.ts `product`) is made of. Fashion-MNIST's real archives, all in
 * local workerd (`wrangler dev`), round robin after a warm-up round:
 *
 *   producer   the real extraction job (download, MD5, inflate, digests, sendBatch into
 *              idx-etl-chunks), the chunk consumer only acking (and keeping the messages):
 *              trigger → every chunk message acked
 *   queue      those messages, kept in memory, sent again as the producer sends them
 *              (sendBatch, v8), the consumer only acking: send → every message acked
 *   consumer   the same messages delivered to the product's consumer (consumeChunks) into
 *              the producer run's shadow tables: send → run complete (the swap included)
 *   etl-bench  the real ETL in the same bench worker (its consumer the product's): trigger → complete
 *   etl        the real ETL, the product Worker as `npm run bench` runs it (bench/lib/etl.ts)
 *
 * `consumer` loads the run `producer` left `loading` (nothing was written: the consumer only
 * acked), so each round runs them in that order. bench/queue-path/worker.ts is the bench worker.
 *
 *   npx tsx bench/queue-path.ts [--reps N] [--data DIR] [--variants a,b,…]
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { serveArchives } from "../scripts/lib/archive-server";
import { applyLocalMigrations, startDevServer, type DevServer } from "../scripts/lib/dev-server";
import { removeEtlState, startEtl, type EtlServer } from "./lib/etl";
import { frozenConfig } from "./lib/frozen";
import { processCpuSeconds } from "./lib/rss";
import { loadAverage, summarise } from "./lib/stats";

const { values } = parseArgs({
  options: {
    reps: { type: "string", default: "5" },
    data: { type: "string", default: "../shared/fashion-mnist" },
    variants: { type: "string", default: "producer,queue,consumer,etl-bench,etl" },
  },
});
const reps = Number(values.reps);
const dataDir = resolve(values.data);

interface RunJson {
  id: string;
  status: string;
  error: string | null;
  checksums: Record<string, string> | null;
  chunksTotal: number | null;
  splits: Record<"train" | "test", { expected: number | null; loaded: number }>;
}
interface BenchState {
  mode: string;
  captured: number;
  acked: number;
  deliveries: number;
  firstDeliveryMs: number | null;
  lastDeliveryEndMs: number | null;
  sendStartMs: number | null;
  sendEndMs: number | null;
  sendBatches: number;
  handlerMs: number;
  d1BatchMs: number;
  d1Batches: number;
  lastHandlerMs: number;
  nowMs: number;
}
interface Sample {
  seconds: number;
  cpu: number;
  extra: Record<string, number>;
}

const POLL_MS = 50;
const TIMEOUT_S = 300;
const sleep = (ms: number) => new Promise((ok) => setTimeout(ok, ms));

const token = randomBytes(24).toString("hex");
const state = await mkdtemp(join(tmpdir(), "idx-etl-queue-path-"));
const archives = await serveArchives(dataDir);
let qp: DevServer | undefined;
let etl: EtlServer | undefined;
const startLoad = loadAverage();
try {
  const config = await frozenConfig({ entry: "bench/queue-path/worker.ts", config: "wrangler.toml", dir: state });
  await applyLocalMigrations({ config, database: "images", persistTo: state });
  qp = await startDevServer({ config, persistTo: state, vars: { ETL_TOKEN: token } });
  const q = qp;
  const chosen = values.variants.split(",");
  if (chosen.includes("etl")) etl = await startEtl({ dataDir, vars: {}, token, metered: false });

  const call = async <T>(method: string, path: string, body?: unknown): Promise<T> => {
    const res = await fetch(`${q.url}${path}`, {
      method,
      headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const json = (await res.json()) as T & { error?: string };
    if (!res.ok) throw new Error(`${method} ${path}: HTTP ${res.status}: ${json.error}`);
    return json;
  };
  const getRun = async (id: string) => (await call<{ run: RunJson }>("GET", `/runs/${id}`)).run;
  const benchState = () => call<BenchState>("GET", "/__bench/state");
  const cpuNow = () => processCpuSeconds(q.pid, "workerd");
  /** Worker-side times (ms since the mode was set) as seconds, for the extras. */
  const ws = (ms: number | null) => (ms === null ? NaN : ms / 1000);

  /** Polls `done` every POLL_MS from t0; returns the seconds elapsed when it first held. */
  const until = async (t0: number, what: string, done: () => Promise<boolean>): Promise<number> => {
    for (;;) {
      if (await done()) return (performance.now() - t0) / 1000;
      if (performance.now() - t0 > TIMEOUT_S * 1000) throw new Error(`${what}: not done after ${TIMEOUT_S} s`);
      await sleep(POLL_MS);
    }
  };

  let loadingRun: RunJson | undefined;

  /** Trigger a run of the product (force), and wait for `done`. */
  const trigger = async (): Promise<{ run: RunJson; t0: number }> => {
    const t0 = performance.now();
    const { run } = await call<{ run: RunJson }>("POST", "/runs", {
      trigger: "cli",
      source: archives.url,
      force: true,
    });
    return { run, t0 };
  };

  const producer = async (): Promise<Sample> => {
    const reset = await call<{ failed: string[] }>("POST", "/__bench/reset");
    if (reset.failed.length) console.log(`  (reset failed runs ${reset.failed.join(", ")})`);
    await call("POST", "/__bench/mode?set=capture");
    const cpu0 = await cpuNow();
    const { run: started, t0 } = await trigger();
    let checksumsAt = NaN;
    let run = started;
    let s: BenchState | undefined;
    const seconds = await until(t0, "producer", async () => {
      [run, s] = await Promise.all([getRun(started.id), benchState()]);
      if (run.status === "failed") throw new Error(`producer run failed: ${run.error}`);
      if (Number.isNaN(checksumsAt) && Object.keys(run.checksums ?? {}).length === 4)
        checksumsAt = (performance.now() - t0) / 1000;
      return !Number.isNaN(checksumsAt) && run.chunksTotal !== null && s.acked === run.chunksTotal;
    });
    const cpu = (await cpuNow()) - cpu0;
    if (run.status !== "loading" || run.splits.train.loaded + run.splits.test.loaded !== 0)
      throw new Error(`producer: run ${run.id} is ${run.status} with rows`);
    loadingRun = run;
    return {
      seconds,
      cpu,
      extra: {
        checksums: checksumsAt,
        firstDelivery: ws(s!.firstDeliveryMs),
        chunks: run.chunksTotal ?? NaN,
        deliveries: s!.deliveries,
      },
    };
  };

  /** Send the captured messages again, in mode `m`; done when `done` holds. */
  const resend = async (m: "ack" | "real", done: (s: BenchState) => Promise<boolean>): Promise<Sample> => {
    await call("POST", `/__bench/mode?set=${m}`);
    const cpu0 = await cpuNow();
    const t0 = performance.now();
    const sending = call<{ messages: number; batches: number }>("POST", "/__bench/send");
    let s: BenchState | undefined;
    const seconds = await until(t0, `send (${m})`, async () => done((s = await benchState())));
    const sent = await sending;
    const cpu = (await cpuNow()) - cpu0;
    return {
      seconds,
      cpu,
      extra: {
        sendEnd: ws(s!.sendEndMs),
        firstDelivery: ws(s!.firstDeliveryMs),
        lastDeliveryEnd: ws(s!.lastDeliveryEndMs),
        deliveries: s!.deliveries,
        batches: sent.batches,
        handler: s!.handlerMs / 1000,
        ...(m === "real" ? { d1Batch: s!.d1BatchMs / 1000, lastHandler: s!.lastHandlerMs / 1000 } : {}),
      },
    };
  };

  const queue = () => resend("ack", async (s) => s.captured > 0 && s.acked === s.captured);

  const consumer = async (): Promise<Sample> => {
    const run = loadingRun;
    if (!run) throw new Error("consumer: no loading run (run producer first)");
    loadingRun = undefined;
    let last = run;
    const sample = await resend("real", async () => {
      last = await getRun(run.id);
      if (last.status === "failed") throw new Error(`consumer run failed: ${last.error}`);
      return last.status === "complete";
    });
    const rows = last.splits.train.loaded + last.splits.test.loaded;
    if (rows !== 70_000) throw new Error(`consumer: ${rows} rows`);
    return sample;
  };

  const etlBench = async (): Promise<Sample> => {
    await call("POST", "/__bench/reset");
    await call("POST", "/__bench/mode?set=real");
    const cpu0 = await cpuNow();
    const { run: started, t0 } = await trigger();
    let checksumsAt = NaN;
    let loadingAt = NaN;
    let run = started;
    const seconds = await until(t0, "etl-bench", async () => {
      run = await getRun(started.id);
      if (run.status === "failed") throw new Error(`etl-bench run failed: ${run.error}`);
      const el = (performance.now() - t0) / 1000;
      if (Number.isNaN(loadingAt) && (run.status === "loading" || run.status === "complete")) loadingAt = el;
      if (Number.isNaN(checksumsAt) && Object.keys(run.checksums ?? {}).length === 4) checksumsAt = el;
      return run.status === "complete";
    });
    const cpu = (await cpuNow()) - cpu0;
    const rows = run.splits.train.loaded + run.splits.test.loaded;
    if (rows !== 70_000) throw new Error(`etl-bench: ${rows} rows`);
    return { seconds, cpu, extra: { extract: loadingAt, checksums: checksumsAt } };
  };

  const etlOnce = async (): Promise<Sample> => {
    const e = etl!;
    const cpu0 = await processCpuSeconds(e.dev.pid, "workerd");
    const t = await e.run();
    const cpu = (await processCpuSeconds(e.dev.pid, "workerd")) - cpu0;
    if (t.rows !== 70_000) throw new Error(`etl: ${t.rows} rows`);
    return { seconds: t.seconds, cpu, extra: { extract: t.extractSeconds, checksums: t.producerSeconds } };
  };

  const defined: { name: string; label: string; once: () => Promise<Sample> }[] = [
    {
      name: "producer",
      label: "extraction job → chunks queue, consumer only acks: trigger → all acked",
      once: producer,
    },
    { name: "queue", label: "the producer's messages from memory → queue → ack: send → all acked", once: queue },
    {
      name: "consumer",
      label: "the producer's messages from memory → queue → consumeChunks → D1: send → complete",
      once: consumer,
    },
    { name: "etl-bench", label: "the real ETL in the bench worker: trigger → complete", once: etlBench },
    { name: "etl", label: "the real ETL, product Worker (bench/lib/etl.ts): trigger → complete", once: etlOnce },
  ];
  const variants = chosen.map((n) => {
    const v = defined.find((d) => d.name === n);
    if (!v) throw new Error(`no variant ${n}: ${defined.map((d) => d.name).join(", ")}`);
    return v;
  });
  if (chosen.includes("consumer") && chosen.indexOf("producer") > chosen.indexOf("consumer"))
    throw new Error("consumer needs producer before it in each round");

  const seen = new Map<string, Sample[]>();
  const loads: string[] = [];
  for (let rep = 0; rep <= reps; rep++) {
    loads.push(loadAverage());
    for (const v of variants) {
      const s = await v.once();
      const extra = JSON.stringify(s.extra, (_, x) => (typeof x === "number" ? Math.round(x * 1000) / 1000 : x));
      console.log(
        `${rep === 0 ? "warm-up" : `rep ${rep}`} ${v.name}: ${s.seconds.toFixed(2)} s, cpu ${s.cpu.toFixed(2)} s, ${extra} [load ${loadAverage()}]`,
      );
      if (rep > 0) seen.set(v.name, [...(seen.get(v.name) ?? []), s]);
    }
  }
  loads.push(loadAverage());

  if (reps > 0) {
    const med = (xs: number[]) => summarise(xs).median.toFixed(2);
    console.log(`\nload average: start ${startLoad}; per round ${loads.join(" | ")}`);
    console.log("\n| variant | what | median s | min–max s | workerd CPU s | parts (medians, s from the start) |");
    console.log("|---|---|---|---|---|---|");
    for (const v of variants) {
      const ss = seen.get(v.name)!;
      const m = summarise(ss.map((s) => s.seconds));
      const parts = Object.keys(ss[0]!.extra)
        .map((k) => `${k} ${med(ss.map((s) => s.extra[k]!))}`)
        .join(", ");
      console.log(
        `| ${v.name} | ${v.label} | ${m.median.toFixed(2)} | ${m.min.toFixed(2)}–${m.max.toFixed(2)} | ${med(ss.map((s) => s.cpu))} | ${parts} |`,
      );
    }
  }
} finally {
  if (etl) {
    await etl.stop();
    await removeEtlState(etl);
  }
  await qp?.stop();
  await archives.close();
  await rm(state, { recursive: true, force: true });
}
