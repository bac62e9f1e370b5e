/**
 * Raw archives: the bytes a run read and verified, kept in R2 as it reads
 * them and served at /datasets/{name}/raw/{file} (and /raw/{file}). The
 * keeper against local R2 (one put, or a multipart upload of equal parts,
 * visible only once committed; R2 failures never fail the read), then whole
 * runs: a default dataset's four files, a custom dataset's archive larger than
 * one part, EMNIST's zip members kept once across several job segments, the
 * validators and ranges, the 404s, and the pruning of what nothing serves.
 */
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { registryEntry } from "../src/core/registry";
import { appFetch } from "./app-fetch";
import { QUEUES } from "../src/pipeline/config";
import type { ChunkMessage, ExtractMessage } from "../src/pipeline/messages";
import { pruneRawArchives, rawKeeper, RAW_PART_BYTES } from "../src/pipeline/raw-archives";
import { rawKey, rawRunPrefix } from "../src/read/raw-archives";
import {
  SHAPE_28,
  capturingQueue,
  emnistZip,
  imagesGz,
  labelsGz,
  load,
  makeSplit,
  noise,
  publishFiles,
  specArchives,
  trigger,
  waitForRun,
} from "./dataset-fixtures";
import { deliver } from "./faults-helpers";
import { syntheticArchives } from "./helpers";
import { bound } from "./bound";

const bucket = () => env.EXPORTS;

async function md5(bytes: Uint8Array): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest("MD5", bytes));
  return [...d].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** The app's answer, with or without the R2 bucket; the body read before the invocation is awaited. */
async function call(path: string, init: RequestInit = {}, withR2 = true): Promise<{ res: Response; body: Uint8Array }> {
  const { EXPORTS, ...rest } = env;
  return appFetch(path, (withR2 ? { ...rest, EXPORTS } : rest) as Env, init);
}
const errorOf = (body: Uint8Array) => (JSON.parse(new TextDecoder().decode(body)) as { error: string }).error;

/** `bytes` in blocks of `block`, as a download hands them on. */
async function writeAll(copy: { write(b: Uint8Array): Promise<void> }, bytes: Uint8Array, block = 256 * 1024) {
  for (let at = 0; at < bytes.length; at += block) await copy.write(bytes.subarray(at, at + block));
}

async function stored(key: string): Promise<Uint8Array | undefined> {
  const object = await bucket().get(key);
  return object ? new Uint8Array(await object.arrayBuffer()) : undefined;
}

/** A bucket that counts the writes of each key and can be made to fail. */
function countingBucket(real: R2Bucket, fail?: "uploadPart" | "put") {
  const writes = new Map<string, number>();
  const calls: string[] = [];
  const count = (key: string) => writes.set(key, (writes.get(key) ?? 0) + 1);
  const proxy = new Proxy(real, {
    get(target, prop) {
      if (typeof prop === "string") calls.push(prop);
      if (prop === "put")
        return async (key: string, value: Uint8Array, opts?: R2PutOptions) => {
          count(key);
          if (fail === "put") throw new Error("R2 is down");
          return target.put(key, value, opts);
        };
      if (prop === "createMultipartUpload")
        return async (key: string, opts?: R2MultipartOptions) => {
          count(key);
          const upload = await target.createMultipartUpload(key, opts);
          if (fail !== "uploadPart") return upload;
          return new Proxy(upload, {
            get: (u, p) =>
              p === "uploadPart"
                ? async () => {
                    throw new Error("R2 is down");
                  }
                : bound(u, p),
          });
        };
      return bound(target, prop);
    },
  });
  return { bucket: proxy, writes, calls };
}

