/**
 * `npm run etl -- --delete NAME`, as a user runs it: it starts the local
 * Worker, calls DELETE /datasets/NAME and says what went. Here on a fresh
 * local state whose only dataset is the migrations' (empty) Fashion-MNIST
 * tables: the cheapest state that has tables to drop.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { etl } from "./etl-process";
import { afterAll, beforeAll, expect, it } from "vitest";
import { applyLocalMigrations, localD1 } from "../../scripts/lib/dev-server";

let work: string;
let state: string;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "idx-etl-delete-"));
  state = join(work, "state");
  await applyLocalMigrations({ persistTo: state });
});

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

it("--delete drops the dataset's tables and says so; the view still answers", async () => {
  const tables = () =>
    localD1<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'images__%'", {
      persistTo: state,
    });
  expect((await tables()).map((t) => t.name).sort()).toEqual([
    "images__fashion_mnist__test",
    "images__fashion_mnist__train",
  ]);
  const deleted = await etl(["--delete", "fashion-mnist", "--persist-to", state]);
  expect(deleted.stderr).toBe("");
  expect(deleted.code).toBe(0);
  expect(deleted.stdout).toContain(
    "deleted fashion-mnist: tables images__fashion_mnist__test, images__fashion_mnist__train; 0 runs, 0 R2 objects",
  );
  expect(deleted.stdout).toContain("fashion-mnist is a registry dataset: now empty");
  expect(await tables()).toEqual([]);
  expect(await localD1("SELECT COUNT(*) AS n FROM images", { persistTo: state })).toEqual([{ n: 0 }]);
});

it("--delete of a name nothing has used exits 1 with the Worker's 404; a bad one is a usage error", async () => {
  const [unknown, bad, mixed] = await Promise.all([
    etl(["--delete", "never-loaded", "--persist-to", state]),
    etl(["--delete", "Not_A_Name"]),
    etl(["--delete", "mnist", "--source", "/tmp"]),
  ]);
  expect(unknown.code).toBe(1);
  expect(unknown.stderr).toContain("could not delete never-loaded: HTTP 404: no dataset never-loaded");
  expect(bad.code).toBe(2);
  expect(bad.stderr).toContain('--delete must name a dataset (lower-case words joined by "-"), got "Not_A_Name"');
  expect(mixed.code).toBe(2);
  expect(mixed.stderr).toContain("--delete deletes a dataset; it takes no --source");
});
