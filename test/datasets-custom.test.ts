/**
 * Custom datasets of other shapes, end to end inside workerd: 32×32 gray and
 * 32×32×3 colour (IDX [n, 32, 32, 3]), with class names and without. Stored
 * pixels must be bit for bit numpy's `x.astype(np.float32) / 255`, in HWC order.
 */
import { afterEach, describe, expect, it } from "vitest";
import type { CustomFiles, Shape } from "../src/core/datasets";
import { maxChunkImages } from "../src/pipeline/plan";
import {
  FLOAT_TABLE,
  NUMPY_FLOAT_TABLE_SHA256,
  classCounts,
  classTables,
  expectDataset,
  fingerprint,
  forgetDataset,
  imagesGz,
  labelsGz,
  load,
  makeSplit,
  publishFiles,
  rows,
  sha256Hex,
  splitSummary,
  withImage,
  type SplitData,
} from "./dataset-fixtures";

const FILES: CustomFiles = {
  trainImages: "train-img.gz",
  trainLabels: "train-lbl.gz",
  testImages: "test-img.gz",
  testLabels: "test-lbl.gz",
};

const customArchives = (train: SplitData, test: SplitData, fourD = false) => ({
  [FILES.trainImages]: imagesGz(train, { fourD }),
  [FILES.trainLabels]: labelsGz(train),
  [FILES.testImages]: imagesGz(test, { fourD }),
  [FILES.testLabels]: labelsGz(test),
});

// One custom dataset at a time beside the migrations' fashion-mnist (datasets-swap.test.ts has them side by side).
afterEach(async () => {
  for (const { name } of await rows<{ name: string }>("SELECT name FROM datasets WHERE name <> 'fashion-mnist'"))
    await forgetDataset(name);
});

it("the expected floats are numpy's: np.arange(256, dtype=np.uint8).astype(np.float32) / 255, bit for bit", async () => {
  expect(await sha256Hex(FLOAT_TABLE)).toBe(NUMPY_FLOAT_TABLE_SHA256);
});

const GRAY: Shape = { rows: 32, cols: 32, channels: 1 };
const RGB: Shape = { rows: 32, cols: 32, channels: 3 };
const NAMES = ["circle", "square", "triangle", "star", "cross"];

describe.each([
  { name: "shapes-gray", shape: GRAY, classes: NAMES, fourD: false },
  { name: "shapes-gray-numbered", shape: GRAY, classes: undefined, fourD: false },
  { name: "shapes-gray-4d", shape: GRAY, classes: NAMES, fourD: true },
  { name: "shapes-rgb", shape: RGB, classes: NAMES, fourD: true },
  { name: "shapes-rgb-numbered", shape: RGB, classes: undefined, fourD: true },
])("$name: $shape.rows×$shape.cols×$shape.channels, class names: $classes", ({ name, shape, classes, fourD }) => {
  it("loads bit for bit as float32 HWC, with the classes it was given or its labels as numbers", async () => {
    // Named: labels 0–4. Unnamed: 0–6, never 3, and 6 only in test: classes run to the largest label seen.
    const label = classes ? (i: number) => i % 5 : (i: number) => [0, 1, 2, 4, 5][i % 5]!;
    const train = makeSplit(45, shape, label, 300 + shape.channels);
    let test = makeSplit(15, shape, label, 400 + shape.channels);
    if (!classes) test = { ...test, labels: test.labels.map((l, i) => (i === 14 ? 6 : l)) };
    // Image 0 of test: a gradient whose channels differ, to pin down HWC order.
    const gradient = new Uint8Array(shape.rows * shape.cols * shape.channels);
    for (let r = 0; r < shape.rows; r++)
      for (let c = 0; c < shape.cols; c++)
        for (let k = 0; k < shape.channels; k++)
          gradient[(r * shape.cols + c) * shape.channels + k] = [r * 8, c * 8, 255 - r * 4][k]!;
    test = withImage(test, 0, gradient);
    const source = await publishFiles(customArchives(train, test, fourD));

    const run = await load({ dataset: name, source, files: FILES, ...(classes ? { classes } : {}) });
    expect(run.error).toBeNull();
    expect(run.status).toBe("complete");
    const classNames = classes ?? ["0", "1", "2", "3", "4", "5", "6"];
    expect(run).toMatchObject({
      dataset: name,
      spec: { files: FILES, ...(classes ? { classes } : {}) },
      imageRows: 32,
      imageCols: 32,
      imageChannels: shape.channels,
      classNames,
    });

    const bytes = 32 * 32 * shape.channels * 4;
    expect(await splitSummary(name)).toEqual([
      expect.objectContaining({ split: "test", n: 15, minBytes: bytes, maxBytes: bytes }),
      expect.objectContaining({ split: "train", n: 45, minBytes: bytes, maxBytes: bytes }),
    ]);
    await expectDataset(name, { train, test });

    // HWC: float index (r * cols + c) * channels + k is row r, column c, channel k.
    const [row] = (await fingerprint(name)).filter((r) => r.split === "test" && r.idx === 0);
    const floats = new Float32Array(Uint8Array.from(row!.h.match(/../g)!, (h) => parseInt(h, 16)).buffer);
    const at = (r: number, c: number, k: number) => floats[(r * 32 + c) * shape.channels + k];
    expect(at(3, 5, 0)).toBe(Math.fround(24 / 255));
    if (shape.channels === 3) {
      expect([at(3, 5, 0), at(3, 5, 1), at(3, 5, 2)]).toEqual([24, 40, 243].map((b) => Math.fround(b / 255)));
      expect([at(31, 0, 0), at(31, 0, 1), at(31, 0, 2)]).toEqual([248, 0, 131].map((b) => Math.fround(b / 255)));
    }

    const tables = await classTables(name);
    expect(tables.classes).toEqual(classNames);
    expect(tables.counts).toEqual(classCounts({ train, test }, classNames.length));
    if (!classes) expect(tables.counts.filter((c) => c.label === 3).map((c) => c.n)).toEqual([0, 0]);
    expect(await rows("SELECT run_id FROM datasets WHERE name = ?", name)).toEqual([{ run_id: run.id }]);
  });
});

