/**
 * Production conditions that Miniflare does not reproduce: many consumer
 * invocations at once (Miniflare delivers one batch at a time per queue), and a
 * D1 that fails transiently (local D1 never does). Full runs go through the
 * Worker's own queue handler, driven by the production-like broker in
 * queue-sim.ts, over real local D1 — wrapped by flaky-d1.ts where D1 must fail.
 */
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it } from "vitest";
import { QUEUES, readConfig } from "../src/pipeline/config";
import worker from "../src/index";
import { consumeChunks } from "../src/pipeline/consume";
import { database } from "../src/db/database";
import { startRun } from "../src/pipeline/trigger";
import { failActive, rows } from "./faults-helpers";
import { faultCount, flakyD1 } from "./flaky-d1";
import { syntheticArchives, syntheticSplit, publish } from "./helpers";
import {
  CONSUMER_DEFAULTS,
  consumerConfig,
  describeDeadLetter,
  QueueSim,
  type QueueHandler,
  type QueueSimOptions,
} from "./queue-sim";

afterEach(() => failActive());

const handler = worker.queue as QueueHandler;

/** SQLite's hex() of each byte's float32 (b / 255, little-endian): what a pixel is stored as. */
const HEX_OF_BYTE = Array.from({ length: 256 }, (_, b) => {
  const bytes = new Uint8Array(4);
  new DataView(bytes.buffer).setFloat32(0, b / 255, true);
  return [...bytes].map((x) => x.toString(16).padStart(2, "0").toUpperCase()).join("");
});

/**
 * `images` holds exactly syntheticArchives(train, test, seed): every row, its
 * label and every byte of its pixels, read back with one query.
 */
async function expectEveryRow(train: number, test: number, seed: number): Promise<void> {
  const got = await rows<{ split: string; idx: number; label: number; h: string }>(
    "SELECT split, idx, label, hex(pixels) AS h FROM images ORDER BY split, idx",
  );
  const want: { split: string; idx: number; label: number; h: string }[] = [];
  for (const [split, n, s] of [
    ["test", test, seed + 1],
    ["train", train, seed],
  ] as const) {
    const { pixels, labels } = syntheticSplit(n, s);
    for (let i = 0; i < n; i++) {
      let h = "";
      for (let p = i * 784; p < (i + 1) * 784; p++) h += HEX_OF_BYTE[pixels[p]!];
      want.push({ split, idx: i, label: labels[i]!, h });
    }
  }
  expect(got.length).toBe(want.length);
  const wrong = got.filter((r, i) => {
    const w = want[i]!;
    return r.split !== w.split || r.idx !== w.idx || r.label !== w.label || r.h !== w.h;
  });
  expect(wrong.map((r) => `${r.split} ${r.idx}`)).toEqual([]);
}

interface FullRun {
  readonly runId: string;
  readonly sim: QueueSim;
  readonly ms: number;
}

/**
 * Publish a synthetic dataset, start a run on it (trigger.ts, its job message
 * going to the simulated jobs queue) and drive every queue until nothing is left.
 * With `pauseChunks`, chunk messages pile up until the job is done and are then
 * released at once: the most concurrent invocations, and the last deliveries
 * racing to complete the run.
 */
async function fullRun(
  o: { train: number; test: number; data: number; db?: D1Database; pauseChunks?: boolean; vars?: Partial<Env> } & Omit<
    QueueSimOptions,
    "handler" | "env"
  > & { handler?: QueueHandler },
): Promise<FullRun> {
  const t0 = Date.now();
  const source = await publish(syntheticArchives(o.train, o.test, o.data));
  const sim = new QueueSim({
    ...o,
    handler: o.handler ?? handler,
    env: { ...env, ...o.vars, DB: o.db ?? env.DB } as Env,
  });
  if (o.pauseChunks) sim.pause(QUEUES.chunks);
  const started = await startRun(
    database(env.DB),
    sim.env.JOBS,
    { trigger: "http", dataset: "fashion-mnist", source, force: true },
    readConfig(env).leaseMs,
  );
  if (!started.started) throw new Error(`run ${started.active.id} is still active`);
  await sim.settled();
  if (o.pauseChunks) {
    sim.resume(QUEUES.chunks);
    await sim.settled();
  }
  expect(sim.stats.brokerErrors).toEqual([]);
  return { runId: started.run.id, sim, ms: Date.now() - t0 };
}

