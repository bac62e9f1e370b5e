/**
 * Images larger than a queue message carries, up to D1's row limit: their
 * chunks travel by R2 (the message names the staged object), load bit-exact
 * end to end (224×224×3 and 300×300×4), and read back through every route;
 * a redelivery after the commit finds its object gone and the ledger settles
 * it; without a bucket bound, POST /runs refuses such a dataset before its
 * 202, naming the limit. The inserts and reads of a 1.44 MB row stay within
 * production D1's 2,000,000-byte limit on a value (strict-d1.ts), which local
 * D1 does not enforce.
 */
import { env } from "cloudflare:test";
import { decode } from "fast-png";
import { describe, expect, it } from "vitest";
import type { Shape } from "../src/core/datasets";
import { pixelsToPackedHex } from "../src/codec/transform";
import { appFetch } from "./app-fetch";
import { QUEUES, readConfig } from "../src/pipeline/config";
import { runExtractJob } from "../src/pipeline/job";
import type { ChunkMessage, ExtractMessage } from "../src/pipeline/messages";
import { maxChunkImages, messageBytes } from "../src/pipeline/plan";
import { largeImageStatements, MAX_PIXELS_PER_PARAM } from "../src/db/large-rows";
import { MAX_IMAGE_BYTES } from "../src/db/tables";
import { HEX_PIECE_BYTES, hexColumns } from "../src/read/pixel-columns";
import { stagingPrefix } from "../src/read/bucket";
import {
  capturingQueue,
  expectDataset,
  imagesGz,
  labelsGz,
  load,
  makeSplit,
  publishFiles,
  rows,
  trigger,
  uprightImage,
  waitForRun,
  type SplitData,
} from "./dataset-fixtures";
import { deliver, runStatus } from "./faults-helpers";
import { TOKEN } from "./helpers";
import { parseNpy } from "./npy";
import { strictD1 } from "./strict-d1";

const FILES = { trainImages: "tx.gz", trainLabels: "ty.gz", testImages: "vx.gz", testLabels: "vy.gz" };
const RGB_224: Shape = { rows: 224, cols: 224, channels: 3 };
const RGBA_300: Shape = { rows: 300, cols: 300, channels: 4 };

function dataset(shape: Shape, counts: { train: number; test: number }, seed: number) {
  const train = makeSplit(counts.train, shape, (i) => i % 3, seed);
  const test = makeSplit(counts.test, shape, (i) => (i + 1) % 3, seed + 1);
  // A few zero pixels, which the packed hex writes as one character each.
  train.pixels.fill(0, 0, 1000);
  return { train, test };
}

const archives = (d: { train: SplitData; test: SplitData }) => ({
  [FILES.trainImages]: imagesGz(d.train, { fourD: true }),
  [FILES.trainLabels]: labelsGz(d.train),
  [FILES.testImages]: imagesGz(d.test, { fourD: true }),
  [FILES.testLabels]: labelsGz(d.test),
});

const staged = async (name: string) => (await env.EXPORTS.list({ prefix: stagingPrefix(name) })).objects;

/** The app with another env (no bucket, a strict D1): a request, answered. */
async function request(path: string, bindings: Partial<Env>, init?: RequestInit): Promise<Response> {
  const { res, body } = await appFetch(path, { ...env, ...bindings }, init);
  return new Response(body, res);
}

/** The float32 bytes the export must hold for a split: every image upright, x / 255 as float32. */
const floats = (d: SplitData) => new Uint8Array(Float32Array.from(d.pixels, (b) => Math.fround(b / 255)).buffer);

