/**
 * The first load (nothing to compare against) sends chunks as soon as they are
 * inflated, while the rest still downloads. These tests use a train split of
 * many chunks to prove that this overlap loads everything once, and that a run
 * cannot complete before every archive has passed its checks.
 */
import { env } from "cloudflare:workers";
import { expect, it } from "vitest";
import { gzipSync } from "fflate";
import { getRun, idxBytes, publish, runToEnd, startRun, syntheticArchives, syntheticSplit } from "./helpers";
import { mulberry32 } from "./idx-fixtures";

const TRAIN = 12_345; // 78 chunks of 160, the last one partial
const TRAIN_IMAGES = "train-images-idx3-ubyte.gz";

/**
 * syntheticArchives' train images, but the first 160 bytes of each image noise:
 * about 2 MB compressed, several of the blocks the download is read in.
 */
function noisyTrainImages(seed: number): Uint8Array {
  const { pixels } = syntheticSplit(TRAIN, seed);
  const rnd = mulberry32(seed);
  for (let i = 0; i < TRAIN; i++) for (let p = 0; p < 160; p++) pixels[i * 784 + p] = Math.floor(rnd() * 256);
  return gzipSync(idxBytes([TRAIN, 28, 28], pixels));
}

it("loads a many-chunk split exactly once while it is still being extracted", async () => {
  // The train images archive trickles in over about a second, so the extraction job is
  // still reading it while the chunks it already sent are loaded.
  const archives = { ...syntheticArchives(TRAIN, 700, 4), [TRAIN_IMAGES]: noisyTrainImages(4) };
  const source = await publish(archives, { [TRAIN_IMAGES]: "trickle:131072:60" });
  const started = await startRun({ source });
  // Polled straight from D1 until the run ends: was a chunk ever committed (rows counted as
  // loaded) while the train images archive was not yet read to its end (its MD5 not yet pinned)?
  let overlapped = false;
  for (;;) {
    const r = await env.DB.prepare(
      "SELECT status, train_loaded + test_loaded AS loaded, checksums FROM runs WHERE id = ?",
    )
      .bind(started.id)
      .first<{ status: string; loaded: number; checksums: string | null }>();
    const pinned = JSON.parse(r!.checksums ?? "{}") as Record<string, string>;
    if (r!.loaded > 0 && pinned[TRAIN_IMAGES] === undefined) overlapped = true;
    if (r!.status === "complete" || r!.status === "failed") break;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  const run = await getRun(started.id);
  expect(run.error).toBeNull();
  expect(run.status).toBe("complete");
  expect(run.unchanged).toBe(false);
  expect(overlapped).toBe(true);
  const { results } = await env.DB.prepare(
    "SELECT split, COUNT(*) AS n, COUNT(DISTINCT idx) AS d, MAX(idx) AS hi FROM images GROUP BY split ORDER BY split",
  ).all();
  expect(results).toEqual([
    { split: "test", n: 700, d: 700, hi: 699 },
    { split: "train", n: TRAIN, d: TRAIN, hi: TRAIN - 1 },
  ]);
  // All four MD5s are recorded once the archives are done, not only the labels'.
  expect(Object.keys(run.checksums ?? {}).sort()).toEqual([
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
  ]);
});

it("a corrupt trailer found after the first chunks were loaded fails the run, and nothing is swapped in", async () => {
  const archives = syntheticArchives(TRAIN, 700, 5);
  const images = archives["train-images-idx3-ubyte.gz"]!.slice();
  images[images.length - 8]! ^= 0xff; // the gzip CRC-32: every byte inflates fine, the check fails at the end
  const fingerprint =
    "SELECT split, COUNT(*) AS n, SUM(label) AS l, SUM(length(pixels)) AS b FROM images GROUP BY split";
  const before = (await env.DB.prepare(fingerprint).all()).results;
  // force: reload without verifying first, the schedule that overlaps loading and download.
  const source = await publish({ ...archives, "train-images-idx3-ubyte.gz": images });
  const run = await runToEnd({ source, force: true });
  expect(run.status).toBe("failed");
  expect(run.error).toMatch(/^train-images-idx3-ubyte\.gz: CRC-32 mismatch/);
  // Chunks of the train split were queued (and may have been loaded into the shadow table)
  // before the trailer was read; its last chunk never was, so the run could not complete,
  // and `images` still holds the previous dataset, untouched.
  expect((await env.DB.prepare(fingerprint).all()).results).toEqual(before);
});
