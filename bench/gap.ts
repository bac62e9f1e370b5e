/**
 * Where the ETL's time goes: the same 70,000 Fashion-MNIST rows stored in the
 * product's layout and 640-row transactions, step by step from the floor to the
 * full ETL, all in local D1 (workerd), round robin after a warm-up round:
 *
 *   floor-640   the floor as `npm run bench` measures it (randomblob, 80-row INSERTs)
 *   floor-2560  the same in 2,560-row transactions (max_batch_size 16)
 *   floor-1tx   the fastest floor (one transaction, one INSERT per split), for scale
 *   plainhex    the product's INSERTs, unguarded, no ledger, plain hex + unhex(column3)
 *   transport   the product's INSERTs with their packed hex bound, randomblob() stored (no decode)
 *   inserts     the same with the product's packed hex + unhex(replace(…))
 *   noguard     + the ledger row, progress, run state and ledger read of each delivery
 *   product     the product's exact statements (chunksStatements): + the EXISTS guards
 *   product-2560  the same in 2,560-row transactions (16 chunks per delivery)
 *   transform   the consumer's Worker-side work alone (packed hex, digests, statements), no D1
 *   producer    the ETL's extraction job alone in workerd (no chunk consumer; a fresh dev server each time)
 *   etl         the real ETL (bench/lib/etl.ts: queues, producer, consumers), trigger → complete
 *
 * The gap variants run inside a Worker (bench/gap/worker.ts) that sends straight to D1,
 * statements built per transaction; their `batch` time excludes building them.
 *
 * Also, when named: product-160, product-320, product-1280 (other transaction sizes) and
 * transport-2560.
 *
 *   npx tsx bench/gap.ts [--reps N] [--data DIR] [--no-etl] [--per-transaction N] [--variants a,b,…]
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { gunzipSync } from "node:zlib";
import { applyLocalMigrations, startDevServer, type DevServer } from "../scripts/lib/dev-server";
import { FASHION_MNIST } from "../src/core/registry";
import type { GapResult, TransformResult } from "./gap/worker";
import type { FloorResult } from "./floor/worker";
import { removeEtlState, startEtl, type EtlServer } from "./lib/etl";
import { frozenConfig } from "./lib/frozen";
import { producerOnce } from "./lib/producer-only";
import { processCpuSeconds } from "./lib/rss";
import { loadAverage, summarise } from "./lib/stats";

const { values } = parseArgs({
  options: {
    reps: { type: "string", default: "3" },
    data: { type: "string", default: "../shared/fashion-mnist" },
    "no-etl": { type: "boolean", default: false },
    "per-transaction": { type: "string", default: "640" },
    /** Comma-separated names (floor-640 among them); the default set otherwise. */
    variants: { type: "string" },
  },
});
const reps = Number(values.reps);
const dataDir = resolve(values.data);
const perTransaction = Number(values["per-transaction"]);
/** A larger transaction for the product's statements: max_batch_size 16 instead of 4. */
const largeTransaction = 2_560;

interface Sample {
  /** The variant's own timed span (inside the Worker; trigger → complete for the ETL). */
  seconds: number;
  /** Gap variants: time inside db.batch alone; build: statement building. */
  batch?: number;
  build?: number;
  /** CPU of the dev server's workerd processes over the request. */
  cpu: number;
  extra?: Record<string, number>;
}