describe("images larger than a queue message", () => {
  it("the shapes are past a message and within D1's row limit", () => {
    for (const s of [RGB_224, RGBA_300]) {
      const ppi = s.rows * s.cols * s.channels;
      expect(maxChunkImages(ppi)).toBe(0);
      expect(ppi).toBeLessThanOrEqual(MAX_IMAGE_BYTES);
    }
    expect(MAX_IMAGE_BYTES).toBe(499_998);
  });

  for (const [shape, seed] of [
    [RGB_224, 10],
    [RGBA_300, 20],
  ] as const) {
    const name = `big-${shape.rows}`;
    it(`${shape.rows}×${shape.cols}×${shape.channels} loads end to end through R2, bit-exact, and leaves nothing staged`, async () => {
      const data = dataset(shape, { train: 4, test: 2 }, seed);
      const run = await load({ dataset: name, source: await publishFiles(archives(data)), files: FILES });
      expect(run.error).toBeNull();
      expect(run.status).toBe("complete");
      await expectDataset(name, data);
      expect(await staged(name)).toEqual([]);

      // The export, the image as JSON and as a PNG: the same bytes back, whatever route.
      const npy = parseNpy(
        new Uint8Array(await (await request(`/datasets/${name}/export/train.npy`, {})).arrayBuffer()),
      );
      expect(npy.shape).toEqual([4, shape.rows, shape.cols, shape.channels]);
      expect(npy.data).toEqual(floats(data.train));
      const png = decode(
        new Uint8Array(await (await request(`/datasets/${name}/images/test/1.png`, {})).arrayBuffer()),
      );
      expect([png.width, png.height, png.channels]).toEqual([shape.cols, shape.rows, shape.channels]);
      expect(Uint8Array.from(png.data)).toEqual(uprightImage(data.test, 1, false));
    });
  }

  it("an image of the most D1 stores is bound in parts and read in pieces, each within D1's limit on a value", () => {
    const image = new Uint8Array(MAX_IMAGE_BYTES).fill(7); // no zero pixel: the longest packed hex
    const [insert] = largeImageStatements(
      "images__x__train__next",
      "run",
      {
        start: 0,
        labels: new Uint8Array(1),
        pixels: image,
        pixelsPerImage: image.length,
      },
      "",
    );
    const parts = insert!.params.slice(1) as string[];
    expect(parts.map((p) => p.length)).toEqual([2_000_000, 8 * (MAX_IMAGE_BYTES - MAX_PIXELS_PER_PARAM)]);
    // Expanded in SQL, a part is 8 digits a pixel at most: within the limit too; decoded and joined, the row.
    expect(MAX_PIXELS_PER_PARAM * 8).toBeLessThanOrEqual(2_000_000);
    expect(parts.map((p) => p.length / 2).reduce((a, b) => a + b)).toBe(MAX_IMAGE_BYTES * 4);
    const pieces = hexColumns("pixels", MAX_IMAGE_BYTES * 4);
    expect(pieces).toHaveLength(2);
    expect(HEX_PIECE_BYTES * 2).toBeLessThanOrEqual(2_000_000);
    expect(HEX_PIECE_BYTES % 4).toBe(0);
  });

  it("within production D1's limit on a value: a 1.44 MB row is inserted and read in parts", async () => {
    const data = dataset(RGBA_300, { train: 2, test: 1 }, 30);
    // One image's packed hex is past the limit: bound as one value, D1 would refuse it.
    expect(pixelsToPackedHex(data.test.pixels, data.test.pixels.length).text.length).toBeGreaterThan(2_000_000);
    const jobs = capturingQueue<ExtractMessage>();
    const run = await trigger(
      { dataset: "strict", source: await publishFiles(archives(data)), files: FILES },
      { jobs: jobs.queue },
    );
    const chunks = capturingQueue<ChunkMessage>();
    await runExtractJob(jobs.sent[0]!, { ...env, CHUNKS: chunks.queue }, readConfig(env));
    const strict = strictD1(env.DB);
    for (const m of chunks.sent)
      expect((await deliver(QUEUES.chunks, [m], { env: { DB: strict.db } })).thrown).toBeUndefined();
    expect((await runStatus(run.id)).status).toBe("complete");
    expect(strict.checked().longest).toBeGreaterThan(1_000_000);
    await expectDataset("strict", data);

    const exported = await request("/datasets/strict/export/train.npy", { DB: strict.db, EXPORTS: undefined });
    expect(exported.headers.get("X-Export-Source")).toBe("d1");
    expect(parseNpy(new Uint8Array(await exported.arrayBuffer())).data).toEqual(floats(data.train));
    const json = await request("/datasets/strict/images/test/0", { DB: strict.db });
    expect(json.status).toBe(200);
    const png = await request("/datasets/strict/images/test/0.png", { DB: strict.db });
    expect(Uint8Array.from(decode(new Uint8Array(await png.arrayBuffer())).data)).toEqual(
      uprightImage(data.test, 0, false),
    );
  });
});

