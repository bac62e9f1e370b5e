/**
 * The multi-dataset API over datasets loaded through the real pipeline: a
 * synthetic Fashion-MNIST (the default dataset, which the old routes alias)
 * and a custom RGB dataset of 24×32×3 images (not square, so rows and columns
 * cannot be swapped unnoticed), loaded with POST /runs and reloaded with POST
 * /datasets/{name}/runs. GET /datasets and /datasets/{name}, images as JSON,
 * PNG and pages, stats, exports and their versions, runs, and the 400s and
 * 404s of each.
 */
import { env, SELF } from "cloudflare:test";
import { decode } from "fast-png";
import { gzipSync } from "fflate";
import { beforeAll, describe, expect, it } from "vitest";
import { REGISTRY, REGISTRY_NAMES } from "../src/core/registry";
import { appFetch } from "./app-fetch";
import { IMMUTABLE } from "../src/http/routes/exports";
import type { ErrorBody } from "../src/http/schemas/common";
import type { DatasetList, DatasetView, Stats } from "../src/http/schemas/datasets";
import type { ImagePageView, ImageView } from "../src/http/schemas/images";
import type { RunList, RunView } from "../src/http/schemas/runs";
import { FLOAT_OF_BYTE, float32LE } from "../src/codec/transform";
import { datasetBytes } from "../src/pipeline/capacity";
import { idxBytes, postRun, publish, runToEnd, syntheticArchives, TOKEN, waitForRun, type ArchiveSet } from "./helpers";
import { parseNpy } from "./npy";

const get = (path: string, headers: Record<string, string> = {}) => SELF.fetch(`http://worker${path}`, { headers });
const json = async <T>(res: Response) => (await res.json()) as T;
const bytesOf = async (res: Response) => new Uint8Array(await res.arrayBuffer());
const floatsLE = (pixels: Uint8Array) => float32LE(Float32Array.from(pixels, (b) => FLOAT_OF_BYTE[b]!));

const RGB = "tiny-rgb";
const SHAPE = { rows: 24, cols: 32, channels: 3 };
const PIXELS = SHAPE.rows * SHAPE.cols * SHAPE.channels;
const CLASSES = ["red", "green", "blue"];
const FILES = {
  trainImages: "rgb-train-images.gz",
  trainLabels: "rgb-train-labels.gz",
  testImages: "rgb-test-images.gz",
  testLabels: "rgb-test-labels.gz",
};
const RGB_TRAIN = 50;
const RGB_TEST = 20;

/** A split of a custom dataset: pixel (i, p) = (i · 31 + p · 7 + seed) mod 256, label (i + seed) mod 3. */
function customSplit(shape: typeof SHAPE, count: number, seed: number) {
  const size = shape.rows * shape.cols * shape.channels;
  const pixels = new Uint8Array(count * size);
  for (let i = 0; i < count; i++) for (let p = 0; p < size; p++) pixels[i * size + p] = (i * 31 + p * 7 + seed) % 256;
  const labels = Uint8Array.from({ length: count }, (_, i) => (i + seed) % CLASSES.length);
  return { pixels, labels };
}

/** A custom dataset's four archives under FILES' names: images IDX [n, rows, cols, channels]. */
function customArchives(shape: typeof SHAPE, counts: { train: number; test: number }, seed: number) {
  const train = customSplit(shape, counts.train, seed);
  const test = customSplit(shape, counts.test, seed + 1);
  const images = (n: number, pixels: Uint8Array) =>
    gzipSync(idxBytes([n, shape.rows, shape.cols, shape.channels], pixels));
  const archives: ArchiveSet = {
    [FILES.trainImages]: images(counts.train, train.pixels),
    [FILES.trainLabels]: gzipSync(idxBytes([counts.train], train.labels)),
    [FILES.testImages]: images(counts.test, test.pixels),
    [FILES.testLabels]: gzipSync(idxBytes([counts.test], test.labels)),
  };
  return { train, test, archives };
}

const rgbArchives = (seed: number) => customArchives(SHAPE, { train: RGB_TRAIN, test: RGB_TEST }, seed);

const FM_TRAIN = 120;
const FM_TEST = 30;

let fashion: RunView; // the default dataset's load
let rgb: RunView; // the custom dataset's first load
const rgbData = rgbArchives(0);

beforeAll(async () => {
  fashion = await runToEnd({ source: await publish(syntheticArchives(FM_TRAIN, FM_TEST)) });
  expect(fashion.status).toBe("complete");
  rgb = await runToEnd({ dataset: RGB, source: await publish(rgbData.archives), files: FILES, classes: CLASSES });
  expect(rgb.error).toBeNull();
  expect(rgb.status).toBe("complete");
});

