/**
 * EMNIST's packaging and orientation, end to end inside workerd: members read
 * out of gzip.zip with Range requests (and without, from a server that ignores
 * them), loose .gz files preferred when the source has them, images stored
 * transposed loaded upright; and, at the extract level, falling back from one
 * mirror to the next.
 */
import { describe, expect, it } from "vitest";
import type { Mirror } from "../src/core/datasets";
import { EtlError } from "../src/core/errors";
import { registryEntry } from "../src/core/registry";
import { QUEUES } from "../src/pipeline/config";
import { Archives } from "../src/pipeline/archive";
import { workersMd5 } from "../src/codec/digest";
import { extractImages, extractLabels, peekImages, type ImageChunk } from "../src/pipeline/extract";
import type { ExtractMessage } from "../src/pipeline/messages";
import {
  SHAPE_28,
  capturingQueue,
  cfg,
  emnistZip,
  expectDataset,
  fingerprint,
  floatHex,
  hits,
  load,
  looseArchives,
  makeSplit,
  noise,
  publishFiles,
  specArchives,
  trigger,
  uprightImage,
  waitForRun,
  withImage,
} from "./dataset-fixtures";
import { collectChecksums, deliver } from "./faults-helpers";

const BALANCED = registryEntry("emnist-balanced")!;
const MNIST = registryEntry("mnist")!;

/** A small EMNIST Balanced: every one of its 47 labels in train. */
const balanced = (seed: number) => ({
  train: makeSplit(60, SHAPE_28, (i) => i % 47, seed),
  test: makeSplit(20, SHAPE_28, (i) => (i * 7) % 47, seed + 1),
});

describe("EMNIST orientation: stored transposed, loaded upright", () => {
  it("a single bright pixel and an L come out as the transpose of the stored grid, x.T / 255", async () => {
    // Upright, as a reader sees it: an L (a bar down column 4, a foot along row 22).
    const upright = new Uint8Array(784);
    for (let r = 3; r <= 22; r++) upright[r * 28 + 4] = 200;
    for (let c = 4; c <= 18; c++) upright[22 * 28 + c] = 200;
    // EMNIST stores each image transposed: stored[r][c] = upright[c][r].
    const storedL = new Uint8Array(784);
    for (let r = 0; r < 28; r++) for (let c = 0; c < 28; c++) storedL[r * 28 + c] = upright[c * 28 + r]!;
    // One bright pixel, stored at row 2, column 5.
    const dot = new Uint8Array(784);
    dot[2 * 28 + 5] = 255;
    const data = balanced(31);
    const train = withImage(withImage(data.train, 0, dot), 1, storedL);
    const source = await publishFiles({ "gzip.zip": emnistZip(specArchives(BALANCED, { ...data, train })) });

    const run = await load({ dataset: BALANCED.name, source });
    expect(run.error).toBeNull();
    expect(run.status).toBe("complete");

    const pixels = async (idx: number) => {
      const [row] = await fingerprint(BALANCED.name).then((all) =>
        all.filter((r) => r.split === "train" && r.idx === idx),
      );
      const bytes = Uint8Array.from(row!.h.match(/../g)!, (h) => parseInt(h, 16));
      return new Float32Array(bytes.buffer);
    };
    // The dot: at row 5, column 2 once upright, 1.0 there and 0 everywhere else.
    const dotLoaded = await pixels(0);
    expect([...dotLoaded.keys()].filter((i) => dotLoaded[i] !== 0)).toEqual([5 * 28 + 2]);
    expect(dotLoaded[5 * 28 + 2]).toBe(1);
    // The L: upright, exactly upright / 255 in float32 (not the stored grid).
    const lLoaded = await pixels(1);
    expect(Array.from(lLoaded, (v) => Math.round(v * 255))).toEqual([...upright]);
    expect(Array.from(lLoaded)).toEqual(Array.from(upright, (b) => Math.fround(b / 255)));
    expect([...upright]).not.toEqual([...storedL]);
    // torchvision's EMNIST returns the stored grid as it is (EMNIST._load_data is read_image_file,
    // with no transpose; TFDS likewise, and says to tf.transpose it): what is loaded here is that
    // tensor transposed, img.transpose(-1, -2) — for every image, not only these two.
    await expectDataset(BALANCED.name, { ...data, train }, true);
  });

  it("the same stored bytes as a dataset that is not transposed (Fashion-MNIST's layout) load as stored", async () => {
    const dot = new Uint8Array(784);
    dot[2 * 28 + 5] = 255;
    const data = {
      train: withImage(
        makeSplit(30, SHAPE_28, (i) => i % 10, 41),
        0,
        dot,
      ),
      test: makeSplit(10, SHAPE_28, (i) => i % 10, 42),
    };
    const fashion = registryEntry("fashion-mnist")!;
    const run = await load({ dataset: fashion.name, source: await publishFiles(specArchives(fashion, data)) });
    expect(run.status).toBe("complete");
    await expectDataset(fashion.name, data, false);
    const [row] = (await fingerprint(fashion.name)).filter((r) => r.split === "train" && r.idx === 0);
    expect(row!.h).toBe(floatHex(dot));
    expect(row!.h).not.toBe(floatHex(uprightImage(data.train, 0, true)));
  });
});

