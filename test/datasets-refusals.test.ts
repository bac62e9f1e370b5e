/**
 * What a run refuses, each with its exact error, and that a refused run loses
 * nothing: every dataset already loaded keeps exactly its rows, and the
 * catalog and the refused dataset's tables are as they were.
 */
import { env } from "cloudflare:workers";
import { gzipSync } from "fflate";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import type { CustomFiles } from "../src/core/datasets";
import { REGISTRY_NAMES, registryEntry } from "../src/core/registry";
import { datasetBytes, describeBytes } from "../src/pipeline/capacity";
import { QUEUES } from "../src/pipeline/config";
import type { ExtractMessage } from "../src/pipeline/messages";
import {
  SHAPE_28,
  capturingQueue,
  emnistZip,
  fingerprints,
  imagesGz,
  labelsGz,
  load,
  makeSplit,
  publishFiles,
  refusal,
  rows,
  specArchives,
  trigger,
  waitForRun,
  type SplitData,
} from "./dataset-fixtures";
import { deliver } from "./faults-helpers";
import { idxBytes } from "./idx-fixtures";

const MNIST = registryEntry("mnist")!;
const FASHION = registryEntry("fashion-mnist")!;
const LETTERS = registryEntry("emnist-letters")!;
const FILES: CustomFiles = {
  trainImages: "train-img.gz",
  trainLabels: "train-lbl.gz",
  testImages: "test-img.gz",
  testLabels: "test-lbl.gz",
};
const custom = (train: SplitData, test: SplitData, opts: { type?: number; fourD?: boolean } = {}) => ({
  [FILES.trainImages]: imagesGz(train, opts),
  [FILES.trainLabels]: labelsGz(train),
  [FILES.testImages]: imagesGz(test, opts),
  [FILES.testLabels]: labelsGz(test),
});
const mnistData = (seed: number) => ({
  train: makeSplit(40, SHAPE_28, (i) => i % 10, seed),
  test: makeSplit(12, SHAPE_28, (i) => (i * 3) % 10, seed + 1),
});

let baseline: Awaited<ReturnType<typeof fingerprints>>;
let catalog: unknown[];
const catalogNow = () => rows("SELECT name, run_id FROM datasets ORDER BY name");
const shadowTables = () =>
  rows<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE '%\\_\\_next' ESCAPE '\\'");

beforeAll(async () => {
  for (const [spec, seed] of [
    [FASHION, 10],
    [MNIST, 20],
  ] as const) {
    const run = await load({ dataset: spec.name, source: await publishFiles(specArchives(spec, mnistData(seed))) });
    expect(run.status).toBe("complete");
  }
  baseline = await fingerprints();
  expect(Object.keys(baseline)).toEqual(["fashion-mnist", "mnist"]);
  expect(baseline.mnist).toHaveLength(52);
  catalog = await catalogNow();
});

// Nothing already loaded is lost, and a refused dataset leaves no table behind.
afterEach(async () => {
  expect(await fingerprints()).toEqual(baseline);
  expect(await catalogNow()).toEqual(catalog);
  expect(await shadowTables()).toEqual([]);
});

/** A run of `req` that must fail with exactly `error`. */
async function refused(req: Parameters<typeof load>[0], error: string): Promise<void> {
  const run = await load(req);
  expect(run.status).toBe("failed");
  expect(run.error).toBe(error);
}

