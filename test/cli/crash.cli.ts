/**
 * Crash recovery (issue #9), through the public interface: `wrangler dev` is
 * SIGKILLed mid-extraction and mid-load, restarted on the same --persist-to
 * state, and the run is recovered over HTTP (POST /runs, /abandon, /resume)
 * until the exports hold exactly the new dataset. While the Worker is down,
 * `images` is read straight from the local D1 file and must still hold exactly
 * the previous complete dataset, every row and every float32 bit of it.
 *
 * The archives come from a server in this file that can trickle a file (N
 * bytes every M ms), so the run can be caught at the step wanted.
 * Local Queues (Miniflare) keep their messages in memory only: a SIGKILL loses
 * them. The test notes what it sees and passes either way.
 */
import { copyFile, mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { gzipSync } from "fflate";
import { afterAll, beforeAll, expect, it } from "vitest";
import { type Split } from "../../src/core/datasets";
import { FASHION_MNIST } from "../../src/core/registry";
import { applyLocalMigrations, localD1, startDevServer, type DevServer } from "../../scripts/lib/dev-server";
import type { ErrorBody } from "../../src/http/schemas/common";
import type { ActiveRunConflict, RunResponse, RunView } from "../../src/http/schemas/runs";
import { idxBytes, mulberry32 } from "../idx-fixtures";

const PIXELS = 784;
const LEASE_SECONDS = 3;
const TRAIN_IMAGES = FASHION_MNIST.splits[0]!.images.file;

// ---------------------------------------------------------------- datasets

interface Dataset {
  readonly name: string;
  readonly count: Record<Split, number>;
  readonly pixels: Record<Split, Uint8Array>;
  readonly labels: Record<Split, Uint8Array>;
  /** The four .gz archives, by file name. */
  readonly files: Map<string, Uint8Array>;
}

/** Pseudo-random pixels (40 % zeros, like real images have many), so the archives hardly compress. */
function dataset(name: string, seed: number, count: Record<Split, number>): Dataset {
  const rnd = mulberry32(seed);
  const pixels = {} as Record<Split, Uint8Array>;
  const labels = {} as Record<Split, Uint8Array>;
  const files = new Map<string, Uint8Array>();
  for (const spec of FASHION_MNIST.splits) {
    const n = count[spec.split];
    const px = Uint8Array.from({ length: n * PIXELS }, () => (rnd() < 0.4 ? 0 : Math.floor(rnd() * 256)));
    const lb = Uint8Array.from({ length: n }, () => Math.floor(rnd() * 10));
    pixels[spec.split] = px;
    labels[spec.split] = lb;
    files.set(spec.images.file, gzipSync(idxBytes([n, 28, 28], px)));
    files.set(spec.labels.file, gzipSync(idxBytes([n], lb)));
  }
  return { name, count, pixels, labels, files };
}

/** The 4 little-endian bytes of Math.fround(b / 255), for each byte b: what the `pixels` BLOB must hold. */
const FLOAT_BYTES: Uint8Array = (() => {
  const out = new Uint8Array(256 * 4);
  const view = new DataView(out.buffer);
  for (let b = 0; b < 256; b++) view.setFloat32(4 * b, Math.fround(b / 255), true);
  return out;
})();
const HEX_OF_BYTE = Array.from({ length: 256 }, (_, b) =>
  Buffer.from(FLOAT_BYTES.subarray(4 * b, 4 * b + 4))
    .toString("hex")
    .toUpperCase(),
);

function floatBytes(px: Uint8Array): Buffer {
  const out = Buffer.alloc(px.length * 4);
  for (let i = 0; i < px.length; i++) out.set(FLOAT_BYTES.subarray(4 * px[i]!, 4 * px[i]! + 4), 4 * i);
  return out;
}

/** SQLite's hex(pixels) of image i: upper-case hex of its float32 bytes. */
function rowHex(px: Uint8Array, i: number): string {
  let s = "";
  for (let j = i * PIXELS; j < (i + 1) * PIXELS; j++) s += HEX_OF_BYTE[px[j]!];
  return s;
}

// ---------------------------------------------------------------- a slow archive server

interface Throttle {
  readonly bytes: number;
  readonly everyMs: number;
}

/** Serves /<dataset>/<file>; a throttled file is written `bytes` every `everyMs` ms. Counts requests and bytes served. */
class ArchiveServer {
  readonly throttles = new Map<string, Throttle>();
  readonly requests = new Map<string, number>();
  readonly served = new Map<string, number>();
  private readonly server: Server;
  url = "";

  constructor(private readonly datasets: Map<string, Dataset>) {
    this.server = createServer((req, res) => {
      const key = decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname.slice(1));
      const [name, file] = key.split("/");
      const body = this.datasets.get(name ?? "")?.files.get(file ?? "");
      if (!body) {
        res.writeHead(404).end();
        return;
      }
      this.requests.set(key, (this.requests.get(key) ?? 0) + 1);
      res.writeHead(200, { "Content-Type": "application/gzip", "Content-Length": body.length });
      let at = 0;
      let timer: ReturnType<typeof setTimeout> | undefined;
      res.on("close", () => clearTimeout(timer));
      const pump = () => {
        if (res.destroyed) return;
        const throttle = this.throttles.get(key);
        const end = throttle ? Math.min(body.length, at + throttle.bytes) : body.length;
        res.write(body.subarray(at, end));
        this.served.set(key, (this.served.get(key) ?? 0) + (end - at));
        at = end;
        if (at >= body.length) res.end();
        else timer = setTimeout(pump, throttle?.everyMs ?? 0);
      };
      pump();
    });
  }

  async listen(): Promise<void> {
    await new Promise<void>((ok) => this.server.listen(0, "127.0.0.1", ok));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  source = (d: Dataset): string => `${this.url}/${d.name}`;
  count = (map: Map<string, number>, d: Dataset): number =>
    [...map].filter(([k]) => k.startsWith(`${d.name}/`)).reduce((n, [, v]) => n + v, 0);

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((ok) => this.server.close(ok));
  }
}

