/**
 * Every export format of a custom RGB dataset (5×7×3, class names given),
 * bit for bit against its IDX files: the uint8 .npy and the .npz keep the
 * channels (n, rows, cols, 3), the Parquet PNGs are RGB, R2 and D1 serve the
 * same bytes, and croissant.json describes it from what its run was given.
 */
import { env } from "cloudflare:test";
import { beforeAll, expect, it } from "vitest";
import type { CustomFiles, Shape } from "../src/core/datasets";
import { customAbout } from "../src/http/croissant";
import { croissantProblems } from "./croissant-rules";
import { imagesGz, labelsGz, load, makeSplit, publishFiles, type SplitData } from "./dataset-fixtures";
import { exportedVersion, huggingface, npzArrays, parquetRows, sha256 } from "./format-readers";
import { parseNpy } from "./npy";
import { recorded } from "./recorded-app";

const NAME = "tiles-rgb";
const SHAPE: Shape = { rows: 5, cols: 7, channels: 3 };
const CLASSES = ["red", "green", "blue"];
const FILES: CustomFiles = { trainImages: "a.gz", trainLabels: "b.gz", testImages: "c.gz", testLabels: "d.gz" };
const data: Record<"train" | "test", SplitData> = {
  train: makeSplit(37, SHAPE, (i) => i % 3, 71),
  test: makeSplit(12, SHAPE, (i) => (i * 2) % 3, 72),
};
const PER_IMAGE = 5 * 7 * 3;
let version: string;

const base = `/datasets/${NAME}/export`;
/** The same request from D1 (no bucket) and from R2: identical bytes required; R2's body returned. */
async function both(path: string): Promise<Uint8Array> {
  const d1 = await recorded(path);
  const r2 = await recorded(path, {}, "GET", true);
  expect([d1.res.status, r2.res.status], path).toEqual([200, 200]);
  expect([d1.res.headers.get("X-Export-Source"), r2.res.headers.get("X-Export-Source")], path).toEqual(["d1", "r2"]);
  expect(Buffer.from(r2.body).equals(Buffer.from(d1.body)), path).toBe(true);
  expect(r2.res.headers.get("ETag"), path).toBe(d1.res.headers.get("ETag"));
  return r2.body;
}

beforeAll(async () => {
  const source = await publishFiles({
    [FILES.trainImages]: imagesGz(data.train, { fourD: true }),
    [FILES.trainLabels]: labelsGz(data.train),
    [FILES.testImages]: imagesGz(data.test, { fourD: true }),
    [FILES.testLabels]: labelsGz(data.test),
  });
  const run = await load({ dataset: NAME, source, files: FILES, classes: CLASSES });
  expect(run.error).toBeNull();
  version = run.id;
  await exportedVersion(NAME, version);
}, 120_000);

it("uint8 .npy: (n, 5, 7, 3), the IDX bytes in HWC order", async () => {
  for (const split of ["train", "test"] as const) {
    const npy = parseNpy(await both(`${base}/${split}.npy?dtype=uint8`));
    expect(npy).toMatchObject({ descr: "|u1", shape: [data[split].count, 5, 7, 3] });
    expect(npy.data).toEqual(data[split].pixels);
    // By the name its listing, Croissant and its download give it: the same file, the same ETag.
    const named = await recorded(`${base}/${split}-uint8.npy`, {}, "GET", true);
    expect(named.res.status).toBe(200);
    expect(named.res.headers.get("ETag")).toBe(
      (await recorded(`${base}/${split}.npy?dtype=uint8`)).res.headers.get("ETag"),
    );
    expect(Buffer.from(named.body).equals(Buffer.from(await both(`${base}/${split}.npy?dtype=uint8`)))).toBe(true);
    const conflicting = await recorded(`${base}/${split}-uint8.npy?dtype=float32`);
    expect(conflicting.res.status).toBe(400);
  }
});

