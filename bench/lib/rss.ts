/**
 * Resident memory of the workerd processes behind a `wrangler dev` (its process
 * group), read from /proc. workerd hosts the Worker and Miniflare's local D1
 * and Queues together, so this is an upper bound for the Worker, not its heap.
 */
import { readdir, readFile } from "node:fs/promises";

export async function workerdRssBytes(processGroup: number): Promise<number> {
  let total = 0;
  for (const name of await readdir("/proc").catch(() => [] as string[])) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = await readFile(`/proc/${name}/stat`, "utf8");
      // pid (comm) state ppid pgrp …: comm may hold spaces, so split after ')'.
      const close = stat.lastIndexOf(")");
      const comm = stat.slice(stat.indexOf("(") + 1, close);
      const pgrp = Number(stat.slice(close + 2).split(" ")[2]);
      if (pgrp !== processGroup || !comm.startsWith("workerd")) continue;
      const status = await readFile(`/proc/${name}/status`, "utf8");
      const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
      total += kb * 1024;
    } catch {
      // The process ended while we looked.
    }
  }
  return total;
}

/** Samples the peak until stopped. */
export function rssSampler(processGroup: number, everyMs = 200) {
  let peak = 0;
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      peak = Math.max(peak, await workerdRssBytes(processGroup));
      await new Promise((r) => setTimeout(r, everyMs));
    }
  })();
  return {
    stop: async (): Promise<number> => {
      stopped = true;
      await loop;
      return peak;
    },
  };
}

/** CPU seconds (user + system) spent so far by the processes of a process group whose name starts with `comm`. */
export async function processCpuSeconds(processGroup: number, comm: string): Promise<number> {
  const ticksPerSecond = 100; // Linux USER_HZ
  let ticks = 0;
  for (const name of await readdir("/proc").catch(() => [] as string[])) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = await readFile(`/proc/${name}/stat`, "utf8");
      const close = stat.lastIndexOf(")");
      if (!stat.slice(stat.indexOf("(") + 1, close).startsWith(comm)) continue;
      // After ')': state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime …
      const f = stat.slice(close + 2).split(" ");
      if (Number(f[2]) !== processGroup) continue;
      ticks += Number(f[11]) + Number(f[12]);
    } catch {
      // The process ended while we looked.
    }
  }
  return ticks / ticksPerSecond;
}

/**
 * Samples processCpuSeconds every `everyMs` until stopped; `at(t)` is the CPU
 * spent by performance.now() = t, interpolated between the samples around it
 * (for a moment seen only afterwards: a run's completion, from its finishedAt).
 */
export function cpuSampler(processGroup: number, comm: string, everyMs = 100) {
  const samples: { at: number; cpu: number }[] = [];
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const cpu = await processCpuSeconds(processGroup, comm);
      samples.push({ at: performance.now(), cpu });
      await new Promise((r) => setTimeout(r, everyMs));
    }
  })();
  const at = (t: number): number => {
    const after = samples.findIndex((x) => x.at >= t);
    if (after < 0) return samples.at(-1)!.cpu;
    if (after === 0) return samples[0]!.cpu;
    const a = samples[after - 1]!;
    const b = samples[after]!;
    return a.cpu + ((b.cpu - a.cpu) * (t - a.at)) / (b.at - a.at);
  };
  return {
    /** Stops sampling after one last sample; then `at` answers for any time in between. */
    stop: async () => {
      stopped = true;
      await loop;
      samples.push({ at: performance.now(), cpu: await processCpuSeconds(processGroup, comm) });
      return { at, first: samples[0]!.cpu, last: samples.at(-1)!.cpu };
    },
  };
}