describe("a chunk staged in R2", () => {
  it("is named by its message, deleted once committed; a redelivery after the commit is settled by the ledger", async () => {
    const data = dataset(RGB_224, { train: 6, test: 3 }, 40);
    const jobs = capturingQueue<ExtractMessage>();
    const run = await trigger(
      { dataset: "redelivered", source: await publishFiles(archives(data)), files: FILES },
      { jobs: jobs.queue },
    );
    const chunks = capturingQueue<ChunkMessage>();
    await runExtractJob(jobs.sent[0]!, { ...env, CHUNKS: chunks.queue }, readConfig(env));
    const [first, ...rest] = chunks.sent;
    // 150,528 bytes an image: three per chunk (R2_CHUNK_BYTES), so two train chunks and one test chunk.
    expect(chunks.sent.map((m) => [m.split, m.start, m.count])).toEqual([
      ["train", 0, 3],
      ["train", 3, 3],
      ["test", 0, 3],
    ]);
    for (const m of chunks.sent) {
      expect(m.pixels).toBeUndefined();
      expect(m.staged).toBe(`${stagingPrefix("redelivered")}${run.id}/${m.split}-${m.start}`);
      expect(messageBytes(m)).toBeLessThan(1000);
      expect((await env.EXPORTS.head(m.staged!))?.size).toBe(m.count * 150_528);
    }

    await deliver(QUEUES.chunks, [first!]);
    expect(await env.EXPORTS.head(first!.staged!)).toBeNull();
    // Delivered again (a duplicate, or a retry after the commit): the object is gone, the ledger has the chunk.
    const again = await deliver(QUEUES.chunks, [first!]);
    expect(again.result.explicitAcks).toEqual(again.ids);
    expect(await runStatus(run.id)).toMatchObject({ status: "loading", error: null, trainLoaded: 3 });

    for (const m of rest) await deliver(QUEUES.chunks, [m]);
    expect((await runStatus(run.id)).status).toBe("complete");
    await expectDataset("redelivered", data);
    expect(await staged("redelivered")).toEqual([]);
  });

  it("gone before its chunk was loaded fails the run saying so; a resume stages it again and completes", async () => {
    const data = dataset(RGB_224, { train: 3, test: 3 }, 50);
    const jobs = capturingQueue<ExtractMessage>();
    const run = await trigger(
      { dataset: "lost", source: await publishFiles(archives(data)), files: FILES },
      { jobs: jobs.queue },
    );
    const chunks = capturingQueue<ChunkMessage>();
    await runExtractJob(jobs.sent[0]!, { ...env, CHUNKS: chunks.queue }, readConfig(env));
    await env.EXPORTS.delete(chunks.sent[0]!.staged!);
    await deliver(QUEUES.chunks, [chunks.sent[0]!]);
    const failed = await runStatus(run.id);
    expect(failed.status).toBe("failed");
    expect(failed.error).toBe(
      `train images 0–2: its staged pixels (${chunks.sent[0]!.staged}) are gone, and the chunk is not loaded; resume the run to stage it again`,
    );
    const resumed = await request(
      `/runs/${run.id}/resume`,
      {},
      { method: "POST", headers: { Authorization: `Bearer ${TOKEN}` } },
    );
    expect(resumed.status).toBe(202);
    expect((await waitForRun(run.id)).status).toBe("complete");
    await expectDataset("lost", data);
  });
});

describe("without an R2 bucket", () => {
  const postRun = (source: string) =>
    request(
      "/runs",
      { EXPORTS: undefined },
      {
        method: "POST",
        headers: { Authorization: `Bearer ${TOKEN}` },
        body: JSON.stringify({ dataset: "no-bucket", source, files: FILES }),
      },
    );

  it("POST /runs refuses images a message cannot carry before its 202, naming the limit; nothing is recorded", async () => {
    const source = await publishFiles(archives(dataset(RGB_224, { train: 1, test: 1 }, 60)));
    const res = await postRun(source);
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: string }).error).toBe(
      `tx.gz: one image of 224×224×3 is 150528 bytes, more than a queue message (128 KB) can carry; bind an R2 bucket as EXPORTS (wrangler.toml [[r2_buckets]]) and images up to ${MAX_IMAGE_BYTES} bytes travel through it`,
    );
    expect(await rows("SELECT id FROM runs WHERE dataset = 'no-bucket'")).toEqual([]);

    // Images a message carries start as before.
    const small = await publishFiles(archives(dataset({ rows: 8, cols: 8, channels: 3 }, { train: 2, test: 1 }, 61)));
    const ok = await postRun(small);
    expect(ok.status).toBe(202);
    expect((await waitForRun(((await ok.json()) as { run: { id: string } }).run.id)).status).toBe("complete");
  });

  it("a run that gets that far anyway (the bucket unbound since) fails at once, naming the limit", async () => {
    const jobs = capturingQueue<ExtractMessage>();
    const source = await publishFiles(archives(dataset(RGB_224, { train: 1, test: 1 }, 62)));
    const run = await trigger({ dataset: "unbound", source, files: FILES }, { jobs: jobs.queue });
    await runExtractJob(jobs.sent[0]!, { ...env, EXPORTS: undefined } as unknown as Env, readConfig(env));
    expect((await runStatus(run.id)).error).toMatch(
      /^tx\.gz: one image of 224×224×3 is 150528 bytes, more than a queue message/,
    );
  });
});