const bad = async (res: Response, status: number, error: string | RegExp, what = "") => {
  expect(res.status, what).toBe(status);
  const body = await json<ErrorBody>(res);
  expect(Object.keys(body), what).toEqual(["error"]);
  if (typeof error === "string") expect(body.error, what).toBe(error);
  else expect(body.error, what).toMatch(error);
};

const UNKNOWN = `no dataset nope: the registry has ${REGISTRY_NAMES.join(", ")}, and no custom dataset of that name has been loaded`;
const NOT_LOADED = "dataset mnist has not been loaded; start a run with POST /datasets/mnist/runs";

describe("GET /datasets", () => {
  it("lists every registry dataset in order, loaded or not, then the custom ones loaded", async () => {
    const res = await get("/datasets");
    expect(res.status).toBe(200);
    const { datasets } = await json<DatasetList>(res);
    expect(datasets.map((d) => d.name)).toEqual([...REGISTRY_NAMES, RGB]);

    const fm = datasets[0]!;
    expect(fm).toMatchObject({
      name: "fashion-mnist",
      title: REGISTRY[0]!.title,
      registry: true,
      status: "loaded",
      shape: { rows: 28, cols: 28, channels: 1 },
      counts: { train: FM_TRAIN, test: FM_TEST },
      classCount: 10,
      sizeBytes: datasetBytes({ train: FM_TRAIN, test: FM_TEST }, { rows: 28, cols: 28, channels: 1 }),
      version: fashion.id,
      activeRun: null,
    });
    expect(fm.lastRun).toMatchObject({ id: fashion.id, dataset: "fashion-mnist", status: "complete" });
    expect(Date.parse(fm.swappedAt!)).not.toBeNaN();

    // Never loaded: empty, with what the registry publishes (shape, classes, the size a load would take).
    const mnist = datasets.find((d) => d.name === "mnist")!;
    expect(mnist).toEqual({
      name: "mnist",
      title: REGISTRY[1]!.title,
      registry: true,
      status: "empty",
      shape: { rows: 28, cols: 28, channels: 1 },
      counts: { train: 0, test: 0 },
      classCount: 10,
      sizeBytes: datasetBytes({ train: 60_000, test: 10_000 }, { rows: 28, cols: 28, channels: 1 }),
      version: null,
      swappedAt: null,
      exportsStored: false,
      lastRun: null,
      activeRun: null,
      hint: null,
      official: null,
      source: null,
    });
    expect(datasets.find((d) => d.name === "emnist-letters")!.classCount).toBe(27);

    const custom = datasets.at(-1)!;
    expect(custom).toMatchObject({
      name: RGB,
      title: `${RGB} (custom IDX dataset)`,
      registry: false,
      status: "loaded",
      shape: SHAPE,
      counts: { train: RGB_TRAIN, test: RGB_TEST },
      classCount: 3,
      sizeBytes: datasetBytes({ train: RGB_TRAIN, test: RGB_TEST }, SHAPE),
      version: rgb.id,
      activeRun: null,
    });
    expect(custom.lastRun).toMatchObject({ id: rgb.id, dataset: RGB, shape: SHAPE });
  });

  it("reads D1 in three statements, side by side, whatever the number of datasets", async () => {
    // drizzle prepares a statement again to batch it: distinct SQL texts are the statements.
    const prepared: string[] = [];
    let batches = 0;
    const db = new Proxy(env.DB, {
      get(target, prop) {
        if (prop === "prepare")
          return (sql: string) => {
            prepared.push(sql);
            return target.prepare(sql);
          };
        if (prop === "batch")
          return (statements: D1PreparedStatement[]) => {
            batches++;
            return target.batch(statements);
          };
        const v = Reflect.get(target, prop) as unknown;
        return typeof v === "function" ? v.bind(target) : v;
      },
    });
    const { res } = await appFetch("/datasets", { ...env, DB: db });
    expect(res.status).toBe(200);
    expect(new Set(prepared).size).toBe(3);
    expect(batches).toBe(0);
    // No image table is read (sqlite_master is, for the names of the tables that exist).
    expect(prepared.some((sql) => /(FROM|JOIN)\s+images__/i.test(sql))).toBe(false);
  });

  it("names the active run of a dataset that is loading", async () => {
    const at = new Date().toISOString();
    await env.DB.prepare(
      "INSERT INTO runs (id, dataset, trigger, source, status, created_at, updated_at) VALUES ('kmnist-loading', 'kmnist', 'http', 'x', 'loading', ?1, ?1)",
    )
      .bind(at)
      .run();
    try {
      const { datasets } = await json<DatasetList>(await get("/datasets"));
      const kmnist = datasets.find((d) => d.name === "kmnist")!;
      expect(kmnist).toMatchObject({ status: "empty", activeRun: "kmnist-loading" });
      expect(kmnist.lastRun).toMatchObject({ id: "kmnist-loading", status: "loading" });
      expect(await json<DatasetView>(await get("/datasets/kmnist"))).toMatchObject({ activeRun: "kmnist-loading" });
    } finally {
      await env.DB.prepare("DELETE FROM runs WHERE id = 'kmnist-loading'").run();
    }
  });
});

