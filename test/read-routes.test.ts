/**
 * The read API of the default dataset (the routes without /datasets/{name})
 * over a synthetic Fashion-MNIST loaded through the real pipeline: image JSON
 * and PNG (decoded with fast-png), counts, .npy exports and their paging, and
 * the errors. test/datasets-routes.test.ts covers the other datasets.
 */
import { SELF, env } from "cloudflare:test";
import { decode } from "fast-png";
import { beforeAll, describe, expect, it } from "vitest";
import { readExtent } from "../src/read/images";
import { npyExport, type ExportSpan } from "../src/read/export";
import { FLOAT_OF_BYTE, float32LE } from "../src/codec/transform";
import type { ImageView } from "../src/http/schemas/images";
import type { Stats } from "../src/http/schemas/datasets";
import { parseNpy } from "./npy";
import { countingD1, publish, runToEnd, syntheticArchives, syntheticSplit } from "./helpers";

const TRAIN = 1234;
const TEST = 321;
const train = syntheticSplit(TRAIN);
const test = syntheticSplit(TEST, 1);
const CLASSES = [
  "T-shirt/top",
  "Trouser",
  "Pullover",
  "Dress",
  "Coat",
  "Sandal",
  "Shirt",
  "Sneaker",
  "Bag",
  "Ankle boot",
];

const get = (path: string) => SELF.fetch(`http://worker${path}`);
/** A span of the default dataset, as the export route builds it. */
const span = (s: Omit<ExportSpan, "dataset" | "shape">): ExportSpan => ({
  dataset: "fashion-mnist",
  shape: { rows: 28, cols: 28, channels: 1 },
  ...s,
});
const bytesOf = async (res: Response) => new Uint8Array(await res.arrayBuffer());
const floatsLE = (pixels: Uint8Array) => float32LE(Float32Array.from(pixels, (b) => FLOAT_OF_BYTE[b]!));

beforeAll(async () => {
  const run = await runToEnd({ source: await publish(syntheticArchives(TRAIN, TEST)) });
  expect(run.status).toBe("complete");
});

describe("GET /images/:split/:idx", () => {
  it("describes one image", async () => {
    const res = await get("/images/train/17");
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({
      dataset: "fashion-mnist",
      split: "train",
      idx: 17,
      label: 7,
      class: "Sneaker",
      shape: [28, 28, 1],
    } satisfies ImageView);
  });

  it("answers 404 for an image that is not loaded and 400 for a bad split or index", async () => {
    for (const [path, status, error] of [
      ["/images/train/1234", 404, "no image train/1234 in fashion-mnist: its train split holds 1234 images"],
      ["/images/test/321.png", 404, "no image test/321 in fashion-mnist: its test split holds 321 images"],
      ["/images/valid/1", 400, 'split must be train or test, got "valid"'],
      ["/images/train/-1", 400, 'image must be an index or index.png, got "-1"'],
      ["/images/train/1.jpg", 400, 'image must be an index or index.png, got "1.jpg"'],
    ] as const) {
      const res = await get(path);
      expect(res.status, path).toBe(status);
      expect(await res.json(), path).toEqual({ error: error });
    }
  });
});

describe("GET /images/:split/:idx.png", () => {
  it("is an 8-bit grayscale 28×28 PNG whose pixels are the source bytes", async () => {
    for (const [split, idx, src] of [
      ["train", 0, train],
      ["train", 1233, train],
      ["test", 5, test],
    ] as const) {
      const res = await get(`/images/${split}/${idx}.png`);
      expect(res.status).toBe(200);
      expect(res.headers.get("Content-Type")).toBe("image/png");
      const png = decode(await bytesOf(res), { checkCrc: true });
      expect([png.width, png.height, png.channels, png.depth]).toEqual([28, 28, 1, 8]);
      expect(Uint8Array.from(png.data)).toEqual(src.pixels.subarray(idx * 784, (idx + 1) * 784));
    }
  });

  it("upscales by nearest neighbour with ?scale", async () => {
    const png = decode(await bytesOf(await get("/images/test/9.png?scale=3")), { checkCrc: true });
    expect([png.width, png.height]).toEqual([84, 84]);
    const src = test.pixels.subarray(9 * 784, 10 * 784);
    for (let y = 0; y < 84; y++)
      for (let x = 0; x < 84; x++) expect(png.data[y * 84 + x]).toBe(src[Math.floor(y / 3) * 28 + Math.floor(x / 3)]);
    expect(decode(await bytesOf(await get("/images/test/9.png?scale=16"))).width).toBe(448);
  });

  it("rejects a scale outside 1..16, or not in decimal digits, on the PNG and the JSON route alike", async () => {
    for (const s of ["0", "17", "2.5", "x", "", "0x2", "1e1", "-1"])
      for (const path of [`/images/test/9.png?scale=${s}`, `/images/test/9?scale=${s}`]) {
        const res = await get(path);
        expect(res.status, path).toBe(400);
        expect(await res.json(), path).toEqual({
          error: `scale must be an integer from 1 to 16, got ${JSON.stringify(s)}`,
        });
      }
    // A valid scale on the JSON route changes nothing.
    expect(await (await get("/images/train/17?scale=3")).json()).toMatchObject({ idx: 17, class: "Sneaker" });
  });
});