const runRow = async (id: string) =>
  (await rows<{ status: string; error: string | null }>("SELECT status, error FROM runs WHERE id = ?", id))[0]!;
const swapRows = async (id: string) => rows("SELECT run_id FROM dataset_swaps WHERE run_id = ?", id);

const TRAIN = 1200;
const TEST = 200;

describe("many chunk consumers at once", () => {
  it("16 concurrent invocations, duplicates, shuffled: one swap, every row exact", async () => {
    // Watches the swap's own transactions (the batches whose first statement is its guard row) and slows
    // them, so that deliveries still in flight reach the swap too, whatever the event loop's order; injects nothing.
    const swaps = flakyD1(env.DB, {
      rate: 0,
      seed: 0,
      match: (sql, op) => op === "batch" && sql[0]!.startsWith("INSERT INTO dataset_swaps"),
      delayMs: 200,
    });
    // 25 images a message: 56 chunks, ~84 deliveries with duplicates, enough for 16 batches of 4 at once.
    const { runId, sim, ms } = await fullRun({
      train: TRAIN,
      test: TEST,
      data: 301,
      db: swaps.db,
      vars: { CHUNK_SIZE: "25" },
      concurrency: { [QUEUES.chunks]: 16 },
      duplicateRate: 0.5,
      seed: 7,
      pauseChunks: true,
    });
    console.log(
      `concurrency run: ${ms} ms, ${swaps.calls()} swap attempts (refused: ${JSON.stringify(swaps.settled.errors)})`,
      JSON.stringify(sim.summary()),
    );

    expect(await runRow(runId)).toEqual({ status: "complete", error: null });
    expect(sim.stats.maxInFlight[QUEUES.chunks]).toBe(16);
    expect(sim.stats.duplicates).toBeGreaterThan(10);
    expect(sim.stats.deadLettered.map(describeDeadLetter)).toEqual([]);
    expect(await swapRows(runId)).toHaveLength(1);
    // The last deliveries raced to complete the run: more than one tried the swap, one won, and D1
    // refused every other attempt (the run was complete, or its shadow tables were already swapped in).
    expect(swaps.calls()).toBeGreaterThanOrEqual(2);
    expect(swaps.settled.ok).toBe(1);
    expect(swaps.settled.errors).toHaveLength(swaps.calls() - 1);
    for (const e of swaps.settled.errors)
      expect(e).toMatch(/CHECK constraint failed|UNIQUE constraint failed|no such table/);
    await expectEveryRow(TRAIN, TEST, 301);
  });
});

