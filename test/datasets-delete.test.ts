/**
 * Datasets a user can manage: DELETE /datasets/{name} (a custom dataset is
 * gone, a registry one is empty again, an active run refuses it, a dataset
 * already partly gone or never loaded is cleaned up), and a dataset whose
 * table was dropped by hand: reported `broken` with its fix by every route
 * (never a 500), and the view repaired for every other dataset by the next
 * swap or deletion. Datasets are loaded through the real pipeline from
 * synthetic archives.
 */
import { env, SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { ErrorBody } from "../src/http/schemas/common";
import type { DatasetDeleted, DatasetList, DatasetView } from "../src/http/schemas/datasets";
import type { ActiveRunConflict } from "../src/http/schemas/runs";
import { datasetObjectPrefixes } from "../src/read/bucket";
import { datasetPrefix } from "../src/read/export-store";
import { rawDatasetPrefix } from "../src/read/raw-archives";
import { imagesGz, labelsGz, makeSplit, publishFiles, rows, SHAPE_28 } from "./dataset-fixtures";
import { runToEnd, TOKEN } from "./helpers";

const get = (path: string) => SELF.fetch(`http://worker${path}`);
const del = (path: string, token = TOKEN) =>
  SELF.fetch(`http://worker${path}`, { method: "DELETE", headers: { Authorization: `Bearer ${token}` } });
const json = async <T>(res: Response) => (await res.json()) as T;

const FILES = { trainImages: "tx.gz", trainLabels: "ty.gz", testImages: "vx.gz", testLabels: "vy.gz" };

/** A custom dataset of 28×28 images, `train` and `test` of them, label i % 3: loaded through POST /runs. */
async function loadCustom(name: string, seed: number, counts = { train: 30, test: 12 }) {
  const train = makeSplit(counts.train, SHAPE_28, (i) => i % 3, seed);
  const test = makeSplit(counts.test, SHAPE_28, (i) => i % 3, seed + 1);
  const source = await publishFiles({
    [FILES.trainImages]: imagesGz(train),
    [FILES.trainLabels]: labelsGz(train),
    [FILES.testImages]: imagesGz(test),
    [FILES.testLabels]: labelsGz(test),
  });
  const run = await runToEnd({ dataset: name, source, files: FILES, force: true });
  expect(run.status, run.error ?? "").toBe("complete");
  return run;
}

const tablesOf = (slug: string) =>
  rows<{ name: string }>(
    "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE ? ORDER BY name",
    `images__${slug}__%`,
  );

const viewCounts = () =>
  rows<{ dataset: string; split: string; n: number }>(
    "SELECT dataset, split, COUNT(*) AS n FROM images GROUP BY dataset, split ORDER BY dataset, split",
  );

/** Every object of a dataset in the bucket, under each of its prefixes. */
async function objectsOf(name: string): Promise<string[]> {
  const lists = await Promise.all(datasetObjectPrefixes(name).map((prefix) => env.EXPORTS.list({ prefix })));
  return lists.flatMap((l) => l.objects.map((o) => o.key));
}

/** Wait until the export job has written the dataset's .npy files to R2. */
async function exported(name: string): Promise<number> {
  for (const deadline = Date.now() + 20_000; Date.now() < deadline;) {
    const d = await json<DatasetView>(await get(`/datasets/${name}`));
    if (d.exportsStored) return (await env.EXPORTS.list({ prefix: datasetPrefix(name) })).objects.length;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${name}'s exports were not written to R2`);
}

describe("DELETE /datasets/{name}", () => {
  it("needs the token", async () => {
    const res = await del("/datasets/kmnist", "wrong");
    expect(res.status).toBe(401);
  });

  it("removes a custom dataset whole: tables, catalog, classes, counts, runs and R2 exports; the view works", async () => {
    const run = await loadCustom("doomed", 1);
    await loadCustom("keeper", 2);
    await exported("doomed");
    // Its exports, and the archives its run kept: every object of it in the bucket.
    const before = await objectsOf("doomed");
    expect(before.filter((k) => k.startsWith(datasetPrefix("doomed"))).length).toBeGreaterThanOrEqual(4);
    expect(before.filter((k) => k.startsWith(rawDatasetPrefix("doomed")))).toHaveLength(4);

    const res = await del("/datasets/doomed");
    expect(res.status).toBe(200);
    expect(await json<DatasetDeleted>(res)).toEqual({
      deleted: "doomed",
      tables: ["images__doomed__test", "images__doomed__train"],
      runs: 1,
      objects: before.length,
      dataset: null,
    } satisfies DatasetDeleted);

    const { datasets } = await json<DatasetList>(await get("/datasets"));
    expect(datasets.map((d) => d.name)).not.toContain("doomed");
    expect(datasets.find((d) => d.name === "keeper")?.status).toBe("loaded");
    expect((await get("/datasets/doomed")).status).toBe(404);
    expect((await get(`/runs/${run.id}`)).status).toBe(404);
    expect(await tablesOf("doomed")).toEqual([]);
    for (const table of ["datasets", "classes", "class_counts", "dataset_exports"]) {
      const column = table === "datasets" ? "name" : "dataset";
      expect(await rows(`SELECT 1 FROM ${table} WHERE ${column} = 'doomed'`), table).toEqual([]);
    }
    expect(await rows("SELECT 1 FROM runs WHERE dataset = 'doomed'")).toEqual([]);
    expect(await rows("SELECT 1 FROM run_chunks WHERE run_id = ?", run.id)).toEqual([]);
    expect(await objectsOf("doomed")).toEqual([]);
    expect((await objectsOf("keeper")).length).toBeGreaterThan(0);
    expect(await rows("SELECT dataset, active_runs FROM dataset_deletions WHERE dataset = 'doomed'")).toEqual([
      { dataset: "doomed", active_runs: 0 },
    ]);
    expect(await rows("SELECT * FROM view_guards")).toEqual([]);
    // The view lists the others, and nothing of it.
    const counts = await viewCounts();
    expect(counts.filter((c) => c.dataset === "doomed")).toEqual([]);
    expect(counts.filter((c) => c.dataset === "keeper")).toEqual([
      { dataset: "keeper", split: "test", n: 12 },
      { dataset: "keeper", split: "train", n: 30 },
    ]);

    // Gone means gone: a second deletion has nothing to delete.
    const again = await del("/datasets/doomed");
    expect(again.status).toBe(404);
    expect((await json<ErrorBody>(again)).error).toMatch(/^no dataset doomed/);
    // And the name can be loaded anew.
    await loadCustom("doomed", 3);
    expect((await json<DatasetView>(await get("/datasets/doomed"))).status).toBe("loaded");
  });

  it("returns a registry dataset to empty, without runs", async () => {
    const train = makeSplit(40, SHAPE_28, (i) => i % 10, 7);
    const test = makeSplit(10, SHAPE_28, (i) => i % 10, 8);
    const source = await publishFiles({
      "train-images-idx3-ubyte.gz": imagesGz(train),
      "train-labels-idx1-ubyte.gz": labelsGz(train),
      "t10k-images-idx3-ubyte.gz": imagesGz(test),
      "t10k-labels-idx1-ubyte.gz": labelsGz(test),
    });
    expect((await runToEnd({ dataset: "mnist", source })).status).toBe("complete");
    const res = await del("/datasets/mnist");
    expect(res.status).toBe(200);
    const body = await json<DatasetDeleted>(res);
    expect(body).toMatchObject({ deleted: "mnist", runs: 1, tables: ["images__mnist__test", "images__mnist__train"] });
    expect(body.dataset).toMatchObject({ name: "mnist", status: "empty", version: null, lastRun: null });
    expect(await json<DatasetView>(await get("/datasets/mnist"))).toMatchObject({
      status: "empty",
      counts: { train: 0, test: 0 },
      lastRun: null,
      official: null,
      source: null,
    });
    expect((await get("/datasets/mnist/images/train/0")).status).toBe(404);
  });

  it("cleans up a dataset that never loaded: its failed runs go, and a custom one leaves GET /datasets", async () => {
    // A typo'd custom run: the files are not there, so it fails, and the dataset was listed as empty.
    const failed = await runToEnd({ dataset: "typo-set", source: await publishFiles({}), files: FILES });
    expect(failed.status).toBe("failed");
    expect((await json<DatasetList>(await get("/datasets"))).datasets.map((d) => d.name)).toContain("typo-set");
    const res = await del("/datasets/typo-set");
    expect(res.status).toBe(200);
    expect(await json<DatasetDeleted>(res)).toMatchObject({ deleted: "typo-set", runs: 1, tables: [], dataset: null });
    expect((await json<DatasetList>(await get("/datasets"))).datasets.map((d) => d.name)).not.toContain("typo-set");

    // A registry dataset never loaded at all: nothing to do, and it says so.
    const never = await del("/datasets/kmnist");
    expect(never.status).toBe(200);
    expect(await json<DatasetDeleted>(never)).toMatchObject({ deleted: "kmnist", runs: 0, tables: [] });
    // A name nobody used: 404, and a bad name 400.
    expect((await del("/datasets/never-heard-of")).status).toBe(404);
    expect((await del("/datasets/Bad_Name")).status).toBe(400);
  });

  it("is refused with 409 while a run of the dataset is active, and leaves it whole", async () => {
    await loadCustom("busy", 4);
    const at = new Date().toISOString();
    await env.DB.prepare(
      "INSERT INTO runs (id, dataset, trigger, source, status, created_at, updated_at) VALUES ('busy-run', 'busy', 'http', 'x', 'loading', ?1, ?1)",
    )
      .bind(at)
      .run();
    const res = await del("/datasets/busy");
    expect(res.status).toBe(409);
    const body = await json<ActiveRunConflict>(res);
    expect(body.activeRunId).toBe("busy-run");
    expect(body.error).toMatch(/^busy cannot be deleted now: run busy-run of busy is already loading/);
    expect(body.hint).toContain("POST /runs/busy-run/abandon");

    expect((await tablesOf("busy")).length).toBe(2);
    expect((await json<DatasetView>(await get("/datasets/busy"))).status).toBe("loaded");
    await env.DB.prepare("UPDATE runs SET status = 'failed' WHERE id = 'busy-run'").run();
    expect((await del("/datasets/busy")).status).toBe(200);
  });

  it("is documented in the OpenAPI document", async () => {
    const doc = await json<{ paths: Record<string, Record<string, { responses: Record<string, unknown> }>> }>(
      await get("/openapi.json"),
    );
    const op = doc.paths["/datasets/{name}"]!.delete!;
    expect(Object.keys(op.responses).sort()).toEqual(["200", "400", "401", "404", "409", "503"]);
  });
});

describe("a table dropped by hand", () => {
  it("makes its dataset broken, never a 500; the next swap repairs the view, and DELETE cleans up", async () => {
    await loadCustom("one", 10);
    const two = { train: 30, test: 12 };
    await loadCustom("two", 11, two);
    await env.DB.exec("DROP TABLE images__one__train");

    // SQLite itself now fails every query of the view; the catalog still names the table.
    await expect(viewCounts()).rejects.toThrow(/no such table/);
    const hint =
      "its table images__one__train is missing (dropped outside idx-etl); DELETE /datasets/one or load it again (POST /datasets/one/runs)";
    const listed = (await json<DatasetList>(await get("/datasets"))).datasets.find((d) => d.name === "one")!;
    expect(listed).toMatchObject({ status: "broken", hint });
    expect(await json<DatasetView>(await get("/datasets/one"))).toMatchObject({ status: "broken", hint });
    for (const path of [
      "/datasets/one/images/train/0",
      "/datasets/one/images/test/0.png",
      "/datasets/one/images?split=test",
      "/datasets/one/stats",
      "/datasets/one/export/train.npy",
      "/datasets/one/export/test-labels.npy",
    ]) {
      const res = await get(path);
      expect(res.status, path).toBe(409);
      expect((await json<ErrorBody>(res)).error, path).toBe(`dataset one is broken: ${hint}`);
    }
    // Another dataset's routes do not notice.
    expect((await get("/datasets/two/images/train/0")).status).toBe(200);

    // The next swap of another dataset plans the view over the tables that exist: it works for everyone again.
    await loadCustom("two", 12, two);
    const counts = await viewCounts();
    expect(counts.filter((c) => c.dataset === "two")).toEqual([
      { dataset: "two", split: "test", n: 12 },
      { dataset: "two", split: "train", n: 30 },
    ]);
    expect(counts.filter((c) => c.dataset === "one")).toEqual([{ dataset: "one", split: "test", n: 12 }]);
    expect((await json<DatasetView>(await get("/datasets/one"))).status).toBe("broken");

    // DELETE is the clean way out: what is left of it goes, and the view lists the others.
    const res = await del("/datasets/one");
    expect(res.status).toBe(200);
    expect(await json<DatasetDeleted>(res)).toMatchObject({ tables: ["images__one__test"], runs: 1 });
    expect((await viewCounts()).filter((c) => c.dataset === "one")).toEqual([]);
    expect((await get("/datasets/one")).status).toBe(404);
  });

  it("after a hand drop, a deletion of another dataset repairs the view too", async () => {
    await loadCustom("left", 20);
    await loadCustom("right", 21);
    await env.DB.exec("DROP TABLE images__left__test");
    await expect(viewCounts()).rejects.toThrow(/no such table/);
    expect((await del("/datasets/right")).status).toBe(200);
    expect((await viewCounts()).filter((c) => c.dataset === "left")).toEqual([
      { dataset: "left", split: "train", n: 30 },
    ]);
    expect((await del("/datasets/left")).status).toBe(200);
  });
});
