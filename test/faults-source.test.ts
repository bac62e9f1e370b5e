/**
 * Source faults, served by the test archive server (test/global-setup.ts):
 * HTTP errors, refused connections, bodies cut short and hung responses. What
 * a retry can fix is retried (bounded, with backoff); what it cannot fails the
 * run at once with an error naming the file and the URL.
 */
import { env } from "cloudflare:workers";
import { gunzipSync, gzipSync } from "fflate";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { QUEUES } from "../src/pipeline/config";
import { Attempt, DEFAULT_RETRY, readBody, withRetries, type RetryPolicy } from "../src/pipeline/fetch";
import { dataset, deliver, expectSynthetic, failActive, hits, queuedRun, runStatus } from "./faults-helpers";
import { publish, runToEnd, syntheticArchives } from "./helpers";

const LABELS = "train-labels-idx1-ubyte.gz";

/** How many bytes the attempts of `read` brought, retried as an archive's are. */
async function bytesRead(policy: RetryPolicy, read: (attempt: Attempt) => AsyncIterable<Uint8Array>) {
  let n = 0;
  for await (const chunk of withRetries(policy, read)) n += chunk.length;
  return n;
}
const IMAGES = "train-images-idx3-ubyte.gz";

afterEach(() => failActive());

let baseline: Awaited<ReturnType<typeof dataset>>;
beforeAll(async () => {
  expect((await runToEnd({ source: await publish(syntheticArchives(300, 40, 21)) })).status).toBe("complete");
  baseline = await dataset();
});

describe("HTTP errors", () => {
  it("404: not retried, the run fails naming the file and URL, the dataset is untouched", async () => {
    const source = await publish(syntheticArchives(50, 10), { [LABELS]: "status:404" });
    const run = await runToEnd({ source });
    expect(run.status).toBe("failed");
    expect(run.error).toBe(`${LABELS}: HTTP 404 Not Found from ${source}/${LABELS}`);
    expect(await hits(`${source}/${LABELS}`)).toBe(1);
    expect(await dataset()).toEqual(baseline);
  });

  it("500 twice, then 200: retried with backoff and the run completes", async () => {
    const source = await publish(syntheticArchives(120, 30, 22), { [IMAGES]: "status:500:2" });
    const run = await runToEnd({ source });
    expect(run.error).toBeNull();
    expect(run.status).toBe("complete");
    // A complete dataset exists, so the images are hashed first (500, 500, 200), then their
    // header is read, then they are downloaded again to load them (their MD5 differs from the last run's).
    expect(await hits(`${source}/${IMAGES}`)).toBe(5);
    await expectSynthetic(120, 30, 22);
    // Put the baseline back for the tests after this one.
    expect((await runToEnd({ source: await publish(syntheticArchives(300, 40, 21)) })).status).toBe("complete");
    expect(await dataset()).toEqual(baseline);
  });

  it("500 on every attempt: bounded retries, then the run fails with the last error", async () => {
    const source = await publish(syntheticArchives(50, 10), { [LABELS]: "status:500" });
    const run = await runToEnd({ source });
    expect(run.status).toBe("failed");
    expect(run.error).toBe(
      `extraction failed on every delivery and went to the dead-letter queue; last error: ${LABELS}: HTTP 500 Internal Server Error from ${source}/${LABELS} (after 3 attempts)`,
    );
    // FETCH_ATTEMPTS (3) per delivery × 3 deliveries (max_retries = 2): bounded.
    expect(await hits(`${source}/${LABELS}`)).toBe(9);
    expect(await dataset()).toEqual(baseline);
  });
});

describe("a source that changes during a run", () => {
  it("an archive that differs between the hashing pass and the loading pass fails the run; the dataset stays", async () => {
    const archives = syntheticArchives(300, 40, 23);
    const source = await publish(archives);
    // The same pixels recompressed with another gzip mtime: a valid archive with another
    // MD5, served from the second request on — after the hashing pass, to the loading pass.
    const recompressed = gzipSync(gunzipSync(archives[IMAGES]!), { mtime: 1 });
    expect((await fetch(`${source}/${IMAGES}?fault=next:1`, { method: "PUT", body: recompressed })).status).toBe(201);
    const run = await runToEnd({ source });
    expect(run.status).toBe("failed");
    expect(run.error).toMatch(
      /^train-images-idx3-ubyte\.gz changed while the run was loading \(MD5 [0-9a-f]{32}, was [0-9a-f]{32}\); start a new run$/,
    );
    expect(await hits(`${source}/${IMAGES}`)).toBe(3); // hashed, its header read, then the other bytes
    expect(await dataset()).toEqual(baseline);
  });
});

