/**
 * The guards inside the transactions that change which tables exist: a
 * deletion refuses while a run of its dataset is active, whatever its caller
 * checked before; and a deletion or swap planned on tables that have changed
 * since (one dropped by hand) is refused whole by the view's guard, rather than
 * recreating `images` over a missing table. Then a swap, planned again, goes
 * through.
 */
import { env } from "cloudflare:workers";
import { expect, it } from "vitest";
import { runBatch } from "../src/db/batch";
import { deleteFromD1, deleteStatements } from "../src/db/delete";
import { swapStatements } from "../src/db/load";
import { readViewPlan, viewGuard } from "../src/db/view";
import { imagesGz, labelsGz, load, makeSplit, publishFiles, rows, SHAPE_28 } from "./dataset-fixtures";

const FILES = { trainImages: "tx.gz", trainLabels: "ty.gz", testImages: "vx.gz", testLabels: "vy.gz" };

async function loadCustom(dataset: string, seed: number) {
  const [train, test] = [makeSplit(20, SHAPE_28, (i) => i % 2, seed), makeSplit(5, SHAPE_28, (i) => i % 2, seed + 1)];
  const source = await publishFiles({
    [FILES.trainImages]: imagesGz(train),
    [FILES.trainLabels]: labelsGz(train),
    [FILES.testImages]: imagesGz(test),
    [FILES.testLabels]: labelsGz(test),
  });
  const run = await load({ dataset, source, files: FILES });
  expect(run.status, run.error ?? "").toBe("complete");
  return run;
}

const tables = (like: string) =>
  rows<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE ? ORDER BY name", like);

it("a deletion is refused inside its transaction while a run of the dataset is active", async () => {
  await loadCustom("busy", 1);
  const at = new Date().toISOString();
  await env.DB.prepare(
    "INSERT INTO runs (id, dataset, trigger, source, status, created_at, updated_at) VALUES ('busy-run', 'busy', 'http', 'x', 'loading', ?1, ?1)",
  )
    .bind(at)
    .run();
  expect(await deleteFromD1(env.DB, "busy", crypto.randomUUID(), at)).toEqual({ deleted: false });
  expect(await tables("images__busy__%")).toHaveLength(2);
  expect(await rows("SELECT COUNT(*) AS n FROM runs WHERE dataset = 'busy'")).toEqual([{ n: 2 }]);
  expect(await rows("SELECT 1 FROM dataset_deletions")).toEqual([]);
});

it("a deletion planned before a table went is refused whole by the view's guard", async () => {
  await loadCustom("planned", 3);
  await loadCustom("victim", 4);
  const plan = await readViewPlan(env.DB, "planned");
  expect(plan.others.map((t) => t.table)).toEqual(
    expect.arrayContaining(["images__victim__test", "images__victim__train"]),
  );
  await env.DB.exec("DROP TABLE images__victim__train");
  await expect(runBatch(env.DB, deleteStatements("d1", plan, new Date().toISOString()))).rejects.toThrow(
    /constraint failed/i,
  );
  expect(await tables("images__planned__%")).toHaveLength(2);
  expect(await rows("SELECT name FROM datasets WHERE name = 'planned'")).toEqual([{ name: "planned" }]);
  expect(await rows("SELECT * FROM view_guards")).toEqual([]);
  // Planned again, on the tables that exist, it goes through.
  expect((await deleteFromD1(env.DB, "planned", "d2", new Date().toISOString())).deleted).toBe(true);
  expect(await tables("images__planned__%")).toEqual([]);
});

it("a swap opens with the view's guard, which refuses a plan the tables no longer match", async () => {
  const run = await loadCustom("swapper", 5);
  await loadCustom("gone", 6);
  const plan = await readViewPlan(env.DB, "swapper");
  const swap = swapStatements(
    { id: run.id, dataset: "swapper" },
    {
      expected: { train: 20, test: 5 },
      others: ["gone"],
      view: plan,
      classNames: [],
      provenance: { official: false, source: "" },
    },
    new Date().toISOString(),
  );
  expect(swap[1]).toEqual(viewGuard(run.id, plan));
  const release = { sql: "DELETE FROM view_guards WHERE id = ?1", params: ["g"] };
  // While the tables are as planned the guard lets a batch through (and the batch releases it) …
  await runBatch(env.DB, [viewGuard("g", plan), release]);
  await env.DB.exec("DROP TABLE images__gone__test");
  // … and once one has gone, it aborts it.
  await expect(runBatch(env.DB, [viewGuard("g", plan), release])).rejects.toThrow(/constraint failed/i);
  await runBatch(env.DB, [viewGuard("g", await readViewPlan(env.DB, "swapper")), release]);
  expect(await rows("SELECT * FROM view_guards")).toEqual([]);
});
