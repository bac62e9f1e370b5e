/**
 * The real archives, downloaded by the Worker from the test archive server as
 * the default ("official") source, so the published MD5s are enforced: the
 * whole pipeline on real data. What it loaded is compared, row by row and
 * byte by byte, with the archives as the test reads them itself (gunzipped
 * with the runtime's DecompressionStream, not the product's code), and so is
 * the README's headline download, train.npy.
 */
import { SELF } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { expect, it } from "vitest";
import { FASHION_MNIST } from "../src/core/registry";
import { archiveServer, runToEnd } from "./helpers";
import { numpyHeader } from "./npy";

const one = async <T>(sql: string, ...params: unknown[]) =>
  (await env.DB.prepare(sql)
    .bind(...params)
    .first<T>())!;

/** An IDX file of the real archives, gunzipped here: its dimensions and its data after the header. */
async function idx(file: string): Promise<{ dims: number[]; data: Uint8Array }> {
  const res = await fetch(`${archiveServer()}/fashion-mnist/${file}`);
  if (!res.ok) throw new Error(`${file}: HTTP ${res.status}`);
  // Whole, then inflated: piping the network stream straight in takes many times longer.
  const gz = new Blob([await res.arrayBuffer()]).stream().pipeThrough(new DecompressionStream("gzip"));
  const bytes = new Uint8Array(await new Response(gz).arrayBuffer());
  const view = new DataView(bytes.buffer, bytes.byteOffset);
  expect(view.getUint16(0), file).toBe(0); // magic: two zero bytes, type 0x08 (uint8), then the rank
  expect(bytes[2], file).toBe(0x08);
  const dims = Array.from({ length: bytes[3]! }, (_, i) => view.getUint32(4 + 4 * i));
  return { dims, data: bytes.subarray(4 + 4 * dims.length) };
}

/** numpy's `x.astype(np.float32) / 255` of byte b, little-endian: Math.fround is the one rounding. */
const FLOAT_BYTES = new Uint8Array(256 * 4);
for (let b = 0; b < 256; b++) new DataView(FLOAT_BYTES.buffer).setFloat32(b * 4, Math.fround(b / 255), true);

/** Byte b's float32 as SQLite's hex() spells it, 8 upper-case ASCII digits: as two 32-bit words. */
const HEX_WORDS = (() => {
  const ascii = new Uint8Array(256 * 8);
  for (let b = 0; b < 256; b++) {
    const hex = Array.from(FLOAT_BYTES.subarray(b * 4, b * 4 + 4), (x) => x.toString(16).padStart(2, "0"));
    for (const [i, c] of [...hex.join("").toUpperCase()].entries()) ascii[b * 8 + i] = c.charCodeAt(0);
  }
  return new Uint32Array(ascii.buffer);
})();

const PAGE = 2000;

/**
 * `images` holds exactly these images and labels for the split: every row in
 * order, its label, and every pixel's float32 bytes. Read a page at a time as
 * hex, whose text is checked, word by word, against each pixel's expected spelling.
 */
async function expectSplit(split: string, images: Uint8Array, labels: Uint8Array): Promise<void> {
  const n = labels.length;
  const ppi = images.length / n;
  const text = new Uint8Array(PAGE * ppi * 8);
  const words = new Uint32Array(text.buffer);
  const encoder = new TextEncoder();
  for (let start = 0; start < n; start += PAGE) {
    const end = Math.min(n, start + PAGE);
    const { results } = await env.DB.prepare(
      "SELECT idx, label, hex(pixels) AS h FROM images WHERE dataset = 'fashion-mnist' AND split = ? AND idx >= ? AND idx < ? ORDER BY idx",
    )
      .bind(split, start, end)
      .all<{ idx: number; label: number; h: string }>();
    const where = `${split} ${start}–${end - 1}`;
    expect(
      results.map((r) => r.idx),
      where,
    ).toEqual(Array.from({ length: end - start }, (_, i) => start + i));
    expect(
      results.map((r) => r.label),
      where,
    ).toEqual(Array.from(labels.subarray(start, end)));
    const wrong: string[] = [];
    for (const [i, r] of results.entries()) {
      const at = i * ppi * 8;
      const { written } = encoder.encodeInto(r.h, text.subarray(at, at + ppi * 8));
      let same = written === ppi * 8 && r.h.length === ppi * 8;
      for (let p = 0, w = at / 4, k = r.idx * ppi; same && p < ppi; p++, w += 2, k++) {
        same = words[w] === HEX_WORDS[2 * images[k]!] && words[w + 1] === HEX_WORDS[2 * images[k]! + 1];
      }
      if (!same) wrong.push(`${split} ${r.idx}`);
    }
    expect(wrong).toEqual([]);
  }
}

