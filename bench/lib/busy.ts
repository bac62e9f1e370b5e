/**
 * How the API answers while a job runs: requests sent on a fixed schedule,
 * whether or not the earlier ones were answered (open loop, as several
 * dashboards polling would), each timed from its send to its body's end. A
 * Worker that stops answering for 10 s then shows as ~100 slow answers per
 * path, not as one.
 */
import { percentile } from "./stats";

export interface BusyProbe {
  /** Stop sending; wait for the answers still out. */
  stop(): Promise<void>;
  /** Per path, in the order answered: when each was sent (performance.now()) and how long it took (ms). */
  readonly latencies: Readonly<Record<string, { at: number; ms: number }[]>>;
}

export function busyProbe(base: string, paths: readonly string[], everyMs = 250): BusyProbe {
  const latencies: Record<string, { at: number; ms: number }[]> = Object.fromEntries(paths.map((p) => [p, []]));
  const out = new Set<Promise<void>>();
  const errors: string[] = [];
  const send = (path: string) => {
    const t0 = performance.now();
    const p = fetch(`${base}${path}`, { headers: { "x-bench-unmetered": "1" } })
      .then(async (res) => {
        await res.arrayBuffer();
        if (!res.ok) throw new Error(`GET ${path}: HTTP ${res.status}`);
        latencies[path]!.push({ at: t0, ms: performance.now() - t0 });
      })
      .catch((err: unknown) => void errors.push(err instanceof Error ? err.message : String(err)))
      .finally(() => out.delete(p));
    out.add(p);
  };
  const timer = setInterval(() => paths.forEach(send), everyMs);
  paths.forEach(send);
  return {
    latencies,
    async stop() {
      clearInterval(timer);
      await Promise.all(out);
      if (errors.length > 0) throw new Error(`busy probe: ${errors.length} requests failed, first: ${errors[0]}`);
    },
  };
}

export interface BusyPath {
  /** The path with its run id or dataset name as a placeholder. */
  readonly path: string;
  readonly count: number;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
  /** Of the requests sent before `completeAt`, and after it (while the export job ran). */
  readonly loadP99: number;
  readonly exportP99: number;
}

/** Percentiles per path, and the p99 of every answer of every path. */
export function busyReport(probe: BusyProbe, completeAt: number): { p99: number; paths: BusyPath[] } {
  const p99 = (xs: number[]) => (xs.length > 0 ? percentile(xs, 99) : NaN);
  const paths = Object.entries(probe.latencies).map(([path, xs]) => {
    const ms = xs.map((x) => x.ms);
    return {
      path: path.replace(/\/runs\/[^/]+$/, "/runs/{id}").replace(/\/datasets\/[^/]+$/, "/datasets/{name}"),
      count: xs.length,
      p50: percentile(ms, 50),
      p99: p99(ms),
      max: Math.max(...ms),
      loadP99: p99(xs.filter((x) => x.at <= completeAt).map((x) => x.ms)),
      exportP99: p99(xs.filter((x) => x.at > completeAt).map((x) => x.ms)),
    };
  });
  return {
    p99: percentile(
      Object.values(probe.latencies)
        .flat()
        .map((x) => x.ms),
      99,
    ),
    paths,
  };
}
