/**
 * Repeating and resuming exports (issue #11): the strong ETag tied to the
 * dataset version, 304 on If-None-Match without reading an image row, one
 * byte Range → 206 reading only the rows it covers, 416, If-Range and
 * If-Match, and the versioned URLs (immutable while current, 410 once a later
 * swap has replaced them). A small synthetic dataset, loaded through the real
 * pipeline; then a second one, to see every validator change with the swap.
 */
import { env, SELF } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import { IMMUTABLE } from "../src/http/routes/exports";
import { parseRange } from "../src/http/preconditions";
import { npyExport, type ExportSpan } from "../src/read/export";
import { readExtent } from "../src/read/images";
import { FLOAT_OF_BYTE, float32LE } from "../src/codec/transform";
import { publish, runToEnd, syntheticArchives, syntheticSplit } from "./helpers";
import { parseNpy } from "./npy";
import { recorded } from "./recorded-app";

const TRAIN = 1100; // three pages of images (500, 500, 100 rows)
const TEST = 60;
const ROW = 3136;
const HEADER = 128;
const SIZE = HEADER + TRAIN * ROW;

const get = (path: string, headers: Record<string, string> = {}, method = "GET") =>
  SELF.fetch(`http://worker${path}`, { method, headers });
const bytesOf = async (res: Response) => new Uint8Array(await res.arrayBuffer());
const floatsLE = (pixels: Uint8Array) => float32LE(Float32Array.from(pixels, (b) => FLOAT_OF_BYTE[b]!));

let source: string; // the first load's archives
let version: string; // the first load's run: the dataset version
let full: Uint8Array; // /export/train.npy of the first load
let etag: string;

beforeAll(async () => {
  source = await publish(syntheticArchives(TRAIN, TEST));
  const run = await runToEnd({ source });
  expect(run.status).toBe("complete");
  version = run.id;
  const res = await get("/export/train.npy");
  expect(res.status).toBe(200);
  full = await bytesOf(res);
  etag = res.headers.get("ETag")!;
});

describe("validators", () => {
  it("every export carries a strong ETag of its dataset version and file, Last-Modified, Accept-Ranges and an exact Content-Length", async () => {
    // The file itself is the stored dataset.
    const npy = parseNpy(full);
    expect(npy.shape).toEqual([TRAIN, 28, 28, 1]);
    expect(npy.data).toEqual(floatsLE(syntheticSplit(TRAIN).pixels));
    expect(full.length).toBe(SIZE);

    const swap = await env.DB.prepare(
      "SELECT run_id, swapped_at FROM dataset_swaps ORDER BY swapped_at DESC LIMIT 1",
    ).first<{ run_id: string; swapped_at: string }>();
    expect(swap!.run_id).toBe(version);
    expect(etag).toBe(`"${version}-train.npy"`);
    for (const [path, name, length] of [
      ["/export/train.npy", "train.npy", SIZE],
      ["/export/train-labels.npy", "train-labels.npy", HEADER + TRAIN],
      ["/export/test.npy?offset=10&limit=5", "test-10-15.npy", HEADER + 5 * ROW],
      ["/export/train-labels.npy?limit=5000", "train-labels-0-1100.npy", HEADER + TRAIN],
    ] as const) {
      const res = await get(path);
      expect(res.status, path).toBe(200);
      expect(res.headers.get("ETag"), path).toBe(`"${version}-${name}"`);
      expect(res.headers.get("Last-Modified"), path).toBe(new Date(swap!.swapped_at).toUTCString());
      expect(res.headers.get("Accept-Ranges"), path).toBe("bytes");
      expect(res.headers.get("Content-Length"), path).toBe(String(length));
      expect((await bytesOf(res)).length, path).toBe(length);
    }
  });

  it("the ETag is stable across requests, and a load of unchanged archives (no swap) keeps it", async () => {
    const again = await get("/export/train.npy");
    expect(again.headers.get("ETag")).toBe(etag);
    expect(await bytesOf(again)).toEqual(full);
    // The same archives again: the run completes as unchanged, with no swap, so caches stay valid.
    const run = await runToEnd({ source });
    expect(run).toMatchObject({ status: "complete", unchanged: true });
    const after = await get("/export/train.npy", { "If-None-Match": etag });
    expect(after.status).toBe(304);
    expect(after.headers.get("ETag")).toBe(etag);
  });

  it("the unversioned URL is no-cache and names its versioned URL in Content-Location", async () => {
    for (const [path, location] of [
      ["/export/train.npy", `/export/v/${version}/train.npy`],
      ["/export/test-labels.npy?offset=10&limit=5", `/export/v/${version}/test-labels.npy?offset=10&limit=5`],
    ] as const) {
      const res = await get(path);
      expect(res.headers.get("Cache-Control"), path).toBe("no-cache");
      expect(res.headers.get("Content-Location"), path).toBe(location);
      const versioned = await get(location);
      expect(versioned.status, location).toBe(200);
      expect(versioned.headers.get("ETag"), location).toBe(res.headers.get("ETag"));
      expect(await bytesOf(versioned), location).toEqual(await bytesOf(res));
    }
  });
});

