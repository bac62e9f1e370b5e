/**
 * Datasets side by side in one database, each loaded and swapped on its own:
 * loading, reloading or failing one never touches another's rows; the catalog
 * and the `images` view list them all; one active run per dataset, not one
 * at all. Runs go through the pipeline and the real queues.
 */
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it } from "vitest";
import { REGISTRY, registryEntry } from "../src/core/registry";
import { resume, startRun } from "../src/pipeline/trigger";
import { activeRun } from "../src/db/run-reads";
import { failRun } from "../src/db/runs";
import type { RunRequest } from "../src/pipeline/dataset";
import {
  SHAPE_28,
  cfg,
  db,
  emnistZip,
  expectDataset,
  fingerprint,
  fingerprints,
  imagesGz,
  labelsGz,
  load,
  makeSplit,
  publishFiles,
  rows,
  specArchives,
  trigger,
  waitForRun,
} from "./dataset-fixtures";

const A = registryEntry("fashion-mnist")!;
const B = registryEntry("mnist")!;
const data = (seed: number, train = 40, test = 12) => ({
  train: makeSplit(train, SHAPE_28, (i) => i % 10, seed),
  test: makeSplit(test, SHAPE_28, (i) => (i * 3) % 10, seed + 1),
});
const catalog = async () =>
  (await rows<{ name: string; run_id: string }>("SELECT name, run_id FROM datasets ORDER BY name")).map(
    (r) => `${r.name}:${r.run_id}`,
  );
const inView = async () =>
  (await rows<{ dataset: string }>("SELECT DISTINCT dataset FROM images ORDER BY dataset")).map((r) => r.dataset);

/** A gzip whose trailer's CRC-32 is off by one: it inflates fully and fails only at its end. */
function badCrc(gz: Uint8Array): Uint8Array {
  const out = gz.slice();
  const view = new DataView(out.buffer);
  view.setUint32(out.length - 8, (view.getUint32(out.length - 8, true) + 1) >>> 0, true);
  return out;
}

