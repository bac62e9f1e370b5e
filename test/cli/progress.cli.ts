/** `npm run etl`'s progress lines: a rate and an ETA for every split, even one that loads between two looks. */
import { afterEach, beforeEach, expect, it, vi } from "vitest";
import { LinesView } from "../../scripts/lib/progress";

beforeEach(() => void vi.useFakeTimers({ now: 0 }));
afterEach(() => void vi.useRealTimers());

const lines = () => {
  const written: string[] = [];
  const view = new LinesView({ write: (s: string) => written.push(s) } as unknown as NodeJS.WriteStream, 0);
  return { view, written };
};

it("rates a split from when it was last seen empty, so one that loads between two looks has a rate", () => {
  const { view, written } = lines();
  const split = (loaded: number, expected = 1000) => ({ loaded, expected });
  view.update({ status: "loading", splits: { train: split(0), test: split(0) } });
  vi.advanceTimersByTime(500);
  view.update({ status: "loading", splits: { train: split(500), test: split(0) } });
  vi.advanceTimersByTime(500);
  // Test's 1,000 rows all landed within this look's 500 ms.
  view.update({ status: "complete", splits: { train: split(1000), test: split(1000) } });
  expect(written.at(1)).toBe("  loading: train 500/1000 (1000 rows/s, ETA 1 s), test 0/1000 (0 rows/s, ETA ?)\n");
  expect(written.at(-1)).toBe(
    "  complete: train 1000/1000 (1000 rows/s, ETA 0 s), test 1000/1000 (2000 rows/s, ETA 0 s)\n",
  );
});

it("rates a split already loaded when first seen from the view's start", () => {
  const { view, written } = lines();
  vi.advanceTimersByTime(2000);
  view.update({ status: "complete", splits: { train: { loaded: 300, expected: 300 } } });
  expect(written).toEqual(["  complete: train 300/300 (150 rows/s, ETA 0 s)\n"]);
});
