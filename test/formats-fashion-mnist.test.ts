/**
 * Every export format of Fashion-MNIST, bit for bit against the IDX source:
 * the real t10k split (a small synthetic train split keeps the load short),
 * loaded through the Worker and materialised to R2 by the export job. The
 * uint8 .npy is the IDX bytes; the .npz is Keras' layout of them; the
 * Parquet file's PNGs decode to them with their labels and Hugging Face's
 * features; R2 and D1 serve the same bytes with the same validators, HEAD,
 * Range (suffixes too) and ETag rules; croissant.json follows Croissant 1.1's
 * rules and its SHA-256s are those of the bytes served.
 */
import { SELF, env } from "cloudflare:test";
import { gunzipSync } from "fflate";
import { beforeAll, describe, expect, it } from "vitest";
import { bytesOfStored } from "../src/codec/transform";
import { FASHION_MNIST } from "../src/core/registry";
import { croissantProblems } from "./croissant-rules";
import { FLOAT_TABLE, NUMPY_FLOAT_TABLE_SHA256, sha256Hex } from "./dataset-fixtures";
import { exportedVersion, huggingface, npzArrays, parquetRows, sha256 } from "./format-readers";
import { archiveServer, publish, runToEnd, syntheticSplit } from "./helpers";
import { parseNpy } from "./npy";
import { recorded } from "./recorded-app";

const TRAIN = 50;
const get = (path: string, headers: Record<string, string> = {}, method = "GET") =>
  SELF.fetch(`http://worker${path}`, { headers, method });
const bytesOf = async (res: Response) => new Uint8Array(await res.arrayBuffer());
const original = async (file: string) => {
  const res = await fetch(`${archiveServer()}/fashion-mnist/${file}`);
  if (!res.ok) throw new Error(`${file}: ${res.status}`);
  return new Uint8Array(await res.arrayBuffer());
};

let images: Uint8Array; // the t10k IDX pixels, without the 16-byte header
let labels: Uint8Array;
let train: ReturnType<typeof syntheticSplit>;
let version: string;

beforeAll(async () => {
  const imagesGz = await original("t10k-images-idx3-ubyte.gz");
  const labelsGz = await original("t10k-labels-idx1-ubyte.gz");
  images = gunzipSync(imagesGz).subarray(16);
  labels = gunzipSync(labelsGz).subarray(8);
  train = syntheticSplit(TRAIN);
  const source = await publish({
    "train-images-idx3-ubyte.gz": train.images,
    "train-labels-idx1-ubyte.gz": train.labelsGz,
    "t10k-images-idx3-ubyte.gz": imagesGz,
    "t10k-labels-idx1-ubyte.gz": labelsGz,
  });
  const run = await runToEnd({ source });
  expect(run.status).toBe("complete");
  version = run.id;
  await exportedVersion("fashion-mnist", version, 120_000);
}, 240_000);

/** Every file of the version, by its unversioned URL. */
const FILES = [
  "/export/test.npy",
  "/export/test.npy?dtype=uint8",
  "/export/test-labels.npy",
  "/export/test.parquet",
  "/export/train.npy",
  "/export/train.npy?dtype=uint8",
  "/export/train-labels.npy",
  "/export/train.parquet",
  "/export/fashion-mnist.npz",
];

it("uint8 recovers every byte exactly: round(v × 255) of numpy's float32 b / 255, for all 256 values", () => {
  return sha256Hex(FLOAT_TABLE).then((digest) => {
    expect(digest).toBe(NUMPY_FLOAT_TABLE_SHA256);
    expect(bytesOfStored(FLOAT_TABLE)).toEqual(Uint8Array.from({ length: 256 }, (_, b) => b));
    // A value that is no byte / 255 is refused, not rounded.
    const off = FLOAT_TABLE.slice(0, 4);
    off[0]! ^= 1;
    expect(() => bytesOfStored(off)).toThrow(/not a byte \/ 255/);
  });
});

