import { env } from "cloudflare:workers";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chunkDigest } from "../src/codec/digest";
import {
  D1_LIMITS,
  buildInsertStatements,
  chunksStatements,
  loadChunks,
  MAX_ROWS_PER_STATEMENT,
  type ChunkRows,
} from "../src/db/load";
import { runTransaction } from "../src/db/batch";
import { FLOAT_OF_BYTE, ZERO_PIXEL, ZERO_PIXEL_HEX, float32LE } from "../src/codec/transform";
import { createImageTableSql, shadowTable } from "../src/db/tables";

const TRAIN_SHADOW = shadowTable("fashion-mnist", "train");
const TEST_SHADOW = shadowTable("fashion-mnist", "test");

const utf8 = (s: string) => new TextEncoder().encode(s).length;

function chunk(count: number, start = 0): ChunkRows {
  const pixels = Uint8Array.from({ length: count * 784 }, (_, i) => (i * 13) % 256);
  const labels = Uint8Array.from({ length: count }, (_, i) => (i * 3) % 10);
  return {
    dataset: "fashion-mnist",
    split: "train",
    start,
    labels,
    pixels,
    pixelsPerImage: 784,
    digest: "0123456789abcdef0123456789abcdef",
  };
}

/** A run row in the state a consumer writes for: loading. */
const RUN = "load-test";
beforeAll(async () => {
  const at = new Date().toISOString();
  await env.DB.prepare(
    "INSERT INTO runs (id, trigger, source, status, chunks_total, created_at, updated_at) VALUES (?1, 'http', 'test', 'loading', 99, ?2, ?2)",
  )
    .bind(RUN, at)
    .run();
  for (const split of ["train", "test"] as const) {
    await env.DB.prepare(createImageTableSql(shadowTable("fashion-mnist", split), 784 * 4)).run();
  }
});
afterAll(() => env.DB.prepare("UPDATE runs SET status = 'failed' WHERE id = ?").bind(RUN).run());

