/**
 * The first load (nothing to compare against) sends chunks as soon as they are
 * inflated, while the rest still downloads. These tests use a train split of
 * many chunks to prove that this overlap loads everything once, and that a run
 * cannot complete before every archive has passed its checks.
 */
import { env } from "cloudflare:workers";
import { expect, it } from "vitest";
import { publish, runToEnd, syntheticArchives } from "./helpers";

const TRAIN = 12_345; // 78 chunks of 160, the last one partial

it("loads a many-chunk split exactly once while it is still being extracted", async () => {
  const run = await runToEnd({ source: await publish(syntheticArchives(TRAIN, 700, 4)) });
  expect(run.error).toBeNull();
  expect(run.status).toBe("complete");
  expect(run.unchanged).toBe(false);
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