describe("each format is the IDX bytes", () => {
  it("test.npy?dtype=uint8: (10000, 28, 28, 1) uint8, the t10k file's pixels", async () => {
    const res = await get("/export/test.npy?dtype=uint8");
    expect(res.headers.get("ETag")).toBe(`"${version}-test-uint8.npy"`);
    expect(res.headers.get("Content-Location")).toBe(`/export/v/${version}/test.npy?dtype=uint8`);
    const npy = parseNpy(await bytesOf(res));
    expect(npy).toMatchObject({ descr: "|u1", fortranOrder: false, shape: [10000, 28, 28, 1] });
    expect(Buffer.from(npy.data).equals(Buffer.from(images))).toBe(true);
    const slice = parseNpy(await bytesOf(await get("/export/test.npy?dtype=uint8&offset=9990&limit=5")));
    expect(slice.shape).toEqual([5, 28, 28, 1]);
    expect(slice.data).toEqual(images.subarray(9990 * 784, 9995 * 784));
  });

  it("fashion-mnist.npz: Keras' x_train, y_train, x_test, y_test, uint8, (n, 28, 28) and (n,)", async () => {
    const res = await get("/datasets/fashion-mnist/export/fashion-mnist.npz");
    expect(res.headers.get("Content-Disposition")).toBe('attachment; filename="fashion-mnist.npz"');
    const arrays = npzArrays(await bytesOf(res));
    expect(arrays.map(([name, a]) => [name, a.descr, a.shape])).toEqual([
      ["x_train.npy", "|u1", [TRAIN, 28, 28]],
      ["y_train.npy", "|u1", [TRAIN]],
      ["x_test.npy", "|u1", [10000, 28, 28]],
      ["y_test.npy", "|u1", [10000]],
    ]);
    const [xTrain, yTrain, xTest, yTest] = arrays.map(([, a]) => a.data);
    expect(xTrain).toEqual(train.pixels);
    expect(yTrain).toEqual(train.labels);
    expect(Buffer.from(xTest!).equals(Buffer.from(images))).toBe(true);
    expect(yTest).toEqual(labels);
  });

  it("test.parquet: Image and ClassLabel features, each PNG the image's bytes, its label and path", async () => {
    const res = await get("/export/test.parquet");
    expect(res.headers.get("Content-Type")).toBe("application/vnd.apache.parquet");
    const { meta, rows } = await parquetRows(await bytesOf(res));
    expect(huggingface(meta)).toEqual({
      info: {
        features: { image: { _type: "Image" }, label: { _type: "ClassLabel", names: FASHION_MNIST.classes } },
      },
    });
    expect(meta.key_value_metadata!.map((kv) => kv.key)).toEqual(["huggingface"]); // no ARROW:schema
    expect(meta.row_groups.map((g) => Number(g.num_rows))).toEqual([4000, 4000, 2000]);
    expect(rows.length).toBe(10000);
    const wrong = rows.filter(
      (r, i) =>
        r.label !== labels[i] ||
        r.path !== `test/${i}.png` ||
        r.channels !== 1 ||
        !Buffer.from(r.pixels).equals(Buffer.from(images.subarray(i * 784, (i + 1) * 784))),
    );
    expect(wrong.length).toBe(0);
  }, 120_000);
});

describe("R2 and D1", () => {
  it("serve every file with the same bytes, ETag and length, the job's from R2 reading no image row", async () => {
    for (const path of FILES) {
      const d1 = await recorded(path);
      const r2 = await recorded(path, {}, "GET", true);
      expect([d1.res.status, r2.res.status], path).toEqual([200, 200]);
      expect(d1.res.headers.get("X-Export-Source"), path).toBe("d1");
      expect(r2.res.headers.get("X-Export-Source"), path).toBe("r2");
      expect(r2.imageReads, path).toEqual([]);
      expect(r2.res.headers.get("ETag"), path).toBe(d1.res.headers.get("ETag"));
      expect(r2.res.headers.get("Content-Length"), path).toBe(String(d1.body.length));
      expect(Buffer.from(r2.body).equals(Buffer.from(d1.body)), path).toBe(true);
    }
  }, 120_000);

  it("answer HEAD, one Range (suffixes too), If-Range, 304 and 416 alike for Parquet and .npz", async () => {
    for (const path of ["/export/test.parquet", "/export/fashion-mnist.npz", "/export/train.npy?dtype=uint8"]) {
      const whole = await bytesOf(await get(path));
      const size = whole.length;
      const head = await get(path, {}, "HEAD");
      expect([head.status, head.headers.get("Content-Length"), head.headers.get("Accept-Ranges")]).toEqual([
        200,
        String(size),
        "bytes",
      ]);
      const etag = head.headers.get("ETag")!;
      for (const withR2 of [false, true])
        for (const [range, start, end] of [
          ["bytes=-8", size - 8, size],
          ["bytes=0-3", 0, 4],
          [`bytes=${size >> 1}-${(size >> 1) + 99999}`, size >> 1, Math.min(size, (size >> 1) + 100000)],
          [`bytes=${size - 100}-`, size - 100, size],
        ] as const) {
          const part = await recorded(path, { Range: range, "If-Range": etag }, "GET", withR2);
          expect(part.res.status, `${path} ${range}`).toBe(206);
          expect(part.res.headers.get("Content-Range")).toBe(`bytes ${start}-${end - 1}/${size}`);
          expect(Buffer.from(part.body).equals(Buffer.from(whole.subarray(start, end))), `${path} ${range}`).toBe(true);
        }
      // The footer of a Parquet file from D1 needs no image row at all.
      if (path.endsWith(".parquet")) expect((await recorded(path, { Range: "bytes=-8" })).imageReads).toEqual([]);
      expect((await get(path, { "If-None-Match": etag })).status).toBe(304);
      expect((await get(path, { Range: `bytes=${size}-` })).status).toBe(416);
      const stale = await get(path, { Range: "bytes=0-3", "If-Range": '"another"' });
      expect([stale.status, (await bytesOf(stale)).length]).toEqual([200, size]);
      const versioned = await get(head.headers.get("Content-Location")!);
      expect([versioned.status, versioned.headers.get("ETag")]).toEqual([200, etag]);
      expect(Buffer.from(await bytesOf(versioned)).equals(Buffer.from(whole))).toBe(true);
    }
  }, 120_000);

  it("refuse what does not apply: an unknown dtype, dtype or a slice on another file, another dataset's .npz", async () => {
    for (const [path, status, error] of [
      ["/export/test.npy?dtype=float16", 400, 'dtype must be float32 or uint8, got "float16"'],
      ["/export/test-labels.npy?dtype=uint8", 400, /^dtype applies to the images \.npy/],
      ["/export/test.parquet?dtype=uint8", 400, /^dtype applies to the images \.npy/],
      ["/export/test.parquet?offset=5", 400, /^offset and limit apply to the \.npy files only/],
      ["/export/mnist.npz", 404, "no file mnist.npz: fashion-mnist's is fashion-mnist.npz"],
    ] as const) {
      const res = await get(path);
      expect(res.status, path).toBe(status);
      const body = (await res.json()) as { error: string };
      if (typeof error === "string") expect(body.error, path).toBe(error);
      else expect(body.error, path).toMatch(error);
    }
  });
});