describe("the keeper, against local R2", () => {
  it("an archive larger than a part is a multipart upload of equal parts, invisible until committed", async () => {
    const bytes = noise(RAW_PART_BYTES + 12345, 1);
    const keeper = rawKeeper(bucket(), "keep-big", "run-1");
    const copy = keeper.begin("train-images-idx3-ubyte.gz")!;
    expect(copy).toBeDefined();
    await writeAll(copy, bytes);
    const key = rawKey("keep-big", "run-1", "train-images-idx3-ubyte.gz");
    expect(await bucket().head(key)).toBeNull();
    await copy.commit(await md5(bytes));
    expect(await stored(key)).toEqual(bytes);
    expect((await bucket().head(key))!.httpMetadata?.contentType).toBe("application/gzip");
    // Kept: a later read of the same run writes nothing, in this job (the keeper knows) or another (R2 says so).
    expect(keeper.begin("train-images-idx3-ubyte.gz")).toBeUndefined();
    const counted = countingBucket(bucket());
    const again = rawKeeper(counted.bucket, "keep-big", "run-1").begin("train-images-idx3-ubyte.gz")!;
    await writeAll(again, bytes);
    await again.commit(await md5(bytes));
    expect(counted.writes.size).toBe(0);
    expect(await stored(key)).toEqual(bytes);
    // Another run keeps its own.
    const other = rawKeeper(counted.bucket, "keep-big", "run-2").begin("train-images-idx3-ubyte.gz")!;
    await writeAll(other, bytes.subarray(0, 10));
    await other.commit(await md5(bytes.subarray(0, 10)));
    expect([...counted.writes.keys()]).toEqual([rawKey("keep-big", "run-2", "train-images-idx3-ubyte.gz")]);
  });

  it("a read that stops at the header asks R2 nothing", async () => {
    const counted = countingBucket(bucket());
    const copy = rawKeeper(counted.bucket, "keep-head", "r").begin("a.gz")!;
    await copy.write(noise(64 * 1024, 6));
    await copy.abort();
    expect(counted.calls).toEqual([]);
  });

  it("a small archive is one put, checked by R2 against the MD5; a zip member is kept under its own name", async () => {
    const bytes = noise(1000, 2);
    const copy = rawKeeper(bucket(), "keep-small", "r").begin("gzip/emnist-digits-test-labels-idx1-ubyte.gz")!;
    await writeAll(copy, bytes, 100);
    await copy.commit(await md5(bytes));
    expect(await stored("_raw/keep-small/r/emnist-digits-test-labels-idx1-ubyte.gz")).toEqual(bytes);

    // Bytes whose MD5 is not the one committed: R2 refuses them, and the read goes on without a copy.
    const wrong = rawKeeper(bucket(), "keep-small", "r2").begin("x.gz")!;
    await writeAll(wrong, bytes);
    await expect(wrong.commit(await md5(noise(1000, 3)))).resolves.toBeUndefined();
    expect(await bucket().head(rawKey("keep-small", "r2", "x.gz"))).toBeNull();
  });

  it("an aborted read keeps nothing, and the next read keeps the archive whole", async () => {
    const bytes = noise(RAW_PART_BYTES + 7, 4);
    const keeper = rawKeeper(bucket(), "keep-abort", "r");
    const first = keeper.begin("a.gz")!;
    await writeAll(first, bytes.subarray(0, RAW_PART_BYTES + 1));
    await first.abort();
    const key = rawKey("keep-abort", "r", "a.gz");
    expect(await bucket().head(key)).toBeNull();
    const second = keeper.begin("a.gz")!;
    expect(second).toBeDefined();
    await writeAll(second, bytes);
    await second.commit(await md5(bytes));
    expect(await stored(key)).toEqual(bytes);
  });

  it.each(["uploadPart", "put"] as const)("R2 failing in %s drops the copy without failing the read", async (fail) => {
    const { bucket: failing } = countingBucket(bucket(), fail);
    const bytes = noise(fail === "put" ? 500 : RAW_PART_BYTES + 500, 5);
    const copy = rawKeeper(failing, "keep-fail", fail).begin("a.gz")!;
    await expect(writeAll(copy, bytes)).resolves.toBeUndefined();
    await expect(copy.commit(await md5(bytes))).resolves.toBeUndefined();
    expect(await bucket().head(rawKey("keep-fail", fail, "a.gz"))).toBeNull();
  });
});