describe("two datasets, loaded and swapped independently", () => {
  const a1 = data(1, 60, 20);
  const b1 = data(11, 45, 15);
  const a2 = data(21, 30, 10);
  let runA1: string, runB1: string, runA2: string;

  it("loading B leaves A's rows exactly as they were", async () => {
    const first = await load({ dataset: A.name, source: await publishFiles(specArchives(A, a1)) });
    expect(first.status).toBe("complete");
    runA1 = first.id;
    await expectDataset(A.name, a1);
    const before = await fingerprint(A.name);

    const second = await load({ dataset: B.name, source: await publishFiles(specArchives(B, b1)) });
    expect(second.error).toBeNull();
    expect(second.status).toBe("complete");
    runB1 = second.id;
    expect(await fingerprint(A.name)).toEqual(before);
    await expectDataset(B.name, b1);
  });

  it("reloading A with other data replaces A and leaves B's rows exactly as they were", async () => {
    const before = await fingerprint(B.name);
    const again = await load({ dataset: A.name, source: await publishFiles(specArchives(A, a2)) });
    expect(again.error).toBeNull();
    expect(again.status).toBe("complete");
    runA2 = again.id;
    await expectDataset(A.name, a2);
    expect(await fingerprint(B.name)).toEqual(before);
    // Each dataset's classes and counts are its own.
    expect(await rows("SELECT dataset, SUM(n) AS n FROM class_counts GROUP BY dataset ORDER BY dataset")).toEqual([
      { dataset: A.name, n: 40 },
      { dataset: B.name, n: 60 },
    ]);
    expect((await rows("SELECT name FROM classes WHERE dataset = ? AND label = 9", B.name))[0]).toEqual({
      name: "9 - nine",
    });
    expect((await rows("SELECT name FROM classes WHERE dataset = ? AND label = 9", A.name))[0]).toEqual({
      name: "Ankle boot",
    });
  });

  it("the catalog, the swap log and the images view list both", async () => {
    expect(await catalog()).toEqual([`${A.name}:${runA2}`, `${B.name}:${runB1}`]);
    expect(await inView()).toEqual([A.name, B.name]);
    expect(await rows("SELECT run_id, dataset, train_rows, test_rows FROM dataset_swaps ORDER BY swapped_at")).toEqual([
      { run_id: runA1, dataset: A.name, train_rows: 60, test_rows: 20 },
      { run_id: runB1, dataset: B.name, train_rows: 45, test_rows: 15 },
      { run_id: runA2, dataset: A.name, train_rows: 30, test_rows: 10 },
    ]);
  });

  it("a run of B that fails after loading began leaves A's and B's rows intact", async () => {
    const before = await fingerprints();
    const b2 = data(31, 200, 40);
    const archives = specArchives(B, b2);
    archives["t10k-images-idx3-ubyte.gz"] = badCrc(archives["t10k-images-idx3-ubyte.gz"]!);
    const failed = await load({ dataset: B.name, source: await publishFiles(archives) }, { force: true });
    expect(failed.status).toBe("failed");
    expect(failed.error).toMatch(
      /^t10k-images-idx3-ubyte\.gz: CRC-32 mismatch \(trailer 0x[0-9a-f]+, data 0x[0-9a-f]+\): archive is corrupt$/,
    );
    // It had begun: its plan was made and its train rows were on their way.
    expect(failed.chunksTotal).not.toBeNull();
    expect(await fingerprints()).toEqual(before);
    expect(await catalog()).toEqual([`${A.name}:${runA2}`, `${B.name}:${runB1}`]);
    // And a run of A that fails leaves B alone too.
    const refused = await load({ dataset: A.name, source: `${await publishFiles({})}/missing` });
    expect(refused.status).toBe("failed");
    expect(await fingerprints()).toEqual(before);

    // A later run of another dataset does not stop B's failed run from being resumed, once its source is mended.
    const good = specArchives(B, b2)["t10k-images-idx3-ubyte.gz"]!;
    expect((await fetch(`${failed.source}/t10k-images-idx3-ubyte.gz`, { method: "PUT", body: good })).status).toBe(201);
    const resumed = await resume(db(), env.JOBS, failed.id, cfg().leaseMs);
    expect(resumed.resumed).toBe(true);
    const done = await waitForRun(failed.id);
    expect(done.error).toBeNull();
    expect(done.status).toBe("complete");
    await expectDataset(B.name, b2);
    expect(await fingerprint(A.name)).toEqual(before[A.name]);
    expect(await catalog()).toEqual([`${A.name}:${runA2}`, `${B.name}:${failed.id}`]);
  });

  it("a source unchanged since its dataset's last complete run: complete without rewriting a row, the other untouched", async () => {
    const before = await fingerprints();
    const last = (
      await rows<{ source: string }>(
        "SELECT source FROM runs WHERE dataset = ? AND status = 'complete' ORDER BY finished_at DESC LIMIT 1",
        B.name,
      )
    )[0]!.source;
    const again = await load({ dataset: B.name, source: last });
    expect(again.status).toBe("complete");
    expect(again.unchanged).toBe(true);
    expect(await rows("SELECT COUNT(*) AS n FROM run_chunks WHERE run_id = ?", again.id)).toEqual([{ n: 0 }]);
    expect(await fingerprints()).toEqual(before);
  });

  it("runs of A and B at once both complete; a second run of A while one is active is refused", async () => {
    const a3 = data(41, 50, 10);
    const b3 = data(51, 35, 5);
    const [srcA, srcB] = [await publishFiles(specArchives(A, a3)), await publishFiles(specArchives(B, b3))];
    const runA = await trigger({ dataset: A.name, source: srcA });
    const runB = await trigger({ dataset: B.name, source: srcB });
    expect(
      (await rows("SELECT COUNT(*) AS n FROM runs WHERE status IN ('queued', 'extracting', 'loading')"))[0],
    ).toEqual({ n: 2 });
    const second = await startRun(
      db(),
      env.JOBS,
      { trigger: "http", dataset: A.name, source: srcA, force: true },
      cfg().leaseMs,
    );
    expect(second.started).toBe(false);
    if (!second.started) expect(second.active.id).toBe(runA.id);
    const [doneA, doneB] = await Promise.all([waitForRun(runA.id), waitForRun(runB.id)]);
    expect([doneA.status, doneB.status, doneA.error, doneB.error]).toEqual(["complete", "complete", null, null]);
    await expectDataset(A.name, a3);
    await expectDataset(B.name, b3);
    // A's runs: a1, a2, the failed one, a3; the refused second one was never recorded.
    expect(await rows("SELECT COUNT(*) AS n FROM runs WHERE dataset = ?", A.name)).toEqual([{ n: 4 }]);
  });
});

