/**
 * Provenance a user can query: a registry dataset whose archives are not the
 * published ones is `official: false` with its source, redacted, in the
 * `datasets` table, in GET /datasets and GET /datasets/{name}; `official:
 * true` when every archive matched its published MD5, from the official
 * mirrors or a copy elsewhere (the real load is in e2e-fashion-mnist.test.ts).
 */
import { env, SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { matchesPublished } from "../src/core/datasets";
import { FASHION_MNIST, registryEntry } from "../src/core/registry";
import { runProvenance } from "../src/db/provenance";
import type { DatasetList, DatasetView } from "../src/http/schemas/datasets";
import { imagesGz, labelsGz, makeSplit, publishFiles, rows, SHAPE_28 } from "./dataset-fixtures";
import { runToEnd } from "./helpers";

const get = async <T>(path: string) => (await (await SELF.fetch(`http://worker${path}`)).json()) as T;

const PUBLISHED = Object.fromEntries(
  FASHION_MNIST.splits.flatMap((s) => [s.images, s.labels]).map((a) => [a.file, a.md5!]),
);

describe("runProvenance", () => {
  const run = {
    dataset: "fashion-mnist",
    spec: null,
    source: "https://u:p@h/x?key=k",
    checksums: PUBLISHED,
  };

  it("is official only with every published MD5 matched, from whichever source", () => {
    expect(runProvenance(run)).toEqual({ official: true, source: "https://***@h/x?key=***" });
    // A copy of the published files elsewhere (a local directory, a company mirror) is the published files.
    expect(runProvenance({ ...run, source: "http://127.0.0.1:8000" })).toEqual({
      official: true,
      source: "http://127.0.0.1:8000",
    });
    const [first] = Object.keys(PUBLISHED);
    expect(runProvenance({ ...run, checksums: { ...PUBLISHED, [first!]: "0".repeat(32) } }).official).toBe(false);
    expect(runProvenance({ ...run, checksums: null }).official).toBe(false);
    const custom = { files: { trainImages: "a", trainLabels: "b", testImages: "c", testLabels: "d" } };
    expect(runProvenance({ ...run, spec: custom }).official).toBe(false);
  });

  it("holds EMNIST to its zip's MD5 when the zip was read whole (its members have none published)", () => {
    const emnist = registryEntry("emnist-digits")!;
    expect(matchesPublished(emnist, {})).toBe(true);
    expect(matchesPublished(emnist, { "gzip.zip": emnist.zip!.md5! })).toBe(true);
    expect(matchesPublished(emnist, { "gzip.zip": "0".repeat(32) })).toBe(false);
  });
});

describe("a registry dataset from another source", () => {
  it("is official: false with its redacted source, in D1, GET /datasets, GET /datasets/{name} and its run", async () => {
    const train = makeSplit(30, SHAPE_28, (i) => i % 10, 1);
    const test = makeSplit(10, SHAPE_28, (i) => i % 10, 2);
    const base = await publishFiles({
      "train-images-idx3-ubyte.gz": imagesGz(train),
      "train-labels-idx1-ubyte.gz": labelsGz(train),
      "t10k-images-idx3-ubyte.gz": imagesGz(test),
      "t10k-labels-idx1-ubyte.gz": labelsGz(test),
    });
    const run = await runToEnd({ dataset: "mnist", source: `${base}?token=s3cret` });
    expect(run.status).toBe("complete");
    expect(run.official).toBe(false);
    const source = `${base}?token=***`;

    expect(await rows("SELECT official, source FROM datasets WHERE name = 'mnist'")).toEqual([{ official: 0, source }]);
    // A query can pick the official rows out of `images`.
    expect(
      await rows(
        "SELECT COUNT(*) AS n FROM images i JOIN datasets d ON d.name = i.dataset WHERE i.dataset = 'mnist' AND d.official = 1",
      ),
    ).toEqual([{ n: 0 }]);
    const listed = (await get<DatasetList>("/datasets")).datasets.find((d) => d.name === "mnist")!;
    expect(listed).toMatchObject({ registry: true, status: "loaded", official: false, source });
    expect(await get<DatasetView>("/datasets/mnist")).toMatchObject({ official: false, source });
    expect(JSON.stringify(listed)).not.toContain("s3cret");

    // Its Croissant metadata says so too, once the export job has recorded the digests.
    let res = await SELF.fetch("http://worker/datasets/mnist/croissant.json");
    for (const deadline = Date.now() + 30_000; res.status === 503 && Date.now() < deadline;) {
      await new Promise((r) => setTimeout(r, 100));
      res = await SELF.fetch("http://worker/datasets/mnist/croissant.json");
    }
    expect(res.status).toBe(200);
    const { description } = (await res.json()) as { description: string };
    expect(description).toBe(
      `${registryEntry("mnist")!.about!.description} These rows were loaded from ${source}, and their archives did not match the published MD5s: they may differ from the published files.`,
    );
  });

  it("a custom dataset is never official", async () => {
    const train = makeSplit(8, SHAPE_28, (i) => i % 2, 3);
    const test = makeSplit(4, SHAPE_28, (i) => i % 2, 4);
    const files = { trainImages: "a.gz", trainLabels: "b.gz", testImages: "c.gz", testLabels: "d.gz" };
    const source = await publishFiles({
      "a.gz": imagesGz(train),
      "b.gz": labelsGz(train),
      "c.gz": imagesGz(test),
      "d.gz": labelsGz(test),
    });
    const run = await runToEnd({ dataset: "mine", source, files });
    expect(run).toMatchObject({ status: "complete", official: false });
    expect(await get<DatasetView>("/datasets/mine")).toMatchObject({ official: false, source });
  });
});

describe("a dataset loaded before provenance was recorded", () => {
  it("reads official: null, source: null (unknown), loaded as it is", async () => {
    // mnist, loaded above, as a database loaded before migrations/0007 holds it.
    await env.DB.prepare("UPDATE datasets SET official = NULL, source = NULL WHERE name = 'mnist'").run();
    expect(await get<DatasetView>("/datasets/mnist")).toMatchObject({ status: "loaded", official: null, source: null });
  });
});
