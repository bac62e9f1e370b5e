/** The wrangler.toml, the migrations and the code must agree; these catch drift. */
import { env } from "cloudflare:workers";
import { getTableConfig } from "drizzle-orm/sqlite-core";
import { describe, expect, it } from "vitest";
import wranglerToml from "../wrangler.toml?raw";
import * as schema from "../src/db/schema";
import { FASHION_MNIST } from "../src/core/registry";
import { QUEUES } from "../src/pipeline/config";
import { createImageTableSql, imagesViewSql, liveTable } from "../src/db/tables";

describe("configuration agrees with the code", () => {
  it("wrangler.toml declares the queues the queue handler dispatches on", () => {
    for (const name of Object.values(QUEUES)) expect(wranglerToml).toContain(`queue = "${name}"`);
    expect(wranglerToml).toContain(`dead_letter_queue = "${QUEUES.deadLetter}"`);
    expect(wranglerToml).toMatch(/database_name = "images"/);
  });

  it("drizzle's schema has exactly the columns the migrations create", async () => {
    for (const table of [
      schema.datasets,
      schema.datasetSwaps,
      schema.classes,
      schema.runs,
      schema.runChunks,
      schema.classCounts,
      schema.shadowClaims,
      schema.datasetExports,
      schema.exportFiles,
      schema.datasetDeletions,
      schema.viewGuards,
    ]) {
      const { name, columns, primaryKeys } = getTableConfig(table);
      const keyColumns = new Set(primaryKeys.flatMap((pk) => pk.columns.map((c) => c.name)));
      const { results } = await env.DB.prepare(`SELECT name, "notnull" AS nn FROM pragma_table_info(?)`)
        .bind(name)
        .all<{
          name: string;
          nn: number;
        }>();
      expect(results.map((r) => r.name).sort(), name).toEqual(columns.map((c) => c.name).sort());
      for (const c of columns) {
        const primary = c.primary || keyColumns.has(c.name); // composite keys are NOT NULL too
        expect(results.find((r) => r.name === c.name)!.nn === 1 || primary, `${name}.${c.name}`).toBe(c.notNull);
      }
    }
  });

  it("the classes table names Fashion-MNIST's ten classes in label order", async () => {
    const { results } = await env.DB.prepare(
      "SELECT label, name FROM classes WHERE dataset = 'fashion-mnist' ORDER BY label",
    ).all();
    expect(results).toEqual(FASHION_MNIST.classes!.map((name, label) => ({ label, name })));
  });

  it("the migrations create Fashion-MNIST's tables and the view exactly as the code does", async () => {
    const sql = async (name: string) =>
      (await env.DB.prepare("SELECT sql FROM sqlite_master WHERE name = ?").bind(name).first<{ sql: string }>())!.sql;
    const squash = (sql: string) =>
      sql
        .replace(/\s+/g, " ")
        .replace(/\s*([(),])\s*/g, "$1")
        .trim();
    for (const split of ["train", "test"] as const) {
      const table = liveTable("fashion-mnist", split);
      expect(squash(await sql(table))).toBe(squash(createImageTableSql(table, 28 * 28 * 4)));
    }
    expect(squash(await sql("images"))).toBe(squash(imagesViewSql(["fashion-mnist"])));
  });
});
