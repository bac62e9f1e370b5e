/**
 * Live progress of a run for `npm run etl`: per split rows loaded / expected,
 * rate and ETA. Bars (cli-progress) on a terminal; on anything else (CI logs,
 * a pipe) plain lines, at most every few seconds, so logs stay readable.
 */
import { MultiBar, Presets, type SingleBar } from "cli-progress";

export interface SplitProgress {
  readonly expected: number | null;
  readonly loaded: number;
}

export interface RunProgress {
  readonly status: string;
  readonly splits: Record<string, SplitProgress>;
}

export interface ProgressView {
  update(run: RunProgress): void;
  stop(): void;
}

/** Rows per second since loading began, and the seconds left at that rate. */
export interface Pace {
  readonly rate: number;
  readonly etaSeconds: number | null;
}

export function pace(loaded: number, expected: number, elapsedMs: number): Pace {
  const rate = elapsedMs > 0 ? (loaded * 1000) / elapsedMs : 0;
  return { rate, etaSeconds: rate > 0 ? Math.max(0, expected - loaded) / rate : null };
}

const eta = (p: Pace): string => (p.etaSeconds === null ? "?" : `${Math.ceil(p.etaSeconds)} s`);

export function progressView(stream: NodeJS.WriteStream = process.stdout): ProgressView {
  return stream.isTTY ? new BarsView(stream) : new LinesView(stream);
}

/**
 * A split's rate is measured from the last time it was seen with no rows
 * (chunks are queued train first, so test starts later), or from the view's
 * start. Not from the first time rows were seen: a split that loads between
 * two looks would then show no rate at all.
 */
class Clock {
  private readonly createdAt = Date.now();
  private readonly emptyAt = new Map<string, number>();
  elapsed(split: string, loaded: number): number {
    const now = Date.now();
    if (loaded === 0) {
      this.emptyAt.set(split, now);
      return 0;
    }
    return now - (this.emptyAt.get(split) ?? this.createdAt);
  }
}

class BarsView implements ProgressView {
  private readonly multi: MultiBar;
  private readonly bars = new Map<string, SingleBar>();
  private readonly clock = new Clock();
  private status = "";

  constructor(stream: NodeJS.WriteStream) {
    this.multi = new MultiBar(
      {
        stream,
        format: " {split} [{bar}] {value}/{total} | {rate} rows/s | ETA {eta}",
        hideCursor: true,
        clearOnComplete: false,
        barsize: 24,
      },
      Presets.shades_classic,
    );
  }

  update(run: RunProgress): void {
    if (run.status !== this.status) {
      this.status = run.status;
      this.multi.log(`  ${run.status}\n`);
    }
    for (const [split, s] of Object.entries(run.splits)) {
      if (s.expected === null) continue;
      const p = pace(s.loaded, s.expected, this.clock.elapsed(split, s.loaded));
      const payload = { split: split.padEnd(5), rate: Math.round(p.rate), eta: eta(p) };
      const bar = this.bars.get(split);
      if (bar) bar.update(s.loaded, payload);
      else this.bars.set(split, this.multi.create(s.expected, s.loaded, payload));
    }
  }

  stop(): void {
    this.multi.stop();
  }
}

export class LinesView implements ProgressView {
  private readonly clock = new Clock();
  private last = "";
  private lastAt = 0;

  constructor(
    private readonly stream: NodeJS.WriteStream,
    private readonly everyMs = 2000,
  ) {}

  update(run: RunProgress): void {
    const total = Object.values(run.splits).reduce((n, s) => n + s.loaded, 0);
    const key = `${run.status} ${total}`;
    const done = run.status === "complete" || run.status === "failed";
    if (key === this.last || (!done && Date.now() - this.lastAt < this.everyMs && this.last.startsWith(run.status)))
      return;
    this.last = key;
    this.lastAt = Date.now();
    const parts = Object.entries(run.splits).map(([split, s]) => {
      if (s.expected === null) return `${split} ${s.loaded}/?`;
      const p = pace(s.loaded, s.expected, this.clock.elapsed(split, s.loaded));
      return `${split} ${s.loaded}/${s.expected} (${Math.round(p.rate)} rows/s, ETA ${eta(p)})`;
    });
    this.stream.write(`  ${run.status}: ${parts.join(", ")}\n`);
  }

  stop(): void {}
}
