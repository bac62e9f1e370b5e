/**
 * Shared by the test/datasets-*.test.ts suites: synthetic IDX datasets of any
 * shape and label range, EMNIST-style zips, the archive server, and runs
 * driven through the pipeline (resolveRequest → startRun → the jobs queue),
 * not through HTTP. Expected pixels are computed here independently of
 * src/codec/transform.ts: upright by index arithmetic, float32 by Math.fround,
 * the latter checked against numpy's `x.astype(np.float32) / 255`.
 */
import { env } from "cloudflare:workers";
import { gzipSync, zipSync, type Zippable } from "fflate";
import { expect, inject } from "vitest";
import type { DatasetSpec, Shape, Split } from "../src/core/datasets";
import { readConfig } from "../src/pipeline/config";
import { resolveRequest, type RunRequest } from "../src/pipeline/dataset";
import { startRun } from "../src/pipeline/trigger";
import { completeIfDone } from "../src/db/runs";
import { database } from "../src/db/database";
import { getRun } from "../src/db/run-reads";
import { imagesViewSql, liveTable, shadowTable } from "../src/db/tables";
import type { Run } from "../src/db/schema";
import { idxBytes, mulberry32 } from "./idx-fixtures";

export const SHAPE_28: Shape = { rows: 28, cols: 28, channels: 1 };

export const db = () => database(env.DB);
export const cfg = () => readConfig(env);

export const rows = async <T = Record<string, unknown>>(sql: string, ...params: unknown[]): Promise<T[]> =>
  (
    await env.DB.prepare(sql)
      .bind(...params)
      .all<T>()
  ).results;

/** One split as stored in its IDX files: pixels row-major (HWC), as the file holds them. */
export interface SplitData {
  readonly count: number;
  /** The shape as stored (for EMNIST: transposed). */
  readonly shape: Shape;
  readonly pixels: Uint8Array;
  readonly labels: Uint8Array;
}

const ppi = (s: Shape): number => s.rows * s.cols * s.channels;

/** `count` images of `shape` with seeded noise pixels, and label(i) as labels. */
export function makeSplit(count: number, shape: Shape, label: (i: number) => number, seed: number): SplitData {
  const rnd = mulberry32(seed);
  const pixels = Uint8Array.from({ length: count * ppi(shape) }, () => Math.floor(rnd() * 256));
  return { count, shape, pixels, labels: Uint8Array.from({ length: count }, (_, i) => label(i)) };
}

/** The split with image i replaced by `image` (ppi bytes). */
export function withImage(d: SplitData, i: number, image: Uint8Array): SplitData {
  const pixels = d.pixels.slice();
  pixels.set(image, i * ppi(d.shape));
  return { ...d, pixels };
}

/** IDX bytes of the images: [n, rows, cols] for one channel (unless `fourD`), else [n, rows, cols, channels]. */
export function imagesIdx(d: SplitData, opts: { fourD?: boolean; type?: number } = {}): Uint8Array {
  const { rows: r, cols: c, channels: ch } = d.shape;
  const dims = ch === 1 && !opts.fourD ? [d.count, r, c] : [d.count, r, c, ch];
  return idxBytes(dims, d.pixels, opts.type === undefined ? {} : { type: opts.type });
}

export const imagesGz = (d: SplitData, opts: { fourD?: boolean; type?: number } = {}): Uint8Array =>
  gzipSync(imagesIdx(d, opts));
export const labelsGz = (d: SplitData): Uint8Array => gzipSync(idxBytes([d.count], d.labels));

export type Archives = Record<string, Uint8Array>;

/** The four archives of a dataset under the spec's own file names (EMNIST's: its zip member names). */
export function specArchives(spec: DatasetSpec, data: Readonly<Record<Split, SplitData>>): Archives {
  const out: Archives = {};
  for (const s of spec.splits) {
    out[s.images.file] = imagesGz(data[s.split]);
    out[s.labels.file] = labelsGz(data[s.split]);
  }
  return out;
}

