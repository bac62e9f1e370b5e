/**
 * Shared by the fault-injection suites: put a run in a known state through the
 * pipeline's own functions, deliver queue messages by hand to the real consumer
 * (real D1), and read what D1 holds.
 */
import { createExecutionContext, createMessageBatch, getQueueResult, SELF, type QueueResult } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { expect } from "vitest";
import { type Split } from "../src/core/datasets";
import { FASHION_MNIST } from "../src/core/registry";
import { readConfig } from "../src/pipeline/config";
import worker from "../src/index";
import { Archives, type ChecksumSink } from "../src/pipeline/archive";
import { workersMd5 } from "../src/codec/digest";
import { EtlError } from "../src/core/errors";
import { sourceMirrors } from "../src/pipeline/dataset";
import { extractImages, extractLabels, peekImages } from "../src/pipeline/extract";
import type { ChunkMessage, EtlMessage, InlineChunkMessage } from "../src/pipeline/messages";
import { planChunks } from "../src/pipeline/plan";
import { Producer } from "../src/pipeline/produce";
import { activeRun, getRun } from "../src/db/run-reads";
import { createRun } from "../src/db/run-start";
import { database } from "../src/db/database";
import { failRun, markExtracting, markLoading } from "../src/db/runs";
import { shadowTable } from "../src/db/tables";
import { publish, syntheticSplit, TOKEN, type ArchiveSet } from "./helpers";

export const db = () => database(env.DB);

export const rows = async <T = Record<string, unknown>>(sql: string, ...params: unknown[]): Promise<T[]> =>
  (
    await env.DB.prepare(sql)
      .bind(...params)
      .all<T>()
  ).results;

/** Every row of a dataset in `images`, pixels as hex: equal fingerprints mean the same rows and the same bytes. */
export const dataset = (name = FASHION_MNIST.name) =>
  rows("SELECT split, idx, label, hex(pixels) AS h FROM images WHERE dataset = ? ORDER BY split, idx", name);

/** Rows per split of a dataset (in `images`), or of its shadow tables (`shadow`); splits with none are left out. */
export async function counts(which: "images" | "shadow" = "images", name = FASHION_MNIST.name) {
  const out: Record<string, number> = {};
  for (const split of ["train", "test"] as const) {
    let n: number;
    if (which === "images") {
      [{ n }] = (await rows<{ n: number }>(
        "SELECT COUNT(*) AS n FROM images WHERE dataset = ? AND split = ?",
        name,
        split,
      )) as [{ n: number }];
    } else {
      const table = shadowTable(name, split);
      const [exists] = await rows("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", table);
      n = exists ? (await rows<{ n: number }>(`SELECT COUNT(*) AS n FROM ${table}`))[0]!.n : 0;
    }
    if (n > 0) out[split] = n;
  }
  return out;
}

/**
 * A run that has extracted `archives` and is loading, with the chunk messages
 * its job would send — not sent: the test delivers them. The same steps in the
 * same order as the job (job.ts), with the production Producer; only `send` differs.
 */
export async function loadingRun(
  archives: ArchiveSet,
  chunkSize = readConfig(env).chunkSize,
): Promise<{ runId: string; source: string; chunks: InlineChunkMessage[] }> {
  const source = await publish(archives);
  const started = await createRun(db(), { trigger: "http", dataset: FASHION_MNIST.name, source });
  if (!started.started) throw new Error(`run ${started.active.id} is still active`);
  const run = started.run;
  expect(await markExtracting(db(), run)).toBe(true);
  const cfg = readConfig(env);
  const opts = {
    dataset: FASHION_MNIST,
    mirrors: sourceMirrors(FASHION_MNIST, source),
    official: false,
    retry: cfg.retry,
  };
  const deps = { fetch: (url: string, init?: RequestInit) => fetch(url, init), md5: workersMd5 };
  const extraction = new Archives(opts, deps, collectChecksums().sink);
  const labels = await extractLabels(extraction);
  const layout = await peekImages(extraction, labels);
  const planned = labels.flatMap((l) => planChunks(l, chunkSize));
  const expected = Object.fromEntries(labels.map((l) => [l.split, l.count])) as Record<Split, number>;
  const plan = { expected, chunksTotal: planned.length, shape: layout.shape, classNames: [...FASHION_MNIST.classes!] };
  expect(await markLoading(db(), run, plan)).toBe(true);
  const chunks: InlineChunkMessage[] = [];
  const producer = new Producer({
    run: { runId: run.id, attempt: run.attempt, dataset: run.dataset },
    planned,
    // No `stage`: every message carries its pixels.
    send: async (messages) => void chunks.push(...(messages as InlineChunkMessage[])),
  });
  for await (const c of extractImages(extraction, labels, layout, chunkSize)) await producer.add(c);
  await producer.flush();
  return { runId: run.id, source, chunks };
}