describe("GET /stats", () => {
  it("counts images per class per split and lists samples", async () => {
    const stats = (await (await get("/stats")).json()) as Stats;
    expect(stats.dataset).toBe("fashion-mnist");
    const expected = (n: number, seed: number) =>
      CLASSES.map((name, label) => ({
        label,
        name,
        count: Array.from({ length: n }, (_, i) => (i + seed) % 10).filter((l) => l === label).length,
      }));
    expect(stats.splits.train).toEqual({ total: TRAIN, classes: expected(TRAIN, 0) });
    expect(stats.splits.test).toEqual({ total: TEST, classes: expected(TEST, 1) });
    expect(stats.samples?.split).toBe("test");
    // test label of idx i is (i + 1) % 10: class 0's first images are 9, 19, 29…
    expect(stats.samples?.byLabel[0]).toEqual({ label: 0, name: "T-shirt/top", idx: [9, 19, 29, 39, 49, 59, 69, 79] });
    expect(stats.samples?.byLabel.map((c) => c.idx.length)).toEqual(Array(10).fill(8));
  });
});

describe("GET /export/:split.npy", () => {
  it("exports a whole split as float32 (n, 28, 28, 1) equal to the stored BLOBs", async () => {
    const res = await get("/export/test.npy");
    expect(res.status).toBe(200);
    const body = await bytesOf(res);
    expect(Number(res.headers.get("Content-Length"))).toBe(body.length);
    const npy = parseNpy(body);
    expect(npy).toMatchObject({ descr: "<f4", fortranOrder: false, shape: [TEST, 28, 28, 1] });
    expect(npy.dataOffset % 64).toBe(0);
    expect(npy.data).toEqual(floatsLE(test.pixels));
    const stored = await env.DB.prepare(
      "SELECT pixels FROM images WHERE dataset = 'fashion-mnist' AND split = 'test' AND idx = 200",
    ).first<{
      pixels: number[];
    }>();
    expect(npy.data.subarray(200 * 3136, 201 * 3136)).toEqual(Uint8Array.from(stored!.pixels));
  });

  it("exports a page with offset and limit, and labels as uint8", async () => {
    const npy = parseNpy(await bytesOf(await get("/export/train.npy?offset=400&limit=300")));
    expect(npy.shape).toEqual([300, 28, 28, 1]);
    expect(npy.data).toEqual(floatsLE(train.pixels.subarray(400 * 784, 700 * 784)));

    const tail = parseNpy(await bytesOf(await get("/export/train.npy?offset=1200&limit=500")));
    expect(tail.shape).toEqual([34, 28, 28, 1]);
    expect(parseNpy(await bytesOf(await get("/export/train.npy?offset=1234"))).shape).toEqual([0, 28, 28, 1]);

    const labels = parseNpy(await bytesOf(await get("/export/train-labels.npy")));
    expect(labels).toMatchObject({ descr: "|u1", shape: [TRAIN] });
    expect(labels.data).toEqual(train.labels);
    const some = parseNpy(await bytesOf(await get("/export/test-labels.npy?offset=10&limit=5")));
    expect(some.shape).toEqual([5]);
    expect(some.data).toEqual(test.labels.subarray(10, 15));
  });

  it("rejects bad paging parameters and unknown exports with a JSON error", async () => {
    // Any name but the export files is a 400 that lists them, whatever its case or extension.
    const files =
      "train.npy, train-uint8.npy, train-labels.npy, train.parquet, test.npy, test-uint8.npy, test-labels.npy, test.parquet or <dataset>.npz";
    for (const [path, status, error] of [
      ["/export/train.npy?offset=-1", 400, /^offset must be an integer of at least 0, got "-1"$/],
      ["/export/train.npy?offset=abc", 400, /^offset must be an integer/],
      ["/export/train.npy?offset=0x10", 400, /^offset must be an integer of at least 0, got "0x10"$/],
      ["/export/train.npy?offset=1.5", 400, /^offset must be an integer/],
      ["/export/train.npy?offset=", 400, /^offset must be an integer of at least 0, got ""$/],
      ["/export/train.npy?limit=0", 400, /^limit must be an integer of at least 1, got "0"$/],
      ["/export/train.npy?limit=1e3", 400, /^limit must be an integer/],
      ["/export/train.npy?offset=1235", 400, /^offset must be at most 1234/],
      ["/export/valid.npy", 400, `file must be one of ${files}, got "valid.npy"`],
      ["/export/train.csv", 400, `file must be one of ${files}, got "train.csv"`],
      ["/export/foo.npy", 400, `file must be one of ${files}, got "foo.npy"`],
      ["/export/FOO.npy", 400, `file must be one of ${files}, got "FOO.npy"`],
      ["/export/TRAIN.npy", 400, `file must be one of ${files}, got "TRAIN.npy"`],
    ] as const) {
      const res = await get(path);
      expect(res.status, path).toBe(status);
      const body = (await res.json()) as { error: string };
      expect(Object.keys(body), path).toEqual(["error"]);
      if (typeof error === "string") expect(body.error, path).toBe(error);
      else expect(body.error, path).toMatch(error);
    }
  });

  it("reads D1 one page at a time, only as the consumer pulls", async () => {
    const { db: counting, queries } = countingD1(env.DB);
    const file = npyExport(counting, span({ split: "train", kind: "images", offset: 0, count: TRAIN }), 100);
    const reader = file.body.getReader();
    const sizes: number[] = [];
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      sizes.push(value.length);
      // Never more than the page being read: the stream does not run ahead of its reader.
      expect(queries()).toBe(sizes.length - 1);
    }
    expect(sizes.length).toBe(1 + 13);
    expect(sizes.slice(1, -1).every((n) => n === 100 * 3136)).toBe(true);
    expect(sizes.at(-1)).toBe(34 * 3136);
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(file.byteLength);
  });
});