describe("the dataset's description of its files", () => {
  it("GET /datasets/fashion-mnist lists every file with its URLs, exact size and SHA-256", async () => {
    const view = (await (await get("/datasets/fashion-mnist")).json()) as {
      exports: { file: string; url: string; versionedUrl: string; bytes: number; sha256: string | null }[];
    };
    expect(view.exports.map((e) => e.url).sort()).toEqual(FILES.map((f) => `/datasets/fashion-mnist${f}`).sort());
    for (const e of view.exports) {
      const bytes = await bytesOf(await get(e.versionedUrl));
      expect(bytes.length, e.file).toBe(e.bytes);
      expect(e.sha256, e.file).toBe(await sha256(bytes));
    }
  }, 120_000);

  it("croissant.json follows Croissant 1.1's rules, names the registry's provenance, and its SHA-256s are the bytes'", async () => {
    const res = await get("/croissant.json");
    expect(res.status).toBe(200);
    expect(res.headers.get("Content-Type")).toMatch(/^application\/ld\+json/);
    const doc = (await res.json()) as Record<string, unknown> & {
      distribution: { "@id": string; contentUrl: string; sha256: string; contentSize: string }[];
      recordSet: { "@id": string; data?: unknown[] }[];
    };
    expect(croissantProblems(doc)).toEqual([]);
    expect(doc).toMatchObject({
      name: "fashion-mnist",
      license: { url: "https://opensource.org/license/mit", name: "MIT" },
      creator: [{ "@type": "sc:Organization", name: "Zalando Research" }],
      url: "https://github.com/zalandoresearch/fashion-mnist",
    });
    expect(doc.citeAs).toMatch(/arXiv[\s\S]*1708\.07747/);
    // These rows (a synthetic train split) are not the published files: the metadata says so.
    expect(doc.description).toMatch(
      / These rows were loaded from http:\/\/127\.0\.0\.1:\d+\/\S+, and their archives did not match the published MD5s/,
    );
    expect((doc.description as string).startsWith(FASHION_MNIST.about!.description)).toBe(true);
    expect(doc.recordSet.map((r) => r["@id"])).toEqual(["classes", "train", "test"]);
    expect(doc.recordSet[0]!.data).toEqual(
      FASHION_MNIST.classes!.map((n, l) => ({ "classes/label": l, "classes/name": n })),
    );
    expect(doc.distribution.length).toBe(9);
    for (const f of doc.distribution) {
      expect(f.contentUrl, f["@id"]).toContain(`/export/v/${version}/`);
      const bytes = await bytesOf(await SELF.fetch(f.contentUrl));
      expect(f.contentSize, f["@id"]).toBe(`${bytes.length} B`);
      expect(f.sha256, f["@id"]).toBe(await sha256(bytes));
    }
    expect((await get("/croissant.json", { "If-None-Match": res.headers.get("ETag")! })).status).toBe(304);
  }, 120_000);

  it("croissant.json waits for the digests: 503 with Retry-After while the job has not recorded them", async () => {
    const saved = await env.DB.prepare("SELECT * FROM export_files WHERE dataset = 'fashion-mnist'").all();
    await env.DB.prepare("DELETE FROM export_files WHERE dataset = 'fashion-mnist' AND file = 'test.parquet'").run();
    const res = await recorded("/croissant.json");
    expect(res.res.status).toBe(503);
    expect(res.res.headers.get("Retry-After")).toBe("30");
    expect(JSON.parse(new TextDecoder().decode(res.body)).error).toMatch(/1 of its 9 export files/);
    // The job it queued (no bucket: digests only) records the digest again.
    const deadline = Date.now() + 60_000;
    while (
      (await env.DB.prepare("SELECT COUNT(*) AS n FROM export_files").first<{ n: number }>())!.n < saved.results.length
    ) {
      if (Date.now() > deadline) throw new Error("the digest job did not record test.parquet");
      await new Promise((r) => setTimeout(r, 100));
    }
    const now = await env.DB.prepare("SELECT * FROM export_files WHERE dataset = 'fashion-mnist'").all();
    expect(now.results).toEqual(saved.results);
  }, 120_000);
});
