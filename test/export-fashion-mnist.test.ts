/**
 * Round trip on the real t10k split: loaded through the Worker, exported as
 * .npy, the floats are bit for bit numpy's `x.astype(float32) / 255` of the
 * original IDX bytes, and the PNGs reproduce those bytes. A tiny synthetic
 * train split keeps the load short.
 */
import { SELF, env } from "cloudflare:test";
import { decode } from "fast-png";
import { gunzipSync } from "fflate";
import { beforeAll, expect, it } from "vitest";
import { MAX_PAGES, MIN_PAGE_ROWS, npyExport, pageRows } from "../src/read/export";
import { archiveServer, countingD1, publish, runToEnd, syntheticSplit } from "./helpers";
import { parseNpy } from "./npy";

const get = (path: string, headers: Record<string, string> = {}) => SELF.fetch(`http://worker${path}`, { headers });
const original = async (file: string) => {
  const res = await fetch(`${archiveServer()}/fashion-mnist/${file}`);
  if (!res.ok) throw new Error(`${file}: ${res.status}`);
  return new Uint8Array(await res.arrayBuffer());
};

let images: Uint8Array; // the t10k IDX pixels, without the 16-byte header
let labels: Uint8Array;
let full: { ms: number; etag: string; bytes: Uint8Array } | undefined; // the first download of test.npy

beforeAll(async () => {
  const imagesGz = await original("t10k-images-idx3-ubyte.gz");
  const labelsGz = await original("t10k-labels-idx1-ubyte.gz");
  images = gunzipSync(imagesGz).subarray(16);
  labels = gunzipSync(labelsGz).subarray(8);
  const train = syntheticSplit(50);
  const source = await publish({
    "train-images-idx3-ubyte.gz": train.images,
    "train-labels-idx1-ubyte.gz": train.labelsGz,
    "t10k-images-idx3-ubyte.gz": imagesGz,
    "t10k-labels-idx1-ubyte.gz": labelsGz,
  });
  const run = await runToEnd({ source });
  expect(run.status).toBe("complete");
  expect(run.splits.test).toEqual({ expected: 10000, loaded: 10000 });
}, 120_000);

it("exports test.npy equal, bit for bit, to float32(x) / 255 of the t10k IDX file", async () => {
  expect(images.length).toBe(10000 * 784);
  const t0 = performance.now();
  const res = await get("/export/test.npy");
  expect(res.status).toBe(200);
  const bytes = new Uint8Array(await res.arrayBuffer());
  full = { ms: performance.now() - t0, etag: res.headers.get("ETag")!, bytes };
  const npy = parseNpy(bytes);
  expect(npy).toMatchObject({ descr: "<f4", fortranOrder: false, shape: [10000, 28, 28, 1] });
  // numpy's x.astype(np.float32) / 255, little-endian; Math.fround(b / 255) is that quotient.
  const expected = new Float32Array(images.length);
  for (let i = 0; i < images.length; i++) expected[i] = Math.fround(images[i]! / 255);
  const got = new Float32Array(npy.data.slice().buffer);
  expect(got.length).toBe(expected.length);
  expect(Buffer.from(got.buffer).equals(Buffer.from(expected.buffer))).toBe(true);
  // The same figure the e2e test checks in D1: the sum of all t10k bytes.
  let sum = 0;
  for (const v of got) sum += Math.round(v * 255);
  expect(sum).toBe(573469082);

  const lab = parseNpy(new Uint8Array(await (await get("/export/test-labels.npy")).arrayBuffer()));
  expect(lab.shape).toEqual([10000]);
  expect(lab.data).toEqual(labels);
}, 60_000);

it("repeats cheaply: 304 for the ETag a download got, and a resumed tail read from its own rows", async () => {
  if (!full) throw new Error("the first export test did not run");
  const { etag, bytes } = full;
  expect(etag).toMatch(/^"[0-9a-f-]{36}-test\.npy"$/);
  const times: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    const res = await get("/export/test.npy", { "If-None-Match": etag });
    expect(res.status).toBe(304);
    expect((await res.arrayBuffer()).byteLength).toBe(0);
    times.push(performance.now() - t0);
  }
  // A second full download (warm, as the 304s are), then the last tenth, as a resumed download asks for it.
  let t0 = performance.now();
  expect((await (await get("/export/test.npy")).arrayBuffer()).byteLength).toBe(bytes.length);
  const warmMs = performance.now() - t0;
  const from = Math.floor(bytes.length * 0.9);
  t0 = performance.now();
  const tail = await get("/export/test.npy", { Range: `bytes=${from}-`, "If-Range": etag });
  const rest = new Uint8Array(await tail.arrayBuffer());
  const tailMs = performance.now() - t0;
  expect(tail.status).toBe(206);
  expect(Buffer.from(rest).equals(Buffer.from(bytes.subarray(from)))).toBe(true);
  const median = times.sort((a, b) => a - b)[2]!;
  console.log(
    `t10k test.npy (${bytes.length} bytes): full download ${full.ms.toFixed(0)} ms (again: ${warmMs.toFixed(0)} ms); 304 revalidation ${median.toFixed(1)} ms (median of 5); last 10% by Range ${tailMs.toFixed(0)} ms`,
  );
  expect(median).toBeLessThan(warmMs);
});

it("serves PNGs whose pixels are the original bytes", async () => {
  for (const idx of [0, 1, 4321, 9999]) {
    const png = decode(new Uint8Array(await (await get(`/images/test/${idx}.png`)).arrayBuffer()), { checkCrc: true });
    expect(Uint8Array.from(png.data), `test/${idx}`).toEqual(images.subarray(idx * 784, (idx + 1) * 784));
  }
  expect(await (await get("/images/test/0")).json()).toEqual({
    dataset: "fashion-mnist",
    split: "test",
    idx: 0,
    label: 9,
    class: "Ankle boot",
    shape: [28, 28, 1],
  });
});

it("streams the real split in bounded pages within D1's per-invocation query budget", async () => {
  const { db: counting, queries } = countingD1(env.DB);
  const shape = { rows: 28, cols: 28, channels: 1 };
  const span = { dataset: "fashion-mnist", shape, split: "test", kind: "images", offset: 0, count: 10000 } as const;
  const file = npyExport(counting, span);
  const reader = file.body.getReader();
  let largest = 0;
  let chunks = 0;
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks++;
    total += value.length;
    largest = Math.max(largest, value.length);
  }
  expect(total).toBe(file.byteLength);
  expect(queries()).toBe(10000 / MIN_PAGE_ROWS);
  expect(chunks).toBe(1 + queries());
  expect(largest).toBe(MIN_PAGE_ROWS * 3136);
  // The whole train split: at most MAX_PAGES queries, pages of ≤ 1,334 rows (4.2 MB).
  const trainRows = pageRows({
    dataset: "fashion-mnist",
    shape,
    split: "train",
    kind: "images",
    offset: 0,
    count: 60000,
  });
  expect(Math.ceil(60000 / trainRows)).toBeLessThanOrEqual(MAX_PAGES);
  expect(trainRows * 3136).toBeLessThan(5 * 1024 * 1024);
}, 60_000);