describe("statement building within D1's limits", () => {
  it("keeps every statement within the bound-parameter, SQL-length and value-size limits", () => {
    for (const perStatement of [1, 99, 100, 10_000]) {
      const statements = chunksStatements("run-1", [chunk(500)], perStatement, "2026-01-01T00:00:00Z");
      for (const s of statements) {
        expect(s.params.length).toBeLessThanOrEqual(D1_LIMITS.boundParameters);
        expect(utf8(s.sql)).toBeLessThanOrEqual(D1_LIMITS.sqlBytes);
        for (const p of s.params) if (typeof p === "string") expect(utf8(p)).toBeLessThanOrEqual(D1_LIMITS.valueBytes);
      }
    }
    // A request for more rows than fit is capped at what fits: one parameter per row, plus the run id.
    expect(MAX_ROWS_PER_STATEMENT).toBe(99);
    expect(buildInsertStatements("r", chunk(500), 10_000).length).toBe(6);
  });

  it("spreads a chunk evenly over the fewest inserts, each row once with its label and own parameter", () => {
    const rows = chunk(500, 1000);
    const statements = chunksStatements("run-1", [rows], 125, "t");
    expect(statements.length).toBe(1 + 6 + 3); // the ledger row, 6 inserts of 84/84/84/84/84/80 (99 at most), the run's
    expect(statements[0]!.params).toEqual(["run-1", "train", 1000, 500, rows.digest]);
    const seen: number[] = [];
    for (const s of statements.slice(1, 7)) {
      expect(s.params[0]).toBe("run-1");
      for (const [, idx, label, param] of s.sql.matchAll(/\((\d+),(\d+),\?(\d+)\)/g)) {
        const k = Number(idx) - 1000;
        seen.push(Number(idx));
        expect(Number(label)).toBe(Number(rows.labels[k]));
        // The parameter, unpacked as the SQL does, is the image's float32 bytes in hex.
        expect((s.params[Number(param) - 1] as string).replaceAll(ZERO_PIXEL, ZERO_PIXEL_HEX)).toBe(
          [...float32LE(Float32Array.from(rows.pixels.subarray(k * 784, (k + 1) * 784), (b) => FLOAT_OF_BYTE[b]!))]
            .map((b) => b.toString(16).padStart(2, "0"))
            .join(""),
        );
      }
    }
    expect(seen).toEqual(Array.from({ length: 500 }, (_, i) => 1000 + i));
    expect(statements.slice(1, 7).map((s) => s.params.length - 1)).toEqual([84, 84, 84, 84, 84, 80]);
  });

  it("puts several chunks in one batch: each chunk's ledger row and inserts, then the run's progress, state and ledger", () => {
    const statements = chunksStatements("run-1", [chunk(160, 0), chunk(160, 160), chunk(80, 320)], 100, "t");
    const kinds = statements.map((s) =>
      s.sql.startsWith(`INSERT INTO ${TRAIN_SHADOW} `)
        ? "rows"
        : s.sql.startsWith("INSERT INTO run_chunks")
          ? `ledger ${s.params[2]}`
          : s.sql.split(/\s/)[0],
    );
    expect(kinds).toEqual([
      "ledger 0",
      "rows",
      "rows",
      "ledger 160",
      "rows",
      "rows",
      "ledger 320",
      "rows",
      "UPDATE",
      "SELECT",
      "SELECT",
    ]);
  });

  it("refuses a split, start, labels or digest that would not be safe as SQL literals", () => {
    const build = (rows: ChunkRows) => () => buildInsertStatements("r", rows, 10);
    expect(build({ ...chunk(1), split: "x'); DROP TABLE images; --" as "train" })).toThrow("invalid dataset, split");
    expect(build({ ...chunk(1), dataset: "x'); DROP TABLE runs; --" })).toThrow("invalid dataset, split");
    expect(build({ ...chunk(1), start: 1.5 })).toThrow("invalid dataset, split or start");
    expect(build({ ...chunk(1), digest: "' OR 1 = 1 --" })).toThrow("invalid digest");
  });

  it("rejects pixel data that does not match the label count", () => {
    expect(() => buildInsertStatements("r", { ...chunk(3), labels: Uint8Array.of(1, 2) }, 10)).toThrow(
      "2 images of 784",
    );
  });

  it("writes rows that D1 decodes into the exact float32 bytes, and rewriting is idempotent", async () => {
    const rows = { ...chunk(7, 40), split: "test" as const };
    const exact = { ...rows, digest: await chunkDigest(rows.labels, rows.pixels) };
    await loadChunks(env.DB, RUN, [exact], 3, "t");
    const again = await loadChunks(env.DB, RUN, [exact], 3, "t"); // a redelivered message
    expect(again.ledger).toEqual([{ split: "test", start: 40, digest: exact.digest }]);
    expect(again.state).toEqual({ status: "loading", total: 99, committed: 1 });
    const { results } = await env.DB.prepare(`SELECT idx, label, pixels FROM ${TEST_SHADOW} ORDER BY idx`).all<{
      idx: number;
      label: number;
      pixels: number[];
    }>();
    expect(results.map((r) => r.idx)).toEqual([40, 41, 42, 43, 44, 45, 46]);
    results.forEach((r, i) => {
      expect(r.label).toBe(Number(rows.labels[i]));
      const expected = float32LE(
        Float32Array.from(rows.pixels.subarray(i * 784, (i + 1) * 784), (b) => FLOAT_OF_BYTE[b]!),
      );
      expect(Uint8Array.from(r.pixels)).toEqual(expected);
    });
  });

  it("keeps the first version of a chunk: another one writes no row and finds the first digest in the ledger", async () => {
    const first = { ...chunk(5, 500), digest: "a".repeat(32) };
    await loadChunks(env.DB, RUN, [first], 100, "t");
    const before = await env.DB.prepare(
      `SELECT idx, label, hex(pixels) AS h FROM ${TRAIN_SHADOW} WHERE idx >= 500`,
    ).all();
    const other = { ...chunk(5, 500), pixels: new Uint8Array(5 * 784).fill(255), digest: "b".repeat(32) };
    const { ledger, state } = await loadChunks(env.DB, RUN, [other], 100, "t");
    expect(ledger).toEqual([{ split: "train", start: 500, digest: first.digest }]);
    expect(state!.committed).toBe(2);
    const after = await env.DB.prepare(
      `SELECT idx, label, hex(pixels) AS h FROM ${TRAIN_SHADOW} WHERE idx >= 500`,
    ).all();
    expect(after.results).toEqual(before.results);
    expect(after.results).toHaveLength(5);
  });
});

describe("a transaction's reads", () => {
  it("come back by name, whatever the writes before them", async () => {
    await env.DB.prepare("CREATE TABLE IF NOT EXISTS named_probe (k INTEGER PRIMARY KEY)").run();
    for (const writes of [0, 1, 5]) {
      const read = await runTransaction(env.DB, {
        writes: [
          { sql: "DELETE FROM named_probe", params: [] },
          ...Array.from({ length: writes }, (_, k) => ({
            sql: "INSERT INTO named_probe (k) VALUES (?1)",
            params: [k],
          })),
        ],
        reads: {
          count: { sql: "SELECT COUNT(*) AS n FROM named_probe", params: [] },
          most: { sql: "SELECT MAX(k) AS k FROM named_probe", params: [] },
        },
      });
      expect(Object.keys(read)).toEqual(["count", "most"]);
      expect(read.count.results).toEqual([{ n: writes }]);
      expect(read.most.results).toEqual([{ k: writes === 0 ? null : writes - 1 }]);
    }
    await env.DB.prepare("DROP TABLE named_probe").run();
  });
});