describe("a D1 that fails like production D1", () => {
  it("at 20% of calls (before, after commit, overloaded) the run still completes exactly, nothing dead-lettered", async () => {
    const flaky = flakyD1(env.DB, { rate: 0.2, seed: 20 });
    // Chunks stream to 16 consumers while the job still extracts, as in production;
    // 10 images a message (140 chunks) for enough D1 calls to fail.
    const { runId, sim, ms } = await fullRun({
      train: TRAIN,
      test: TEST,
      data: 302,
      db: flaky.db,
      vars: { CHUNK_SIZE: "10" },
      concurrency: { [QUEUES.chunks]: 16 },
      duplicateRate: 0.3,
      seed: 11,
    });
    console.log(
      `flaky run: ${ms} ms, faults ${JSON.stringify(flaky.faults)} of ${flaky.calls()} calls`,
      JSON.stringify(sim.summary()),
    );

    expect(await runRow(runId)).toEqual({ status: "complete", error: null });
    expect(sim.stats.deadLettered.map(describeDeadLetter)).toEqual([]);
    // The faults really happened, of every kind, after-commit ones included.
    expect(flaky.faults.after).toBeGreaterThan(0);
    expect(flaky.faults.before).toBeGreaterThan(0);
    expect(flaky.faults.overload).toBeGreaterThan(0);
    expect(faultCount(flaky)).toBeGreaterThanOrEqual(6);
    expect(await swapRows(runId)).toHaveLength(1);
    await expectEveryRow(TRAIN, TEST, 302);
  });

  /*
   * D1 refusing 70% of chunk loads as overloaded. The faults are drawn per call,
   * independently of time, so the broker's scaled-down retry delays change
   * nothing here (0: no delay at all).
   *   Without retryingD1 a delivery fails with p = 0.7, and a message goes to the
   *   dead-letter queue after max_retries + 1 = 6 failed deliveries: 0.7^6 ≈ 12%
   *   per batch; over the run's ~18 batches of 4 at least one is dead-lettered
   *   with probability ≈ 90%, failing the run. That variant runs one consumer at
   *   a time, so the order of the calls, and so each one's draw of the seeded
   *   faults, is the same on every run: it fails the run every time.
   *   With retryingD1 a delivery fails only if 5 tries in a row do (0.7^5 ≈ 17%),
   *   and a message is dead-lettered with 0.7^30 ≈ 2·10⁻⁵ per batch: ≈ 4·10⁻⁴ for
   *   the run. It runs at wrangler.toml's max_concurrency (4) so that its in-
   *   process backoffs overlap, as they would in production.
   */
  const overloadedLoads = () =>
    flakyD1(env.DB, {
      rate: 0.7,
      seed: 70,
      kinds: ["overload"],
      match: (sql) => sql.some((s) => s.includes("INSERT INTO images__fashion_mnist__")),
    });
  const overloadRun = (db: D1Database, extra: Partial<QueueSimOptions> = {}) =>
    fullRun({
      train: TRAIN,
      test: TEST,
      data: 303,
      db,
      vars: { CHUNK_SIZE: "20" }, // 70 chunks, ~18 deliveries of 4
      msPerSecond: 0,
      seed: 5,
      pauseChunks: true,
      ...extra,
    });

  it("a D1 shedding 70% of chunk loads: retried in-process, no message spends all its deliveries", async () => {
    const flaky = overloadedLoads();
    const { runId, sim, ms } = await overloadRun(flaky.db);
    console.log(
      `overload run: ${ms} ms, ${flaky.faults.overload} of ${flaky.calls()} loads refused`,
      JSON.stringify(sim.summary()),
    );
    expect(sim.stats.maxInFlight[QUEUES.chunks]).toBe(consumerConfig(QUEUES.chunks)!.max_concurrency);
    expect(flaky.faults.overload).toBeGreaterThan(25);
    expect(sim.stats.deadLettered.map(describeDeadLetter)).toEqual([]);
    expect(await runRow(runId)).toEqual({ status: "complete", error: null });
    await expectEveryRow(TRAIN, TEST, 303);
  });

  it("the same without retryingD1: chunks exhaust their retries and the run fails", async () => {
    // The chunk consumer exactly as src/index.ts calls it, minus the wrapper; the
    // other queues go through the Worker's handler (the faults hit chunk loads only).
    const bare: QueueHandler = (batch, e, ctx) =>
      batch.queue === QUEUES.chunks ? consumeChunks(batch, e, readConfig(e)) : handler(batch, e, ctx);
    const flaky = overloadedLoads();
    const { runId, sim } = await overloadRun(flaky.db, { handler: bare, concurrency: { [QUEUES.chunks]: 1 } });
    console.log(
      `bare overload run: ${flaky.faults.overload} of ${flaky.calls()} loads refused`,
      JSON.stringify(sim.summary()),
    );
    expect(sim.stats.deadLettered.length).toBeGreaterThan(0);
    const run = await runRow(runId);
    expect(run.status).toBe("failed");
    expect(run.error).toMatch(/went to the dead-letter queue; last error: .*D1 DB is overloaded/);
  });
});

describe("consumer settings in wrangler.toml", () => {
  it("bound concurrency for a single-writer D1 and delay retries, within Cloudflare's limits", () => {
    const chunks = consumerConfig(QUEUES.chunks)!;
    const jobs = consumerConfig(QUEUES.jobs)!;
    // One extraction at a time.
    expect(jobs.max_concurrency).toBe(1);
    // Set (not the 250 default), at least 1, and small: D1 runs one write at a time.
    expect(chunks.max_concurrency).toBeGreaterThanOrEqual(1);
    expect(chunks.max_concurrency).toBeLessThanOrEqual(10);
    for (const c of [chunks, jobs]) {
      expect(c.retry_delay, c.queue).toBeTypeOf("number");
      // Queues allows delays up to 12 hours; a run's lease must outlive the wait.
      expect(c.retry_delay!, c.queue).toBeGreaterThanOrEqual(1);
      expect(c.retry_delay! * 1000, c.queue).toBeLessThan(readConfig(env).leaseMs);
      expect(c.max_retries ?? CONSUMER_DEFAULTS.max_retries, c.queue).toBeGreaterThanOrEqual(1);
    }
  });
});