it(".npz: x_* keep the channels, (n, 5, 7, 3), y_* the labels", async () => {
  const arrays = npzArrays(await both(`${base}/${NAME}.npz`));
  expect(arrays.map(([name, a]) => [name, a.descr, a.shape])).toEqual([
    ["x_train.npy", "|u1", [37, 5, 7, 3]],
    ["y_train.npy", "|u1", [37]],
    ["x_test.npy", "|u1", [12, 5, 7, 3]],
    ["y_test.npy", "|u1", [12]],
  ]);
  expect(arrays.map(([, a]) => a.data)).toEqual([
    data.train.pixels,
    data.train.labels,
    data.test.pixels,
    data.test.labels,
  ]);
});

it("Parquet: RGB PNGs of the IDX bytes, the labels, the class names it was given", async () => {
  for (const split of ["train", "test"] as const) {
    const { meta, rows } = await parquetRows(await both(`${base}/${split}.parquet`));
    expect(huggingface(meta).info.features.label).toEqual({ _type: "ClassLabel", names: CLASSES });
    expect(rows.map((r) => [r.path, r.label, r.channels])).toEqual(
      Array.from(data[split].labels, (l, i) => [`${split}/${i}.png`, l, 3]),
    );
    rows.forEach((r, i) =>
      expect(r.pixels, `${split} ${i}`).toEqual(data[split].pixels.subarray(i * PER_IMAGE, (i + 1) * PER_IMAGE)),
    );
  }
});

it("croissant.json: the spec's rules, from what the run was given", async () => {
  const res = await recorded(`/datasets/${NAME}/croissant.json`, {}, "GET", true);
  expect(res.res.status).toBe(200);
  const doc = JSON.parse(new TextDecoder().decode(res.body)) as Record<string, unknown> & {
    distribution: { "@id": string; sha256: string }[];
    url: string;
  };
  expect(croissantProblems(doc)).toEqual([]);
  expect(doc.name).toBe(NAME);
  // Loaded from this test's archive server on 127.0.0.1: an address no reader of the metadata can open.
  expect(doc.url).toBe(`http://worker/datasets/${NAME}`);
  expect(doc.license).toMatchObject({ url: `http://worker/datasets/${NAME}` });
  expect(doc.description).toMatch(
    /from files on the machine that loaded it \(served there at http:\/\/127\.0\.0\.1:\d+\/f\/ds-/,
  );
  expect(doc.distribution.map((f) => f["@id"]).sort()).toEqual(
    [
      ...["train", "test"].flatMap((s) => [`${s}.npy`, `${s}-uint8.npy`, `${s}-labels.npy`, `${s}.parquet`]),
      `${NAME}.npz`,
    ].sort(),
  );
  const records = await env.DB.prepare("SELECT file, sha256 FROM export_files WHERE dataset = ?1 AND version = ?2")
    .bind(NAME, version)
    .all<{ file: string; sha256: string }>();
  const parquet = await both(`${base}/test.parquet`);
  expect(records.results.find((r) => r.file === "test.parquet")!.sha256).toBe(await sha256(parquet));
  expect(doc.distribution.find((f) => f["@id"] === "test.parquet")!.sha256).toBe(await sha256(parquet));
});

it("croissant.json's provenance: a public source as given; one on loopback replaced by the dataset's page", () => {
  const page = "https://etl.example/datasets/mine";
  expect(customAbout("mine", "https://data.example/idx", "2026-12-07T10:00:00Z", page)).toMatchObject({
    url: "https://data.example/idx",
    license: { url: "https://data.example/idx" },
    creators: [{ kind: "Organization", name: "data.example" }],
    published: "2026-12-07",
  });
  for (const local of ["http://127.0.0.1:41233", "http://localhost:8000/x", "http://[::1]:9000"])
    expect(customAbout("mine", local, null, page), local).toMatchObject({
      url: page,
      license: { url: page },
      citation: expect.stringContaining(`howpublished = {${page}}`) as unknown,
    });
});
