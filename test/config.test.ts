/** The wrangler.toml, the migrations and the code must agree; these catch drift. */
import { env } from "cloudflare:workers";
import { getTableConfig } from "drizzle-orm/sqlite-core";
import { describe, expect, it } from "vitest";
import wranglerToml from "../wrangler.toml?raw";
import * as schema from "../src/db/schema";
import { FASHION_MNIST } from "../src/core/datasets";
import { QUEUES } from "../src/pipeline/config";
import { CREATE_SHADOW_SQL } from "../src/db/load";

describe("configuration agrees with the code", () => {
  it("wrangler.toml declares the queues the queue handler dispatches on", () => {
    for (const name of Object.values(QUEUES)) expect(wranglerToml).toContain(`queue = "${name}"`);
    expect(wranglerToml).toContain(`dead_letter_queue = "${QUEUES.deadLetter}"`);
    expect(wranglerToml).toMatch(/database_name = "images"/);
  });

  it("drizzle's schema has exactly the columns the migrations create", async () => {
    for (const table of [
      schema.images,
      schema.imagesNext,
      schema.datasetSwaps,
      schema.classes,
      schema.runs,
      schema.runChunks,
      schema.classCounts,
      schema.shadowClaims,
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
    const { results } = await env.DB.prepare("SELECT label, name FROM classes ORDER BY label").all();
    expect(results).toEqual(FASHION_MNIST.classes.map((name, label) => ({ label, name })));
  });

  it("images and its shadow are one definition: the migrations create both alike", async () => {
    const sql = async (name: string) =>
      (await env.DB.prepare("SELECT sql FROM sqlite_master WHERE name = ?").bind(name).first<{ sql: string }>())!.sql;
    const body = (s: string) => s.replace(/^CREATE TABLE "?\w+"?\s*/, "").replace(/\s+/g, " ");
    expect(body(await sql("images"))).toBe(body(await sql("images_next")));
  });

  it("the swap recreates the shadow table exactly as the migration created it", async () => {
    const row = await env.DB.prepare("SELECT sql FROM sqlite_master WHERE name = 'images_next'").first<{
      sql: string;
    }>();
    const squash = (sql: string) =>
      sql
        .replace(/\s+/g, " ")
        .replace(/\s*([(),])\s*/g, "$1")
        .trim();
    expect(squash(row!.sql)).toBe(squash(CREATE_SHADOW_SQL));
  });
});