describe("broken connections", () => {
  it("connection refused: retried, then a clear error", async () => {
    const source = await publish(syntheticArchives(50, 10), { [LABELS]: "refuse" });
    const run = await runToEnd({ source });
    expect(run.status).toBe("failed");
    expect(run.error).toMatch(
      new RegExp(
        `last error: ${LABELS}: could not connect \\(.+\\) fetching ${source}/${LABELS} \\(after 3 attempts\\)$`,
      ),
    );
    expect(await dataset()).toEqual(baseline);
  });

  it("a response that stops mid-body: retried, then a clear error", async () => {
    const archives = syntheticArchives(200, 10);
    const cut = Math.floor(archives[IMAGES]!.length / 2);
    const source = await publish(archives, { [IMAGES]: `cut:${cut}` });
    const run = await runToEnd({ source });
    expect(run.status).toBe("failed");
    expect(run.error).toMatch(
      new RegExp(`last error: ${IMAGES}: download interrupted after ${cut} bytes \\(.+\\) \\(after 3 attempts\\)$`),
    );
    expect(await dataset()).toEqual(baseline);
  });

  it("a hung response: each attempt is cut off by the time-out, and the job gives up in bounded time", async () => {
    // Headers and the first 64 bytes, then silence (the archive must be larger than that).
    const archives = syntheticArchives(50, 10);
    expect(archives[IMAGES]!.length).toBeGreaterThan(64);
    const source = await publish(archives, { [IMAGES]: "hang" });
    const runId = await queuedRun(source);
    const started = Date.now();
    const { result, ids, thrown } = await deliver(QUEUES.jobs, [{ kind: "extract", runId, force: false, from: 0 }], {
      env: { FETCH_TIMEOUT_MS: "400", FETCH_ATTEMPTS: "2", FETCH_BACKOFF_MS: "10" },
    });
    const elapsed = Date.now() - started;
    expect(elapsed).toBeLessThan(3000);
    expect(elapsed).toBeGreaterThanOrEqual(800);
    // Retryable: the job asks Queues to redeliver it, and the run says why it is waiting.
    expect(thrown).toBeUndefined();
    expect(result.explicitAcks).toEqual([]);
    expect(result.retryMessages.map((m) => m.msgId)).toEqual(ids);
    expect(await hits(`${source}/${IMAGES}`)).toBe(2);
    const waiting = await runStatus(runId);
    expect(waiting.status).toBe("extracting");
    expect(waiting.error).toBeNull();
    expect(waiting.retrying).toMatch(
      new RegExp(`^${IMAGES}: download (interrupted|timed out) after 64 bytes.*\\(after 2 attempts\\)$`),
    );

    // After its last delivery the job lands in the DLQ, which fails the run with that reason.
    await deliver(QUEUES.deadLetter, [{ kind: "extract", runId, force: false, from: 0 }]);
    const failed = await runStatus(runId);
    expect(failed.status).toBe("failed");
    expect(failed.error).toMatch(
      /^extraction failed on every delivery .*; last error: train-images-idx3-ubyte\.gz: download/,
    );
    expect(await dataset()).toEqual(baseline);
    expect(env.FETCH_TIMEOUT_MS).toBe("5000"); // the override was this delivery's only
  });
});

describe("the time-out is for silence, not for size", () => {
  /** A body that sends `chunks` chunks, `gapMs` apart, then (if `stall`) goes silent. */
  const trickle = (chunks: number, gapMs: number, stall = false) =>
    new ReadableStream<Uint8Array>({
      async start(c) {
        for (let i = 0; i < chunks; i++) {
          await new Promise((r) => setTimeout(r, gapMs));
          c.enqueue(new Uint8Array(10));
        }
        if (!stall) c.close();
      },
    });
  const policy = { ...DEFAULT_RETRY, attempts: 1, timeoutMs: 300, backoffMs: 1 };
  const drain = (body: () => ReadableStream<Uint8Array>) =>
    bytesRead(policy, (attempt) => readBody(body(), "slow.gz", "http://source.test/slow.gz", attempt));

  it("a download that keeps moving is not cut off, however long it takes in total", async () => {
    const started = Date.now();
    expect(await drain(() => trickle(8, 100))).toBe(80);
    expect(Date.now() - started).toBeGreaterThan(policy.timeoutMs * 2);
  });

  it("a download that goes silent is cut off after the time-out", async () => {
    await expect(drain(() => trickle(3, 50, true))).rejects.toThrow(
      /^slow.gz: download (timed out after 30 bytes|interrupted after 30 bytes \(timed out\))$/,
    );
  });
});