/** The same archives under their base names (`gzip/emnist-x.gz` → `emnist-x.gz`): loose files at a source. */
export const looseArchives = (members: Archives): Archives =>
  Object.fromEntries(Object.entries(members).map(([name, bytes]) => [name.replace(/^.*\//, ""), bytes]));

/** A zip like EMNIST's gzip.zip: a `gzip/` folder entry and the members (already gzipped: stored). */
export function emnistZip(members: Archives, extra: Archives = {}): Uint8Array {
  const files: Zippable = { gzip: {} };
  for (const [name, data] of Object.entries({ ...extra, ...members })) files[name] = [data, { level: 0 }];
  return zipSync(files);
}

/** Bytes that do not compress. */
export function noise(n: number, seed: number): Uint8Array {
  const rnd = mulberry32(seed);
  return Uint8Array.from({ length: n }, () => Math.floor(rnd() * 256));
}

export const archiveServer = (): string => inject("archiveServer");
let uploads = 0;

/** Upload files into a fresh directory of the archive server (with faults, if any); returns its URL. */
export async function publishFiles(files: Archives, faults: Record<string, string> = {}): Promise<string> {
  // Unique across test files too, which run in parallel and each count from 0.
  const base = `${archiveServer()}/f/ds-${crypto.randomUUID().slice(0, 8)}-${uploads++}`;
  for (const [file, bytes] of Object.entries(files)) {
    const fault = faults[file] ? `?fault=${encodeURIComponent(faults[file])}` : "";
    const res = await fetch(`${base}/${file}${fault}`, { method: "PUT", body: bytes });
    if (res.status !== 201) throw new Error(`upload of ${file} failed: ${res.status}`);
  }
  return base;
}

export const hits = async (url: string): Promise<number> => Number(await (await fetch(`${url}/hits`)).text());

/** A queue that records what is sent to it, and forwards it to `forward` if given. */
export function capturingQueue<T>(forward?: (bodies: T[]) => Promise<void>): { queue: Queue; sent: T[] } {
  const sent: T[] = [];
  const queue = {
    send: async (body: T) => {
      sent.push(body);
      await forward?.([body]);
    },
    sendBatch: async (batch: Iterable<MessageSendRequest<T>>) => {
      const bodies = [...batch].map((m) => m.body);
      sent.push(...bodies);
      await forward?.(bodies);
    },
  } as unknown as Queue;
  return { queue, sent };
}

/** What resolveRequest refuses, as its error; throws if it accepts. */
export function refusal(req: RunRequest): string {
  const r = resolveRequest(req, cfg());
  if (r.ok) throw new Error(`resolveRequest accepted ${JSON.stringify(req)}`);
  return r.error;
}

/**
 * Start a run as the HTTP trigger does, through the pipeline: resolveRequest,
 * then startRun, whose job goes to `jobs` (the real jobs queue unless given).
 */
export async function trigger(req: RunRequest, opts: { force?: boolean; jobs?: Queue } = {}): Promise<Run> {
  const c = cfg();
  const r = resolveRequest(req, c);
  if (!r.ok) throw new Error(`resolveRequest refused: ${r.error}`);
  const result = await startRun(
    db(),
    opts.jobs ?? env.JOBS,
    {
      trigger: "http",
      dataset: r.dataset,
      source: r.source,
      spec: r.spec,
      official: r.official,
      force: opts.force ?? false,
    },
    c.leaseMs,
  );
  if (!result.started) throw new Error(`a ${r.dataset} run (${result.active.id}) is still ${result.active.status}`);
  return result.run;
}

/**
 * Poll until the run is complete or failed (the queues deliver in the
 * background). A run that has every chunk committed but is not swapped in
 * within `stuckMs` fails the wait at once, with what its swap throws.
 */
export async function waitForRun(id: string, timeoutMs = 45_000, stuckMs = 8_000): Promise<Run> {
  const deadline = Date.now() + timeoutMs;
  let allCommittedSince: number | undefined;
  for (;;) {
    const run = await getRun(db(), id);
    if (!run) throw new Error(`no run ${id}`);
    if (run.status === "complete" || run.status === "failed") return run;
    const committed =
      run.status === "loading" &&
      run.trainExpected !== null &&
      run.trainLoaded === run.trainExpected &&
      run.testLoaded === run.testExpected;
    allCommittedSince = committed ? (allCommittedSince ?? Date.now()) : undefined;
    if (allCommittedSince !== undefined && Date.now() - allCommittedSince > stuckMs) {
      const why = await completeIfDone(db(), id).then(
        (c) => `completeIfDone says ${c}`,
        (err: unknown) => `its swap throws: ${err instanceof Error ? err.message : String(err)}`,
      );
      throw new Error(
        `run ${id} (${run.dataset}) has all its chunks loaded but was not swapped in for ${stuckMs} ms; ${why}`,
      );
    }
    if (Date.now() > deadline) throw new Error(`run ${id} still ${run.status} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 40));
  }
}

export const load = async (req: RunRequest, opts: { force?: boolean } = {}): Promise<Run> =>
  waitForRun((await trigger(req, opts)).id);

/** SHA-256 of numpy's `np.arange(256, dtype=np.uint8).astype(np.float32) / 255` as little-endian bytes. */
export const NUMPY_FLOAT_TABLE_SHA256 = "010413efe9fc4438fee48de66c4d09f377b28af6a9fe2522201e8c1dbb831fc8";

/** The float32 of byte b, b / 255 rounded once, as little-endian bytes, one entry per byte. */
export const FLOAT_TABLE: Uint8Array = (() => {
  const out = new Uint8Array(256 * 4);
  const view = new DataView(out.buffer);
  for (let b = 0; b < 256; b++) view.setFloat32(b * 4, Math.fround(b / 255), true);
  return out;
})();
const HEX_TABLE = Array.from({ length: 256 }, (_, b) =>
  [...FLOAT_TABLE.subarray(b * 4, b * 4 + 4)].map((x) => x.toString(16).padStart(2, "0").toUpperCase()).join(""),
);

export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return [...d].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** Image i of a split as loaded: upright (the transpose of the stored grid, per channel, if `transposed`). */
export function uprightImage(d: SplitData, i: number, transposed: boolean): Uint8Array {
  const { rows: r, cols: c, channels: ch } = d.shape;
  const stored = d.pixels.subarray(i * ppi(d.shape), (i + 1) * ppi(d.shape));
  if (!transposed) return stored.slice();
  // Upright is c rows by r columns: upright[y][x] = stored[x][y].
  const out = new Uint8Array(stored.length);
  for (let y = 0; y < c; y++)
    for (let x = 0; x < r; x++) for (let k = 0; k < ch; k++) out[(y * r + x) * ch + k] = stored[(x * c + y) * ch + k]!;
  return out;
}

/** SQLite's hex() of the float32 LE blob of these uint8 pixels. */
export const floatHex = (pixels: Uint8Array): string => Array.from(pixels, (b) => HEX_TABLE[b]).join("");

/** A dataset's rows in `images`, pixels as hex: equal fingerprints mean the same rows and the same bytes. */
export const fingerprint = (dataset: string) =>
  rows<{ split: string; idx: number; label: number; h: string }>(
    "SELECT split, idx, label, hex(pixels) AS h FROM images WHERE dataset = ? ORDER BY split, idx",
    dataset,
  );

/** Every dataset's fingerprint, by name, as the catalog lists them. */
export async function fingerprints(): Promise<Record<string, Awaited<ReturnType<typeof fingerprint>>>> {
  const names = await rows<{ name: string }>("SELECT name FROM datasets ORDER BY name");
  const out: Record<string, Awaited<ReturnType<typeof fingerprint>>> = {};
  for (const { name } of names) out[name] = await fingerprint(name);
  return out;
}

/**
 * `images` holds exactly these splits for the dataset: every row, its label,
 * and its pixels bit for bit as float32 of the upright image.
 */
export async function expectDataset(
  dataset: string,
  data: Readonly<Record<Split, SplitData>>,
  transposed = false,
): Promise<void> {
  const got = await fingerprint(dataset);
  const want = (["test", "train"] as const).flatMap((split) =>
    Array.from({ length: data[split].count }, (_, idx) => ({
      split,
      idx,
      label: data[split].labels[idx]!,
      h: floatHex(uprightImage(data[split], idx, transposed)),
    })),
  );
  expect(got.length).toBe(want.length);
  const wrong = want
    .filter((w, i) => {
      const g = got[i];
      return !g || g.split !== w.split || g.idx !== w.idx || g.label !== w.label || g.h !== w.h;
    })
    .map((w) => `${w.split} ${w.idx}`);
  expect(wrong).toEqual([]);
}

/** Per split and label 0 … classes - 1, how many images carry it: what class_counts must say. */
export function classCounts(
  data: Readonly<Record<Split, SplitData>>,
  classes: number,
): { split: string; label: number; n: number }[] {
  return (["test", "train"] as const).flatMap((split) =>
    Array.from({ length: classes }, (_, label) => ({
      split,
      label,
      n: data[split].labels.filter((l) => l === label).length,
    })),
  );
}

/** What D1 says of the dataset's classes and per-class counts. */
export async function classTables(dataset: string) {
  return {
    classes: (
      await rows<{ label: number; name: string }>(
        "SELECT label, name FROM classes WHERE dataset = ? ORDER BY label",
        dataset,
      )
    ).map((r) => r.name),
    labels: (await rows<{ label: number }>("SELECT label FROM classes WHERE dataset = ? ORDER BY label", dataset)).map(
      (r) => r.label,
    ),
    counts: await rows<{ split: string; label: number; n: number }>(
      "SELECT split, label, n FROM class_counts WHERE dataset = ? ORDER BY split, label",
      dataset,
    ),
  };
}

/** Per split of a dataset in `images`: rows, idx range, label range and pixel blob sizes. */
export const splitSummary = (dataset: string) =>
  rows(
    `SELECT split, COUNT(*) AS n, MIN(idx) AS lo, MAX(idx) AS hi, MIN(label) AS minLabel, MAX(label) AS maxLabel,
       MIN(length(pixels)) AS minBytes, MAX(length(pixels)) AS maxBytes
     FROM images WHERE dataset = ? GROUP BY split ORDER BY split`,
    dataset,
  );

/**
 * Test cleanup, not a pipeline feature: take a dataset out of the database
 * (its tables, catalog row, classes and counts) and recreate the view over the
 * others, so that suites which check one dataset at a time start from the
 * same catalog (the migrations' fashion-mnist).
 */
export async function forgetDataset(name: string): Promise<void> {
  const others = (await rows<{ name: string }>("SELECT name FROM datasets WHERE name <> ?", name)).map((r) => r.name);
  await env.DB.batch([
    env.DB.prepare("DROP VIEW IF EXISTS images"),
    ...(["train", "test"] as const).flatMap((s) => [
      env.DB.prepare(`DROP TABLE IF EXISTS ${liveTable(name, s)}`),
      env.DB.prepare(`DROP TABLE IF EXISTS ${shadowTable(name, s)}`),
    ]),
    env.DB.prepare("DELETE FROM datasets WHERE name = ?").bind(name),
    env.DB.prepare("DELETE FROM classes WHERE dataset = ?").bind(name),
    env.DB.prepare("DELETE FROM class_counts WHERE dataset = ?").bind(name),
    env.DB.prepare(imagesViewSql(others)),
  ]);
}
