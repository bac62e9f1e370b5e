/**
 * Content faults: every kind of bad archive is refused during extraction,
 * before the first row is written, with an error that names the file and what
 * was wrong — in the run record and in GET /runs/:id — and the last complete
 * dataset stays exactly as it was. The pure parsers are also tested directly
 * for the many malformed-header cases.
 */
import { gzipSync } from "fflate";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { EtlError } from "../src/core/errors";
import { QUEUES } from "../src/pipeline/config";
import { INFLATE_SLICE_BYTES, VerifyingGunzip } from "../src/codec/gunzip";
import { expectImages, expectLabels, IdxRecords, parseIdxHeader } from "../src/codec/idx";
import { dataset, deliver, failActive, queuedRun, runStatus } from "./faults-helpers";
import { idxBytes, publish, runToEnd, syntheticArchives, syntheticSplit, type ArchiveSet } from "./helpers";

const TRAIN_LABELS = "train-labels-idx1-ubyte.gz";
const TRAIN_IMAGES = "train-images-idx3-ubyte.gz";
const TEST_LABELS = "t10k-labels-idx1-ubyte.gz";

afterEach(() => failActive());

/** Synthetic archives (40 train, 10 test) with some files replaced. */
const withFiles = (files: ArchiveSet): ArchiveSet => ({ ...syntheticArchives(40, 10, 31), ...files });

/** A gzip whose trailer's CRC-32 is off by one. */
function badCrc(gz: Uint8Array): Uint8Array {
  const out = gz.slice();
  const view = new DataView(out.buffer);
  view.setUint32(out.length - 8, (view.getUint32(out.length - 8, true) + 1) >>> 0, true);
  return out;
}

/** Flip bits in the middle of the deflate data. */
function corrupt(gz: Uint8Array): Uint8Array {
  if (gz.length < 60) throw new Error(`archive of ${gz.length} bytes is too small to damage inside`);
  const out = gz.slice();
  for (let i = 20; i < out.length - 20; i += 7) out[i] = out[i]! ^ 0xa5;
  return out;
}

function inflateAll(file: string, gz: Uint8Array, chunk = 7): number {
  const g = new VerifyingGunzip(file);
  let n = 0;
  for (let i = 0; i < gz.length; i += chunk) for (const out of g.push(gz.subarray(i, i + chunk))) n += out.length;
  for (const out of g.finish()) n += out.length;
  return n;
}

describe("pure: IDX headers", () => {
  const bytes = (...b: number[]) => Uint8Array.from(b);
  it.each([
    ["an empty file", bytes(), "f: file is empty"],
    ["a header cut inside the magic", bytes(0, 0, 8), "f: truncated IDX header (3 bytes)"],
    [
      "a wrong magic",
      bytes(0x1f, 0x8b, 8, 1, 0, 0, 0, 1),
      "f: wrong magic number 0x1f8b0801, not an IDX file (expected 0x000008NN)",
    ],
    [
      "a non-ubyte element type",
      bytes(0, 0, 0x0d, 1, 0, 0, 0, 1),
      "f: magic number 0x00000d01 has element type 0x0d (float), expected 0x08 (unsigned byte): only unsigned-byte images and labels are accepted",
    ],
    ["zero dimensions", bytes(0, 0, 8, 0), "f: magic number 0x00000800 declares 0 dimensions, expected 1 to 4"],
    ["too many dimensions", bytes(0, 0, 8, 9), "f: magic number 0x00000809 declares 9 dimensions, expected 1 to 4"],
    [
      "a header cut inside the dimensions",
      bytes(0, 0, 8, 3, 0, 0, 0, 1, 0, 0),
      "f: truncated IDX header (10 of 16 bytes)",
    ],
  ])("refuses %s", (_, input, message) => {
    expect(() => parseIdxHeader(input, "f")).toThrow(new EtlError(message));
  });

  it("refuses dimensions whose product is not a safe integer", () => {
    const h = idxBytes([0xffffffff, 0xffffffff, 0xffffffff], new Uint8Array(0));
    expect(() => parseIdxHeader(h, "f")).toThrow("f: dimensions 4294967295×4294967295×4294967295 are too large");
  });

  it("yields the header before allocating a record of the size it declares", () => {
    // One image of 2^24 × 2^24 pixels: no JavaScript array can be that large. A header read
    // (the reader stops at the header) must get the header, for the run to refuse it by name.
    const file = idxBytes([1, 2 ** 24, 2 ** 24], new Uint8Array(64));
    const first = new IdxRecords("f", 1).push([file]).next();
    expect(first.value).toEqual({ kind: "header", header: parseIdxHeader(file, "f") });
  });

  it("refuses images of the wrong shape and labels with more than one dimension", () => {
    const images = parseIdxHeader(idxBytes([5, 28, 27], new Uint8Array(0)), "i");
    expect(expectImages(images, "i")).toEqual({ count: 5, shape: { rows: 28, cols: 27, channels: 1 } });
    const flat = parseIdxHeader(idxBytes([5, 784], new Uint8Array(0)), "i");
    expect(() => expectImages(flat, "i")).toThrow("header says [5, 784]");
    const labels = parseIdxHeader(idxBytes([5, 1], new Uint8Array(0)), "l");
    expect(() => expectLabels(labels, "l")).toThrow("l: expected a 1-dimensional labels file, header says [5, 1]");
  });
});

