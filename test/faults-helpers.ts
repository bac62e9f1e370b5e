/**
 * Shared by the fault-injection suites: put a run in a known state through the
 * Worker's own entry points (a trigger, then its extraction job through the
 * queue handler), deliver queue messages by hand to the real consumer (real
 * D1), and read what D1 holds.
 */
import { createExecutionContext, createMessageBatch, getQueueResult, SELF, type QueueResult } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { expect } from "vitest";
import { FASHION_MNIST } from "../src/core/registry";
import { QUEUES, readConfig } from "../src/pipeline/config";
import worker from "../src/index";
import type { ChecksumSink } from "../src/pipeline/archive";
import { EtlError } from "../src/core/errors";
import type { ChunkMessage, EtlMessage, InlineChunkMessage } from "../src/pipeline/messages";
import { startRun } from "../src/pipeline/trigger";
import { activeRun, getRun } from "../src/db/run-reads";
import { createRun } from "../src/db/run-start";
import { database } from "../src/db/database";
import { failRun } from "../src/db/runs";
import { shadowTable } from "../src/db/tables";
import { QueueSim, type QueueHandler } from "./queue-sim";
import { SHAPE_28, expectDataset, type SplitData } from "./dataset-fixtures";
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
 * its extraction job sent, held back: the test delivers them. The run starts
 * as a trigger starts one (startRun, forced: nothing to compare against), and
 * its job message goes to the Worker's own queue handler, so the job runs
 * whole (MD5 pinning, the capacity check, its lease) into a paused chunks queue.
 */
export async function loadingRun(
  archives: ArchiveSet,
): Promise<{ runId: string; source: string; chunks: InlineChunkMessage[] }> {
  const source = await publish(archives);
  const sim = new QueueSim({ handler: worker.queue as QueueHandler, env });
  sim.pause(QUEUES.chunks);
  const started = await startRun(
    db(),
    sim.env.JOBS,
    { trigger: "http", dataset: FASHION_MNIST.name, source, force: true },
    readConfig(env).leaseMs,
  );
  if (!started.started) throw new Error(`run ${started.active.id} is still active`);
  await sim.settled();
  expect(sim.summary()).toMatchObject({ retried: 0, thrown: 0, deadLettered: [], brokerErrors: [] });
  // Small images: every message carries its pixels.
  const chunks = sim.take(QUEUES.chunks) as InlineChunkMessage[];
  const run = await runStatus(started.run.id);
  // The job read every archive whole: each one's MD5 is pinned to the run.
  expect({
    status: run.status,
    error: run.error,
    chunks: chunks.length,
    pinned: Object.keys(run.checksums ?? {}).sort(),
  }).toEqual({
    status: "loading",
    error: null,
    chunks: run.chunksTotal,
    pinned: Object.keys(archives).sort(),
  });
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

/**
 * `images` holds exactly syntheticArchives(train, test, seed): every row of
 * both splits, its label, and every byte of its pixels as float32.
 */
export async function expectSynthetic(train: number, test: number, seed: number): Promise<void> {
  expect(await counts()).toEqual({ train, test });
  const split = (count: number, s: number): SplitData => {
    const { pixels, labels } = syntheticSplit(count, s);
    return { count, shape: SHAPE_28, pixels, labels };
  };
  await expectDataset(FASHION_MNIST.name, { train: split(train, seed), test: split(test, seed + 1) });
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