describe("exports and concurrent loads", () => {
  it("serves the complete dataset while another run of it is loading (runs load into shadow tables)", async () => {
    const at = new Date().toISOString();
    await env.DB.prepare(
      "INSERT INTO runs (id, dataset, trigger, source, status, created_at, updated_at) VALUES ('loading-run', 'fashion-mnist', 'http', 'x', 'loading', ?1, ?1)",
    )
      .bind(at)
      .run();
    try {
      const res = await get("/export/train-labels.npy");
      expect(res.status).toBe(200);
      const labels = new Uint8Array(await res.arrayBuffer()).subarray(128);
      expect(labels).toEqual(syntheticSplit(TRAIN).labels);
    } finally {
      await env.DB.prepare("DELETE FROM runs WHERE id = 'loading-run'").run();
    }
  });

  it("errors an export that a swap to another load overtakes, rather than mix the two", async () => {
    const { version } = await readExtent(env.DB, "fashion-mnist", "train");
    expect(version).not.toBeNull();
    const file = npyExport(env.DB, span({ split: "train", kind: "labels", offset: 0, count: TRAIN, version }), 100);
    const reader = file.body.getReader();
    await reader.read(); // header
    await reader.read(); // rows 0…99 of the pinned dataset
    // A swap, as far as a reader can tell: the catalog names another run as the dataset's version.
    const at = new Date(Date.now() + 1000).toISOString();
    await env.DB.batch([
      env.DB.prepare(
        "INSERT INTO runs (id, dataset, trigger, source, status, created_at, updated_at) VALUES ('next-run', 'fashion-mnist', 'http', 'x', 'complete', ?1, ?1)",
      ).bind(at),
      env.DB.prepare("UPDATE datasets SET run_id = 'next-run' WHERE name = 'fashion-mnist'"),
    ]);
    try {
      await expect(reader.read()).rejects.toThrow("train rows 100…199: D1 returned 0; the dataset changed mid-export");
    } finally {
      await env.DB.batch([
        env.DB.prepare("UPDATE datasets SET run_id = ?1 WHERE name = 'fashion-mnist'").bind(version),
        env.DB.prepare("DELETE FROM runs WHERE id = 'next-run'"),
      ]);
    }
  });

  it("errors the stream rather than emit a body shorter than its header", async () => {
    const file = npyExport(env.DB, span({ split: "train", kind: "images", offset: 1200, count: 100 }));
    await expect(new Response(file.body).arrayBuffer()).rejects.toThrow(
      "train rows 1200…1299: D1 returned 34; the dataset changed mid-export",
    );
  });
});

describe("GET /", () => {
  it("serves the dashboard page, which reads the dataset API", async () => {
    const res = await get("/");
    expect(res.status).toBe(200);
    expect(res.headers.get("Content-Type")).toMatch(/^text\/html/);
    expect(await res.text()).toContain("/datasets");
  });
});
