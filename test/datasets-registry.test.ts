/**
 * Every registry dataset, end to end inside workerd: a small synthetic set of
 * its shape and label range, under its own file names (EMNIST's as members of
 * a gzip.zip), loaded from a source that is not an official mirror — so only
 * structural checks apply, not the published MD5s and counts. Runs are driven
 * through the pipeline (resolveRequest → startRun → the real queues), not HTTP.
 */
import { afterEach, describe, expect, it } from "vitest";
import { REGISTRY, registryEntry } from "../src/core/registry";
import { runDataset } from "../src/pipeline/dataset";
import {
  SHAPE_28,
  cfg,
  classCounts,
  classTables,
  emnistZip,
  expectDataset,
  forgetDataset,
  hits,
  load,
  makeSplit,
  publishFiles,
  rows,
  specArchives,
  splitSummary,
} from "./dataset-fixtures";

/** The labels a dataset's images carry: all its classes, but EMNIST Letters' unused 0 ("N/A"). */
const labelRange = (name: string, classes: number) => ({ lo: name === "emnist-letters" ? 1 : 0, hi: classes - 1 });

// Each entry is checked on its own, beside the migrations' fashion-mnist: the
// datasets side by side are datasets-swap.test.ts's subject.
afterEach(async () => {
  for (const { name } of await rows<{ name: string }>("SELECT name FROM datasets WHERE name <> 'fashion-mnist'"))
    await forgetDataset(name);
});

describe.each(REGISTRY.map((d, i) => [d.name, i] as const))("%s", (name, i) => {
  it("loads a synthetic set of its shape, labels and class names from its own file names", async () => {
    const spec = registryEntry(name)!;
    const classes = spec.classes!;
    const { lo, hi } = labelRange(name, classes.length);
    const span = hi - lo + 1;
    // Every label of the range at least once in train; test walks it with a stride.
    const data = {
      train: makeSplit(span + 7, SHAPE_28, (k) => lo + (k % span), 100 + i),
      test: makeSplit(19, SHAPE_28, (k) => lo + ((k * 7) % span), 200 + i),
    };
    const archives = specArchives(spec, data);
    let source: string;
    if (spec.zip) {
      // EMNIST: the members in gzip.zip; the source is the directory the zip lies in.
      expect(Object.keys(archives).every((f) => f.startsWith(`gzip/${name}-`))).toBe(true);
      source = await publishFiles({ "gzip.zip": emnistZip(archives) });
    } else {
      expect(Object.keys(archives).sort()).toEqual([
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
      ]);
      source = await publishFiles(archives);
    }

    const run = await load({ dataset: name, source });
    expect(run.error).toBeNull();
    expect(run.status).toBe("complete");
    expect(runDataset(run, cfg())?.official).toBe(false);
    expect(run).toMatchObject({
      dataset: name,
      spec: null,
      source,
      trainExpected: data.train.count,
      testExpected: data.test.count,
      trainLoaded: data.train.count,
      testLoaded: data.test.count,
      imageRows: 28,
      imageCols: 28,
      imageChannels: 1,
      classNames: [...classes],
    });
    if (spec.zip) expect(await hits(`${source}/gzip.zip`)).toBeGreaterThan(0);

    expect(await splitSummary(name)).toEqual(
      (["test", "train"] as const).map((split) => ({
        split,
        n: data[split].count,
        lo: 0,
        hi: data[split].count - 1,
        minLabel: Math.min(...data[split].labels),
        maxLabel: Math.max(...data[split].labels),
        minBytes: 28 * 28 * 4,
        maxBytes: 28 * 28 * 4,
      })),
    );
    expect(Math.min(...data.train.labels, ...data.test.labels)).toBe(lo);
    expect(Math.max(...data.train.labels, ...data.test.labels)).toBe(hi);
    if (name === "emnist-letters") {
      expect(classes[0]).toBe("N/A");
      expect(await rows("SELECT COUNT(*) AS n FROM images WHERE dataset = ? AND label = 0", name)).toEqual([{ n: 0 }]);
      expect([lo, hi]).toEqual([1, 26]);
    }
    if (name === "emnist-byclass") expect(hi).toBe(61);

    // Every row, bit for bit (EMNIST's upright: the transpose of the stored grid).
    await expectDataset(name, data, spec.transposed);

    const tables = await classTables(name);
    expect(tables.classes).toEqual([...classes]);
    expect(tables.labels).toEqual(classes.map((_, label) => label));
    expect(tables.counts).toEqual(classCounts(data, classes.length));

    expect(await rows("SELECT run_id FROM datasets WHERE name = ?", name)).toEqual([{ run_id: run.id }]);
    expect(await rows("SELECT dataset, train_rows, test_rows FROM dataset_swaps WHERE run_id = ?", run.id)).toEqual([
      { dataset: name, train_rows: data.train.count, test_rows: data.test.count },
    ]);
  });
});
