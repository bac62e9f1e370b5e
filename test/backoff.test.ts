/** The one backoff (core/backoff.ts), and the queue retries' delays drawn from it (D1 retries: d1-retry.test.ts). */
import { describe, expect, it } from "vitest";
import { backoffMs } from "../src/core/backoff";
import { retryDelaySeconds } from "../src/pipeline/consume";
import { mulberry32 } from "./idx-fixtures";

const policy = { baseMs: 100, capMs: 1_000 };
const almostOne = () => 1 - 2 ** -40;

describe("backoffMs", () => {
  it("draws retry n from [0, min(cap, base · 2^(n-1)))", () => {
    expect([1, 2, 3, 4, 5, 6].map((n) => backoffMs(n, policy, almostOne))).toEqual([99, 199, 399, 799, 999, 999]);
    expect([1, 2, 3, 4, 5, 6].map((n) => backoffMs(n, policy, () => 0))).toEqual([0, 0, 0, 0, 0, 0]);
    expect(backoffMs(3, policy, () => 0.5)).toBe(200);
    // An attempt below 1 waits as the first retry does.
    expect(backoffMs(0, policy, almostOne)).toBe(99);
  });

  it("spreads callers over the whole step (full jitter), not in step with each other", () => {
    const random = mulberry32(17);
    const waits = Array.from({ length: 2_000 }, () => backoffMs(4, policy, random));
    expect(Math.min(...waits)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...waits)).toBeLessThan(800);
    // Each tenth of the step gets its share (200 expected), so retries do not bunch up.
    const tenths = Array.from({ length: 10 }, (_, k) => waits.filter((w) => Math.floor(w / 80) === k).length);
    for (const n of tenths) expect(n).toBeGreaterThan(150);
  });
});

describe("queue retries", () => {
  it("queue retries: whole seconds up to 2, 4, 8 … capped at a minute", () => {
    expect([1, 2, 3, 4, 5, 6, 7, 20].map((n) => retryDelaySeconds(n, almostOne))).toEqual([
      2, 4, 8, 16, 32, 60, 60, 60,
    ]);
    expect([1, 5, 20].map((n) => retryDelaySeconds(n, () => 0.5))).toEqual([1, 16, 30]);
    expect(retryDelaySeconds(3, () => 0)).toBe(0);
    const random = mulberry32(5);
    for (let i = 0; i < 500; i++) {
      const s = retryDelaySeconds(3, random);
      expect(Number.isInteger(s) && s >= 0 && s <= 8).toBe(true);
    }
  });
});