describe("the files' content", () => {
  it("images of IDX element type 0x0D (float): the error names the type", async () => {
    const train = makeSplit(8, SHAPE_28, (i) => i % 10, 1);
    const test = makeSplit(4, SHAPE_28, (i) => i % 10, 2);
    await refused(
      { dataset: "floaty", source: await publishFiles(custom(train, test, { type: 0x0d })), files: FILES },
      "train-img.gz: magic number 0x00000d03 has element type 0x0d (float), expected 0x08 (unsigned byte): only unsigned-byte images and labels are accepted",
    );
    // The same for a registry dataset, whose rows stay as they were.
    const archives = specArchives(MNIST, mnistData(3));
    archives["t10k-images-idx3-ubyte.gz"] = imagesGz(mnistData(3).test, { type: 0x0d });
    await refused(
      { dataset: "mnist", source: await publishFiles(archives) },
      "t10k-images-idx3-ubyte.gz: magic number 0x00000d03 has element type 0x0d (float), expected 0x08 (unsigned byte): only unsigned-byte images and labels are accepted",
    );
  });

  it("EMNIST images of type float inside gzip.zip, from a directory source: the error names the type and where each mirror looked", async () => {
    const d = {
      train: makeSplit(6, SHAPE_28, (i) => 1 + i, 23),
      test: makeSplit(3, SHAPE_28, (i) => 1 + i, 24),
    };
    const members = specArchives(LETTERS, d);
    const file = "gzip/emnist-letters-train-images-idx3-ubyte.gz";
    members[file] = imagesGz(d.train, { type: 0x0d });
    const dir = await publishFiles({ "gzip.zip": emnistZip(members) });
    const run = await load({ dataset: LETTERS.name, source: dir });
    expect(run.status).toBe("failed");
    const type =
      "magic number 0x00000d03 has element type 0x0d (float), expected 0x08 (unsigned byte): only unsigned-byte images and labels are accepted";
    expect(run.error).toContain(`${file}: ${type}`);
    // The source was tried as loose files (none there), then as the zip in it: the error says both places.
    expect(run.error).toBe(
      `${file}: no mirror served it whole (${dir}, ${dir}/gzip.zip): ${file}: HTTP 404 Not Found from ${dir}/emnist-letters-train-images-idx3-ubyte.gz; ${file}: ${type}`,
    );
  });

  it("images whose shape differs between train and test", async () => {
    const train = makeSplit(8, SHAPE_28, (i) => i % 10, 4);
    const test = makeSplit(4, { rows: 32, cols: 32, channels: 1 }, (i) => i % 10, 5);
    await refused(
      { dataset: "mismatched", source: await publishFiles(custom(train, test)), files: FILES },
      "test-img.gz: images are 32×32×1, but train-img.gz has 28×28×1",
    );
    const rgb = makeSplit(8, { rows: 32, cols: 32, channels: 3 }, (i) => i % 10, 6);
    const gray = makeSplit(4, { rows: 32, cols: 32, channels: 1 }, (i) => i % 10, 7);
    await refused(
      {
        dataset: "mismatched",
        source: await publishFiles({ ...custom(rgb, gray), [FILES.trainImages]: imagesGz(rgb, { fourD: true }) }),
        files: FILES,
      },
      "test-img.gz: images are 32×32×1, but train-img.gz has 32×32×3",
    );
  });

  it("a label outside the registry's class range (and outside the classes a custom dataset named)", async () => {
    const data = mnistData(8);
    const test = { ...data.test, labels: data.test.labels.map((l, i) => (i === 7 ? 10 : l)) };
    await refused(
      { dataset: "mnist", source: await publishFiles(specArchives(MNIST, { ...data, test })) },
      "t10k-labels-idx1-ubyte.gz: label 10 at index 7 is outside 0–9 (10 classes)",
    );
    // EMNIST Letters: 1–26, and 0 ("N/A") is a class; 27 is not.
    const letters = {
      train: makeSplit(30, SHAPE_28, (i) => (i === 3 ? 27 : 1 + (i % 26)), 9),
      test: makeSplit(10, SHAPE_28, (i) => 1 + i, 10),
    };
    await refused(
      {
        dataset: LETTERS.name,
        source: await publishFiles({ "gzip.zip": emnistZip(specArchives(LETTERS, letters)) }),
      },
      "gzip/emnist-letters-train-labels-idx1-ubyte.gz: label 27 at index 3 is outside 0–26 (27 classes)",
    );
    const named = {
      train: makeSplit(6, SHAPE_28, (i) => (i === 4 ? 2 : i % 2), 11),
      test: makeSplit(3, SHAPE_28, (i) => i % 2, 12),
    };
    await refused(
      {
        dataset: "two-classes",
        source: await publishFiles(custom(named.train, named.test)),
        files: FILES,
        classes: ["no", "yes"],
      },
      "train-lbl.gz: label 2 at index 4 is outside 0–1 (2 classes)",
    );
  });

  it("a registry dataset whose header shape differs from the registry's", async () => {
    const archives = specArchives(MNIST, {
      train: makeSplit(8, { rows: 32, cols: 32, channels: 1 }, (i) => i % 10, 13),
      test: makeSplit(4, { rows: 32, cols: 32, channels: 1 }, (i) => i % 10, 14),
    });
    await refused(
      { dataset: "mnist", source: await publishFiles(archives) },
      "train-images-idx3-ubyte.gz: mnist images are 28×28×1, header says 32×32×1",
    );
    // 28×28 but three channels: EMNIST's shape is 28×28×1 too.
    const rgb28 = { rows: 28, cols: 28, channels: 3 };
    const lettersRgb = {
      train: makeSplit(4, rgb28, (i) => 1 + i, 15),
      test: makeSplit(2, rgb28, (i) => 1 + i, 16),
    };
    const members = specArchives(LETTERS, lettersRgb);
    for (const s of LETTERS.splits) members[s.images.file] = imagesGz(lettersRgb[s.split], { fourD: true });
    await refused(
      { dataset: LETTERS.name, source: await publishFiles({ "gzip.zip": emnistZip(members) }) },
      "gzip/emnist-letters-train-images-idx3-ubyte.gz: emnist-letters images are 28×28×1, header says 28×28×3",
    );
  });

  it("an image larger than D1 stores (708×708: 501,264 bytes, 2,005,056 as float32)", async () => {
    const big = { rows: 708, cols: 708, channels: 1 };
    await refused(
      {
        dataset: "posters",
        source: await publishFiles(
          custom(
            makeSplit(2, big, () => 0, 17),
            makeSplit(1, big, () => 0, 18),
          ),
        ),
        files: FILES,
      },
      "train-img.gz: one image of 708×708×1 is 501264 bytes; D1 stores at most 499998 bytes per image (as float32, 4 bytes a pixel, in its 2000000-byte row limit)",
    );
  });

  it("a header declaring images no array can hold, followed by pixels: refused from the header alone", async () => {
    const small = { rows: 4, cols: 4, channels: 1 };
    const huge = (split: SplitData) => gzipSync(idxBytes([split.count, 2 ** 24, 2 ** 24], split.pixels));
    const train = makeSplit(3, small, (i) => i % 2, 20);
    const test = makeSplit(2, small, (i) => i % 2, 21);
    await refused(
      {
        dataset: "posters",
        source: await publishFiles({
          ...custom(train, test),
          [FILES.trainImages]: huge(train),
          [FILES.testImages]: huge(test),
        }),
        files: FILES,
      },
      "train-img.gz: one image of 16777216×16777216×1 is 281474976710656 bytes; D1 stores at most 499998 bytes per image (as float32, 4 bytes a pixel, in its 2000000-byte row limit)",
    );
  });

  it("a dataset that does not fit in D1 (D1_MAX_BYTES): refused before a row is written", async () => {
    const data = mnistData(19);
    const jobs = capturingQueue<ExtractMessage>();
    const run = await trigger(
      { dataset: "mnist", source: await publishFiles(specArchives(MNIST, data)) },
      { jobs: jobs.queue },
    );
    // Less than the dataset alone needs (about 0.2 MB here), whatever the database already holds.
    const max = 100_000;
    const { thrown } = await deliver(QUEUES.jobs, jobs.sent, { env: { D1_MAX_BYTES: String(max) } });
    expect(thrown).toBeUndefined();
    const failed = await waitForRun(run.id);
    expect(failed.status).toBe("failed");
    const need = describeBytes(datasetBytes({ train: 40, test: 12 }, SHAPE_28));
    const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    expect(failed.error).toMatch(
      new RegExp(
        `^${escape(`mnist needs about ${need} in D1 for its 52 images of 28×28×1 as float32, loaded beside the copy it replaces; the database holds `)}\\d+(\\.\\d+)? [MG]B${escape(`, of at most ${describeBytes(max)} (D1_MAX_BYTES), so it cannot fit. Nothing was loaded`)}$`,
      ),
    );
    expect(failed.chunksTotal).toBeNull();
  });
});