describe("pure: gzip", () => {
  // Pseudo-random bytes, so the deflate data is long enough to damage in the middle.
  let seed = 7;
  const body = Uint8Array.from({ length: 300 }, () => (seed = (seed * 1103515245 + 12345) >>> 0) >>> 24);
  const gz = gzipSync(idxBytes([300], body));

  it("inflates a good archive fed in small pieces", () => {
    expect(inflateAll("g", gz)).toBe(308);
  });

  it.each([
    ["an empty file", new Uint8Array(0), "g: archive is empty (0 bytes)"],
    [
      "a bad CRC-32 in the trailer",
      badCrc(gz),
      /^g: CRC-32 mismatch \(trailer 0x[0-9a-f]+, data 0x[0-9a-f]+\): archive is corrupt$/,
    ],
    ["a truncated archive", gz.subarray(0, gz.length - 12), /^g: archive is truncated \(gzip: unexpected EOF/],
    ["a truncated trailer", gz.subarray(0, gz.length - 3), /^g: (archive is truncated|gzip trailer says)/],
    [
      "bad bytes inside",
      corrupt(gz),
      /^g: (archive is corrupt|archive is truncated|CRC-32 mismatch|gzip trailer says)/,
    ],
    [
      "a second gzip member after the first",
      Uint8Array.from([...gz, ...gz]),
      "g: a second gzip member follows the first (files joined by `cat a.gz b.gz`, or written by bgzip); only single-member archives are read: recompress it with `zcat g | gzip > NEW.gz`",
    ],
    ["not gzip at all", new TextEncoder().encode("<html>Not Found</html>"), /^g: archive is corrupt \(gzip: /],
  ])("refuses %s", (_, input, message) => {
    expect(() => inflateAll("g", input)).toThrow(message);
  });

  it("inflates a bomb a slice at a time, and only as far as it is read", async () => {
    // 64 MB of zeros deflate to about 64 KB: inflated whole, one block would be held as one 64 MB array.
    const zeros = new Blob([new Uint8Array(64 * 1024 * 1024)]).stream().pipeThrough(new CompressionStream("gzip"));
    const bomb = new Uint8Array(await new Response(zeros).arrayBuffer());
    const g = new VerifyingGunzip("b");
    const sizes: number[] = [];
    for (const out of g.push(bomb)) sizes.push(out.length);
    expect(sizes.length).toBeGreaterThanOrEqual(Math.floor(bomb.length / INFLATE_SLICE_BYTES));
    expect(Math.max(...sizes)).toBeLessThanOrEqual(INFLATE_SLICE_BYTES * 1032 + 32 * 1024);
    expect(sizes.reduce((a, b) => a + b, 0) + [...g.finish()].reduce((a, b) => a + b.length, 0)).toBe(64 * 1024 * 1024);

    // A reader that stops after the first slice inflates nothing more.
    const lazy = new VerifyingGunzip("b");
    const first = lazy.push(bomb).next();
    expect(first.done).toBe(false);
    expect((first.value as Uint8Array).length).toBeLessThanOrEqual(INFLATE_SLICE_BYTES * 1032 + 32 * 1024);
  });

  it("refuses a wrong length in the trailer", () => {
    const out = gz.slice();
    new DataView(out.buffer).setUint32(out.length - 4, 309, true);
    expect(() => inflateAll("g", out)).toThrow("g: gzip trailer says 309 bytes, inflated 308: archive is corrupt");
  });
});

describe("through the real Worker: a bad archive fails the run before any write", () => {
  let baseline: Awaited<ReturnType<typeof dataset>>;
  beforeAll(async () => {
    expect((await runToEnd({ source: await publish(syntheticArchives(250, 60, 30)) })).status).toBe("complete");
    baseline = await dataset();
    expect(baseline).toHaveLength(310);
  });

  const split = syntheticSplit(40, 31);
  const cases: [string, ArchiveSet, string | RegExp][] = [
    ["an empty file", withFiles({ [TRAIN_LABELS]: new Uint8Array(0) }), `${TRAIN_LABELS}: archive is empty (0 bytes)`],
    [
      "an empty IDX file inside a good gzip",
      withFiles({ [TRAIN_LABELS]: gzipSync(new Uint8Array(0)) }),
      `${TRAIN_LABELS}: file is empty`,
    ],
    [
      "a bad CRC-32",
      withFiles({ [TRAIN_IMAGES]: badCrc(split.images) }),
      new RegExp(`^${TRAIN_IMAGES}: CRC-32 mismatch .*: archive is corrupt$`),
    ],
    [
      "bad bytes inside the gzip",
      withFiles({ [TRAIN_IMAGES]: corrupt(split.images) }),
      new RegExp(`^${TRAIN_IMAGES}: .*(corrupt|truncated|trailer)`),
    ],
    [
      "a truncated archive",
      withFiles({ [TRAIN_IMAGES]: split.images.subarray(0, split.images.length >> 1) }),
      new RegExp(`^${TRAIN_IMAGES}: archive is truncated`),
    ],
    [
      "a split of zero images",
      withFiles({
        [TEST_LABELS]: gzipSync(idxBytes([0], new Uint8Array(0))),
        "t10k-images-idx3-ubyte.gz": gzipSync(idxBytes([0, 28, 28], new Uint8Array(0))),
      }),
      `${TEST_LABELS}: header says 0 labels: the test split is empty`,
    ],
    [
      "a wrong IDX magic",
      withFiles({ [TRAIN_LABELS]: gzipSync(idxBytes([40], split.labels, { type: 0x09 })) }),
      `${TRAIN_LABELS}: magic number 0x00000901 has element type 0x09 (signed byte), expected 0x08 (unsigned byte): only unsigned-byte images and labels are accepted`,
    ],
    [
      "images of the wrong shape",
      withFiles({ [TRAIN_IMAGES]: gzipSync(idxBytes([40, 28, 27], split.pixels.subarray(0, 40 * 28 * 27))) }),
      `${TRAIN_IMAGES}: fashion-mnist images are 28×28×1, header says 28×27×1`,
    ],
    [
      "labels with two dimensions",
      withFiles({ [TEST_LABELS]: gzipSync(idxBytes([5, 2], new Uint8Array(10))) }),
      `${TEST_LABELS}: expected a 1-dimensional labels file, header says [5, 2]`,
    ],
    [
      "an images file shorter than its header says",
      withFiles({ [TRAIN_IMAGES]: gzipSync(idxBytes([40, 28, 28], split.pixels.subarray(0, 39 * 784))) }),
      `${TRAIN_IMAGES}: truncated: 30576 of 31360 bytes the header [40, 28, 28] declares`,
    ],
    [
      "extra bytes after the images",
      withFiles({ [TRAIN_IMAGES]: gzipSync(idxBytes([40, 28, 28], Uint8Array.from([...split.pixels, 1, 2, 3]))) }),
      `${TRAIN_IMAGES}: 3+ extra bytes after the 40×28×28 elements the header declares`,
    ],
    [
      "image count ≠ label count",
      withFiles({ [TRAIN_IMAGES]: gzipSync(idxBytes([39, 28, 28], split.pixels.subarray(0, 39 * 784))) }),
      `${TRAIN_LABELS}: header says 40 labels but ${TRAIN_IMAGES} says 39 images`,
    ],
    [
      "a label outside 0–9",
      withFiles({
        [TRAIN_LABELS]: gzipSync(
          idxBytes(
            [40],
            Uint8Array.from(split.labels, (l, i) => (i === 17 ? 10 : l)),
          ),
        ),
      }),
      `${TRAIN_LABELS}: label 10 at index 17 is outside 0–9 (10 classes)`,
    ],
  ];

  it.each(cases)("%s", async (_, archives, message) => {
    const run = await runToEnd({ source: await publish(archives) });
    expect(run.status).toBe("failed");
    expect(run.error).toMatch(typeof message === "string" ? new RegExp(`^${escape(message)}$`) : message);
    expect(run.splits.train.loaded + run.splits.test.loaded).toBe(0);
    expect(await dataset()).toEqual(baseline);
  });

  it("a web page served in place of an archive: named by its content type and first bytes, not called corrupt", async () => {
    const page = "<!DOCTYPE html><html><head><title>Sign in</title></head><body>Please sign in</body></html>";
    const archives = withFiles({ [TRAIN_LABELS]: new TextEncoder().encode(page) });
    const run = await runToEnd({ source: await publish(archives, { [TRAIN_LABELS]: "type:text/html" }) });
    expect(run.status).toBe("failed");
    expect(run.error).toBe(
      `${TRAIN_LABELS}: not a gzip archive (served as text/html): its bytes start "<!DOCTYPE html><html><head><title>Sign i…"`,
    );
    expect(run.splits.train.loaded + run.splits.test.loaded).toBe(0);
    expect(await dataset()).toEqual(baseline);
  });

  it("an IDX file that was never gzipped: named as such, with what to do", async () => {
    const archives = withFiles({ [TRAIN_LABELS]: idxBytes([40], new Uint8Array(40)) });
    const run = await runToEnd({ source: await publish(archives) });
    expect(run.status).toBe("failed");
    expect(run.error).toMatch(
      new RegExp(
        `^${escape(`${TRAIN_LABELS}: an uncompressed IDX file (magic 0x00000801), not a gzip archive (`)}served [^)]+${escape("): archives are read gzipped, as published; gzip it (`gzip -k FILE`) and name the .gz")}$`,
      ),
    );
    expect(await dataset()).toEqual(baseline);
  });

  it("a checksum mismatch on the official source", async () => {
    // The official source is the one the Worker is configured with; point it at a copy that differs.
    const source = await publish(syntheticArchives(40, 10, 32));
    const runId = await queuedRun(source);
    await deliver(QUEUES.jobs, [{ kind: "extract", runId, force: false }], { env: { DEFAULT_SOURCE: source } });
    const run = await runStatus(runId);
    expect(run.status).toBe("failed");
    expect(run.error).toMatch(
      new RegExp(`^${TRAIN_LABELS}: MD5 [0-9a-f]{32} does not match the published 25c81989df183df01b3e8a0aad5dffbe$`),
    );
    expect(await dataset()).toEqual(baseline);
  });
});

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
