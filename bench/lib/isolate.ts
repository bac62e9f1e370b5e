/**
 * The Worker's isolate inside workerd, through the V8 inspector workerd opens
 * for `wrangler dev`: its memory (Runtime.getHeapUsage: JS heap, ArrayBuffer
 * backing stores and workerd's objects on the heap, what the 128 MB limit
 * counts) and its CPU (a V8 CPU profile). Local D1, Queues and R2 are other
 * isolates: neither figure includes them.
 *
 * workerd listens for the inspector on a port it picks, so the port is found
 * from /proc: the listening sockets of the dev server's workerd processes, the
 * one whose /json/list names the Worker's isolate. Linux only.
 */
import { readdir, readFile, readlink } from "node:fs/promises";

/** Processes of a process group whose name starts with `comm`. */
export async function processesOfGroup(processGroup: number, comm: string): Promise<number[]> {
  const out: number[] = [];
  for (const name of await readdir("/proc").catch(() => [] as string[])) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = await readFile(`/proc/${name}/stat`, "utf8");
      const close = stat.lastIndexOf(")");
      const pgrp = Number(stat.slice(close + 2).split(" ")[2]);
      if (pgrp === processGroup && stat.slice(stat.indexOf("(") + 1, close).startsWith(comm)) out.push(Number(name));
    } catch {
      // The process ended while we looked.
    }
  }
  return out;
}

/** Ports on 127.0.0.1 that process `pid` listens on. */
async function listeningPorts(pid: number): Promise<number[]> {
  const inodes = new Set<string>();
  for (const fd of await readdir(`/proc/${pid}/fd`).catch(() => [] as string[])) {
    const m = /^socket:\[(\d+)\]$/.exec(await readlink(`/proc/${pid}/fd/${fd}`).catch(() => ""));
    if (m) inodes.add(m[1]!);
  }
  const ports: number[] = [];
  for (const line of (await readFile(`/proc/${pid}/net/tcp`, "utf8").catch(() => "")).split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    // local_address rem_address st … inode; st 0A is LISTEN, 0100007F is 127.0.0.1.
    if (f.length > 9 && f[3] === "0A" && f[1]!.startsWith("0100007F:") && inodes.has(f[9]!))
      ports.push(parseInt(f[1]!.split(":")[1]!, 16));
  }
  return ports;
}

export interface Inspector {
  /** The workerd process that hosts the isolates. */
  readonly pid: number;
  /** Every isolate of that process by id (`core:user:<worker>`, `d1:db`, `r2:bucket`, …): its WebSocket URL. */
  readonly targets: ReadonlyMap<string, string>;
  /** The Worker's own. */
  readonly worker: string;
}

/** The inspector of the dev server started as `processGroup`: the workerd process whose /json/list names Worker `worker`. */
export async function findInspector(processGroup: number, worker: string): Promise<Inspector> {
  const id = `core:user:${worker}`;
  for (const pid of await processesOfGroup(processGroup, "workerd")) {
    for (const port of await listeningPorts(pid)) {
      try {
        const res = await fetch(`http://127.0.0.1:${port}/json/list`, { signal: AbortSignal.timeout(1000) });
        const list = (await res.json()) as { id: string; webSocketDebuggerUrl: string }[];
        const targets = new Map(list.map((t) => [t.id, t.webSocketDebuggerUrl]));
        if (targets.has(id)) return { pid, targets, worker: targets.get(id)! };
      } catch {
        // Not an inspector.
      }
    }
  }
  throw new Error(`no workerd inspector lists ${id} in process group ${processGroup}`);
}

interface Session {
  /** undefined when no answer came within timeoutMs. */
  call<T>(method: string, params?: object, timeoutMs?: number): Promise<T | undefined>;
  /** Times the socket closed under us (workerd closes the first session after a start). */
  readonly drops: () => number;
  close(): void;
}

/** A session that answers: workerd closes the first one opened after the dev server starts, so reconnect as needed. */
async function openSession(url: string): Promise<Session> {
  let id = 0;
  let drops = 0;
  const pending = new Map<number, (result: unknown) => void>();
  let ws: WebSocket | undefined;
  const connect = () =>
    new Promise<WebSocket>((ok, fail) => {
      const socket = new WebSocket(url);
      socket.addEventListener("message", (ev: MessageEvent) => {
        const msg = JSON.parse(String(ev.data)) as { id?: number; result?: unknown };
        if (msg.id === undefined) return;
        pending.get(msg.id)?.(msg.result);
        pending.delete(msg.id);
      });
      socket.addEventListener("open", () => ok(socket));
      socket.addEventListener("close", () => {
        if (ws !== socket) return;
        ws = undefined;
        drops++;
      });
      socket.addEventListener("error", () => fail(new Error(`cannot connect to the inspector at ${url}`)));
    });
  const session: Session = {
    async call<T>(method: string, params: object = {}, timeoutMs = 1000) {
      ws ??= await connect();
      const socket = ws;
      return new Promise<T | undefined>((ok) => {
        const mine = ++id;
        const timer = setTimeout(() => {
          pending.delete(mine);
          ok(undefined);
        }, timeoutMs);
        pending.set(mine, (result) => {
          clearTimeout(timer);
          ok(result as T);
        });
        socket.send(JSON.stringify({ id: mine, method, params }));
      });
    },
    drops: () => drops,
    close: () => ws?.close(),
  };
  for (let attempt = 1; (await session.call<HeapUsage>("Runtime.getHeapUsage"))?.usedSize === undefined; attempt++) {
    if (attempt === 5) throw new Error(`the inspector at ${url} does not answer`);
  }
  return session;
}

export interface HeapUsage {
  readonly usedSize: number;
  readonly backingStorageSize: number;
  readonly embedderHeapUsedSize: number;
}