describe("GET /datasets/{name}", () => {
  it("is the listed dataset with its class names: recorded for a loaded one, published for another", async () => {
    const { datasets } = await json<DatasetList>(await get("/datasets"));
    const { exports, ...custom } = await json<DatasetView>(await get(`/datasets/${RGB}`));
    expect(custom).toEqual({
      ...datasets.find((d) => d.name === RGB),
      classes: CLASSES.map((name, label) => ({ label, name })),
    });
    // And its export files, each at its URL under the dataset's own.
    expect(exports.map((e) => e.url)).toEqual(
      [
        ...["train", "test"].flatMap((s) => [`${s}.npy`, `${s}.npy?dtype=uint8`, `${s}-labels.npy`, `${s}.parquet`]),
        `${RGB}.npz`,
      ].map((f) => `/datasets/${RGB}/export/${f}`),
    );
    const mnist = await json<DatasetView>(await get("/datasets/mnist"));
    expect(mnist.status).toBe("empty");
    expect(mnist.exports).toEqual([]);
    expect(mnist.classes.map((c) => c.name)).toEqual(REGISTRY[1]!.classes);
    const fm = await json<DatasetView>(await get("/datasets/fashion-mnist"));
    expect(fm.classes[9]).toEqual({ label: 9, name: "Ankle boot" });
  });

  it("answers 404 for an unknown dataset, 400 for an invalid name and 405 for a method it does not take", async () => {
    await bad(await get("/datasets/nope"), 404, UNKNOWN);
    const put = await SELF.fetch(`http://worker/datasets/${RGB}`, { method: "PUT" });
    // DELETE /datasets/{name} deletes the dataset (datasets-delete.test.ts).
    expect(put.headers.get("Allow")).toBe("GET, HEAD, DELETE");
    await bad(put, 405, "method PUT not allowed; use GET, HEAD, DELETE");
    for (const name of ["Mnist", "a_b", "-a", "a--b", "1abc", "x".repeat(41), "a%20b"])
      await bad(
        await get(`/datasets/${name}`),
        400,
        /^name must be a dataset name \(lower-case letters and digits in words joined by "-", at most 40 characters\), got /,
        name,
      );
  });
});