it("a custom dataset reloaded with another shape and other classes: its tables and classes follow the new files", async () => {
  const name = "reshaped";
  const gray = { train: makeSplit(20, GRAY, (i) => i % 5, 501), test: makeSplit(6, GRAY, (i) => i % 5, 502) };
  const first = await load({
    dataset: name,
    source: await publishFiles(customArchives(gray.train, gray.test)),
    files: FILES,
    classes: NAMES,
  });
  expect(first.status).toBe("complete");
  const rgb = { train: makeSplit(12, RGB, (i) => i % 3, 503), test: makeSplit(4, RGB, (i) => i % 3, 504) };
  const second = await load({
    dataset: name,
    source: await publishFiles(customArchives(rgb.train, rgb.test, true)),
    files: FILES,
  });
  expect(second.error).toBeNull();
  expect(second.status).toBe("complete");
  await expectDataset(name, rgb);
  const tables = await classTables(name);
  expect(tables.classes).toEqual(["0", "1", "2"]);
  expect(tables.counts).toEqual(classCounts(rgb, 3));
});

it("images as large as a queue message can carry load, one per chunk; one byte larger travels by R2", async () => {
  const big: Shape = { rows: 200, cols: 200, channels: 3 };
  const data = { train: makeSplit(3, big, (i) => i, 601), test: makeSplit(2, big, (i) => i, 602) };
  const run = await load({
    dataset: "posters",
    source: await publishFiles(customArchives(data.train, data.test, true)),
    files: FILES,
  });
  expect(run.error).toBeNull();
  expect(run.status).toBe("complete");
  expect(run.chunksTotal).toBe(5);
  await expectDataset("posters", data);
  expect(await splitSummary("posters")).toEqual([
    expect.objectContaining({ split: "test", n: 2, minBytes: 480_000, maxBytes: 480_000 }),
    expect.objectContaining({ split: "train", n: 3, minBytes: 480_000, maxBytes: 480_000 }),
  ]);

  await forgetDataset("posters");
  // The boundary, as plan.ts computes it: images of 1×p pixels with p the most a message carries, then p + 1.
  const p = maxChunkImages(0) - 1;
  expect(maxChunkImages(p)).toBe(1);
  const strip = (cols: number): Shape => ({ rows: 1, cols, channels: 1 });
  const fits = { train: makeSplit(2, strip(p), () => 0, 603), test: makeSplit(1, strip(p), () => 1, 604) };
  const ok = await load({
    dataset: "strips",
    source: await publishFiles(customArchives(fits.train, fits.test)),
    files: FILES,
  });
  expect(ok.error).toBeNull();
  expect(ok.status).toBe("complete");
  await expectDataset("strips", fits);
  // One byte more than a message carries: the chunks' pixels are staged in R2 (large-images.test.ts has the rest).
  const over = { train: makeSplit(2, strip(p + 1), () => 0, 605), test: makeSplit(1, strip(p + 1), () => 1, 606) };
  const staged = await load({
    dataset: "strips",
    source: await publishFiles(customArchives(over.train, over.test)),
    files: FILES,
  });
  expect(staged.error).toBeNull();
  expect(staged.status).toBe("complete");
  await expectDataset("strips", over);
});
