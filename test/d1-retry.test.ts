/** retryingD1: that it retries transient D1 errors (d1-errors.test.ts), how often and how long it waits, on real local D1. */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { retryingD1, withD1Retry } from "../src/db/d1-retry";
import { flakyD1 } from "./flaky-d1";

const quiet = { onRetry: () => {}, sleep: async () => {} };

describe("withD1Retry", () => {
  it("tries at most `attempts` times with full-jitter exponential backoff, then rethrows the last error", async () => {
    const waits: number[] = [];
    let tries = 0;
    const err = new Error("D1_ERROR: D1 DB is overloaded. Too many requests queued.");
    await expect(
      withD1Retry(
        async () => {
          tries++;
          throw err;
        },
        {
          attempts: 5,
          backoff: { baseMs: 100, capMs: 2_000 },
          random: () => 0.999,
          sleep: async (ms) => void waits.push(ms),
          onRetry: () => {},
        },
      ),
    ).rejects.toBe(err);
    expect(tries).toBe(5);
    expect(waits).toEqual([99, 199, 399, 799]);
    // The cap bounds a long series.
    waits.length = 0;
    await expect(
      withD1Retry(() => Promise.reject(err), {
        attempts: 8,
        random: () => 0.999,
        sleep: async (ms) => void waits.push(ms),
        onRetry: () => {},
      }),
    ).rejects.toBe(err);
    expect(Math.max(...waits)).toBe(1998);
  });

  it("rethrows a non-transient error at once", async () => {
    for (const m of [
      "D1_ERROR: UNIQUE constraint failed: runs.id: SQLITE_CONSTRAINT",
      "D1_ERROR: D1 DB's isolate exceeded its memory limit and was reset.",
      'D1_ERROR: near "INSERTZ": syntax error at offset 0: SQLITE_ERROR',
    ]) {
      let tries = 0;
      const err = new Error(m);
      await expect(
        withD1Retry(async () => {
          tries++;
          throw err;
        }, quiet),
      ).rejects.toBe(err);
      expect(tries, m).toBe(1);
    }
  });
});

describe("retryingD1", () => {
  it("retries batch and prepared statements (bound or not), and a batch of its statements reaches D1 whole", async () => {
    const flaky = flakyD1(env.DB, { rate: 0.5, seed: 3 });
    const db = retryingD1(flaky.db, { ...quiet, attempts: 30 });
    await db.prepare("CREATE TABLE IF NOT EXISTS retry_probe (k INTEGER PRIMARY KEY, v TEXT)").run();
    await db.prepare("DELETE FROM retry_probe").run();
    for (let k = 0; k < 20; k++) {
      // Idempotent writes, as every write of the pipeline: an after-commit fault retried rewrites the same row.
      await db.batch([
        db
          .prepare("INSERT INTO retry_probe (k, v) VALUES (?1, ?2) ON CONFLICT (k) DO UPDATE SET v = excluded.v")
          .bind(k, `v${k}`),
        db.prepare("UPDATE retry_probe SET v = v || '!' WHERE k = ?1 AND v NOT LIKE '%!'").bind(k),
      ]);
    }
    const all = await db.prepare("SELECT k, v FROM retry_probe ORDER BY k").all<{ k: number; v: string }>();
    expect(all.results).toEqual(Array.from({ length: 20 }, (_, k) => ({ k, v: `v${k}!` })));
    expect(await db.prepare("SELECT COUNT(*) AS n FROM retry_probe").first("n")).toBe(20);
    expect(await db.prepare("SELECT k FROM retry_probe WHERE k = ?").bind(7).raw()).toEqual([[7]]);
    expect(flaky.faults.after).toBeGreaterThan(0);
    expect(flaky.faults.before + flaky.faults.overload).toBeGreaterThan(0);
    await env.DB.prepare("DROP TABLE retry_probe").run();
  });

  it("does not retry what is not transient", async () => {
    let batches = 0;
    const counting = new Proxy(env.DB, {
      get(target, prop) {
        if (prop === "batch")
          return (s: D1PreparedStatement[]) => {
            batches++;
            return target.batch(s);
          };
        const v = Reflect.get(target, prop, target) as unknown;
        return typeof v === "function" ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
    const db = retryingD1(counting, quiet);
    await expect(db.batch([db.prepare("SELECT * FROM no_such_table")])).rejects.toThrow(/no such table/);
    expect(batches).toBe(1);
  });
});
