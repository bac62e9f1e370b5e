/**
 * Exports materialised to R2 (issue #11's stretch: a repeat export reads no
 * D1 rows): after a load completes, a job writes the version's four .npy
 * files to the EXPORTS bucket and records them; from then on every export of
 * that version — whole, sliced, ranged, versioned — streams from R2 with the
 * very bytes the D1 path serves, and reads no image row. A missing or damaged
 * file falls back to D1; a new load is never served another version's file,
 * and its job deletes the old version's.
 */
import { env, SELF } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import { consumeDeadLetters } from "../src/pipeline/consume";
import { materialiseExports, requestExports } from "../src/pipeline/materialise";
import { runExportJob } from "../src/pipeline/job";
import { recordExports } from "../src/db/exports";
import { database } from "../src/db/database";
import { exportKey } from "../src/read/export-store";
import { publish, runToEnd, syntheticArchives } from "./helpers";
import { parseNpy } from "./npy";
import { recorded } from "./recorded-app";
import { bound } from "./bound";

const TRAIN = 1100;
const TEST = 60;
const DATASET = "fashion-mnist";

/** The version whose files the export job recorded, once it has (the real jobs queue runs it). */
async function exportedVersion(want: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const row = await env.DB.prepare("SELECT version FROM dataset_exports WHERE dataset = ?1")
      .bind(DATASET)
      .first<{ version: string }>();
    if (row?.version === want) return;
    if (Date.now() > deadline) throw new Error(`no export of ${want} recorded (found ${row?.version})`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function keys(prefix: string): Promise<Map<string, number>> {
  const listed = await env.EXPORTS.list({ prefix });
  return new Map(listed.objects.map((o) => [o.key, o.size]));
}

/** The same request answered from D1 (no bucket) and as the Worker answers it (with the bucket). */
async function bothWays(path: string, headers: Record<string, string> = {}) {
  const d1 = await recorded(path, headers);
  const r2 = await recorded(path, headers, "GET", true);
  return { d1, r2 };
}

const PATHS = [
  "/export/train.npy",
  "/export/train-labels.npy",
  "/export/test.npy",
  "/export/test-labels.npy",
  "/export/train.npy?offset=10&limit=5",
  "/export/train.npy?offset=1097",
  "/export/test-labels.npy?offset=3&limit=50",
  "/datasets/fashion-mnist/export/test.npy?limit=7",
];

let version: string;

beforeAll(async () => {
  const run = await runToEnd({ source: await publish(syntheticArchives(TRAIN, TEST)) });
  expect(run.status).toBe("complete");
  version = run.id;
  await exportedVersion(version);
});

describe("after a load", () => {
  it("the job wrote the version's nine files to R2 at their exact sizes, and recorded them", async () => {
    const stored = await keys(`${DATASET}/`);
    const files = ["test", "train"].flatMap((s) => [`${s}.npy`, `${s}-uint8.npy`, `${s}-labels.npy`, `${s}.parquet`]);
    expect([...stored.keys()].sort()).toEqual(
      [...files, `${DATASET}.npz`].map((f) => `${DATASET}/${version}/${f}`).sort(),
    );
    expect(exportKey(DATASET, version, "test", "images")).toBe(`${DATASET}/${version}/test.npy`);
    expect(stored.get(exportKey(DATASET, version, "train", "images"))).toBe(128 + TRAIN * 3136);
    expect(stored.get(exportKey(DATASET, version, "test", "labels"))).toBe(128 + TEST);
    const row = await env.DB.prepare("SELECT version, bytes FROM dataset_exports").first();
    expect(row).toEqual({ version, bytes: [...stored.values()].reduce((a, b) => a + b, 0) });
  });

  it("every export, whole or sliced, streams from R2 with the D1 path's bytes and reads no image row", async () => {
    for (const path of PATHS) {
      const { d1, r2 } = await bothWays(path);
      expect(r2.res.status, path).toBe(200);
      expect(r2.res.headers.get("X-Export-Source"), path).toBe("r2");
      expect(d1.res.headers.get("X-Export-Source"), path).toBe("d1");
      expect(r2.imageReads, path).toEqual([]);
      expect(r2.statements.length, path).toBe(1); // the catalog
      expect(r2.res.headers.get("Content-Length"), path).toBe(String(r2.body.length));
      expect(r2.res.headers.get("ETag"), path).toBe(d1.res.headers.get("ETag"));
      expect(r2.body, path).toEqual(d1.body);
    }
    // And they are the arrays: the header agrees with the body.
    const { r2 } = await bothWays("/export/train.npy?offset=10&limit=5");
    expect(parseNpy(r2.body).shape).toEqual([5, 28, 28, 1]);
  });

  it("byte ranges, within the header, across it, mid-file and suffixes, are the D1 path's bytes", async () => {
    for (const [path, range] of [
      ["/export/train.npy", "bytes=0-99"],
      ["/export/train.npy", "bytes=100-5000"],
      ["/export/train.npy", "bytes=1000000-1999999"],
      ["/export/train.npy", "bytes=-4000"],
      ["/export/train.npy?offset=10&limit=5", "bytes=64-8000"],
      ["/export/train.npy?offset=10&limit=5", "bytes=5000-"],
      ["/export/test-labels.npy", "bytes=120-130"],
    ] as const) {
      const { d1, r2 } = await bothWays(path, { Range: range });
      expect(r2.res.status, `${path} ${range}`).toBe(206);
      expect(r2.res.headers.get("Content-Range"), `${path} ${range}`).toBe(d1.res.headers.get("Content-Range"));
      expect(r2.body, `${path} ${range}`).toEqual(d1.body);
      expect(r2.imageReads, `${path} ${range}`).toEqual([]);
    }
  });

  it("the versioned URL streams from R2 too, and HEAD reads nothing", async () => {
    const { d1, r2 } = await bothWays(`/export/v/${version}/train.npy`);
    expect(r2.res.headers.get("X-Export-Source")).toBe("r2");
    expect(r2.body).toEqual(d1.body);
    const head = await recorded("/export/train.npy", {}, "HEAD", true);
    expect(head.res.status).toBe(200);
    expect(head.imageReads).toEqual([]);
  });

  it("a repeated job writes nothing, and a version that is not current is never recorded", async () => {
    expect(await materialiseExports(env, DATASET)).toMatchObject({ kind: "exported", version, written: 0 });
    expect(await recordExports(database(env.DB), DATASET, "no-such-run", 1, new Date().toISOString())).toBe(false);
    expect(await env.DB.prepare("SELECT version FROM dataset_exports").first()).toEqual({ version });
  });

  it("a missing or damaged file is read from D1 instead, and the job restores it", async () => {
    const key = exportKey(DATASET, version, "test", "images");
    const original = new Uint8Array(await (await env.EXPORTS.get(key))!.arrayBuffer());
    await env.EXPORTS.delete(key);
    let { d1, r2 } = await bothWays("/export/test.npy");
    expect(r2.res.headers.get("X-Export-Source")).toBe("d1");
    expect(r2.body).toEqual(d1.body);
    // Cut short: not the whole file's size, so not trusted.
    await env.EXPORTS.put(key, original.subarray(0, original.length - 3136));
    ({ d1, r2 } = await bothWays("/export/test.npy?offset=2&limit=3"));
    expect(r2.res.headers.get("X-Export-Source")).toBe("d1");
    expect(r2.body).toEqual(d1.body);
    expect(await materialiseExports(env, DATASET)).toMatchObject({ kind: "exported", written: 1 });
    expect(new Uint8Array(await (await env.EXPORTS.get(key))!.arrayBuffer())).toEqual(original);
    expect((await bothWays("/export/test.npy")).r2.res.headers.get("X-Export-Source")).toBe("r2");
  });

  it("a download served from D1 while the files are not recorded queues the job that writes them", async () => {
    await env.DB.prepare("DELETE FROM dataset_exports").run();
    const res = await SELF.fetch("http://worker/export/test-labels.npy");
    expect(res.headers.get("X-Export-Source")).toBe("d1");
    await res.arrayBuffer();
    await exportedVersion(version);
    expect((await bothWays("/export/test-labels.npy")).r2.res.headers.get("X-Export-Source")).toBe("r2");
  });

  it("rewriting every file holds at most five uploads open at once (a Worker may hold six connections)", async () => {
    await env.EXPORTS.delete([...(await keys(`${DATASET}/`)).keys()]);
    let open = 0;
    let most = 0;
    const counting = new Proxy(env.EXPORTS, {
      get(target, prop) {
        if (prop !== "put") return bound(target, prop);
        return async (...args: Parameters<R2Bucket["put"]>) => {
          most = Math.max(most, ++open);
          try {
            return await target.put(...args);
          } finally {
            open--;
          }
        };
      },
    });
    expect(await materialiseExports({ ...env, EXPORTS: counting }, DATASET)).toMatchObject({ written: 9 });
    expect(most).toBe(5);
    expect((await keys(`${DATASET}/`)).size).toBe(9);
  });

  it("a file larger than one R2 put takes is left to D1; the others are still stored and served", async () => {
    const images = exportKey(DATASET, version, "test", "images");
    await env.EXPORTS.delete([images, exportKey(DATASET, version, "test", "labels")]);
    // Here a put takes 1,000 bytes at most: the test split's labels (188 bytes) fit, its images do not.
    expect(await materialiseExports(env, DATASET, 1_000)).toMatchObject({ kind: "exported", written: 1 });
    expect(await env.EXPORTS.head(images)).toBeNull();
    let { d1, r2 } = await bothWays("/export/test.npy");
    expect(r2.res.headers.get("X-Export-Source")).toBe("d1");
    expect(r2.body).toEqual(d1.body);
    ({ d1, r2 } = await bothWays("/export/test-labels.npy"));
    expect(r2.res.headers.get("X-Export-Source")).toBe("r2");
    expect(r2.body).toEqual(d1.body);
    expect(await materialiseExports(env, DATASET)).toMatchObject({ written: 1 });
  });

  it("a put that R2 refuses leaves the job to be retried, nothing recorded, and downloads reading D1", async () => {
    const key = exportKey(DATASET, version, "train", "labels");
    await env.EXPORTS.delete(key);
    await env.DB.prepare("DELETE FROM dataset_exports").run();
    const refusing = new Proxy(env.EXPORTS, {
      get(target, prop) {
        if (prop === "put")
          return async (k: string, body: ReadableStream | Uint8Array) => {
            if (body instanceof ReadableStream) await body.cancel();
            throw new Error(`put ${k}: We encountered an internal error. Please try again.`);
          };
        return bound(target, prop);
      },
    });
    const job = { kind: "export", dataset: DATASET } as const;
    expect(await runExportJob(job, { ...env, EXPORTS: refusing })).toBe("retry");
    expect(await env.DB.prepare("SELECT COUNT(*) AS n FROM dataset_exports").first()).toEqual({ n: 0 });
    const { d1, r2 } = await bothWays("/export/train.npy");
    expect(r2.res.headers.get("X-Export-Source")).toBe("d1");
    expect(r2.body).toEqual(d1.body);
    // The retry, with R2 back, writes the missing file and records the version.
    expect(await runExportJob(job, env)).toBe("done");
    expect((await env.EXPORTS.head(key))?.size).toBe(128 + TRAIN);
    expect((await bothWays("/export/train.npy")).r2.res.headers.get("X-Export-Source")).toBe("r2");
  });

  it("without a bucket there is no job and nothing to write", async () => {
    const { EXPORTS: _, ...unbound } = env;
    expect(await materialiseExports(unbound as unknown as Env, DATASET)).toEqual({ kind: "unbound" });
    const sent: unknown[] = [];
    await requestExports(
      { ...unbound, JOBS: { send: async (m: unknown) => void sent.push(m) } } as unknown as Env,
      DATASET,
    );
    expect(sent).toEqual([]);
    // The API says so: no bucket, nothing to wait for.
    const view = await recorded("/datasets/fashion-mnist");
    expect(JSON.parse(new TextDecoder().decode(view.body))).toMatchObject({ version, exportsStored: null });
    const bound = await recorded("/datasets/fashion-mnist", {}, "GET", true);
    expect(JSON.parse(new TextDecoder().decode(bound.body))).toMatchObject({ version, exportsStored: true });
  });

  it("an export job that exhausted its retries fails no run", async () => {
    const before = await env.DB.prepare("SELECT id, status FROM runs ORDER BY id").all();
    let acked = 0;
    const msg = {
      id: "m1",
      body: { kind: "export", dataset: DATASET },
      attempts: 3,
      ack: () => acked++,
      retry: () => {},
    };
    await consumeDeadLetters({ queue: "idx-etl-dlq", messages: [msg] } as unknown as MessageBatch<unknown>, env);
    expect(acked).toBe(1);
    expect((await env.DB.prepare("SELECT id, status FROM runs ORDER BY id").all()).results).toEqual(before.results);
  });
});

describe("a new load", () => {
  let next: string;

  beforeAll(async () => {
    const run = await runToEnd({ source: await publish(syntheticArchives(TRAIN, TEST, 7)) });
    expect(run).toMatchObject({ status: "complete", unchanged: false });
    next = run.id;
  });

  it("is never served the old version's files, and its job replaces them", async () => {
    // Whether or not its own files are written yet, the export is the new load's bytes.
    const { d1, r2 } = await bothWays("/export/train.npy");
    expect(r2.res.headers.get("ETag")).toBe(`"${next}-train.npy"`);
    expect(r2.body).toEqual(d1.body);
    await exportedVersion(next);
    const stored = await keys(`${DATASET}/`);
    expect([...stored.keys()].every((k) => k.startsWith(`${DATASET}/${next}/`))).toBe(true);
    expect(stored.size).toBe(9);
    const again = await bothWays("/export/train.npy");
    expect(again.r2.res.headers.get("X-Export-Source")).toBe("r2");
    expect(again.r2.body).toEqual(d1.body);
    // The old version's URL is still 410, never its (deleted) file.
    expect((await SELF.fetch(`http://worker/export/v/${version}/train.npy`)).status).toBe(410);
  });

  it("a swap while the job reads D1 leaves that version unrecorded and the new one's job in charge", async () => {
    // Pretend the old version is current and unexported, then swap to the new one at the job's first page.
    await env.DB.batch([
      env.DB.prepare("UPDATE datasets SET run_id = ?1 WHERE name = ?2").bind(version, DATASET),
      env.DB.prepare("DELETE FROM dataset_exports"),
    ]);
    let swapped = false;
    const db = new Proxy(env.DB, {
      get(target, prop) {
        if (prop === "prepare")
          return (sql: string) => {
            if (!swapped && /\b(FROM|JOIN)\s+images__/i.test(sql)) {
              swapped = true;
              return {
                bind: (...params: unknown[]) => ({
                  raw: async () => {
                    await target.prepare("UPDATE datasets SET run_id = ?1 WHERE name = ?2").bind(next, DATASET).run();
                    return target
                      .prepare(sql)
                      .bind(...params)
                      .raw();
                  },
                }),
              };
            }
            return target.prepare(sql);
          };
        const v = Reflect.get(target, prop) as unknown;
        return typeof v === "function" ? v.bind(target) : v;
      },
    });
    expect(await materialiseExports({ ...env, DB: db }, DATASET)).toEqual({ kind: "superseded", version });
    expect(swapped).toBe(true);
    expect(await env.DB.prepare("SELECT COUNT(*) AS n FROM dataset_exports").first()).toEqual({ n: 0 });
    expect((await bothWays("/export/train.npy")).r2.res.headers.get("X-Export-Source")).toBe("d1");
    // The new version's job (queued by its run; here called again) records it once more.
    expect(await materialiseExports(env, DATASET)).toMatchObject({ kind: "exported", version: next, written: 0 });
    expect((await bothWays("/export/train.npy")).r2.res.headers.get("X-Export-Source")).toBe("r2");
  });
});