/** Every request the code under test makes, with its Range header and the answer's status and length. */
async function recordingFetch<T>(
  run: () => Promise<T>,
): Promise<{ result: T; requests: { url: string; range: string | null; status: number; length: number }[] }> {
  const requests: { url: string; range: string | null; status: number; length: number }[] = [];
  const real = globalThis.fetch;
  globalThis.fetch = async (input: RequestInfo | URL, init?: RequestInit) => {
    const res = await real(input, init);
    const url = input instanceof Request ? input.url : String(input);
    const range = new Headers(init?.headers ?? (input instanceof Request ? input.headers : undefined)).get("Range");
    requests.push({ url, range, status: res.status, length: Number(res.headers.get("Content-Length") ?? -1) });
    return res;
  };
  try {
    return { result: await run(), requests };
  } finally {
    globalThis.fetch = real;
  }
}

describe("members of gzip.zip", () => {
  it("the run reads only its four members, with Range requests: a handful of small requests, never the whole zip", async () => {
    const data = balanced(51);
    // Other variants' members, which the run must not download: most of the zip's bytes.
    const others = {
      "gzip/emnist-byclass-train-images-idx3-ubyte.gz": noise(1_500_000, 1),
      "gzip/emnist-byclass-test-images-idx3-ubyte.gz": noise(300_000, 2),
    };
    const zip = emnistZip(specArchives(BALANCED, data), others);
    expect(zip.length).toBeGreaterThan(1_800_000);
    const dir = await publishFiles({ "gzip.zip": zip });
    const source = `${dir}/gzip.zip`;

    // The job delivered here, in this isolate, so that its requests can be watched.
    const jobs = capturingQueue<ExtractMessage>();
    // Forced: a dataset already loaded would first have its images members hashed (two more requests).
    const run = await trigger({ dataset: BALANCED.name, source }, { jobs: jobs.queue, force: true });
    expect(jobs.sent).toHaveLength(1);
    const { requests } = await recordingFetch(() => deliver(QUEUES.jobs, jobs.sent));
    const done = await waitForRun(run.id);
    expect(done.error).toBeNull();
    expect(done.status).toBe("complete");
    await expectDataset(BALANCED.name, data, true);

    const toZip = requests.filter((r) => r.url === source);
    expect(requests.length).toBe(toZip.length);
    // The directory (the zip's tail), then each labels member, each images header, each images member.
    expect(toZip.length).toBe(7);
    expect(await hits(source)).toBe(7);
    expect(toZip[0]!.range).toMatch(/^bytes=-\d+$/);
    for (const r of toZip) {
      expect(r.range).toMatch(/^bytes=(\d+-\d+|-\d+)$/);
      expect(r.status).toBe(206);
    }
    const served = toZip.reduce((n, r) => n + r.length, 0);
    expect(served).toBeLessThan(500_000);
    expect(served).toBeLessThan(zip.length / 3);
  });

  it("a zip from a server that ignores Range requests still loads", async () => {
    const data = balanced(61);
    const dir = await publishFiles({ "gzip.zip": emnistZip(specArchives(BALANCED, data)) }, { "gzip.zip": "norange" });
    const source = `${dir}/gzip.zip`;
    const served = await fetch(source, { headers: { Range: "bytes=0-9" } });
    expect(served.status).toBe(200); // the fault is in place
    await served.arrayBuffer();

    const run = await load({ dataset: BALANCED.name, source });
    expect(run.error).toBeNull();
    expect(run.status).toBe("complete");
    await expectDataset(BALANCED.name, data, true);
  });

  it("loose member .gz files at the source are used when present; the zip beside them is not read", async () => {
    const loose = balanced(71);
    const zipped = balanced(72);
    const dir = await publishFiles({
      ...looseArchives(specArchives(BALANCED, loose)),
      "gzip.zip": emnistZip(specArchives(BALANCED, zipped)),
    });
    const run = await load({ dataset: BALANCED.name, source: dir });
    expect(run.error).toBeNull();
    expect(run.status).toBe("complete");
    await expectDataset(BALANCED.name, loose, true);
    expect(await hits(`${dir}/gzip.zip`)).toBe(0);
    expect(await hits(`${dir}/emnist-balanced-train-images-idx3-ubyte.gz`)).toBeGreaterThan(0);
  });
});