// ---------------------------------------------------------------- the Worker, its API, its D1

/** A run as the API answers it (the schema's type). */
type RunJson = RunView;

interface Answer {
  status: number;
  body: Partial<RunResponse & ErrorBody & ActiveRunConflict>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const since = (t: number) => `${((Date.now() - t) / 1000).toFixed(1)} s`;

let work: string;
let state: string;
let archives: ArchiveServer;
let dev: DevServer | undefined;
let starts = 0;
const token = randomBytes(24).toString("hex");
const logs: string[] = [];
const timings: [string, number][] = [];
let passed = false;

function note(line: string): void {
  console.log(`[crash.cli] ${line}`);
}

async function startWorker(): Promise<DevServer> {
  const t = Date.now();
  dev = await startDevServer({
    persistTo: state,
    vars: { ETL_TOKEN: token, RUN_LEASE_SECONDS: String(LEASE_SECONDS) },
    readyTimeoutMs: 90_000,
  });
  starts++;
  note(`wrangler dev #${starts} up in ${since(t)} at ${dev.url} (pid ${dev.pid})`);
  return dev;
}

/** SIGKILL the whole wrangler dev process group (wrangler and workerd), and wait until it no longer answers. */
async function crashWorker(): Promise<void> {
  const d = dev!;
  dev = undefined;
  process.kill(-d.pid, "SIGKILL");
  const deadline = Date.now() + 15_000;
  for (;;) {
    const up = await fetch(`${d.url}/runs?limit=1`).then(
      () => true,
      () => false,
    );
    if (!up) break;
    if (Date.now() > deadline) throw new Error(`wrangler dev (pid ${d.pid}) still answers 15 s after SIGKILL`);
    await sleep(100);
  }
  await sleep(300); // the pipes flush the last log lines
  const saved = join(work, `dev-${starts}.log`);
  await copyFile(d.logFile, saved).catch(() => {});
  logs.push(saved);
}

async function api(method: "GET" | "POST", path: string, body?: unknown): Promise<Answer> {
  const res = await fetch(`${dev!.url}${path}`, {
    method,
    headers: {
      ...(method === "POST" ? { Authorization: `Bearer ${token}` } : {}),
      ...(body === undefined ? {} : { "Content-Type": "application/json" }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Answer["body"] };
}

async function getRun(id: string): Promise<RunJson> {
  const { status, body } = await api("GET", `/runs/${id}`);
  if (status !== 200 || !body.run) throw new Error(`GET /runs/${id}: HTTP ${status} ${JSON.stringify(body)}`);
  return body.run;
}

async function startRun(d: Dataset): Promise<Answer> {
  return api("POST", "/runs", { source: archives.source(d), force: true });
}

/** Polls run `id` until `done` says so; fails, saying what it last saw, after `timeoutMs`. */
async function waitRun(id: string, what: string, done: (r: RunJson) => boolean, timeoutMs: number): Promise<RunJson> {
  const deadline = Date.now() + timeoutMs;
  let last: RunJson | undefined;
  for (;;) {
    last = await getRun(id);
    if (done(last)) return last;
    if (last.status === "failed" || last.status === "complete")
      throw new Error(`run ${id} is ${last.status} while waiting for ${what}: ${JSON.stringify(last)}`);
    if (Date.now() > deadline)
      throw new Error(`run ${id} not ${what} within ${timeoutMs / 1000} s; last seen ${JSON.stringify(last)}`);
    await sleep(100);
  }
}

const waitComplete = (id: string, timeoutMs = 60_000) =>
  waitRun(id, "complete", (r) => r.status === "complete", timeoutMs);

/** The body of an .npy export, after checking its header's dtype and shape. */
async function npy(path: string, dtype: string, shape: string): Promise<Buffer> {
  const res = await fetch(`${dev!.url}${path}`);
  if (!res.ok) throw new Error(`GET ${path}: HTTP ${res.status} ${await res.text()}`);
  const bytes = Buffer.from(await res.arrayBuffer());
  expect(bytes.subarray(0, 6).equals(Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59])), `${path} magic`).toBe(true);
  const headerLen = bytes.readUInt16LE(8);
  const header = bytes.subarray(10, 10 + headerLen).toString("latin1");
  expect(header, path).toContain(`'descr': '${dtype}'`);
  expect(header, path).toContain(`'shape': ${shape}`);
  return bytes.subarray(10 + headerLen);
}

function sameBytes(what: string, got: Buffer, want: Buffer, rowBytes: number): void {
  if (got.equals(want)) return;
  let i = 0;
  while (i < Math.min(got.length, want.length) && got[i] === want[i]) i++;
  throw new Error(
    `${what}: ${got.length} bytes, expected ${want.length}; first difference at byte ${i} (row ${Math.floor(i / rowBytes)})`,
  );
}

/** Every row of both splits, through the public exports: pixels bit for bit, and labels. */
async function assertExports(d: Dataset): Promise<void> {
  for (const split of ["train", "test"] as const) {
    const n = d.count[split];
    const images = await npy(`/export/${split}.npy`, "<f4", `(${n}, 28, 28, 1)`);
    sameBytes(`/export/${split}.npy vs dataset ${d.name}`, images, floatBytes(d.pixels[split]), PIXELS * 4);
    const labels = await npy(`/export/${split}-labels.npy`, "|u1", `(${n},)`);
    sameBytes(`/export/${split}-labels.npy vs dataset ${d.name}`, labels, Buffer.from(d.labels[split]), 1);
  }
}

/**
 * `images` read from the local D1 file while the Worker is down: exactly `d`,
 * every row's split, idx and label, and every row's pixels as hex.
 */
async function assertImagesOffline(d: Dataset): Promise<void> {
  const rows = await localD1<{ split: Split; idx: number; label: number; h: string }>(
    "SELECT split, idx, label, hex(pixels) AS h FROM images ORDER BY split, idx",
    { persistTo: state },
  );
  for (const split of ["train", "test"] as const) {
    const mine = rows.filter((r) => r.split === split);
    expect(mine.length, `images ${split} rows while down (dataset ${d.name})`).toBe(d.count[split]);
    mine.forEach((r, i) => {
      if (r.idx !== i || r.label !== d.labels[split][i] || r.h !== rowHex(d.pixels[split], i))
        throw new Error(
          `images ${split} row ${i} while down is not dataset ${d.name}'s: idx ${r.idx}, label ${r.label} (want ${d.labels[split][i]}), pixels ${r.h === rowHex(d.pixels[split], i) ? "equal" : "differ"}`,
        );
    });
  }
  expect(rows.length).toBe(d.count.train + d.count.test);
}

interface LedgerRow {
  status: string;
  attempt: number;
  train_loaded: number;
  test_loaded: number;
  chunks_total: number | null;
  chunks: number;
  shadow: number;
}

const SHADOWS = ["images__fashion_mnist__train__next", "images__fashion_mnist__test__next"];

const ledger = async (id: string): Promise<LedgerRow> => {
  const [row] = await localD1<Omit<LedgerRow, "shadow">>(
    `SELECT status, attempt, train_loaded, test_loaded, chunks_total,
       (SELECT COUNT(*) FROM run_chunks WHERE run_id = '${id}') AS chunks
     FROM runs WHERE id = '${id}'`,
    { persistTo: state },
  );
  // The shadow tables exist from the moment the run starts loading until its swap.
  const tables = await localD1<{ name: string }>(
    `SELECT name FROM sqlite_master WHERE type = 'table' AND name IN (${SHADOWS.map((t) => `'${t}'`).join(", ")})`,
    { persistTo: state },
  );
  const counted =
    tables.length === 0
      ? [{ n: 0 }]
      : await localD1<{ n: number }>(
          `SELECT ${tables.map((t) => `(SELECT COUNT(*) FROM ${t.name})`).join(" + ")} AS n`,
          { persistTo: state },
        );
  return { ...row!, shadow: counted[0]!.n };
};

/** After a restart: does the killed run move on its own (its queue messages survived)? Watched for a lease and a bit. */
async function watchAfterRestart(id: string, requestsBefore: number, d: Dataset, ms: number): Promise<RunJson> {
  const first = await getRun(id);
  const deadline = Date.now() + ms;
  let last = first;
  while (Date.now() < deadline) {
    await sleep(250);
    last = await getRun(id);
  }
  const moved =
    last.updatedAt !== first.updatedAt ||
    last.splits.train.loaded !== first.splits.train.loaded ||
    last.status !== first.status;
  const requested = archives.count(archives.requests, d) - requestsBefore;
  note(
    `after restart, run ${id} over ${ms / 1000} s: ${first.status} → ${last.status}, train loaded ${first.splits.train.loaded} → ${last.splits.train.loaded}, updatedAt ${moved ? "moved" : "unchanged"}, ${requested} new archive requests → queue messages ${moved || requested > 0 ? "REDELIVERED" : "lost"}`,
  );
  return last;
}

/** Acked messages per queue in a wrangler dev log ("QUEUE idx-etl-chunks 4/4 (12ms)"). */
async function ackedInLog(file: string, queue: string): Promise<number> {
  const text = await readFile(file, "utf8").catch(() => "");
  let n = 0;
  for (const m of text.matchAll(new RegExp(`QUEUE ${queue} (\\d+)/(\\d+)`, "g"))) n += Number(m[1]);
  return n;
}

async function phase<T>(name: string, body: () => Promise<T>): Promise<T> {
  const t = Date.now();
  try {
    return await body();
  } finally {
    timings.push([name, Date.now() - t]);
  }
}

// ---------------------------------------------------------------- the test

const A = dataset("A", 1, { train: 800, test: 160 });
const B = dataset("B", 2, { train: 2400, test: 400 });
const C = dataset("C", 3, { train: 3200, test: 480 });

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "idx-etl-crash-"));
  state = join(work, "state");
  archives = new ArchiveServer(new Map([A, B, C].map((d) => [d.name, d])));
  await archives.listen();
  await applyLocalMigrations({ persistTo: state });
});