const state = await mkdtemp(join(tmpdir(), "idx-etl-gap-"));
let gap: DevServer | undefined;
let etl: EtlServer | undefined;
const startLoad = loadAverage();
try {
  const config = await frozenConfig({ entry: "bench/gap/worker.ts", config: "bench/gap/wrangler.toml", dir: state });
  await applyLocalMigrations({ config, database: "bench-gap", persistTo: state });
  gap = await startDevServer({ config, persistTo: state, readyPath: "/ready" });
  const g = gap;
  console.log("clock:", await (await fetch(`${g.url}/clock`)).json());

  // The real archives, sent to the Worker once (untimed).
  for (const s of FASHION_MNIST.splits) {
    const labels = gunzipSync(await readFile(join(dataDir, s.labels.file))).subarray(8);
    const pixels = gunzipSync(await readFile(join(dataDir, s.images.file))).subarray(16);
    const zero = pixels.reduce((n, b) => n + (b === 0 ? 1 : 0), 0) / pixels.length;
    const res = await fetch(`${g.url}/data?split=${s.split}&count=${labels.length}`, {
      method: "POST",
      body: Buffer.concat([labels, pixels]),
    });
    if (!res.ok) throw new Error(`data ${s.split}: ${await res.text()}`);
    console.log(`${s.split}: ${labels.length} images, ${(zero * 100).toFixed(1)}% zero pixels`);
  }

  if (!values["no-etl"]) {
    etl = await startEtl({ dataDir, vars: {}, token: randomBytes(24).toString("hex"), metered: false });
  }

  const post = async <T>(path: string): Promise<{ body: T; cpu: number }> => {
    const cpu0 = await processCpuSeconds(g.pid, "workerd");
    const res = await fetch(`${g.url}${path}`, { method: "POST" });
    const body = (await res.json()) as T & { error?: string };
    const cpu = (await processCpuSeconds(g.pid, "workerd")) - cpu0;
    if (!res.ok) throw new Error(`${path}: HTTP ${res.status}: ${body.error}`);
    return { body, cpu };
  };
  const floorOnce = async (q: string): Promise<Sample> => {
    const { body, cpu } = await post<FloorResult>(`/floor?${q}`);
    if (!body.verified) throw new Error(`floor ${q}: not verified`);
    return { seconds: body.seconds, cpu };
  };
  const gapOnce = async (variant: string, rows = perTransaction): Promise<Sample> => {
    const { body, cpu } = await post<GapResult>(`/gap?variant=${variant}&perTransaction=${rows}`);
    if (!body.verified) throw new Error(`gap ${variant}: not verified: ${JSON.stringify(body.check)}`);
    return {
      seconds: body.seconds,
      batch: body.batchSeconds,
      build: body.buildSeconds,
      cpu,
      extra: { statements: body.statements, rowsWritten: body.rowsWritten, paramMB: body.paramMB },
    };
  };

  const defined: { name: string; label: string; once: () => Promise<Sample>; extra?: boolean }[] = [
    {
      name: "floor-640",
      label: `floor: randomblob, product layout, ${perTransaction}-row transactions, 80-row INSERTs`,
      once: () => floorOnce(`layout=rowid&mode=values&perTransaction=${perTransaction}&perStatement=80`),
    },
    {
      name: `floor-${largeTransaction}`,
      label: `floor: randomblob, product layout, ${largeTransaction}-row transactions, 80-row INSERTs`,
      once: () => floorOnce(`layout=rowid&mode=values&perTransaction=${largeTransaction}&perStatement=80`),
    },
    {
      name: "floor-1tx",
      label: "fastest floor: randomblob, one transaction, one INSERT per split",
      once: () => floorOnce("layout=rowid&mode=cte&perTransaction=70000"),
    },
    { name: "plainhex", label: "product INSERTs, no guards, no ledger, plain hex", once: () => gapOnce("plainhex") },
    {
      name: "transport",
      label: "product INSERTs' packed hex bound and parsed, randomblob stored (no decode)",
      once: () => gapOnce("transport"),
    },
    { name: "inserts", label: "product INSERTs, no guards, no ledger (packed hex)", once: () => gapOnce("inserts") },
    {
      name: "noguard",
      label: "product statements incl. ledger/progress/state, no guards",
      once: () => gapOnce("noguard"),
    },
    {
      name: "product",
      label: "product statements exactly (chunksStatements), straight to D1",
      once: () => gapOnce("product"),
    },
    {
      name: `product-${largeTransaction}`,
      label: `product statements exactly, ${largeTransaction}-row transactions (16 chunks per delivery)`,
      once: () => gapOnce("product", largeTransaction),
    },
    // Not run unless named (--variants): the product's statements at other transaction sizes.
    ...[160, 320, 1_280].map((rows) => ({
      name: `product-${rows}`,
      label: `product statements exactly, ${rows}-row transactions (${rows / 160} chunks per delivery)`,
      once: () => gapOnce("product", rows),
      extra: true,
    })),
    {
      name: `transport-${largeTransaction}`,
      label: `transport, ${largeTransaction}-row transactions`,
      once: () => gapOnce("transport", largeTransaction),
      extra: true,
    },
    {
      name: "transform",
      label: "Worker-side transform alone, 438 chunks, no D1",
      once: async () => {
        const { body, cpu } = await post<TransformResult>("/transform");
        const p = body.parts;
        // statementsPrepared includes the packed hex (buildInsertStatements makes it): the consumer's work is it + digests.
        return { seconds: p.digest! + p.statementsPrepared!, cpu, extra: p };
      },
    },
  ];
  if (etl) {
    const e = etl;
    defined.push({
      name: "producer",
      label: "the ETL's extraction job alone (no chunk consumer: messages pile up in the queue), trigger → 4 checksums",
      once: async () => {
        const p = await producerOnce(dataDir);
        return { seconds: p.seconds, cpu: p.cpu, extra: { chunks: p.chunks } };
      },
    });
    defined.push({
      name: "etl",
      label: "the real ETL (queues), trigger → complete",
      once: async () => {
        const cpu0 = await processCpuSeconds(e.dev.pid, "workerd");
        const t = await e.run();
        const cpu = (await processCpuSeconds(e.dev.pid, "workerd")) - cpu0;
        return {
          seconds: t.seconds,
          cpu,
          extra: { extract: t.extractSeconds, producer: t.producerSeconds, load: t.seconds - t.extractSeconds },
        };
      },
    });
  }

  const chosen = values.variants?.split(",");
  const variants = chosen
    ? chosen.map((n) => {
        const v = defined.find((d) => d.name === n);
        if (!v) throw new Error(`no variant ${n}: ${defined.map((d) => d.name).join(", ")}`);
        return v;
      })
    : defined.filter((d) => !d.extra);
  if (!variants.some((v) => v.name === "floor-640")) throw new Error("floor-640 is the reference: name it too");
  const seen = new Map<string, Sample[]>();
  const loads: string[] = [];
  for (let rep = 0; rep <= reps; rep++) {
    loads.push(loadAverage());
    for (const v of variants) {
      const s = await v.once();
      const parts = [
        `${s.seconds.toFixed(2)} s`,
        s.batch !== undefined ? `batch ${s.batch.toFixed(2)} s, build ${s.build!.toFixed(2)} s` : "",
        `cpu ${s.cpu.toFixed(2)} s`,
        s.extra ? JSON.stringify(s.extra, (_, x) => (typeof x === "number" ? Math.round(x * 1000) / 1000 : x)) : "",
      ].filter(Boolean);
      console.log(`${rep === 0 ? "warm-up" : `rep ${rep}`} ${v.name}: ${parts.join(", ")}`);
      if (rep > 0) seen.set(v.name, [...(seen.get(v.name) ?? []), s]);
    }
  }
  loads.push(loadAverage());

  if (reps > 0) {
    const base = summarise(seen.get("floor-640")!.map((s) => s.seconds)).median;
    const med = (xs: (number | undefined)[]) =>
      xs.every((x) => x !== undefined) ? summarise(xs as number[]).median.toFixed(2) : "";
    console.log(`\nload average: start ${startLoad}; per round ${loads.join(" | ")}`);
    console.log(
      "\n| variant | what | median s | min–max s | / floor-640 | in db.batch s | building s | workerd CPU s |",
    );
    console.log("|---|---|---|---|---|---|---|---|");
    for (const v of variants) {
      const ss = seen.get(v.name)!;
      const m = summarise(ss.map((s) => s.seconds));
      console.log(
        `| ${v.name} | ${v.label} | ${m.median.toFixed(2)} | ${m.min.toFixed(2)}–${m.max.toFixed(2)} | ${(m.median / base).toFixed(2)} | ${med(ss.map((s) => s.batch))} | ${med(ss.map((s) => s.build))} | ${med(ss.map((s) => s.cpu))} |`,
      );
    }
    for (const name of ["transform", "etl"]) {
      const ss = seen.get(name);
      if (!ss) continue;
      const keys = Object.keys(ss[0]!.extra ?? {});
      console.log(
        `${name} parts (medians): ${keys.map((k) => `${k} ${med(ss.map((s) => s.extra![k]))} s`).join(", ")}`,
      );
    }
  }
} finally {
  if (etl) {
    await etl.stop();
    await removeEtlState(etl);
  }
  await gap?.stop();
  await rm(state, { recursive: true, force: true });
}