describe("mirror fallback at the extract level", () => {
  const deps = { fetch: (url: string, init?: RequestInit) => fetch(url, init), md5: workersMd5 };
  const LABEL_FILES = ["train-labels-idx1-ubyte.gz", "t10k-labels-idx1-ubyte.gz"];
  const IMAGE_FILES = ["train-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz"];
  const all404 = (archives: Record<string, Uint8Array>) =>
    publishFiles(archives, Object.fromEntries(Object.keys(archives).map((f) => [f, "status:404"])));
  const mnistData = () => ({
    train: makeSplit(40, SHAPE_28, (i) => i % 10, 81),
    test: makeSplit(12, SHAPE_28, (i) => (i * 3) % 10, 82),
  });
  const opts = (mirrors: Mirror[], dataset = MNIST) => ({ dataset, mirrors, official: false, retry: cfg().retry });

  it("labels, headers and images come from the second mirror when the first answers 404", async () => {
    const data = mnistData();
    const archives = specArchives(MNIST, data);
    const bad = await all404(archives);
    const good = await publishFiles(archives);
    const o = opts([
      { url: bad, packaging: "files" },
      { url: good, packaging: "files" },
    ]);
    const sums = collectChecksums();
    const extraction = new Archives(o, deps, sums.sink);
    const labels = await extractLabels(extraction);
    expect(labels.map((l) => [l.split, l.count, [...l.labels]])).toEqual([
      ["train", 40, [...data.train.labels]],
      ["test", 12, [...data.test.labels]],
    ]);
    const layout = await peekImages(extraction, labels);
    expect(layout).toEqual({ stored: SHAPE_28, shape: SHAPE_28 });
    const chunks: ImageChunk[] = [];
    for await (const c of extractImages(extraction, labels, layout, 16)) chunks.push(c);
    const joined = (split: string) => chunks.filter((c) => c.split === split).flatMap((c) => [...c.pixels]);
    expect(joined("train")).toEqual([...data.train.pixels]);
    expect(joined("test")).toEqual([...data.test.pixels]);
    // Each file asked of the first mirror once per pass, a 404 not retried; all served by the second.
    for (const f of LABEL_FILES) expect([await hits(`${bad}/${f}`), await hits(`${good}/${f}`)]).toEqual([1, 1]);
    for (const f of IMAGE_FILES) expect([await hits(`${bad}/${f}`), await hits(`${good}/${f}`)]).toEqual([2, 2]);
    expect(Object.keys(sums.values).sort()).toEqual([...IMAGE_FILES, ...LABEL_FILES].sort());
  });

  it("an EMNIST member from a zip mirror when the loose-files mirror has none", async () => {
    const data = balanced(91);
    const empty = await publishFiles({ "readme.txt": new TextEncoder().encode("no files here") });
    const zipped = await publishFiles({ "gzip.zip": emnistZip(specArchives(BALANCED, data)) });
    const o = opts(
      [
        { url: empty, packaging: "files" },
        { url: zipped, packaging: "zip" },
      ],
      BALANCED,
    );
    const extraction = new Archives(o, deps, collectChecksums().sink);
    const labels = await extractLabels(extraction);
    expect(labels.map((l) => [l.split, [...l.labels]])).toEqual([
      ["train", [...data.train.labels]],
      ["test", [...data.test.labels]],
    ]);
    expect(await peekImages(extraction, labels)).toEqual({ stored: SHAPE_28, shape: SHAPE_28 });
  });

  it("when every mirror fails, the error names each mirror and each one's failure", async () => {
    const archives = specArchives(MNIST, mnistData());
    const a = await all404(archives);
    const b = await all404(archives);
    const o = opts([
      { url: a, packaging: "files" },
      { url: b, packaging: "files" },
    ]);
    const labelsErr = await extractLabels(new Archives(o, deps, collectChecksums().sink)).catch((e: unknown) => e);
    expect(labelsErr).toBeInstanceOf(EtlError);
    const f = "train-labels-idx1-ubyte.gz";
    expect((labelsErr as EtlError).message).toBe(
      `${f}: no mirror served it whole (${a}, ${b}): ${f}: HTTP 404 Not Found from ${a}/${f}; ${f}: HTTP 404 Not Found from ${b}/${f}`,
    );
    expect((labelsErr as EtlError).retryable).toBe(false);

    // A mirror that fails with a retryable error: retried in place, and the whole failure is retryable.
    const busy = await publishFiles(archives, Object.fromEntries(Object.keys(archives).map((k) => [k, "status:503"])));
    const o2 = opts([
      { url: busy, packaging: "files" },
      { url: a, packaging: "files" },
    ]);
    const err2 = await extractLabels(new Archives(o2, deps, collectChecksums().sink)).catch((e: unknown) => e);
    expect(err2).toBeInstanceOf(EtlError);
    expect((err2 as EtlError).message).toBe(
      `${f}: no mirror served it whole (${busy}, ${a}): ${f}: HTTP 503 Service Unavailable from ${busy}/${f} (after ${cfg().retry.attempts} attempts); ${f}: HTTP 404 Not Found from ${a}/${f}`,
    );
    expect((err2 as EtlError).retryable).toBe(true);

    // The headers too: peekImages with labels in hand, every mirror failing.
    const good = await publishFiles(archives);
    const labels = await extractLabels(
      new Archives(opts([{ url: good, packaging: "files" }]), deps, collectChecksums().sink),
    );
    const img = "train-images-idx3-ubyte.gz";
    await expect(peekImages(new Archives(o, deps, collectChecksums().sink), labels)).rejects.toThrow(
      `${img}: no mirror served it whole (${a}, ${b}): ${img}: HTTP 404 Not Found from ${a}/${img}; ${img}: HTTP 404 Not Found from ${b}/${img}`,
    );
  });
});