describe("If-None-Match and If-Match", () => {
  it("answers 304 with the ETag and no body, reading the catalog only: not one image row", async () => {
    for (const inm of [etag, `"nope", ${etag}`, `W/${etag}`, "*"]) {
      const { res, body, statements, imageReads } = await recorded("/export/train.npy", { "If-None-Match": inm });
      expect(res.status, inm).toBe(304);
      expect(body.length, inm).toBe(0);
      expect(res.headers.get("ETag"), inm).toBe(etag);
      expect(res.headers.get("Cache-Control"), inm).toBe("no-cache");
      expect(res.headers.get("Content-Location"), inm).toBe(`/export/v/${version}/train.npy`);
      expect(statements.length, inm).toBe(1);
      expect(imageReads, inm).toEqual([]);
      expect(statements[0]!.sql).toMatch(/FROM datasets d\b/);
    }
    // The recorder does see image reads: a full export reads three pages.
    const whole = await recorded("/export/train.npy");
    expect(whole.res.status).toBe(200);
    expect(whole.body).toEqual(full);
    expect(whole.imageReads.length).toBe(3);
  });

  it("serves the file, with the current ETag, when If-None-Match names another (another file, or another version)", async () => {
    for (const inm of [`"${version}-test.npy"`, `"other-train.npy"`, "garbage"]) {
      const res = await get("/export/train.npy", { "If-None-Match": inm });
      expect(res.status, inm).toBe(200);
      expect(res.headers.get("ETag"), inm).toBe(`"${version}-train.npy"`);
      expect(await bytesOf(res)).toEqual(full);
    }
  });

  it("answers 412 when If-Match names no current ETag (strongly), without reading an image row", async () => {
    const { res, imageReads } = await recorded("/export/train.npy", { "If-Match": `"${version}-test.npy"` });
    expect(res.status).toBe(412);
    expect(imageReads).toEqual([]);
    expect((await get("/export/train.npy", { "If-Match": `W/${etag}` })).status).toBe(412);
    for (const im of [etag, "*"]) {
      const ok = await get("/export/train.npy", { "If-Match": im }, "HEAD");
      expect(ok.status, im).toBe(200);
    }
  });
});