/** SHA-256 of a stream, hashed as it arrives. */
async function sha256(body: ReadableStream<Uint8Array>): Promise<string> {
  const digest = new crypto.DigestStream("SHA-256");
  await body.pipeTo(digest);
  return [...new Uint8Array(await digest.digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** SHA-256 of the .npy file numpy writes for float32(images) / 255 in `shape`. */
async function npySha256(images: Uint8Array, shape: readonly number[]): Promise<string> {
  const { readable, writable } = new TransformStream<Uint8Array, Uint8Array>();
  const hashed = sha256(readable);
  const writer = writable.getWriter();
  await writer.write(numpyHeader("<f4", shape));
  const piece = 1 << 20;
  const words = new Uint32Array(FLOAT_BYTES.buffer);
  for (let at = 0; at < images.length; at += piece) {
    const part = images.subarray(at, at + piece);
    const out = new Uint32Array(part.length);
    for (let k = 0; k < part.length; k++) out[k] = words[part[k]!]!;
    await writer.write(new Uint8Array(out.buffer));
  }
  await writer.close();
  return hashed;
}

it("numpyHeader writes numpy's own header bytes", () => {
  // np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (60000, 28, 28, 1)}), numpy 2.4.
  const numpy = `934e554d5059010076007b276465736372273a20273c6634272c2027666f727472616e5f6f72646572273a2046616c73652c20277368617065273a202836303030302c2032382c2032382c2031292c207d${"20".repeat(46)}0a`;
  expect(Array.from(numpyHeader("<f4", [60000, 28, 28, 1]), (b) => b.toString(16).padStart(2, "0")).join("")).toBe(
    numpy,
  );
});

it("loads all 70,000 real Fashion-MNIST images, bit-exact, and serves them as train.npy", async () => {
  // The archives as this test reads them, fetched before the Worker is busy with them.
  const [trainImages, trainLabels, testImages, testLabels] = await Promise.all([
    idx("train-images-idx3-ubyte.gz"),
    idx("train-labels-idx1-ubyte.gz"),
    idx("t10k-images-idx3-ubyte.gz"),
    idx("t10k-labels-idx1-ubyte.gz"),
  ]);
  const train = { images: trainImages, labels: trainLabels };
  const test = { images: testImages, labels: testLabels };
  expect([train.images.dims, train.labels.dims, test.images.dims, test.labels.dims]).toEqual([
    [60000, 28, 28],
    [60000],
    [10000, 28, 28],
    [10000],
  ]);
  // Sum of all t10k bytes (numpy): the archive read here is the published one.
  expect(test.images.data.reduce((a, b) => a + b, 0)).toBe(573469082);

  const run = await runToEnd({}); // no source: the default, with MD5 checks
  expect(run.error).toBeNull();
  expect(run.status).toBe("complete");
  expect(run.splits).toEqual({ train: { expected: 60000, loaded: 60000 }, test: { expected: 10000, loaded: 10000 } });
  expect(run.checksums).toEqual({
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
  });
  // Kept as read: a mirror of the published archives, as torchvision fetches them (`<mirror><file>`, MD5 checked).
  for (const [file, md5] of Object.entries(run.checksums!)) {
    const res = await SELF.fetch(`http://worker/datasets/fashion-mnist/raw/${file}`);
    expect(res.status, file).toBe(200);
    const digest = new Uint8Array(await crypto.subtle.digest("MD5", await res.arrayBuffer()));
    expect([...digest].map((b) => b.toString(16).padStart(2, "0")).join("")).toBe(md5);
  }
  // From the official source with the published MD5s checked: official, in the run and in the catalog.
  expect(run.official).toBe(true);
  expect(await one("SELECT official, source FROM datasets WHERE name = 'fashion-mnist'")).toEqual({
    official: 1,
    source: run.source,
  });

  const perLabel = await env.DB.prepare(
    "SELECT label, COUNT(*) AS n FROM images WHERE split = 'test' GROUP BY label",
  ).all();
  expect(perLabel.results).toEqual(Array.from({ length: 10 }, (_, label) => ({ label, n: 1000 })));
  // t10k image 0 is an ankle boot.
  expect(
    await one("SELECT i.label, c.name FROM images i JOIN classes c USING (label) WHERE split = 'test' AND idx = 0"),
  ).toEqual({ label: 9, name: "Ankle boot" });

  // Every row of both splits against the archives.
  const t0 = performance.now();
  await expectSplit("train", train.images.data, train.labels.data);
  await expectSplit("test", test.images.data, test.labels.data);
  const t1 = performance.now();

  // GET /export/train.npy, as the README's first curl after `npm run etl` (which waits for the job
  // that writes the exports to R2): the file numpy would write, to the byte.
  for (let waited = 0; ; waited += 100) {
    const view = (await (await SELF.fetch("http://worker/datasets/fashion-mnist")).json()) as {
      exportsStored: boolean;
    };
    if (view.exportsStored) break;
    if (waited > 60_000) throw new Error("the exports were not written to R2 within 60 s");
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const t2 = performance.now();
  const res = await SELF.fetch("http://worker/export/train.npy");
  expect(res.status).toBe(200);
  const [got, want] = await Promise.all([sha256(res.body!), npySha256(train.images.data, [60000, 28, 28, 1])]);
  expect(got).toBe(want);
  const labelsNpy = new Uint8Array(await (await SELF.fetch("http://worker/export/train-labels.npy")).arrayBuffer());
  const header = numpyHeader("|u1", [60000]);
  expect(labelsNpy.subarray(0, header.length)).toEqual(header);
  expect(labelsNpy.subarray(header.length)).toEqual(train.labels.data);
  // Official rows: their Croissant metadata carries the published description, with no provenance caveat.
  const croissant = await SELF.fetch("http://worker/croissant.json");
  expect(croissant.status).toBe(200);
  expect(((await croissant.json()) as { description: string }).description).toBe(FASHION_MNIST.about!.description);
  console.log(
    `whole splits compared in ${(t1 - t0).toFixed(0)} ms; exports waited for ${(t2 - t1).toFixed(0)} ms; train.npy hashed in ${(performance.now() - t2).toFixed(0)} ms`,
  );
}, 120_000);