describe("room for loads that run at once", () => {
  it("counts what other datasets' loading runs have still to write: two large loads cannot both pass", async () => {
    // Another dataset's run, loading, with 2 million images still to write (about 8 GB).
    const at = new Date().toISOString();
    await env.DB.prepare(
      `INSERT INTO runs (id, dataset, trigger, source, status, train_expected, test_expected, train_loaded, test_loaded,
         image_rows, image_cols, image_channels, created_at, updated_at)
       VALUES ('big-loading', 'big-one', 'http', 'x', 'loading', 2000000, 0, 0, 0, 28, 28, 1, ?1, ?1)`,
    )
      .bind(at)
      .run();
    try {
      const data = mnistData(20);
      const jobs = capturingQueue<ExtractMessage>();
      const run = await trigger(
        { dataset: "mnist", source: await publishFiles(specArchives(MNIST, data)) },
        { jobs: jobs.queue },
      );
      // Room for mnist alone, not for both.
      const { thrown } = await deliver(QUEUES.jobs, jobs.sent, { env: { D1_MAX_BYTES: String(1e9) } });
      expect(thrown).toBeUndefined();
      const failed = await waitForRun(run.id);
      expect(failed.status).toBe("failed");
      const pending = describeBytes(datasetBytes({ train: 2_000_000, test: 0 }, SHAPE_28));
      expect(failed.error).toContain(
        `and 1 other run loading will add about ${pending}, of at most 1.00 GB (D1_MAX_BYTES)`,
      );
    } finally {
      await env.DB.prepare("UPDATE runs SET status = 'failed' WHERE id = 'big-loading'").run();
    }
  });
});