describe("Range", () => {
  const pageEdge = HEADER + 500 * ROW; // where the second page of rows starts
  const ranges: [string, string, number, number][] = [
    ["the start of the header", "bytes=0-9", 0, 10],
    ["the whole header", "bytes=0-127", 0, 128],
    ["across the header/data boundary", "bytes=100-3300", 100, 3301],
    [
      "mid-row",
      `bytes=${HEADER + 7 * ROW + 1000}-${HEADER + 7 * ROW + 1003}`,
      HEADER + 7 * ROW + 1000,
      HEADER + 7 * ROW + 1004,
    ],
    ["across two pages, mid-row", `bytes=${pageEdge - 1500}-${pageEdge + 5000}`, pageEdge - 1500, pageEdge + 5001],
    ["a suffix", "bytes=-1000", SIZE - 1000, SIZE],
    ["a suffix longer than the file", `bytes=-${SIZE + 5}`, 0, SIZE],
    ["from mid-file to the end", `bytes=${HEADER + 600 * ROW + 3}-`, HEADER + 600 * ROW + 3, SIZE],
    ["a last byte past the end", `bytes=${SIZE - 10}-${SIZE + 1000}`, SIZE - 10, SIZE],
    ["the last byte", `bytes=${SIZE - 1}-${SIZE - 1}`, SIZE - 1, SIZE],
  ];

  it.each(ranges)("206 with the bytes of the whole file: %s", async (_, range, start, end) => {
    const res = await get("/export/train.npy", { Range: range });
    expect(res.status).toBe(206);
    expect(res.headers.get("Content-Range")).toBe(`bytes ${start}-${end - 1}/${SIZE}`);
    expect(res.headers.get("Content-Length")).toBe(String(end - start));
    expect(res.headers.get("ETag")).toBe(etag);
    const body = await bytesOf(res);
    expect(body.length).toBe(end - start);
    expect(Buffer.from(body).equals(Buffer.from(full.subarray(start, end)))).toBe(true);
  });

  it("reads only the rows a range covers: none for the header, one page of just those rows mid-file", async () => {
    const inHeader = await recorded("/export/train.npy", { Range: "bytes=0-99" });
    expect(inHeader.res.status).toBe(206);
    expect(inHeader.imageReads).toEqual([]);
    // Rows 600…610 (bytes 3 into row 600 to 1 into row 610): one page, of those 11 rows only.
    const mid = await recorded("/export/train.npy", { Range: `bytes=${HEADER + 600 * ROW + 3}-${HEADER + 610 * ROW}` });
    expect(mid.res.status).toBe(206);
    expect(mid.body).toEqual(full.subarray(HEADER + 600 * ROW + 3, HEADER + 610 * ROW + 1));
    expect(mid.imageReads.map((s) => s.params)).toEqual([["train", 600, 611, version, "fashion-mnist"]]);
    // Across the first page edge: rows 499 and 500, in one page.
    const edge = await recorded("/export/train.npy", { Range: `bytes=${pageEdge - 1}-${pageEdge}` });
    expect(edge.imageReads.map((s) => s.params)).toEqual([["train", 499, 501, version, "fashion-mnist"]]);
  });

  it("ranges over labels and paged exports too", async () => {
    const labels = await bytesOf(await get("/export/train-labels.npy"));
    const part = await get("/export/train-labels.npy", { Range: "bytes=120-200" });
    expect(part.status).toBe(206);
    expect(await bytesOf(part)).toEqual(labels.subarray(120, 201));
    const page = await bytesOf(await get("/export/train.npy?offset=400&limit=300"));
    const tail = await get("/export/train.npy?offset=400&limit=300", { Range: "bytes=-5000" });
    expect(tail.headers.get("Content-Range")).toBe(`bytes ${page.length - 5000}-${page.length - 1}/${page.length}`);
    expect(await bytesOf(tail)).toEqual(page.subarray(page.length - 5000));
  });

  it("416 with Content-Range: bytes */size for a range that starts past the end, or an empty suffix", async () => {
    for (const range of [`bytes=${SIZE}-`, `bytes=${SIZE + 100}-${SIZE + 200}`, "bytes=-0"]) {
      const { res, imageReads } = await recorded("/export/train.npy", { Range: range });
      expect(res.status, range).toBe(416);
      expect(res.headers.get("Content-Range"), range).toBe(`bytes */${SIZE}`);
      expect(imageReads, range).toEqual([]);
    }
  });

  it("ignores what it need not serve: several ranges, other units, malformed or invalid ranges → 200, the whole file with its validators", async () => {
    for (const range of ["bytes=0-1,5-6", "items=0-1", "bytes=9-3", "bytes=a-b", "bytes=1-2-3", "bytes="]) {
      const res = await get("/export/train.npy", { Range: range });
      expect(res.status, range).toBe(200);
      expect(res.headers.get("Content-Range"), range).toBeNull();
      expect(res.headers.get("ETag"), range).toBe(`"${version}-train.npy"`);
      expect(res.headers.get("Accept-Ranges"), range).toBe("bytes");
      expect(await bytesOf(res), range).toEqual(full);
    }
  });

  it("If-Range: the range only if the ETag is still the current one (strongly); else the whole file", async () => {
    const ok = await get("/export/train.npy", { Range: "bytes=10-19", "If-Range": etag });
    expect(ok.status).toBe(206);
    expect(await bytesOf(ok)).toEqual(full.subarray(10, 20));
    for (const ifRange of [`"${version}-test.npy"`, `W/${etag}`, new Date(Date.now() + 60_000).toUTCString()]) {
      const res = await get("/export/train.npy", { Range: "bytes=10-19", "If-Range": ifRange });
      expect(res.status, ifRange).toBe(200);
      expect(await bytesOf(res), ifRange).toEqual(full);
    }
  });

  it("resumes an interrupted download: the bytes received, then Range from there, are the whole file", async () => {
    const res = await get("/export/train.npy");
    const reader = res.body!.getReader();
    const got: Uint8Array[] = [];
    let received = 0;
    while (received < 1_000_000) {
      const { done, value } = await reader.read();
      if (done) throw new Error("the download ended before it could be interrupted");
      got.push(value);
      received += value.length;
    }
    await reader.cancel(); // the connection drops
    const rest = await get("/export/train.npy", { Range: `bytes=${received}-`, "If-Range": res.headers.get("ETag")! });
    expect(rest.status).toBe(206);
    expect(rest.headers.get("Content-Range")).toBe(`bytes ${received}-${SIZE - 1}/${SIZE}`);
    const whole = Buffer.concat([...got, await bytesOf(rest)]);
    expect(whole.length).toBe(SIZE);
    expect(whole.equals(Buffer.from(full))).toBe(true);
  });

  it("HEAD answers the status and headers, with no body and no image read", async () => {
    const head = await recorded("/export/train.npy", {}, "HEAD");
    expect(head.res.status).toBe(200);
    expect(head.res.headers.get("ETag")).toBe(etag);
    expect(head.res.headers.get("Content-Length")).toBe(String(SIZE));
    expect(head.body.length).toBe(0);
    expect(head.imageReads).toEqual([]);
    const part = await get("/export/train.npy", { Range: "bytes=-10" }, "HEAD");
    expect(part.status).toBe(206);
    expect(part.headers.get("Content-Length")).toBe("10");
    expect(part.headers.get("Content-Range")).toBe(`bytes ${SIZE - 10}-${SIZE - 1}/${SIZE}`);
  });

  it("parses ranges as RFC 9110 says", () => {
    expect(parseRange("bytes=0-0", 10)).toEqual({ start: 0, end: 1 });
    expect(parseRange("Bytes = 2-", 10)).toEqual({ start: 2, end: 10 });
    expect(parseRange("bytes=-3", 10)).toEqual({ start: 7, end: 10 });
    expect(parseRange("bytes= 1-2 ,", 10)).toEqual({ start: 1, end: 3 });
    expect(parseRange("bytes=10-", 10)).toEqual({ kind: "unsatisfiable" });
    expect(parseRange("bytes=99999999999999999999-", 10)).toEqual({ kind: "unsatisfiable" });
    expect(parseRange("bytes=0-99999999999999999999", 10)).toEqual({ start: 0, end: 10 });
    expect(parseRange("bytes=0-1, 3-4", 10)).toEqual({ kind: "ignore" });
    expect(parseRange("bytes=+1-2", 10)).toEqual({ kind: "ignore" });
  });
});