describe("a run keeps what it read, and the Worker serves it", () => {
  it("the default dataset's four archives, byte for byte, with validators and ranges, under both URLs", async () => {
    const archives = syntheticArchives(120, 40, 7);
    const run = await load({ source: await publishFiles(archives) }, { force: true });
    expect(run.status).toBe("complete");
    const listed = await bucket().list({ prefix: rawRunPrefix("fashion-mnist", run.id) });
    expect(listed.objects.map((o) => o.key).sort()).toEqual(
      Object.keys(archives)
        .map((f) => rawKey("fashion-mnist", run.id, f))
        .sort(),
    );
    for (const [file, bytes] of Object.entries(archives)) {
      for (const path of [`/datasets/fashion-mnist/raw/${file}`, `/raw/${file}`]) {
        const { res, body } = await call(path);
        expect(res.status, path).toBe(200);
        expect(body).toEqual(bytes);
        expect(res.headers.get("ETag")).toBe(`"${await md5(bytes)}"`);
        expect(res.headers.get("Content-Type")).toBe("application/gzip");
        expect(res.headers.get("Content-Encoding")).toBeNull();
        expect(res.headers.get("Content-Length")).toBe(String(bytes.length));
        expect(res.headers.get("Accept-Ranges")).toBe("bytes");
      }
    }
    const [file, bytes] = Object.entries(archives)[0]!;
    const url = `/datasets/fashion-mnist/raw/${file}`;
    const etag = `"${await md5(bytes)}"`;
    const head = await call(url, { method: "HEAD" });
    expect(head.res.status).toBe(200);
    expect(head.res.headers.get("Content-Length")).toBe(String(bytes.length));
    expect(head.body.length).toBe(0);
    expect((await call(url, { headers: { "If-None-Match": etag } })).res.status).toBe(304);
    expect((await call(url, { headers: { "If-Match": '"other"' } })).res.status).toBe(412);
    const suffix = await call(url, { headers: { Range: "bytes=-100" } });
    expect(suffix.res.status).toBe(206);
    expect(suffix.body).toEqual(bytes.subarray(bytes.length - 100));
    expect(suffix.res.headers.get("Content-Range")).toBe(
      `bytes ${bytes.length - 100}-${bytes.length - 1}/${bytes.length}`,
    );
    const middle = await call(url, { headers: { Range: "bytes=10-19", "If-Range": etag } });
    expect(middle.body).toEqual(bytes.subarray(10, 20));
    const stale = await call(url, { headers: { Range: "bytes=10-19", "If-Range": '"old"' } });
    expect(stale.res.status).toBe(200);
    expect(stale.body).toEqual(bytes);
    const past = await call(url, { headers: { Range: `bytes=${bytes.length}-` } });
    expect(past.res.status).toBe(416);
    expect(past.res.headers.get("Content-Range")).toBe(`bytes */${bytes.length}`);

    // What is not there says why.
    expect(errorOf((await call("/raw/nope.gz")).body)).toBe(
      `fashion-mnist was not loaded from nope.gz: its version ${run.id} was loaded from t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz, train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz`,
    );
    const noBucket = await call(url, {}, false);
    expect(noBucket.res.status).toBe(404);
    expect(errorOf(noBucket.body)).toBe(
      `fashion-mnist's ${file} is not kept: raw archives are kept in R2, and this Worker has no EXPORTS bucket`,
    );
    expect(errorOf((await call("/datasets/mnist/raw/x.gz")).body)).toMatch(/^dataset mnist has not been loaded/);
    expect((await call("/datasets/fashion-mnist/raw/a%22b.gz")).res.status).toBe(400);
    await bucket().delete(rawKey("fashion-mnist", run.id, file));
    const lost = await call(url);
    expect(lost.res.status).toBe(404);
    expect(errorOf(lost.body)).toMatch(/is not kept: the run that loaded version .* did not keep its archives/);
  });

  it("a custom dataset's archive larger than one part comes back whole", async () => {
    const shape = { rows: 32, cols: 32, channels: 3 };
    const train = makeSplit(1800, shape, (i) => i % 4, 11);
    const test = makeSplit(30, shape, (i) => i % 4, 12);
    const files = { trainImages: "big-x.gz", trainLabels: "big-y.gz", testImages: "t-x.gz", testLabels: "t-y.gz" };
    const archives = {
      [files.trainImages]: imagesGz(train),
      [files.trainLabels]: labelsGz(train),
      [files.testImages]: imagesGz(test),
      [files.testLabels]: labelsGz(test),
    };
    expect(archives[files.trainImages]!.length).toBeGreaterThan(RAW_PART_BYTES);
    const run = await load({ dataset: "big-rgb", source: await publishFiles(archives), files });
    expect(run.error).toBeNull();
    for (const [file, bytes] of Object.entries(archives)) {
      const { res, body } = await call(`/datasets/big-rgb/raw/${file}`);
      expect(res.status, file).toBe(200);
      expect(body.length).toBe(bytes.length);
      expect(await md5(body)).toBe(await md5(bytes));
    }
  }, 60_000);

  it("EMNIST's members are kept once under their names, though every job segment reads them again", async () => {
    const DIGITS = registryEntry("emnist-digits")!;
    const data = {
      train: makeSplit(100, SHAPE_28, (i) => i % 10, 21),
      test: makeSplit(40, SHAPE_28, (i) => i % 10, 22),
    };
    const members = specArchives(DIGITS, data);
    const source = `${await publishFiles({ "gzip.zip": emnistZip(members) })}/gzip.zip`;
    const jobs = capturingQueue<ExtractMessage>();
    const chunks = capturingQueue<ChunkMessage>(async (bodies) => {
      expect((await deliver(QUEUES.chunks, bodies)).thrown).toBeUndefined();
    });
    const run = await trigger({ dataset: DIGITS.name, source }, { jobs: jobs.queue, force: true });
    const counted = countingBucket(bucket());
    const overrides = {
      JOB_MAX_CHUNKS: "2",
      CHUNK_SIZE: "20",
      JOBS: jobs.queue,
      CHUNKS: chunks.queue,
      EXPORTS: counted.bucket,
    };
    for (let i = 0; i < jobs.sent.length; i++) {
      const { thrown } = await deliver(QUEUES.jobs, [jobs.sent[i]!], { env: overrides });
      expect(thrown).toBeUndefined();
    }
    expect(jobs.sent.length).toBeGreaterThan(3);
    expect((await waitForRun(run.id)).status).toBe("complete");
    for (const [member, bytes] of Object.entries(members)) {
      const file = member.replace(/^gzip\//, "");
      const key = rawKey(DIGITS.name, run.id, file);
      expect(counted.writes.get(key), key).toBe(1);
      const { res, body } = await call(`/datasets/${DIGITS.name}/raw/${file}`);
      expect(res.status).toBe(200);
      expect(body).toEqual(bytes);
    }
    expect(counted.writes.size).toBe(4);
  });

  it("a run's first job deletes what finished runs kept and nothing serves; the current and active runs' stay", async () => {
    const KMNIST = registryEntry("kmnist")!;
    const archives = (seed: number) =>
      specArchives(KMNIST, {
        train: makeSplit(30, SHAPE_28, (i) => i % 10, seed),
        test: makeSplit(10, SHAPE_28, (i) => i % 10, seed + 1),
      });
    const insertRun = (id: string, status: string) =>
      env.DB.prepare(
        "INSERT INTO runs (id, dataset, trigger, source, status, train_loaded, test_loaded, chunks_total, created_at, updated_at) VALUES (?1, 'kmnist', 'http', 'http://h', ?2, 0, 0, 0, '2026-01-01', '2026-01-01')",
      )
        .bind(id, status)
        .run();
    const keptRuns = async () =>
      [...new Set((await bucket().list({ prefix: "_raw/kmnist/" })).objects.map((o) => o.key.split("/")[2]))].sort();

    const first = await load({ dataset: "kmnist", source: await publishFiles(archives(31)) });
    // What a failed run left.
    await insertRun("failed-run", "failed");
    await bucket().put(rawKey("kmnist", "failed-run", "a.gz"), "x");
    const replacing = archives(33);
    const second = await load({ dataset: "kmnist", source: await publishFiles(replacing) }, { force: true });
    expect([first.status, second.status]).toEqual(["complete", "complete"]);
    // At the second run's start the first was current: kept until the next run starts.
    expect(await keptRuns()).toEqual([first.id, second.id].sort());
    expect((await call("/datasets/kmnist/raw/train-images-idx3-ubyte.gz")).body).toEqual(
      replacing["train-images-idx3-ubyte.gz"],
    );

    // The next run, under way: its copies stay; the replaced version's go.
    await insertRun("active-run", "extracting");
    await bucket().put(rawKey("kmnist", "active-run", "a.gz"), "x");
    expect(await pruneRawArchives(bucket(), env.DB, "kmnist")).toBe(4);
    expect(await keptRuns()).toEqual(["active-run", second.id].sort());
  });
});