describe("the request (resolveRequest): refused before a run is recorded", () => {
  it("a custom dataset named like a registry dataset, an unknown name, invalid names, and other requests", async () => {
    const before = await rows("SELECT COUNT(*) AS n FROM runs");
    const source = "http://example.test/data";
    for (const name of REGISTRY_NAMES) {
      expect(refusal({ dataset: name, source, files: FILES })).toBe(
        `${name} is a registry dataset; name a custom dataset differently`,
      );
    }
    expect(refusal({ dataset: "quickdraw" })).toBe(
      "unknown dataset quickdraw: the registry has fashion-mnist, mnist, kmnist, emnist-balanced, emnist-byclass, emnist-bymerge, emnist-digits, emnist-letters, emnist-mnist; a custom dataset also names its files",
    );
    expect(refusal({ dataset: "emnist-dots", source })).toMatch(/^unknown dataset emnist-dots: /);
    for (const bad of ["MNIST", "my_data", "-x", "x-", "a--b", "9lives", "a b", "é", "", "a".repeat(41)]) {
      expect(refusal({ dataset: bad, source, files: FILES })).toBe(
        `dataset must be lower-case words joined by "-" (at most 40 characters), got ${JSON.stringify(bad)}`,
      );
    }
    expect(refusal({ dataset: "mnist", classes: ["a", "b"] })).toBe(
      "mnist is a registry dataset: its class names are the published ones",
    );
    expect(refusal({ dataset: "mine", files: FILES })).toBe(
      "a custom dataset needs a source: the base URL of its files",
    );
    expect(refusal({ dataset: "mine", source, files: { ...FILES, testImages: FILES.trainImages } })).toBe(
      "a custom dataset's four files must differ",
    );
    expect(await rows("SELECT COUNT(*) AS n FROM runs")).toEqual(before);
  });
});
