import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import {
  D1_LIMITS,
  buildInsertStatements,
  chunkStatements,
  maxRowsPerStatement,
  runBatch,
  type ChunkRows,
} from "../src/pipeline/load";
import { FLOAT_OF_BYTE, float32LE } from "../src/pipeline/transform";

const utf8 = (s: string) => new TextEncoder().encode(s).length;

function chunk(count: number, start = 0): ChunkRows {
  const pixels = Uint8Array.from({ length: count * 784 }, (_, i) => (i * 13) % 256);
  const labels = Array.from({ length: count }, (_, i) => (i * 3) % 10).join("");
  return { split: "train", start, labels, pixels, pixelsPerImage: 784 };
}

describe("statement building within D1's limits", () => {
  it("keeps every statement within the bound-parameter, SQL-length and value-size limits", () => {
    for (const perStatement of [1, 125, maxRowsPerStatement(784), 10_000]) {
      const statements = chunkStatements("run-1", chunk(500), perStatement, "2026-01-01T00:00:00Z");
      for (const s of statements) {
        expect(s.params.length).toBeLessThanOrEqual(D1_LIMITS.boundParameters);
        expect(utf8(s.sql)).toBeLessThanOrEqual(D1_LIMITS.sqlBytes);
        for (const p of s.params) if (typeof p === "string") expect(utf8(p)).toBeLessThanOrEqual(D1_LIMITS.valueBytes);
      }
    }
    // A request for more rows than fit is capped at what fits.
    expect(buildInsertStatements(chunk(500), 10_000).length).toBe(Math.ceil(500 / maxRowsPerStatement(784)));
  });

  it("splits a chunk into ceil(count / rowsPerStatement) inserts plus the ledger and progress", () => {
    const statements = chunkStatements("run-1", chunk(500, 1000), 125, "t");
    expect(statements.length).toBe(4 + 2);
    expect(statements.slice(0, 4).map((s) => s.params[1])).toEqual([1000, 1125, 1250, 1375]);
    expect(statements[4]!.params).toEqual(["run-1", "train", 1000, 500]);
  });

  it("rejects pixel data that does not match the label count", () => {
    expect(() => buildInsertStatements({ ...chunk(3), labels: "12" }, 10)).toThrow("2 images of 784");
  });

  it("writes rows that D1 decodes into the exact float32 bytes, and rewriting is idempotent", async () => {
    const rows = chunk(7, 40);
    const statements = buildInsertStatements(rows, 3);
    await runBatch(env.DB, statements);
    await runBatch(env.DB, statements); // a redelivered message
    const { results } = await env.DB.prepare(
      "SELECT idx, label, pixels FROM images WHERE split = 'train' ORDER BY idx",
    ).all<{ idx: number; label: number; pixels: number[] }>();
    expect(results.map((r) => r.idx)).toEqual([40, 41, 42, 43, 44, 45, 46]);
    results.forEach((r, i) => {
      expect(r.label).toBe(Number(rows.labels[i]));
      const expected = float32LE(
        Float32Array.from(rows.pixels.subarray(i * 784, (i + 1) * 784), (b) => FLOAT_OF_BYTE[b]!),
      );
      expect(Uint8Array.from(r.pixels)).toEqual(expected);
    });
  });
});