describe("more datasets side by side", () => {
  // A run left loading by a failed test would refuse the next test's run of its dataset.
  afterEach(async () => {
    for (let run = await activeRun(db()); run; run = await activeRun(db())) await failRun(db(), run.id, "test cleanup");
  });

  it("a third dataset joins: the catalog and the images view list all three, the others untouched", async () => {
    const before = await fingerprints();
    expect(Object.keys(before)).toEqual([A.name, B.name]);
    const kmnist = registryEntry("kmnist")!;
    const k = data(61);
    const run = await load({ dataset: kmnist.name, source: await publishFiles(specArchives(kmnist, k)) });
    expect(run.error).toBeNull();
    expect(run.status).toBe("complete");
    await expectDataset(kmnist.name, k);
    expect(await inView()).toEqual([A.name, kmnist.name, B.name]);
    const after = await fingerprints();
    expect(after[A.name]).toEqual(before[A.name]);
    expect(after[B.name]).toEqual(before[B.name]);
  });

  it("two new datasets whose runs go at once: both complete, both listed, the others untouched", async () => {
    const before = await fingerprints();
    const specs = [registryEntry("emnist-digits")!, registryEntry("emnist-mnist")!];
    const d = specs.map((_, i) => data(71 + i, 30 + i, 10));
    const runs = [];
    for (const [i, spec] of specs.entries())
      runs.push(
        await trigger({
          dataset: spec.name,
          source: await publishFiles({ "gzip.zip": emnistZip(specArchives(spec, d[i]!)) }),
        }),
      );
    const done = await Promise.all(runs.map((r) => waitForRun(r.id)));
    expect(done.map((r) => [r.dataset, r.status, r.error])).toEqual(specs.map((s) => [s.name, "complete", null]));
    for (const [i, spec] of specs.entries()) await expectDataset(spec.name, d[i]!, true);
    const listed = await inView();
    for (const name of [...Object.keys(before), ...specs.map((s) => s.name)]) expect(listed).toContain(name);
    const after = await fingerprints();
    for (const name of Object.keys(before)) expect(after[name]).toEqual(before[name]);
  });

  it("every registry dataset and a custom one at once: each listed, each with exactly its own rows", async () => {
    const loaded: Record<string, ReturnType<typeof data>> = {};
    const requests: RunRequest[] = [];
    for (const [i, spec] of REGISTRY.entries()) {
      const d = data(100 + i, 12 + i, 4);
      if (spec.name === "emnist-letters") {
        for (const s of [d.train, d.test]) s.labels.forEach((l, j) => (s.labels[j] = 1 + l));
      }
      const archives = specArchives(spec, d);
      requests.push({
        dataset: spec.name,
        source: await publishFiles(spec.zip ? { "gzip.zip": emnistZip(archives) } : archives),
      });
      loaded[spec.name] = d;
    }
    const mine = data(200, 9, 3);
    requests.push({
      dataset: "my-digits",
      source: await publishFiles({
        "a.gz": imagesGz(mine.train),
        "b.gz": labelsGz(mine.train),
        "c.gz": imagesGz(mine.test),
        "d.gz": labelsGz(mine.test),
      }),
      files: { trainImages: "a.gz", trainLabels: "b.gz", testImages: "c.gz", testLabels: "d.gz" },
    });
    loaded["my-digits"] = mine;
    // Every run is started before any is waited for: all of them are active together, and their
    // swaps race to change the catalog and the view.
    const started = [];
    for (const req of requests) started.push(await trigger(req));
    const done = await Promise.all(started.map((r) => waitForRun(r.id)));
    expect(done.map((r) => [r.dataset, r.status, r.error])).toEqual(requests.map((r) => [r.dataset, "complete", null]));
    // At once: the last run was started before the first one finished.
    const lastStarted = done
      .map((r) => r.createdAt)
      .sort()
      .at(-1)!;
    const firstFinished = done.map((r) => r.finishedAt!).sort()[0]!;
    expect(lastStarted < firstFinished, `last started ${lastStarted}, first finished ${firstFinished}`).toBe(true);

    const names = Object.keys(loaded).sort();
    expect(await inView()).toEqual(names);
    expect((await rows<{ name: string }>("SELECT name FROM datasets ORDER BY name")).map((r) => r.name)).toEqual(names);
    for (const name of names) await expectDataset(name, loaded[name]!, registryEntry(name)?.transposed ?? false);
    expect(
      await rows<{ dataset: string; n: number }>(
        "SELECT dataset, COUNT(*) AS n FROM images GROUP BY dataset ORDER BY dataset",
      ),
    ).toEqual(names.map((name) => ({ dataset: name, n: loaded[name]!.train.count + loaded[name]!.test.count })));
  });
});
