/**
 * How the API answers while a job runs: requests sent on a fixed schedule,
 * whether or not the earlier ones were answered (open loop, as several
 * dashboards polling would), each timed from its send to its body's end. A
 * Worker that stops answering for 10 s then shows as ~100 slow answers per
 * path, not as one.
 */
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
