import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { SHAPE_28, expectDataset, type SplitData } from "./dataset-fixtures";
import { hits } from "./faults-helpers";
import { publish, runToEnd, syntheticArchives, syntheticSplit } from "./helpers";

const rows = async (sql: string, ...params: unknown[]) =>
  (
    await env.DB.prepare(sql)
      .bind(...params)
      .all()
  ).results;

describe("a synthetic dataset through the real Worker, queues and D1", () => {
  it("loads every image exactly once, with the right label and float32 pixels", async () => {
    // 1,234 train images: seven chunks of 160 and a ragged one, several statements each.
    const source = await publish(syntheticArchives(1234, 321));
    const run = await runToEnd({ source });
    expect(run.error).toBeNull();
    expect(run.status).toBe("complete");
    expect(run.splits).toEqual({ train: { expected: 1234, loaded: 1234 }, test: { expected: 321, loaded: 321 } });

    expect(
      await rows(
        "SELECT split, COUNT(*) AS n, MIN(idx) AS lo, MAX(idx) AS hi FROM images GROUP BY split ORDER BY split",
      ),
    ).toEqual([
      { split: "test", n: 321, lo: 0, hi: 320 },
      { split: "train", n: 1234, lo: 0, hi: 1233 },
    ]);

    // Every image of both splits, its label and each pixel's float32 bytes.
    const split = (count: number, seed: number): SplitData => ({
      count,
      shape: SHAPE_28,
      ...syntheticSplit(count, seed),
    });
    await expectDataset("fashion-mnist", { train: split(1234, 0), test: split(321, 1) });
  });

  it("re-running the same source rewrites nothing and keeps the same rows", async () => {
    const source = await publish(syntheticArchives(600, 100, 3));
    const first = await runToEnd({ source });
    expect(first.status).toBe("complete");
    const before = await rows("SELECT split, idx, label, hex(pixels) AS h FROM images ORDER BY split, idx");

    const imagesHits = () => hits(`${source}/train-images-idx3-ubyte.gz`);
    const hitsBefore = await imagesHits();
    const again = await runToEnd({ source });
    expect(again.status).toBe("complete");
    expect(again.unchanged).toBe(true);
    // Its images archives were downloaded once, to hash them, and no chunk was sent.
    expect(await imagesHits()).toBe(hitsBefore + 1);
    expect(await rows("SELECT COUNT(*) AS n FROM run_chunks WHERE run_id = ?", again.id)).toEqual([{ n: 0 }]);

    const forced = await runToEnd({ source, force: true });
    expect(forced.status).toBe("complete");
    expect(forced.unchanged).toBe(false);
    expect(await rows("SELECT split, idx, label, hex(pixels) AS h FROM images ORDER BY split, idx")).toEqual(before);
  });

  it("a smaller dataset replaces a larger one without leaving its extra rows", async () => {
    expect((await runToEnd({ source: await publish(syntheticArchives(900, 200, 5)) })).status).toBe("complete");
    const run = await runToEnd({ source: await publish(syntheticArchives(300, 50, 6)) });
    expect(run.status).toBe("complete");
    expect(await rows("SELECT split, COUNT(*) AS n FROM images GROUP BY split ORDER BY split")).toEqual([
      { split: "test", n: 50 },
      { split: "train", n: 300 },
    ]);
    // The swap rewrote the class counts /stats serves for the new dataset.
    const grouped = "SELECT split, label, COUNT(*) AS n FROM images GROUP BY split, label ORDER BY split, label";
    expect(await rows("SELECT split, label, n FROM class_counts ORDER BY split, label")).toEqual(await rows(grouped));
    expect((await rows("SELECT SUM(n) AS n FROM class_counts"))[0]).toEqual({ n: 350 });
  });
});
