/**
 * Upgrading a database that holds Fashion-MNIST in the single-dataset layout
 * (migrations 0001–0004) to datasets side by side (0005): every row kept, bit
 * for bit, with no reload; the contract's SELECT, the classes, the counts and
 * the dataset's version carried over.
 */
import { applyD1Migrations } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { mulberry32 } from "./idx-fixtures";

const before = env.TEST_MIGRATIONS.filter((m) => m.name < "0005");
const upgrade = env.TEST_MIGRATIONS.filter((m) => m.name.startsWith("0005"));

describe("migration 0005 on a database that holds Fashion-MNIST", () => {
  it("keeps every row, its version, classes and counts, and makes images a view with a dataset column", async () => {
    expect(before).toHaveLength(4);
    expect(upgrade).toHaveLength(1);
    const db = env.LEGACY_DB;
    await applyD1Migrations(db, before);
    // A complete run of the old layout: 30 train and 7 test rows, a swap, class counts.
    const random = mulberry32(5);
    const rows = [
      ...Array.from({ length: 30 }, (_, idx) => ({ split: "train", idx })),
      ...Array.from({ length: 7 }, (_, idx) => ({ split: "test", idx })),
    ].map((r) => ({ ...r, label: Math.floor(random() * 10), hex: "" }));
    for (const r of rows) {
      const bytes = Uint8Array.from({ length: 3136 }, () => Math.floor(random() * 256));
      r.hex = [...bytes]
        .map((b) => b.toString(16).padStart(2, "0"))
        .join("")
        .toUpperCase();
    }
    const at = "2026-11-01T00:00:00.000Z";
    await db.batch([
      db
        .prepare(
          `INSERT INTO runs (id, trigger, source, status, checksums, train_expected, test_expected, train_loaded, test_loaded, chunks_total, created_at, updated_at, finished_at)
           VALUES ('old-run', 'cron', 'http://fashion-mnist.s3-website.eu-central-1.amazonaws.com', 'complete', '{}', 30, 7, 30, 7, 2, ?1, ?1, ?1)`,
        )
        .bind(at),
      db
        .prepare(
          `INSERT INTO runs (id, trigger, source, status, created_at, updated_at, finished_at, error, chunks_total)
           VALUES ('failed-run', 'http', 'x', 'failed', ?1, ?1, ?1, 'interrupted', 2)`,
        )
        .bind("2026-11-02T00:00:00.000Z"),
      ...rows.map((r) =>
        db
          .prepare("INSERT INTO images (split, idx, label, pixels) VALUES (?1, ?2, ?3, unhex(?4))")
          .bind(r.split, r.idx, r.label, r.hex),
      ),
      db
        .prepare(
          "INSERT INTO dataset_swaps (run_id, run_status, train_rows, test_rows, train_expected, test_expected, swapped_at) VALUES ('old-run', 'loading', 30, 7, 30, 7, ?1)",
        )
        .bind(at),
      db.prepare(
        "INSERT INTO class_counts (split, label, n) SELECT split, label, COUNT(*) FROM images GROUP BY split, label",
      ),
      db.prepare("INSERT INTO images_next (split, idx, label, pixels) VALUES ('train', 0, 1, zeroblob(3136))"),
    ]);
    const counts = (await db.prepare("SELECT split, label, n FROM class_counts ORDER BY split, label").all()).results;

    await applyD1Migrations(db, upgrade);

    // The contract's SELECT is unchanged, and the rows are the same bytes.
    const after = await db
      .prepare(
        "SELECT split, idx, label, hex(pixels) AS hex FROM images ORDER BY split DESC, idx", // train before test
      )
      .all<{ split: string; idx: number; label: number; hex: string }>();
    expect(after.results).toEqual(rows);
    expect((await db.prepare("SELECT DISTINCT dataset FROM images").all<{ dataset: string }>()).results).toEqual([
      { dataset: "fashion-mnist" },
    ]);
    // Stored in the per-split tables behind the view; the old shadow is gone.
    const tables = (
      await db
        .prepare("SELECT name, type FROM sqlite_master WHERE name LIKE 'images%' ORDER BY name")
        .all<{ name: string; type: string }>()
    ).results;
    expect(tables).toEqual([
      { name: "images", type: "view" },
      { name: "images__fashion_mnist__test", type: "table" },
      { name: "images__fashion_mnist__train", type: "table" },
    ]);
    // The version, classes and counts carry over, now per dataset.
    expect(
      await db
        .prepare("SELECT name, run_id, swapped_at FROM datasets")
        .all()
        .then((r) => r.results),
    ).toEqual([{ name: "fashion-mnist", run_id: "old-run", swapped_at: at }]);
    expect(
      (await db.prepare("SELECT dataset, run_id, train_rows, catalog_size FROM dataset_swaps").all()).results,
    ).toEqual([{ dataset: "fashion-mnist", run_id: "old-run", train_rows: 30, catalog_size: 1 }]);
    expect(
      (
        await db
          .prepare("SELECT split, label, n FROM class_counts WHERE dataset = 'fashion-mnist' ORDER BY split, label")
          .all()
      ).results,
    ).toEqual(counts);
    expect((await db.prepare("SELECT COUNT(*) AS n FROM classes WHERE dataset = 'fashion-mnist'").first())!.n).toBe(10);
    // Runs: Fashion-MNIST's, with the shape the old layout held; a failed one is not resumable (its shadow is gone).
    expect(
      (
        await db
          .prepare("SELECT id, dataset, image_rows, image_cols, image_channels, resumable FROM runs ORDER BY id")
          .all()
      ).results,
    ).toEqual([
      {
        id: "failed-run",
        dataset: "fashion-mnist",
        image_rows: null,
        image_cols: null,
        image_channels: null,
        resumable: 0,
      },
      { id: "old-run", dataset: "fashion-mnist", image_rows: 28, image_cols: 28, image_channels: 1, resumable: 1 },
    ]);
    // The new tables keep the data contract's checks.
    await expect(
      db.prepare("INSERT INTO images__fashion_mnist__train (idx, label, pixels) VALUES (99, 1, zeroblob(3135))").run(),
    ).rejects.toThrow(/CHECK constraint failed/);
  });
});
