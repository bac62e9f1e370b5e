/**
 * The Worker's own memory, measured inside workerd while it runs: the V8
 * inspector's Runtime.getHeapUsage on the Worker's isolate gives the JS heap in
 * use, the ArrayBuffer backing stores and workerd's C++ objects on the heap —
 * what the 128 MB isolate limit counts — under workerd's own GC settings, not
 * Node's. Locally one isolate runs the producer and the consumers together.
 *
 * workerd listens for the inspector on a port it picks (wrangler starts it with
 * --inspector-addr=127.0.0.1:0), so the port is found from /proc: the listening
 * TCP sockets of the workerd processes in the dev server's process group, the
 * one whose /json/list names the Worker's isolate. Linux only, like the rest of
 * the bench's /proc readings.
 */
import { readdir, readFile, readlink } from "node:fs/promises";

/** Workers-internal name of the user Worker's isolate in wrangler dev. */
const isolateId = (worker: string) => `core:user:${worker}`;

async function processesOfGroup(processGroup: number, comm: string): Promise<number[]> {
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
    const target = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => "");
    const m = /^socket:\[(\d+)\]$/.exec(target);
    if (m) inodes.add(m[1]!);
  }
  const ports: number[] = [];
  const table = await readFile(`/proc/${pid}/net/tcp`, "utf8").catch(() => "");
  for (const line of table.split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    // local_address rem_address st … inode; st 0A is LISTEN, 0100007F is 127.0.0.1.
    if (f.length > 9 && f[3] === "0A" && f[1]!.startsWith("0100007F:") && inodes.has(f[9]!)) {
      ports.push(parseInt(f[1]!.split(":")[1]!, 16));
    }
  }
  return ports;
}

/** The inspector WebSocket URL of the Worker's isolate in the dev server started as `processGroup`. */
export async function findIsolateInspector(processGroup: number, worker: string): Promise<string> {
  for (const pid of await processesOfGroup(processGroup, "workerd")) {
    for (const port of await listeningPorts(pid)) {
      try {
        const res = await fetch(`http://127.0.0.1:${port}/json/list`, { signal: AbortSignal.timeout(1000) });
        if (!res.ok) continue;
        const targets = (await res.json()) as { id: string; webSocketDebuggerUrl: string }[];
        const target = targets.find((t) => t.id === isolateId(worker));
        if (target) return target.webSocketDebuggerUrl;
      } catch {
        // Not an inspector.
      }
    }
  }
  throw new Error(`no workerd inspector lists ${isolateId(worker)} in process group ${processGroup}`);
}

export interface HeapUsage {
  /** JS heap in use. */
  readonly usedSize: number;
  /** ArrayBuffer backing stores (typed arrays, request bodies). */
  readonly backingStorageSize: number;
  /** workerd's C++ objects allocated on the V8 heap. */
  readonly embedderHeapUsedSize: number;
}

export const totalBytes = (h: HeapUsage): number => h.usedSize + h.backingStorageSize + h.embedderHeapUsedSize;

/**
 * Samples the isolate's memory every `everyMs` until stopped; keeps every
 * sample with its time. Garbage V8 has not collected yet is included: workerd's
 * inspector does not answer HeapProfiler.collectGarbage, so a live-only figure
 * comes from the Node probes, or from `beforeEach` collecting the garbage some
 * other way before each sample (bench/concurrent/worker.ts has a /gc route).
 */
export async function sampleIsolate(url: string, everyMs = 10, beforeEach?: () => Promise<void>) {
  let id = 0;
  const pending = new Map<number, (result: unknown) => void>();
  let ws: WebSocket | undefined;
  // workerd closes the first inspector session opened after the dev server starts
  // ("client closed connection"): reconnect whenever the socket is gone.
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
        if (ws === socket) ws = undefined;
      });
      socket.addEventListener("error", () => fail(new Error(`cannot connect to the inspector at ${url}`)));
    });
  // An answer that never comes must not stall the sampler: that sample is skipped.
  const call = async <T>(method: string): Promise<T | undefined> => {
    ws ??= await connect();
    const socket = ws;
    return new Promise<T | undefined>((ok) => {
      const mine = ++id;
      const timer = setTimeout(() => {
        pending.delete(mine);
        ok(undefined);
      }, 1000);
      pending.set(mine, (result) => {
        clearTimeout(timer);
        ok(result as T);
      });
      socket.send(JSON.stringify({ id: mine, method }));
    });
  };
  const usage = () => call<HeapUsage>("Runtime.getHeapUsage");
  // Wait for a session that answers before the work starts.
  for (let attempt = 1; (await usage())?.usedSize === undefined; attempt++) {
    if (attempt === 5) throw new Error(`the inspector at ${url} does not answer`);
  }
  const samples: { at: number; usage: HeapUsage }[] = [];
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      await beforeEach?.();
      const u = await usage();
      if (u?.usedSize !== undefined) samples.push({ at: performance.now(), usage: u });
      await new Promise((r) => setTimeout(r, everyMs));
    }
  })();
  return {
    stop: async () => {
      stopped = true;
      await loop;
      ws?.close();
      return samples;
    },
  };
}