describe("versioned URLs", () => {
  it("are immutable while their version is current, with the unversioned file's ETag, 304 and ranges", async () => {
    const path = `/export/v/${version}/train.npy`;
    const res = await get(path);
    expect(res.status).toBe(200);
    expect(res.headers.get("Cache-Control")).toBe(IMMUTABLE);
    expect(res.headers.get("Cache-Control")).toBe("public, max-age=31536000, immutable");
    expect(res.headers.get("Content-Location")).toBeNull();
    expect(res.headers.get("ETag")).toBe(etag);
    expect(await bytesOf(res)).toEqual(full);
    const notModified = await recorded(path, { "If-None-Match": etag });
    expect(notModified.res.status).toBe(304);
    expect(notModified.res.headers.get("Cache-Control")).toBe(IMMUTABLE);
    expect(notModified.imageReads).toEqual([]);
    const part = await get(path, { Range: "bytes=5-9" });
    expect(part.status).toBe(206);
    expect(part.headers.get("Cache-Control")).toBe(IMMUTABLE);
    expect(await bytesOf(part)).toEqual(full.subarray(5, 10));
  });

  it("answer 404 for a version never swapped in and 400 for a malformed one", async () => {
    const never = await get("/export/v/0f0f0f0f-0000-4000-8000-000000000000/train.npy");
    expect(never.status).toBe(404);
    expect(await never.json()).toEqual({
      error:
        "no fashion-mnist version 0f0f0f0f-0000-4000-8000-000000000000: no run of fashion-mnist with that id was swapped in",
    });
    const bad = await get("/export/v/a.b/train.npy");
    expect(bad.status).toBe(400);
    expect(await bad.json()).toEqual({ error: 'version must be a run id (letters, digits, - and _), got "a.b"' });
    expect((await get(`/export/v/${version}/valid.npy`)).status).toBe(400);
  });

  it("are in the OpenAPI document with their headers and statuses", async () => {
    const doc = (await (await get("/openapi.json")).json()) as {
      paths: Record<
        string,
        { get: { parameters: { name: string; in: string }[]; responses: Record<string, unknown> } }
      >;
    };
    for (const path of ["/export/{file}", "/export/v/{version}/{file}"]) {
      const op = doc.paths[path]!.get;
      expect(
        op.parameters.filter((p) => p.in === "header").map((p) => p.name),
        path,
      ).toEqual(["Range", "If-Range", "If-None-Match", "If-Match"]);
      expect(Object.keys(op.responses), path).toEqual(
        expect.arrayContaining(["200", "206", "304", "400", "404", "412", "416"]),
      );
    }
    expect(Object.keys(doc.paths["/export/v/{version}/{file}"]!.get.responses)).toContain("410");
  });
});