describe("GET /datasets/{name}/images/{split}/{image}", () => {
  it("describes an image with its dataset, class and [rows, cols, channels]", async () => {
    const res = await get(`/datasets/${RGB}/images/train/4`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({
      dataset: RGB,
      split: "train",
      idx: 4,
      label: 1,
      class: "green",
      shape: [24, 32, 3],
    } satisfies ImageView);
  });

  it("draws an RGB PNG, cols wide and rows high, whose pixels are the source bytes", async () => {
    for (const [split, idx, src] of [
      ["train", 0, rgbData.train],
      ["train", RGB_TRAIN - 1, rgbData.train],
      ["test", 7, rgbData.test],
    ] as const) {
      const res = await get(`/datasets/${RGB}/images/${split}/${idx}.png`);
      expect(res.status).toBe(200);
      expect(res.headers.get("Content-Type")).toBe("image/png");
      const png = decode(await bytesOf(res), { checkCrc: true });
      expect([png.width, png.height, png.channels, png.depth]).toEqual([32, 24, 3, 8]);
      expect(Uint8Array.from(png.data)).toEqual(src.pixels.subarray(idx * PIXELS, (idx + 1) * PIXELS));
    }
  });

  it("upscales every channel by nearest neighbour", async () => {
    const png = decode(await bytesOf(await get(`/datasets/${RGB}/images/test/3.png?scale=2`)), { checkCrc: true });
    expect([png.width, png.height, png.channels]).toEqual([64, 48, 3]);
    const src = rgbData.test.pixels.subarray(3 * PIXELS, 4 * PIXELS);
    for (let y = 0; y < 48; y++)
      for (let x = 0; x < 64; x++)
        for (let k = 0; k < 3; k++)
          expect(png.data[(y * 64 + x) * 3 + k]).toBe(src[(Math.floor(y / 2) * 32 + Math.floor(x / 2)) * 3 + k]);
  });

  it("answers 404 past the split, for a dataset not loaded and an unknown one; 400 for a bad name, split or image", async () => {
    await bad(
      await get(`/datasets/${RGB}/images/train/${RGB_TRAIN}`),
      404,
      `no image train/${RGB_TRAIN} in ${RGB}: its train split holds ${RGB_TRAIN} images`,
    );
    await bad(
      await get(`/datasets/${RGB}/images/test/${RGB_TEST}.png`),
      404,
      `no image test/${RGB_TEST} in ${RGB}: its test split holds ${RGB_TEST} images`,
    );
    await bad(await get("/datasets/mnist/images/train/0"), 404, NOT_LOADED);
    await bad(await get("/datasets/mnist/images/train/0.png"), 404, NOT_LOADED);
    await bad(await get("/datasets/nope/images/train/0"), 404, UNKNOWN);
    await bad(await get("/datasets/No/images/train/0"), 400, /^name must be a dataset name/);
    await bad(await get(`/datasets/${RGB}/images/valid/0`), 400, 'split must be train or test, got "valid"');
    await bad(
      await get(`/datasets/${RGB}/images/train/x.png`),
      400,
      'image must be an index or index.png, got "x.png"',
    );
    await bad(
      await get(`/datasets/${RGB}/images/train/1.png?scale=17`),
      400,
      'scale must be an integer from 1 to 16, got "17"',
    );
  });
});

describe("GET /datasets/{name}/images", () => {
  const page = async (query: string) => {
    const res = await get(`/datasets/${RGB}/images?${query}`);
    expect(res.status, query).toBe(200);
    return json<ImagePageView>(res);
  };

  it("pages through a split in idx order: next is the after of the next page, null on the last", async () => {
    const first = await page("split=train&limit=20");
    expect(first).toEqual({
      dataset: RGB,
      split: "train",
      label: null,
      images: Array.from({ length: 20 }, (_, idx) => ({ idx, label: idx % 3 })),
      next: 19,
    });
    const seen: number[] = [];
    let after: number | null = null;
    let pages = 0;
    do {
      const p: ImagePageView = await page(`split=train&limit=20${after === null ? "" : `&after=${after}`}`);
      seen.push(...p.images.map((i) => i.idx));
      after = p.next;
      pages++;
    } while (after !== null);
    expect(pages).toBe(3);
    expect(seen).toEqual(Array.from({ length: RGB_TRAIN }, (_, i) => i));
    // A limit that ends exactly at the split's end: that page is the last.
    expect((await page(`split=test&limit=${RGB_TEST}`)).next).toBeNull();
    expect((await page("split=test")).images.length).toBe(RGB_TEST);
  });

  it("filters by class, keyset paging through that class's images only", async () => {
    // Test labels are (i + 1) % 3: class 2 is idx 1, 4, 7, …
    const want = Array.from({ length: RGB_TEST }, (_, i) => i).filter((i) => (i + 1) % 3 === 2);
    const got: number[] = [];
    let after: number | null = null;
    do {
      const p: ImagePageView = await page(`split=test&label=2&limit=3${after === null ? "" : `&after=${after}`}`);
      expect(p.label).toBe(2);
      expect(p.images.every((i) => i.label === 2)).toBe(true);
      got.push(...p.images.map((i) => i.idx));
      after = p.next;
    } while (after !== null);
    expect(got).toEqual(want);
  });

  it("refuses bad parameters with one sentence, and answers 404 for a dataset not loaded", async () => {
    for (const [query, error] of [
      ["", "split is required: train or test"],
      ["split=valid", 'split must be train or test, got "valid"'],
      ["split=train&split=test", 'split must be train or test, got ["train","test"]'],
      ["split=train&limit=0", 'limit must be an integer from 1 to 200, got "0"'],
      ["split=train&limit=201", 'limit must be an integer from 1 to 200, got "201"'],
      ["split=train&limit=1&limit=2", 'limit must be an integer from 1 to 200, got ["1","2"]'],
      ["split=train&after=-1", 'after must be an integer of at least 0, got "-1"'],
      ["split=train&after=1e2", 'after must be an integer of at least 0, got "1e2"'],
      ["split=train&label=256", 'label must be an integer from 0 to 255, got "256"'],
      ["split=train&label=0x1", 'label must be an integer from 0 to 255, got "0x1"'],
      ["split=test&label=9", `label 9 is not a class of ${RGB}: its labels are 0 to 2`],
    ] as const)
      await bad(await get(`/datasets/${RGB}/images?${query}`), 400, error, query);
    await bad(await get("/datasets/mnist/images?split=train"), 404, NOT_LOADED);
    await bad(await get("/datasets/nope/images?split=train"), 404, UNKNOWN);
  });
});

describe("GET /datasets/{name}/stats", () => {
  it("counts a custom dataset's images per class with its own class names", async () => {
    const stats = await json<Stats>(await get(`/datasets/${RGB}/stats`));
    expect(stats.dataset).toBe(RGB);
    const count = (n: number, seed: number, label: number) =>
      Array.from({ length: n }, (_, i) => (i + seed) % 3).filter((l) => l === label).length;
    expect(stats.splits.train).toEqual({
      total: RGB_TRAIN,
      classes: CLASSES.map((name, label) => ({ label, name, count: count(RGB_TRAIN, 0, label) })),
    });
    expect(stats.splits.test.total).toBe(RGB_TEST);
    expect(stats.samples?.split).toBe("test");
    expect(stats.samples?.byLabel[0]).toEqual({ label: 0, name: "red", idx: [2, 5, 8, 11, 14, 17] });
  });

  it("counts 0 in each published class of a dataset not loaded; 404 for an unknown one", async () => {
    const stats = await json<Stats>(await get("/datasets/kmnist/stats"));
    expect(stats).toMatchObject({
      dataset: "kmnist",
      samples: null,
      splits: { train: { total: 0 }, test: { total: 0 } },
    });
    expect(stats.splits.train.classes.map((c) => [c.name, c.count])).toEqual(
      REGISTRY[2]!.classes!.map((name) => [name, 0]),
    );
    await bad(await get("/datasets/nope/stats"), 404, UNKNOWN);
  });
});

describe("GET /datasets/{name}/export/{file}", () => {
  const HEADER = 128;

  it("exports images as float32 (n, rows, cols, channels) and labels as uint8 (n,)", async () => {
    const res = await get(`/datasets/${RGB}/export/train.npy`);
    expect(res.status).toBe(200);
    expect(res.headers.get("ETag")).toBe(`"${rgb.id}-train.npy"`);
    expect(res.headers.get("Content-Location")).toBe(`/datasets/${RGB}/export/v/${rgb.id}/train.npy`);
    expect(res.headers.get("Content-Disposition")).toBe(`attachment; filename="${RGB}-train.npy"`);
    expect(res.headers.get("Cache-Control")).toBe("no-cache");
    const body = await bytesOf(res);
    expect(res.headers.get("Content-Length")).toBe(String(body.length));
    const npy = parseNpy(body);
    expect(npy).toMatchObject({ descr: "<f4", shape: [RGB_TRAIN, 24, 32, 3], dataOffset: HEADER });
    expect(npy.data).toEqual(floatsLE(rgbData.train.pixels));

    const page = parseNpy(await bytesOf(await get(`/datasets/${RGB}/export/test.npy?offset=5&limit=4`)));
    expect(page.shape).toEqual([4, 24, 32, 3]);
    expect(page.data).toEqual(floatsLE(rgbData.test.pixels.subarray(5 * PIXELS, 9 * PIXELS)));

    const labels = parseNpy(await bytesOf(await get(`/datasets/${RGB}/export/test-labels.npy`)));
    expect(labels).toMatchObject({ descr: "|u1", shape: [RGB_TEST] });
    expect(labels.data).toEqual(rgbData.test.labels);
  });

  it("has the same validators as ever: 304, Range, the immutable versioned URL", async () => {
    const etag = `"${rgb.id}-train.npy"`;
    const full = await bytesOf(await get(`/datasets/${RGB}/export/train.npy`));
    const notModified = await get(`/datasets/${RGB}/export/train.npy`, { "If-None-Match": etag });
    expect(notModified.status).toBe(304);
    expect(notModified.headers.get("ETag")).toBe(etag);
    const row = PIXELS * 4;
    const range = `bytes=${HEADER + 3 * row + 5}-${HEADER + 4 * row + 9}`;
    const part = await get(`/datasets/${RGB}/export/train.npy`, { Range: range });
    expect(part.status).toBe(206);
    expect(await bytesOf(part)).toEqual(full.subarray(HEADER + 3 * row + 5, HEADER + 4 * row + 10));
    const versioned = await get(`/datasets/${RGB}/export/v/${rgb.id}/train.npy`);
    expect(versioned.status).toBe(200);
    expect(versioned.headers.get("Cache-Control")).toBe(IMMUTABLE);
    expect(versioned.headers.get("ETag")).toBe(etag);
    expect(await bytesOf(versioned)).toEqual(full);
  });

  it("answers 404 for another dataset's version, a dataset not loaded and an unknown one; 400 for a bad name or file", async () => {
    await bad(
      await get(`/datasets/${RGB}/export/v/${fashion.id}/train.npy`),
      404,
      `no ${RGB} version ${fashion.id}: no run of ${RGB} with that id was swapped in`,
    );
    await bad(
      await get(`/export/v/${rgb.id}/train.npy`),
      404,
      `no fashion-mnist version ${rgb.id}: no run of fashion-mnist with that id was swapped in`,
    );
    await bad(await get("/datasets/mnist/export/train.npy"), 404, NOT_LOADED);
    await bad(await get(`/datasets/mnist/export/v/${fashion.id}/train.npy`), 404, NOT_LOADED);
    await bad(await get("/datasets/nope/export/train.npy"), 404, UNKNOWN);
    await bad(await get("/datasets/A/export/train.npy"), 400, /^name must be a dataset name/);
    await bad(await get(`/datasets/${RGB}/export/valid.npy`), 400, /^file must be one of/);
    await bad(
      await get(`/datasets/${RGB}/export/train.npy?offset=51`),
      400,
      `offset must be at most ${RGB_TRAIN} (the size of ${RGB}'s train), got 51`,
    );
  });
});

describe("the default dataset's routes", () => {
  it("are aliases of /datasets/fashion-mnist/…, untouched by the other datasets", async () => {
    const image = await json<ImageView>(await get("/images/train/3"));
    expect(image).toEqual(await json<ImageView>(await get("/datasets/fashion-mnist/images/train/3")));
    expect(image).toMatchObject({ dataset: "fashion-mnist", shape: [28, 28, 1] });
    const png = decode(await bytesOf(await get("/images/test/0.png")));
    expect([png.width, png.height, png.channels]).toEqual([28, 28, 1]);
    expect(await json<Stats>(await get("/stats"))).toEqual(
      await json<Stats>(await get("/datasets/fashion-mnist/stats")),
    );

    const alias = await get("/export/train.npy");
    const own = await get("/datasets/fashion-mnist/export/train.npy");
    expect(alias.headers.get("ETag")).toBe(`"${fashion.id}-train.npy"`);
    expect(own.headers.get("ETag")).toBe(alias.headers.get("ETag"));
    expect(alias.headers.get("Content-Location")).toBe(`/export/v/${fashion.id}/train.npy`);
    expect(own.headers.get("Content-Location")).toBe(`/datasets/fashion-mnist/export/v/${fashion.id}/train.npy`);
    expect(alias.headers.get("Content-Disposition")).toBe('attachment; filename="train.npy"');
    const bytes = await bytesOf(alias);
    expect(parseNpy(bytes).shape).toEqual([FM_TRAIN, 28, 28, 1]);
    expect(await bytesOf(own)).toEqual(bytes);
    const labels = await get(`/export/v/${fashion.id}/train-labels.npy`);
    expect(labels.status).toBe(200);
    expect(parseNpy(await bytesOf(labels)).shape).toEqual([FM_TRAIN]);
  });
});

describe("runs of a dataset", () => {
  it("GET /datasets/{name}/runs and GET /runs?dataset= list that dataset's runs only", async () => {
    const own = await json<RunList>(await get(`/datasets/${RGB}/runs`));
    expect(own.runs.map((r) => r.id)).toEqual([rgb.id]);
    expect(await json<RunList>(await get(`/runs?dataset=${RGB}`))).toEqual(own);
    const all = await json<RunList>(await get("/runs"));
    expect(all.runs.map((r) => r.dataset).sort()).toEqual(["fashion-mnist", RGB]);
    expect(await json<RunList>(await get("/datasets/mnist/runs"))).toEqual({ runs: [] });
    await bad(await get("/datasets/nope/runs"), 404, UNKNOWN);
    await bad(await get("/runs?dataset=Nope"), 400, /^dataset must be a dataset name \(.*\), got "Nope"$/);
    await bad(await get("/runs?dataset=a&dataset=b"), 400, /^dataset must be a dataset name \(.*\), got \["a","b"\]$/);
    await bad(await get(`/datasets/${RGB}/runs?limit=101`), 400, 'limit must be an integer from 1 to 100, got "101"');
  });

  it("lists a custom dataset, and its runs, even when none has loaded it", async () => {
    const res = await postRun({ dataset: "broken", source: "http://127.0.0.1:9/nothing-here", files: FILES });
    expect(res.status).toBe(202);
    const { run } = await json<{ run: RunView }>(res);
    expect(run).toMatchObject({ dataset: "broken", shape: null, status: "queued" });
    expect((await waitForRun(run.id)).status).toBe("failed");
    expect((await json<RunList>(await get("/datasets/broken/runs"))).runs.map((r) => r.id)).toEqual([run.id]);
    // Listed, empty, with the failed run that says why.
    const broken = await json<DatasetView>(await get("/datasets/broken"));
    expect(broken).toMatchObject({ name: "broken", registry: false, status: "empty", activeRun: null });
    expect(broken.lastRun).toMatchObject({ id: run.id, status: "failed" });
    const list = await json<{ datasets: DatasetView[] }>(await get("/datasets"));
    expect(list.datasets.map((d) => d.name)).toContain("broken");
    await bad(
      await get("/datasets/never-started"),
      404,
      `no dataset never-started: the registry has ${REGISTRY_NAMES.join(", ")}, and no custom dataset of that name has been loaded`,
    );
  });

  it("POST /datasets/{name}/runs reloads it; its replaced version's exports answer 410 naming the new one", async () => {
    const next = rgbArchives(7);
    const res = await SELF.fetch(`http://worker/datasets/${RGB}/runs`, {
      method: "POST",
      headers: { Authorization: `Bearer ${TOKEN}` },
      body: JSON.stringify({ source: await publish(next.archives), files: FILES, classes: CLASSES }),
    });
    expect(res.status).toBe(202);
    const { run } = await json<{ run: RunView }>(res);
    expect(res.headers.get("Location")).toBe(`/runs/${run.id}`);
    expect(run.dataset).toBe(RGB);
    expect(await waitForRun(run.id)).toMatchObject({ status: "complete", unchanged: false });

    const old = await get(`/datasets/${RGB}/export/v/${rgb.id}/test.npy?limit=3`);
    expect(old.status).toBe(410);
    const current = `/datasets/${RGB}/export/v/${run.id}/test.npy?limit=3`;
    expect(old.headers.get("Link")).toBe(`<${current}>; rel="latest-version"`);
    expect(await json<ErrorBody>(old)).toEqual({
      error: `${RGB} version ${rgb.id} has been replaced by ${run.id}; the current file is ${current}`,
    });
    const npy = parseNpy(await bytesOf(await get(current)));
    expect(npy.data).toEqual(floatsLE(next.test.pixels.subarray(0, 3 * PIXELS)));
    // The other dataset's version is untouched.
    const other = await get(`/export/v/${fashion.id}/test.npy`);
    expect(other.status).toBe(200);
    expect(parseNpy(await bytesOf(other)).shape).toEqual([FM_TEST, 28, 28, 1]);
    const listed = await json<DatasetView>(await get(`/datasets/${RGB}`));
    expect(listed).toMatchObject({ version: run.id, lastRun: { id: run.id } });
  });
});

describe("POST /runs", () => {
  const post = (path: string, body: unknown) =>
    SELF.fetch(`http://worker${path}`, {
      method: "POST",
      headers: { Authorization: `Bearer ${TOKEN}` },
      body: JSON.stringify(body),
    });
  const source = "https://example.org/mine";
  const files = FILES;

  it("refuses an invalid dataset, files or classes with one sentence naming what is wrong", async () => {
    const rule = 'a dataset name (lower-case letters and digits in words joined by "-", at most 40 characters)';
    const fileRule =
      'a plain file name (1 to 255 characters, no "/", "\\", quote or control character, not "." or "..")';
    const classRule = "classes must be an array of 1 to 256 distinct, non-empty names (label 0's first)";
    for (const [body, error] of [
      [{ dataset: "Mnist" }, `dataset must be ${rule}, got "Mnist"`],
      [{ dataset: 5 }, `dataset must be ${rule}, got 5`],
      [
        { dataset: "nope" },
        `unknown dataset nope: the registry has ${REGISTRY_NAMES.join(", ")}; a custom dataset also names its files`,
      ],
      [{ dataset: "mnist", source, files }, "mnist is a registry dataset; name a custom dataset differently"],
      [{ dataset: "mnist", classes: ["a"] }, "mnist is a registry dataset: its class names are the published ones"],
      [{ dataset: "mine", files }, "a custom dataset needs a source: the base URL of its files"],
      [{ files, source }, "fashion-mnist is a registry dataset; name a custom dataset differently"],
      [
        { dataset: "mine", source, files: { ...files, testLabels: files.testImages } },
        "a custom dataset's four files must differ",
      ],
      [
        { dataset: "mine", source, files: { ...files, trainImages: "a/b.gz" } },
        `files.trainImages must be ${fileRule}, got "a/b.gz"`,
      ],
      [
        { dataset: "mine", source, files: { ...files, trainLabels: ".." } },
        `files.trainLabels must be ${fileRule}, got ".."`,
      ],
      [
        { dataset: "mine", source, files: { ...files, testImages: "" } },
        `files.testImages must be ${fileRule}, got ""`,
      ],
      [
        { dataset: "mine", source, files: { ...files, testImages: "a\\b" } },
        `files.testImages must be ${fileRule}, got "a\\\\b"`,
      ],
      [{ dataset: "mine", source, files: { ...files, testImages: 3 } }, `files.testImages must be ${fileRule}, got 3`],
      [
        { dataset: "mine", source, files: { trainImages: "a", trainLabels: "b", testImages: "c" } },
        "files.testLabels is missing: a custom dataset names all four files (trainImages, trainLabels, testImages, testLabels)",
      ],
      [
        { dataset: "mine", source, files: { ...files, extra: "x" } },
        "files has unknown field extra; it names trainImages, trainLabels, testImages, testLabels",
      ],
      [
        { dataset: "mine", source, files: "a.gz" },
        "files must be an object naming trainImages, trainLabels, testImages, testLabels",
      ],
      [{ dataset: "mine", source, files, classes: [] }, `${classRule}, got 0`],
      [
        { dataset: "mine", source, files, classes: Array.from({ length: 257 }, (_, i) => `c${i}`) },
        `${classRule}, got 257`,
      ],
      [{ dataset: "mine", source, files, classes: "cat" }, `${classRule}, got "cat"`],
      [{ dataset: "mine", source, files, classes: ["cat", " "] }, `${classRule}; classes[1] is " "`],
      [{ dataset: "mine", source, files, classes: ["cat", 2] }, `${classRule}; classes[1] is 2`],
      [
        { dataset: "mine", source, files, classes: ["cat", "dog", "cat"] },
        `${classRule}; "cat" is both classes[0] and classes[2]`,
      ],
      [{ dataset: "mine", source, files, colour: true }, "unknown field: colour"],
    ] as const)
      await bad(await post("/runs", body), 400, error, JSON.stringify(body));
  });

  it("POST /datasets/{name}/runs takes the dataset from the path only, behind the same token", async () => {
    await bad(await post("/datasets/mnist/runs", { dataset: "mnist" }), 400, "unknown field: dataset");
    await bad(await post("/datasets/Mnist/runs", {}), 400, /^name must be a dataset name/);
    await bad(await post("/datasets/mine/runs", { source }), 400, /^unknown dataset mine/);
    await bad(await post("/datasets/mine/runs", { source, files, classes: ["a", "a"] }), 400, /"a" is both/);
    const anonymous = await SELF.fetch("http://worker/datasets/mnist/runs", { method: "POST" });
    expect(anonymous.status).toBe(401);
  });
});

describe("PNGs of every channel count", () => {
  // Gray + alpha, not square; and RGBA one row high and 70 wide, wide enough for the size cap on scaling.
  const GA = { name: "tiny-ga", shape: { rows: 5, cols: 7, channels: 2 } };
  const RGBA = { name: "tiny-rgba", shape: { rows: 1, cols: 70, channels: 4 } };
  const loads = new Map<string, ReturnType<typeof customArchives>>();

  beforeAll(async () => {
    for (const { name, shape } of [GA, RGBA]) {
      const data = customArchives(shape, { train: 6, test: 3 }, 11);
      loads.set(name, data);
      const res = await SELF.fetch(`http://worker/datasets/${name}/runs`, {
        method: "POST",
        headers: { Authorization: `Bearer ${TOKEN}` },
        body: JSON.stringify({ source: await publish(data.archives), files: FILES }),
      });
      expect(res.status).toBe(202);
      const { run } = await json<{ run: RunView }>(res);
      expect(await waitForRun(run.id, 20_000)).toMatchObject({ status: "complete", shape });
    }
  });

  it.each([
    ["gray + alpha", GA],
    ["RGBA", RGBA],
  ])("draws %s images with their own channels, and their classes are their labels", async (_, { name, shape }) => {
    const size = shape.rows * shape.cols * shape.channels;
    const src = loads.get(name)!.train.pixels.subarray(4 * size, 5 * size);
    const png = decode(await bytesOf(await get(`/datasets/${name}/images/train/4.png`)), { checkCrc: true });
    expect([png.width, png.height, png.channels, png.depth]).toEqual([shape.cols, shape.rows, shape.channels, 8]);
    expect(Uint8Array.from(png.data)).toEqual(src);
    expect(await json<ImageView>(await get(`/datasets/${name}/images/train/4`))).toEqual({
      dataset: name,
      split: "train",
      idx: 4,
      label: loads.get(name)!.train.labels[4]!,
      class: String(loads.get(name)!.train.labels[4]),
      shape: [shape.rows, shape.cols, shape.channels],
    });
  });

  it("scales a PNG only as far as 1024 pixels a side", async () => {
    const ok = decode(await bytesOf(await get(`/datasets/${RGBA.name}/images/test/0.png?scale=14`)));
    expect([ok.width, ok.height]).toEqual([980, 14]);
    await bad(
      await get(`/datasets/${RGBA.name}/images/test/0.png?scale=15`),
      400,
      "scale must be at most 14 for tiny-rgba's 1×70 images (a PNG is at most 1024 pixels a side), got 15",
    );
    // The JSON description has no size.
    expect((await get(`/datasets/${RGBA.name}/images/test/0?scale=15`)).status).toBe(200);
  });
});

describe("the OpenAPI document", () => {
  it("describes the dataset routes with their schemas", async () => {
    const doc = await json<{
      paths: Record<string, Record<string, { security?: unknown }>>;
      components: { schemas: Record<string, unknown> };
    }>(await get("/openapi.json"));
    for (const path of [
      "/datasets",
      "/datasets/{name}",
      "/datasets/{name}/stats",
      "/datasets/{name}/images",
      "/datasets/{name}/images/{split}/{image}",
      "/datasets/{name}/runs",
      "/datasets/{name}/export/{file}",
      "/datasets/{name}/export/v/{version}/{file}",
    ])
      expect(doc.paths[path]?.get, path).toBeDefined();
    expect(doc.paths["/datasets/{name}/runs"]!.post!.security).toEqual([{ bearer: [] }]);
    expect(Object.keys(doc.components.schemas)).toEqual(
      expect.arrayContaining(["Dataset", "DatasetSummary", "DatasetList", "ImagePage", "Shape", "StartDatasetRun"]),
    );
  });
});