export const totalBytes = (h: HeapUsage): number => h.usedSize + h.backingStorageSize + h.embedderHeapUsedSize;

/**
 * The isolate's memory every `everyMs` until stopped, with the time of each
 * sample. Garbage not yet collected is included: workerd's inspector does not
 * answer HeapProfiler.collectGarbage.
 */
export async function sampleIsolate(url: string, everyMs = 10) {
  const session = await openSession(url);
  const samples: { at: number; usage: HeapUsage }[] = [];
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const u = await session.call<HeapUsage>("Runtime.getHeapUsage");
      if (u?.usedSize !== undefined) samples.push({ at: performance.now(), usage: u });
      await new Promise((r) => setTimeout(r, everyMs));
    }
  })();
  return {
    stop: async () => {
      stopped = true;
      await loop;
      session.close();
      return samples;
    },
  };
}

export interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url?: string; lineNumber?: number } }[];
  samples: number[];
}

/** The functions that took the most samples of a profile ("(idle)" left out): name → share of its busy samples. */
export function topFunctions(p: CpuProfile, n: number): { name: string; share: number }[] {
  const byId = new Map(p.nodes.map((x) => [x.id, x.callFrame.functionName || "(anonymous)"]));
  const counts = new Map<string, number>();
  for (const id of p.samples) {
    const name = byId.get(id)!;
    if (name !== "(idle)") counts.set(name, (counts.get(name) ?? 0) + 1);
  }
  const busy = [...counts.values()].reduce((a, b) => a + b, 0);
  return [...counts]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([name, k]) => ({ name, share: busy > 0 ? k / busy : 0 }));
}

/** Samples taken while the isolate ran ("(idle)" is an entered isolate waiting). */
const busySamples = (p: CpuProfile): number => {
  const idle = new Set(p.nodes.filter((n) => n.callFrame.functionName === "(idle)").map((n) => n.id));
  return p.samples.filter((s) => !idle.has(s)).length;
};

/** CPU seconds of one process (all its threads) so far. */
async function pidCpuSeconds(pid: number): Promise<number> {
  const f = (await readFile(`/proc/${pid}/stat`, "utf8")).split(") ")[1]!.split(" ");
  return (Number(f[11]) + Number(f[12])) / 100; // utime + stime, Linux USER_HZ
}

export interface CpuShare {
  /** The Worker isolate's estimated CPU seconds: the process's CPU × its share of the samples. */
  readonly seconds: number;
  /** The workerd process's CPU seconds over the span (every isolate, local D1, Queues, R2 included). */
  readonly processSeconds: number;
  readonly share: number;
  /** Busy samples per isolate. */
  readonly samples: Readonly<Record<string, number>>;
  /** The Worker's isolate id among them. */
  readonly workerId: string;
  /** Each isolate's profile, to see where its time went. */
  readonly profiles: Readonly<Record<string, CpuProfile>>;
}

/**
 * The Worker's CPU, from now until stopped. Locally every isolate (the
 * Worker, local D1, Queues, R2) runs on workerd's one thread, and a sampling
 * profiler counts wall time, which a busy machine inflates; so every isolate
 * is profiled at once, V8 sampling each only while it runs, and the Worker's
 * share of all the samples is applied to the CPU the process really used
 * (/proc). The process's work outside any isolate (its event loop, sockets)
 * is shared out in the same proportion.
 */
export async function profileCpu(inspector: Inspector, periodUs = 10_000) {
  const sessions = new Map<string, Session>();
  for (const [id, url] of inspector.targets) sessions.set(id, await openSession(url));
  const drops = new Map([...sessions].map(([id, s]) => [id, s.drops()]));
  for (const s of sessions.values()) {
    await s.call("Profiler.enable");
    await s.call("Profiler.setSamplingInterval", { interval: periodUs });
  }
  const cpu0 = await pidCpuSeconds(inspector.pid);
  await Promise.all([...sessions.values()].map((s) => s.call("Profiler.start")));
  return {
    stop: async (): Promise<CpuShare> => {
      const profiles = await Promise.all(
        [...sessions].map(
          async ([id, s]) =>
            [id, (await s.call<{ profile: CpuProfile }>("Profiler.stop", {}, 60_000))?.profile] as const,
        ),
      );
      const processSeconds = (await pidCpuSeconds(inspector.pid)) - cpu0;
      for (const s of sessions.values()) s.close();
      const samples: Record<string, number> = {};
      const kept: Record<string, CpuProfile> = {};
      for (const [id, p] of profiles) {
        if (p) kept[id] = p;
        if (!p || sessions.get(id)!.drops() !== drops.get(id))
          throw new Error(`the inspector session of ${id} closed during the CPU profile: no figure`);
        samples[id] = busySamples(p);
      }
      const total = Object.values(samples).reduce((a, b) => a + b, 0);
      const workerId = [...inspector.targets].find(([, url]) => url === inspector.worker)![0];
      const share = total > 0 ? samples[workerId]! / total : 0;
      return { seconds: processSeconds * share, processSeconds, share, samples, workerId, profiles: kept };
    },
  };
}

/** CPU seconds (user + system) spent so far by the processes of a process group whose name starts with `comm`. */
export async function processCpuSeconds(processGroup: number, comm: string): Promise<number> {
  let ticks = 0;
  for (const pid of await processesOfGroup(processGroup, comm)) {
    try {
      const stat = await readFile(`/proc/${pid}/stat`, "utf8");
      // After ')': state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime …
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      ticks += Number(f[11]) + Number(f[12]);
    } catch {
      // The process ended while we looked.
    }
  }
  return ticks / 100; // Linux USER_HZ
}
