/**
 * The floor Worker (bench/floor/worker.ts) driven from Node: a frozen bundle in
 * a state directory of its own, the real archives' rows sent to it once, and
 * one fill per call.
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { startDevServer, type DevServer } from "../../scripts/lib/dev-server";
import type { StackPart, StackResult } from "../floor/parts";
import type { FillResult } from "../floor/worker";
import { frozenConfig } from "./frozen";
import { processCpuSeconds } from "./isolate";

export type { FillResult, StackPart };
export { STACK_PARTS } from "../floor/parts";

/** A part of the required stack, timed in the Worker, and the CPU workerd spent meanwhile (its idle waits left out). */
export interface StackRun extends StackResult {
  readonly cpuSeconds: number;
}

export interface FloorVariant {
  readonly name: string;
  readonly kind: "rows" | "blob";
  readonly perTransaction: number;
  readonly perStatement?: number;
  readonly inflight?: number;
}

/**
 * What `npm run bench` runs. `rows-*`: the Worker floor's candidates, the
 * fastest of them being the floor: 320 to 1,280 rows per transaction, where
 * statements carrying their pixels were fastest (decisions.md; 2,560 rows and
 * two transactions in flight were slower in bench/floor/run.ts). `blob-1tx`:
 * randomblob() in one transaction, its fastest shape.
 */
export const BENCH_VARIANTS: readonly FloorVariant[] = [
  { name: "rows-320", kind: "rows", perTransaction: 320, perStatement: 100 },
  { name: "rows-640", kind: "rows", perTransaction: 640, perStatement: 100 },
  { name: "rows-1280", kind: "rows", perTransaction: 1280, perStatement: 100 },
  { name: "blob-1tx", kind: "blob", perTransaction: 70_000 },
];

/** `name` is kind-perTransaction[-perStatement][-xInflight], e.g. rows-640-100-x2 or blob-70000. */
export function parseVariant(name: string): FloorVariant {
  const m = /^(rows|blob)-(\d+)(?:-(\d+))?(?:-x(\d+))?$/.exec(name);
  if (!m) throw new Error(`a floor variant is kind-perTransaction[-perStatement][-xInflight], got ${name}`);
  return {
    name,
    kind: m[1] as "rows" | "blob",
    perTransaction: Number(m[2]),
    ...(m[3] ? { perStatement: Number(m[3]) } : {}),
    ...(m[4] ? { inflight: Number(m[4]) } : {}),
  };
}

/** An IDX archive's payload: the bytes after its header (8 bytes for labels, 16 for images). */
async function idxPayload(file: string, header: number): Promise<Uint8Array> {
  return gunzipSync(await readFile(file)).subarray(header);
}

export interface FloorServer {
  /** The dev server's process group (its workerd's inspector profiles the floor). */
  readonly pid: number;
  once(v: FloorVariant): Promise<FillResult>;
  /** One part of what the required stack adds to the floor (bench/floor/stack.ts), `chunk` images per message. */
  stack(part: StackPart, chunk: number): Promise<StackRun>;
  stop(): Promise<void>;
}

/** Fashion-MNIST's four archives from dataDir (their standard names, as the seed script reads them). */
export async function startFloor(dataDir: string): Promise<FloorServer> {
  const state = await mkdtemp(join(tmpdir(), "idx-etl-floor-"));
  let dev: DevServer;
  try {
    const config = await frozenConfig({
      entry: "bench/floor/worker.ts",
      config: "bench/floor/wrangler.toml",
      dir: state,
    });
    dev = await startDevServer({ config, persistTo: state, readyPath: "/ready" });
  } catch (err) {
    await rm(state, { recursive: true, force: true });
    throw err;
  }
  const stop = async () => {
    await dev.stop();
    await rm(state, { recursive: true, force: true });
  };
  try {
    for (const [split, prefix] of [
      ["train", "train"],
      ["test", "t10k"],
    ] as const) {
      const labels = await idxPayload(join(dataDir, `${prefix}-labels-idx1-ubyte.gz`), 8);
      const images = await idxPayload(join(dataDir, `${prefix}-images-idx3-ubyte.gz`), 16);
      const body = new Uint8Array(labels.length + images.length);
      body.set(labels, 0);
      body.set(images, labels.length);
      const res = await fetch(`${dev.url}/data?split=${split}&count=${labels.length}`, { method: "POST", body });
      if (!res.ok) throw new Error(`floor: POST /data ${split}: HTTP ${res.status}: ${await res.text()}`);
      for (const file of [`${prefix}-labels-idx1-ubyte.gz`, `${prefix}-images-idx3-ubyte.gz`]) {
        const sent = await fetch(`${dev.url}/archive?file=${file}`, {
          method: "POST",
          body: await readFile(join(dataDir, file)),
        });
        if (!sent.ok) throw new Error(`floor: POST /archive ${file}: HTTP ${sent.status}: ${await sent.text()}`);
      }
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    pid: dev.pid,
    async once(v) {
      const q = new URLSearchParams({ kind: v.kind, perTransaction: String(v.perTransaction) });
      if (v.perStatement) q.set("perStatement", String(v.perStatement));
      if (v.inflight) q.set("inflight", String(v.inflight));
      const res = await fetch(`${dev.url}/fill?${q}`, { method: "POST" });
      const body = (await res.json()) as FillResult & { error?: string };
      if (!res.ok) throw new Error(`floor ${v.name}: HTTP ${res.status}: ${body.error}`);
      if (!body.verified) throw new Error(`floor ${v.name}: the rows read back are not the rows written`);
      return body;
    },
    async stack(part, chunk) {
      const cpu0 = await processCpuSeconds(dev.pid, "workerd");
      const res = await fetch(`${dev.url}/stack?part=${part}&chunk=${chunk}`, { method: "POST" });
      const body = (await res.json()) as StackResult & { error?: string };
      if (!res.ok) throw new Error(`floor stack ${part}: HTTP ${res.status}: ${body.error}`);
      return { ...body, cpuSeconds: (await processCpuSeconds(dev.pid, "workerd")) - cpu0 };
    },
    stop,
  };
}