afterAll(async () => {
  const d = dev;
  dev = undefined;
  await d?.stop();
  if (d) logs.push(d.logFile);
  if (!passed) {
    for (const file of logs) {
      const text = await readFile(file, "utf8").catch(() => "");
      console.error(`--- last lines of ${file}\n${text.split("\n").slice(-40).join("\n")}`);
    }
  }
  await archives?.close();
  await rm(work, { recursive: true, force: true });
  console.log(`[crash.cli] timings: ${timings.map(([n, ms]) => `${n} ${(ms / 1000).toFixed(1)} s`).join(", ")}`);
});

it("recovers from SIGKILL of wrangler dev mid-extraction and mid-load, with images exact throughout", async () => {
  await phase("start", startWorker);

  // Phase 0: dataset A, loaded normally.
  await phase("0 load A", async () => {
    const { status, body } = await api("POST", "/runs", { source: archives.source(A) });
    expect(status, JSON.stringify(body)).toBe(202);
    await waitComplete(body.run!.id);
    await assertExports(A);
  });

  // Phase 1: SIGKILL while B's train images are still downloading, before any row is loaded.
  const b1 = await phase("1 B until SIGKILL mid-extraction", async () => {
    archives.throttles.set(`B/${TRAIN_IMAGES}`, { bytes: 8 * 1024, everyMs: 250 });
    const { status, body } = await startRun(B);
    expect(status, JSON.stringify(body)).toBe(202);
    const id = body.run!.id;
    // What a user sees on a second trigger while a run is alive: 409, and how to get past it.
    const again = await startRun(B);
    expect(again.status, JSON.stringify(again.body)).toBe(409);
    expect(again.body.activeRunId).toBe(id);
    expect(again.body.hint).toContain(`POST /runs/${id}/abandon`);
    const seen = await waitRun(
      id,
      "extracting/loading with train images downloading and nothing loaded",
      (r) =>
        (r.status === "extracting" || r.status === "loading") &&
        r.splits.train.loaded === 0 &&
        r.splits.test.loaded === 0 &&
        (archives.served.get(`B/${TRAIN_IMAGES}`) ?? 0) > 0,
      30_000,
    );
    await crashWorker();
    note(
      `phase 1: SIGKILL with run ${id} ${seen.status}, ${archives.served.get(`B/${TRAIN_IMAGES}`)} of ${B.files.get(TRAIN_IMAGES)!.length} bytes of B's ${TRAIN_IMAGES} served, nothing loaded`,
    );
    return id;
  });

  await phase("1 images = A while down", async () => {
    await assertImagesOffline(A);
    const row = await ledger(b1);
    note(
      `phase 1 while down: run ${b1} ${row.status} in D1, ${row.chunks} chunks in its ledger, ${row.shadow} shadow rows`,
    );
    expect(row.chunks).toBe(0);
  });

  archives.throttles.delete(`B/${TRAIN_IMAGES}`);
  await phase("1 restart", startWorker);

  await phase("1 recover B", async () => {
    const t = Date.now();
    // A user triggers again straight away: either 409 with the hint (lease not yet out), or a new run.
    let answer = await startRun(B);
    if (answer.status === 409) {
      note(
        `phase 1 after restart: POST /runs → 409 after ${since(t)}: ${answer.body.error}; hint: ${answer.body.hint}`,
      );
      expect(answer.body.activeRunId).toBe(b1);
      expect(answer.body.hint).toContain(`POST /runs/${b1}/abandon`);
      const abandoned = await api("POST", `/runs/${b1}/abandon`);
      expect(abandoned.status, JSON.stringify(abandoned.body)).toBe(200);
      answer = await startRun(B);
    } else {
      note(`phase 1 after restart: POST /runs → ${answer.status} at once (the ${LEASE_SECONDS} s lease had run out)`);
    }
    expect(answer.status, JSON.stringify(answer.body)).toBe(202);
    const b2 = answer.body.run!.id;
    const old = await getRun(b1);
    expect(old.status).toBe("failed");
    expect(old.error).toMatch(/^abandoned/);
    note(`phase 1: old run ${b1} now failed: ${old.error}`);
    await waitComplete(b2);
    note(`phase 1: new run ${b2} complete ${since(t)} after restart`);
    await assertExports(B);
  });

  // Phase 2: SIGKILL while C's chunks are loading.
  const c1 = await phase("2 C until SIGKILL mid-load", async () => {
    archives.throttles.set(`C/${TRAIN_IMAGES}`, { bytes: 32 * 1024, everyMs: 125 });
    const { status, body } = await startRun(C);
    expect(status, JSON.stringify(body)).toBe(202);
    const id = body.run!.id;
    const midLoad = (r: RunJson) =>
      r.status === "loading" && r.splits.train.loaded > 0 && r.splits.train.loaded < C.count.train;
    await waitRun(id, "loading with 0 < train loaded < expected", midLoad, 60_000);
    // A resume asked of a run that is alive is refused.
    const early = await api("POST", `/runs/${id}/resume`);
    expect(early.status, JSON.stringify(early.body)).toBe(409);
    note(`phase 2: POST /runs/${id}/resume while it loads → 409: ${early.body.error}`);
    // images is still B while C loads into the shadow table.
    await assertExports(B);
    const seen = await getRun(id);
    if (!midLoad(seen)) throw new Error(`run ${id} no longer mid-load after the export check: ${JSON.stringify(seen)}`);
    await crashWorker();
    note(
      `phase 2: SIGKILL with run ${id} loading, train ${seen.splits.train.loaded}/${C.count.train} loaded (last GET)`,
    );
    return id;
  });

  const atKill = await phase("2 images = B while down", async () => {
    await assertImagesOffline(B);
    const row = await ledger(c1);
    note(
      `phase 2 while down: run ${c1} ${row.status} in D1, ${row.chunks}/${row.chunks_total} chunks in its ledger (train ${row.train_loaded}, test ${row.test_loaded}), ${row.shadow} shadow rows`,
    );
    expect(row.status).toBe("loading");
    expect(row.chunks).toBeGreaterThan(0);
    expect(row.chunks).toBeLessThan(row.chunks_total!);
    return row;
  });

  archives.throttles.delete(`C/${TRAIN_IMAGES}`);
  const requestsC = archives.count(archives.requests, C);
  const restarted = await phase("2 restart", startWorker);

  await phase("2 resume C", async () => {
    const t = Date.now();
    const watched = await watchAfterRestart(c1, requestsC, C, (LEASE_SECONDS + 1) * 1000);
    if (watched.status !== "complete") {
      // The lease has run out: the resume presumes the killed attempt dead and takes the run over.
      const deadline = Date.now() + 30_000;
      for (;;) {
        const r = await api("POST", `/runs/${c1}/resume`);
        if (r.status === 202) {
          note(
            `phase 2: POST /runs/${c1}/resume → 202 ${since(t)} after restart, attempt ${r.body.run!.attempt}, train loaded ${r.body.run!.splits.train.loaded}`,
          );
          expect(r.body.run!.attempt).toBe(2);
          break;
        }
        note(
          `phase 2: POST /runs/${c1}/resume → ${r.status}: ${r.body.error}${r.body.hint ? `; hint: ${r.body.hint}` : ""}`,
        );
        expect(r.status, JSON.stringify(r.body)).toBe(409);
        if ((await getRun(c1)).status === "complete") break;
        if (Date.now() > deadline) throw new Error(`POST /runs/${c1}/resume still refused 30 s after restart`);
        await sleep(500);
      }
    }
    const done = await waitComplete(c1);
    expect(done.splits.train.loaded).toBe(C.count.train);
    expect(done.splits.test.loaded).toBe(C.count.test);
    await assertExports(C);
    await sleep(300);
    const acked = await ackedInLog(restarted.logFile, "idx-etl-chunks");
    const missing = atKill.chunks_total! - atKill.chunks;
    note(
      `phase 2: complete ${since(t)} after restart; ${acked} chunk messages acked after the restart for ${missing} chunks missing at the kill (of ${atKill.chunks_total}); C archives requested ${archives.count(archives.requests, C) - requestsC} times after restart`,
    );
    // The resumed run loaded only what its ledger lacked (a redelivered message may add a few).
    expect(acked).toBeGreaterThanOrEqual(missing);
    expect(acked).toBeLessThan(atKill.chunks_total!);
  });

  passed = true;
});
