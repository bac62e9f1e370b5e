/** Shared by the workerd tests: IDX fixtures, the archive server, and driving runs through the real Worker. */
import { SELF } from "cloudflare:test";
import { gzipSync } from "fflate";
import { inject } from "vitest";
import { FASHION_MNIST } from "../src/core/registry";
import type { RunResponse, RunView } from "../src/http/schemas/runs";

export const TOKEN = "test-token";
export const archiveServer = (): string => inject("archiveServer");

import { idxBytes } from "./idx-fixtures";

export { idxBytes };

/** A small dataset in Fashion-MNIST's layout: pixel (i, p) = (i * 7 + p) % 256, label i % 10. */
export function syntheticSplit(count: number, seed = 0) {
  const pixels = new Uint8Array(count * 784);
  for (let i = 0; i < count; i++) for (let p = 0; p < 784; p++) pixels[i * 784 + p] = (i * 7 + p + seed) % 256;
  const labels = Uint8Array.from({ length: count }, (_, i) => (i + seed) % 10);
  return {
    pixels,
    labels,
    images: gzipSync(idxBytes([count, 28, 28], pixels)),
    labelsGz: gzipSync(idxBytes([count], labels)),
  };
}

export type ArchiveSet = Record<string, Uint8Array>;

/** The four archives of a synthetic dataset, keyed by Fashion-MNIST's file names. */
export function syntheticArchives(train: number, test: number, seed = 0): ArchiveSet {
  const [trainSpec, testSpec] = FASHION_MNIST.splits;
  const tr = syntheticSplit(train, seed);
  const te = syntheticSplit(test, seed + 1);
  return {
    [trainSpec!.images.file]: tr.images,
    [trainSpec!.labels.file]: tr.labelsGz,
    [testSpec!.images.file]: te.images,
    [testSpec!.labels.file]: te.labelsGz,
  };
}

let fixtureCounter = 0;

/** Upload archives to the archive server; returns the base URL to use as a run's source. */
export async function publish(archives: ArchiveSet, faults: Record<string, string> = {}): Promise<string> {
  const base = `${archiveServer()}/f/${Date.now()}-${fixtureCounter++}`;
  for (const [file, bytes] of Object.entries(archives)) {
    const fault = faults[file] ? `?fault=${encodeURIComponent(faults[file])}` : "";
    const res = await fetch(`${base}/${file}${fault}`, { method: "PUT", body: bytes });
    if (res.status !== 201) throw new Error(`upload of ${file} failed: ${res.status}`);
  }
  return base;
}

/** A run as the API answers it: the type is inferred from the schema that documents it. */
export type { RunView };

export async function postRun(body: Record<string, unknown> = {}, token = TOKEN): Promise<Response> {
  return SELF.fetch("http://worker/runs", {
    method: "POST",
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
}

export async function startRun(body: Record<string, unknown> = {}): Promise<RunView> {
  const res = await postRun(body);
  const json = (await res.json()) as Partial<RunResponse> & { error?: string };
  if (res.status !== 202 || !json.run) throw new Error(`POST /runs answered ${res.status}: ${json.error}`);
  return json.run;
}

export async function getRun(id: string): Promise<RunView> {
  const res = await SELF.fetch(`http://worker/runs/${id}`);
  return ((await res.json()) as RunResponse).run;
}

/** Poll until the run is complete or failed (the queues deliver in the background). */
export async function waitForRun(id: string, timeoutMs = 50_000): Promise<RunView> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const run = await getRun(id);
    if (run.status === "complete" || run.status === "failed") return run;
    if (Date.now() > deadline)
      throw new Error(`run ${id} still ${run.status} after ${timeoutMs} ms: ${JSON.stringify(run)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function runToEnd(body: Record<string, unknown> = {}): Promise<RunView> {
  return waitForRun((await startRun(body)).id);
}

/** A D1 binding that counts the statements prepared through it (the real D1 underneath). */
export function countingD1(db: D1Database): { db: D1Database; queries: () => number } {
  let queries = 0;
  const counting = new Proxy(db, {
    get(target, prop) {
      if (prop === "prepare")
        return (sql: string) => {
          queries++;
          return target.prepare(sql);
        };
      const v = Reflect.get(target, prop) as unknown;
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
  return { db: counting, queries: () => queries };
}