/** A ChecksumSink that only collects: the first MD5 seen per file, later ones must match. */
export function collectChecksums(): { readonly sink: ChecksumSink; readonly values: Record<string, string> } {
  const values: Record<string, string> = {};
  return {
    values,
    sink: async (file, md5) => {
      values[file] ??= md5;
      if (values[file] !== md5) throw new EtlError(`${file}: MD5 ${md5} differs from the ${values[file]} read before`);
    },
  };
}

let messageCounter = 0;

/** Deliver `bodies` as one batch from `queue` to the Worker's queue handler; the consumer's verdict. */
export async function deliver(
  queue: string,
  bodies: readonly EtlMessage[] | readonly unknown[],
  opts: { attempts?: number; env?: Partial<Env> } = {},
): Promise<{ result: QueueResult; ids: string[]; thrown: unknown }> {
  const messages = bodies.map((body) => ({
    id: `m${messageCounter++}`,
    timestamp: new Date(),
    attempts: opts.attempts ?? 1,
    body,
  }));
  const batch = createMessageBatch(queue, messages);
  const ctx = createExecutionContext();
  let thrown: unknown;
  try {
    await (worker.queue as ExportedHandlerQueueHandler<Env>)(batch, { ...env, ...opts.env } as Env, ctx);
  } catch (err) {
    thrown = err; // the runtime retries the whole batch
  }
  return { result: await getQueueResult(batch, ctx), ids: messages.map((m) => m.id), thrown };
}

export const runStatus = async (id: string) => (await getRun(db(), id))!;

/** `images` holds exactly syntheticArchives(train, test, seed): counts, and labels and pixels of sampled rows. */
export async function expectSynthetic(train: number, test: number, seed: number): Promise<void> {
  expect(await counts()).toEqual({ train, test });
  for (const [split, n, s] of [
    ["train", train, seed],
    ["test", test, seed + 1],
  ] as const) {
    const want = syntheticSplit(n, s);
    for (const i of [0, Math.floor(n / 2), n - 1]) {
      const [row] = await rows<{ label: number; pixels: number[] }>(
        "SELECT label, pixels FROM images WHERE split = ? AND idx = ?",
        split,
        i,
      );
      expect(row!.label).toBe(want.labels[i]);
      const px = new Float32Array(Uint8Array.from(row!.pixels).buffer);
      expect(Array.from(px, (v) => Math.round(v * 255))).toEqual(
        Array.from(want.pixels.subarray(i * 784, (i + 1) * 784)),
      );
    }
  }
}

/** Fail whatever run a test left active, so the next test can start one. */
export async function failActive(reason = "test cleanup"): Promise<void> {
  const active = await activeRun(db());
  if (active) await failRun(db(), active.id, reason);
}

/** The real D1 binding whose `batch` goes through `batch` (given the real one); everything else is D1's own. */
export function withBatch(
  batch: (real: D1Database["batch"], statements: D1PreparedStatement[]) => Promise<D1Result[]>,
): D1Database {
  return new Proxy(env.DB, {
    get(target, prop) {
      if (prop === "batch") return (statements: D1PreparedStatement[]) => batch(target.batch.bind(target), statements);
      const value = Reflect.get(target, prop) as unknown;
      return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}

/**
 * The real D1 binding with a fault: `batch` calls after the first `healthy` ones
 * throw, as D1 does when it is unavailable. Statements still run on real D1.
 */
export function failingD1(healthy: number): D1Database {
  let calls = 0;
  return withBatch((real, statements) =>
    calls++ >= healthy ? Promise.reject(new Error("D1_ERROR: injected fault: database unavailable")) : real(statements),
  );
}

/** Make a run look as if it had shown no sign of life for `ms`. */
export const silentFor = (id: string, ms: number) =>
  env.DB.prepare("UPDATE runs SET updated_at = ?2 WHERE id = ?1")
    .bind(id, new Date(Date.now() - ms).toISOString())
    .run();

export const postResume = (id: string, token: string | null = TOKEN): Promise<Response> =>
  SELF.fetch(`http://worker/runs/${id}/resume`, {
    method: "POST",
    headers: token === null ? {} : { Authorization: `Bearer ${token}` },
  });

/** A queued run whose extraction job the test delivers itself (to choose the env it runs with). */
export async function queuedRun(source: string): Promise<string> {
  const started = await createRun(db(), { trigger: "http", dataset: FASHION_MNIST.name, source });
  if (!started.started) throw new Error(`run ${started.active.id} is still active`);
  return started.run.id;
}

export const hits = async (url: string): Promise<number> => Number(await (await fetch(`${url}/hits`)).text());