describe("a source that trickles: a minimum rate per attempt", () => {
  const URL_ = "http://source.test/slow.gz";
  /** A body of `chunks` pieces of `bytes` bytes, `gapMs` apart, then closed (or, with `stall`, silent). */
  const trickle = (chunks: number, bytes: number, gapMs: number, stall = false) =>
    new ReadableStream<Uint8Array>({
      async start(c) {
        for (let i = 0; i < chunks; i++) {
          await new Promise((r) => setTimeout(r, gapMs));
          c.enqueue(new Uint8Array(bytes));
        }
        if (!stall) c.close();
      },
    });
  // 1 KiB/s over 200 ms windows: at least 204.8 bytes a window. The idle limit is
  // far off, so whatever cuts an attempt short here is the rate rule.
  const policy = { ...DEFAULT_RETRY, attempts: 1, timeoutMs: 10_000, minBytesPerSecond: 1024, rateWindowMs: 200 };
  const drain = (body: () => ReadableStream<Uint8Array>) =>
    bytesRead(policy, (attempt) => readBody(body(), "slow.gz", URL_, attempt));
  const tooSlow =
    /^slow\.gz: download too slow: \d+ bytes in the last 0\.2 s \(minimum 1 KiB\/s\) after [\d,]+ bytes from http:\/\/source\.test\/slow\.gz$/;

  it("a body that keeps moving, but too slowly, is cut off after a window", async () => {
    // 10 bytes every 50 ms (200 bytes/s): never silent for long, yet 40 bytes a window.
    const started = Date.now();
    await expect(drain(() => trickle(100, 10, 50))).rejects.toThrow(tooSlow);
    const elapsed = Date.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(policy.rateWindowMs);
    expect(elapsed).toBeLessThan(2000); // the whole body would take 5 s
  });

  it("a body that sends nothing at all is cut off too: the check is a timer", async () => {
    await expect(drain(() => trickle(0, 0, 0, true))).rejects.toThrow(
      "slow.gz: download too slow: 0 bytes in the last 0.2 s (minimum 1 KiB/s) after 0 bytes from http://source.test/slow.gz",
    );
  });

  it("a body that moves fast enough completes, over several windows", async () => {
    // 100 bytes every 20 ms (5,000 bytes/s), for 600 ms: three windows at 5× the minimum.
    const started = Date.now();
    expect(await drain(() => trickle(30, 100, 20))).toBe(3000);
    expect(Date.now() - started).toBeGreaterThan(policy.rateWindowMs * 2);
  });

  it("a cleared check never fires: an ended attempt leaves no timer behind", async () => {
    const floor = new Attempt({ ...policy, minBytesPerSecond: 1024, rateWindowMs: 20 });
    floor.end();
    await new Promise((r) => setTimeout(r, 100));
    expect(floor.signal.aborted).toBe(false);
  });

  it("end to end: each attempt is cut off, the job gives up in bounded time, the run says why", async () => {
    const archives = syntheticArchives(50, 10);
    // A byte every 50 ms: the archive would take over 20 s, and no gap comes near the idle limit.
    expect(archives[IMAGES]!.length).toBeGreaterThan(400);
    const source = await publish(archives, { [IMAGES]: "trickle:1:50" });
    const runId = await queuedRun(source);
    const started = Date.now();
    const { result, ids, thrown } = await deliver(QUEUES.jobs, [{ kind: "extract", runId, force: false, from: 0 }], {
      env: { FETCH_MIN_BYTES_PER_S: "1024", FETCH_RATE_WINDOW_MS: "300", FETCH_ATTEMPTS: "2", FETCH_BACKOFF_MS: "10" },
    });
    const elapsed = Date.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(600); // two attempts of one window each
    expect(elapsed).toBeLessThan(5000);
    const escaped = `${source}/${IMAGES}`.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    // Retryable: redelivered by Queues, the reason on the run meanwhile.
    expect(thrown).toBeUndefined();
    expect(result.retryMessages.map((m) => m.msgId)).toEqual(ids);
    expect(result.explicitAcks).toEqual([]);
    expect(await hits(`${source}/${IMAGES}`)).toBe(2);
    const waiting = await runStatus(runId);
    expect(waiting.status).toBe("extracting");
    expect(waiting.retrying).toMatch(
      new RegExp(
        `^${IMAGES.replace(/\./g, "\\.")}: download too slow: \\d+ bytes in the last 0\\.3 s \\(minimum 1 KiB/s\\) after [\\d,]+ bytes from ${escaped} \\(after 2 attempts\\)$`,
      ),
    );

    await deliver(QUEUES.deadLetter, [{ kind: "extract", runId, force: false, from: 0 }]);
    const failed = await runStatus(runId);
    expect(failed.status).toBe("failed");
    expect(failed.error).toMatch(
      /^extraction failed on every delivery .*; last error: train-images-idx3-ubyte\.gz: download too slow: /,
    );
    expect(await dataset()).toEqual(baseline);
    expect(env.FETCH_MIN_BYTES_PER_S).toBeUndefined(); // the overrides were this delivery's only
  });
});