describe("a new dataset", () => {
  let next: string;
  let nextFull: Uint8Array;

  beforeAll(async () => {
    const run = await runToEnd({ source: await publish(syntheticArchives(TRAIN, TEST, 5)) });
    expect(run).toMatchObject({ status: "complete", unchanged: false });
    next = run.id;
    nextFull = await bytesOf(await get("/export/train.npy"));
  });

  it("is a new ETag and a new Content-Location; the old ETag no longer answers 304", async () => {
    expect(parseNpy(nextFull).data).toEqual(floatsLE(syntheticSplit(TRAIN, 5).pixels));
    const res = await get("/export/train.npy", { "If-None-Match": etag });
    expect(res.status).toBe(200);
    expect(res.headers.get("ETag")).toBe(`"${next}-train.npy"`);
    expect(res.headers.get("Content-Location")).toBe(`/export/v/${next}/train.npy`);
    expect(await bytesOf(res)).toEqual(nextFull);
  });

  it("refuses the replaced version's URL with 410, naming the current one, and never serves its bytes", async () => {
    const variants: Record<string, string>[] = [
      {},
      { "If-None-Match": etag },
      { Range: "bytes=0-9", "If-Range": etag },
    ];
    for (const headers of variants) {
      const res = await get(`/export/v/${version}/train.npy?offset=3`, headers);
      expect(res.status).toBe(410);
      expect(res.headers.get("Link")).toBe(`</export/v/${next}/train.npy?offset=3>; rel="latest-version"`);
      expect(res.headers.get("Cache-Control")).toBe("no-cache");
      expect(await res.json()).toEqual({
        error: `fashion-mnist version ${version} has been replaced by ${next}; the current file is /export/v/${next}/train.npy?offset=3`,
      });
    }
    const current = await get(`/export/v/${next}/train.npy`);
    expect(current.headers.get("Cache-Control")).toBe(IMMUTABLE);
    expect(await bytesOf(current)).toEqual(nextFull);
  });

  it("a resumed download of the old version restarts: If-Range with the old ETag gets the whole new file", async () => {
    const res = await get("/export/train.npy", { Range: "bytes=1000000-", "If-Range": etag });
    expect(res.status).toBe(200);
    expect(res.headers.get("ETag")).toBe(`"${next}-train.npy"`);
    expect(await bytesOf(res)).toEqual(nextFull);
  });

  it("a swap while a range export streams errors it rather than mix the two datasets", async () => {
    const { version: pinned } = await readExtent(env.DB, "fashion-mnist", "train");
    expect(pinned).toBe(next);
    const start = HEADER + 100 * ROW + 7;
    const span: ExportSpan = {
      dataset: "fashion-mnist",
      shape: { rows: 28, cols: 28, channels: 1 },
      split: "train",
      kind: "images",
      offset: 0,
      count: TRAIN,
      version: pinned,
    };
    const file = npyExport(env.DB, span, 100, { start, end: SIZE });
    const reader = file.body.getReader();
    const first = await reader.read(); // rows 100…199 of the pinned dataset, from byte 7 of row 100
    expect(first.value).toEqual(nextFull.subarray(start, HEADER + 200 * ROW));
    // A swap, as far as a reader can tell: the catalog names another run as the dataset's version.
    const at = new Date(Date.now() + 1000).toISOString();
    await env.DB.batch([
      env.DB.prepare(
        "INSERT INTO runs (id, dataset, trigger, source, status, created_at, updated_at) VALUES ('swap-run', 'fashion-mnist', 'http', 'x', 'complete', ?1, ?1)",
      ).bind(at),
      env.DB.prepare("UPDATE datasets SET run_id = 'swap-run' WHERE name = 'fashion-mnist'"),
    ]);
    try {
      await expect(reader.read()).rejects.toThrow("train rows 200…299: D1 returned 0; the dataset changed mid-export");
      // And the versioned URL of the dataset that was current is refused from then on.
      expect((await get(`/export/v/${next}/train.npy`, { Range: "bytes=0-9" })).status).toBe(410);
    } finally {
      await env.DB.batch([
        env.DB.prepare("UPDATE datasets SET run_id = ?1 WHERE name = 'fashion-mnist'").bind(pinned),
        env.DB.prepare("DELETE FROM runs WHERE id = 'swap-run'"),
      ]);
    }
  });
});
