import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import {
  D1_LIMITS,
  buildInsertStatements,
  chunksStatements,
  maxRowsPerStatement,
  runBatch,
  type ChunkRows,
} from "../src/pipeline/load";
import { FLOAT_OF_BYTE, ZERO_PIXEL, ZERO_PIXEL_HEX, float32LE } from "../src/pipeline/transform";

const utf8 = (s: string) => new TextEncoder().encode(s).length;

function chunk(count: number, start = 0): ChunkRows {
  const pixels = Uint8Array.from({ length: count * 784 }, (_, i) => (i * 13) % 256);
  const labels = Array.from({ length: count }, (_, i) => (i * 3) % 10).join("");
  return { split: "train", start, labels, pixels, pixelsPerImage: 784 };
}

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
    // A request for more rows than fit is capped at what fits: one parameter per row, plus the run id for the shadow.
    expect(buildInsertStatements(chunk(500), 10_000).length).toBe(5);
    expect(buildInsertStatements(chunk(500), 10_000, { into: "images_next", runId: "r" }).length).toBe(6);
    expect(maxRowsPerStatement({ into: "images" })).toBe(100);
  });

  it("spreads a chunk evenly over the fewest inserts, each row once with its label and own parameter", () => {
    const rows = chunk(500, 1000);
    const statements = chunksStatements("run-1", [rows], 125, "t");
    expect(statements.length).toBe(6 + 3); // 99 rows at most with the run id: 6 inserts of 84/84/84/84/84/80
    const seen: number[] = [];
    for (const s of statements.slice(0, 6)) {
      expect(s.params[0]).toBe("run-1");
      for (const [, idx, label, param] of s.sql.matchAll(/\('train',(\d+),(\d+),\?(\d+)\)/g)) {
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
    expect(statements.slice(0, 6).map((s) => s.params.length - 1)).toEqual([84, 84, 84, 84, 84, 80]);
    expect(statements[6]!.params).toEqual(["run-1", "train", 1000, 500]);
  });

  it("puts several chunks in one batch: each chunk's inserts and ledger row, then the run's progress and state", () => {
    const statements = chunksStatements("run-1", [chunk(160, 0), chunk(160, 160), chunk(80, 320)], 100, "t");
    const kinds = statements.map((s) =>
      s.sql.startsWith("INSERT INTO images_next")
        ? "rows"
        : s.sql.startsWith("INSERT INTO run_chunks")
          ? `ledger ${s.params[2]}`
          : s.sql.split(/\s/)[0],
    );
    expect(kinds).toEqual([
      "rows",
      "rows",
      "ledger 0",
      "rows",
      "rows",
      "ledger 160",
      "rows",
      "ledger 320",
      "UPDATE",
      "SELECT",
    ]);
  });

  it("refuses a split, start or labels that would not be safe as SQL literals", () => {
    expect(() => buildInsertStatements({ ...chunk(1), split: "x'); DROP TABLE images; --" as "train" }, 10)).toThrow(
      "invalid split",
    );
    expect(() => buildInsertStatements({ ...chunk(1), labels: "a" }, 10)).toThrow("invalid split, start or labels");
    expect(() => buildInsertStatements({ ...chunk(1), start: 1.5 }, 10)).toThrow("invalid split, start or labels");
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
