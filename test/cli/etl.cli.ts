/**
 * `npm run etl` itself, as a user runs it: a child process that starts the
 * Worker (Miniflare, run by the command itself), loads a directory of archives and
 * exits 0 with a summary — or exits 1 with the run's error, leaving the loaded
 * dataset as it was. Local state goes to a fresh --persist-to directory, never
 * the developer's own. Each load costs a Worker start, so the custom dataset is
 * loaded by the step that already starts one; the command-line mistakes are
 * caught before anything starts, and cost only the process.
 */
import { createHash } from "node:crypto";
import { cp, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { gzipSync } from "node:zlib";
import { etl } from "./etl-process";
import { afterAll, beforeAll, expect, it } from "vitest";
import { FASHION_MNIST, REGISTRY_NAMES } from "../../src/core/registry";
import { idxBytes } from "../idx-fixtures";
import { serveArchives, type ArchiveServer } from "../../scripts/lib/archive-server";
import { applyLocalMigrations, localD1 } from "../../scripts/lib/dev-server";

/** A small dataset in Fashion-MNIST's file layout, label i % 10. */
async function writeDataset(dir: string, counts: { train: number; test: number }): Promise<void> {
  for (const spec of FASHION_MNIST.splits) {
    const n = counts[spec.split];
    const pixels = Uint8Array.from({ length: n * 784 }, (_, i) => (i * 7) % 256);
    const labels = Uint8Array.from({ length: n }, (_, i) => i % 10);
    await writeFile(join(dir, spec.images.file), gzipSync(idxBytes([n, 28, 28], pixels)));
    await writeFile(join(dir, spec.labels.file), gzipSync(idxBytes([n], labels)));
  }
}

/** A custom dataset: 32×32 images, three named classes, label i % 3, in files named as no registry names them. */
const CUSTOM = {
  name: "shapes-32",
  classes: ["circle", "square", "cross"],
  count: { train: 90, test: 30 },
  files: { train: ["train-x.gz", "train-y.gz"], test: ["test-x.gz", "test-y.gz"] },
} as const;
const customFlags = (source: string): string[] => [
  "--dataset",
  CUSTOM.name,
  "--source",
  source,
  "--train-images",
  CUSTOM.files.train[0],
  "--train-labels",
  CUSTOM.files.train[1],
  "--test-images",
  CUSTOM.files.test[0],
  "--test-labels",
  CUSTOM.files.test[1],
  "--classes",
  CUSTOM.classes.join(","),
];

async function writeCustom(dir: string): Promise<void> {
  for (const split of ["train", "test"] as const) {
    const n = CUSTOM.count[split];
    const pixels = Uint8Array.from({ length: n * 32 * 32 }, (_, i) => (i * 11) % 256);
    const labels = Uint8Array.from({ length: n }, (_, i) => i % 3);
    await writeFile(join(dir, CUSTOM.files[split][0]), gzipSync(idxBytes([n, 32, 32], pixels)));
    await writeFile(join(dir, CUSTOM.files[split][1]), gzipSync(idxBytes([n], labels)));
  }
}

/** Uploads to the local R2 that a stopped runtime cut off (`.<blob>.<pid>.<n>.tmp`), which npm run etl removes. */
async function cutUploads(stateDir: string): Promise<string[]> {
  const r2 = join(stateDir, "v3", "r2");
  const buckets = await readdir(r2).catch(() => [] as string[]);
  const names = await Promise.all(buckets.map((b) => readdir(join(r2, b, "blobs")).catch(() => [] as string[])));
  return names.flat().filter((n) => n.endsWith(".tmp"));
}

let work: string;
let state: string;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "idx-etl-cli-"));
  state = join(work, "state");
});

const servers: ArchiveServer[] = [];

afterAll(async () => {
  for (const server of servers) await server.close();
  await rm(work, { recursive: true, force: true });
});

it("loads a directory of archives and exits 0, its summary's MD5s and D1 file right; a corrupt archive exits 1 with the run's error; a URL loads too", async () => {
  const good = join(work, "good");
  await mkdir(good);
  await writeDataset(good, { train: 600, test: 100 });
  const ok = await etl(["--source", good, "--persist-to", state]);
  expect(ok.stderr + ok.stdout).toMatch(/complete in \d+\.\d s/);
  expect(ok.code).toBe(0);
  expect(ok.stdout).toContain("600");
  // It does not wait for the export job to R2: it says where downloads come from, and leaves no cut-off upload.
  expect(ok.stdout).toMatch(
    /exports: (this version's \.npy files are in local R2|`npm run dev` serves the \.npy downloads from D1 \(the same bytes\) until they are in local R2; the first download queues the job)/,
  );
  expect(await cutUploads(state)).toEqual([]);
  expect(ok.stdout).toMatch(/^etl: \d+\.\d s in all$/m);
  expect(
    await localD1("SELECT split, COUNT(*) AS n FROM images GROUP BY split ORDER BY split", { persistTo: state }),
  ).toEqual([
    { split: "test", n: 100 },
    { split: "train", n: 600 },
  ]);
  // The summary's MD5s are the files' own, and the D1 file it names is the one that holds the rows.
  const md5s = Object.fromEntries(
    [...ok.stdout.matchAll(/│\s*(\S+\.gz)\s*│\s*md5 ([0-9a-f]{32})\s*│/g)].map((m) => [m[1], m[2]]),
  );
  const files = FASHION_MNIST.splits.flatMap((s) => [s.images.file, s.labels.file]);
  expect(md5s).toEqual(
    Object.fromEntries(
      await Promise.all(
        files.map(async (f) => [
          f,
          createHash("md5")
            .update(await readFile(join(good, f)))
            .digest("hex"),
        ]),
      ),
    ),
  );
  const dbFile = /│\s*database file\s*│\s*(\S+)\s*│/.exec(ok.stdout)?.[1];
  expect(dbFile).toBeDefined();
  const printed = new DatabaseSync(resolve(dbFile!), { readOnly: true });
  try {
    expect(printed.prepare("SELECT split, COUNT(*) AS n FROM images GROUP BY split ORDER BY split").all()).toEqual([
      { split: "test", n: 100 },
      { split: "train", n: 600 },
    ]);
  } finally {
    printed.close();
  }

  // The same files but a t10k labels archive whose gzip CRC-32 is wrong.
  const bad = join(work, "bad");
  await cp(good, bad, { recursive: true });
  const file = join(bad, "t10k-labels-idx1-ubyte.gz");
  const bytes = new Uint8Array(await readFile(file));
  bytes[bytes.length - 8]! ^= 0xff;
  await writeFile(file, bytes);
  const failed = await etl(["--source", bad, "--persist-to", state, "--force"]);
  expect(failed.code).toBe(1);
  expect(failed.stderr).toMatch(/failed after \d+\.\d s: t10k-labels-idx1-ubyte\.gz: CRC-32 mismatch/);
  // Nothing that was loaded is lost.
  expect(await localD1("SELECT COUNT(*) AS n FROM images", { persistTo: state })).toEqual([{ n: 700 }]);
  // The Worker's log keeps both commands' lines, each after a line naming when and which process started it.
  const log = await readFile(join(state, "etl-worker.log"), "utf8");
  const starts = [...log.matchAll(/^--- \S+Z Worker started by pid (\d+)$/gm)].map((m) => m[1]);
  expect(starts).toHaveLength(2);
  expect(starts[0]).not.toBe(starts[1]);
});

it("shares the local state: closes only the runs silent for longer than a lease, says why, and leaves a live one alone", async () => {
  const shared = join(work, "shared-state");
  await applyLocalMigrations({ persistTo: shared });
  // The state is shared with whatever else runs on it: an earlier `npm run etl` killed mid-load ten minutes ago left
  // a run of the custom dataset active, and a `npm run dev` is loading mnist right now (its last sign of life: now).
  // The dead run is closed for what it is, silent longer than a lease; the live one is left alone.
  const custom = join(work, "custom");
  await mkdir(custom);
  await writeCustom(custom);
  // It comes from a URL this time (--source URL): a server of the test's own, not one the CLI starts.
  const server = await serveArchives(custom, [...CUSTOM.files.train, ...CUSTOM.files.test]);
  servers.push(server);
  const silentSince = new Date(Date.now() - 10 * 60_000).toISOString();
  await localD1(
    `INSERT INTO runs (id, dataset, trigger, source, status, train_loaded, test_loaded, chunks_total, created_at, updated_at) VALUES
       ('killed-run', '${CUSTOM.name}', 'cli', 'http://127.0.0.1:9', 'loading', 320, 0, 5, '${silentSince}', '${silentSince}'),
       ('live-run', 'mnist', 'http', 'http://127.0.0.1:9', 'loading', 1280, 0, 400, strftime('%Y-%m-%dT%H:%M:%fZ'), strftime('%Y-%m-%dT%H:%M:%fZ'))`,
    { persistTo: shared },
  );
  const after = await etl([...customFlags(server.url), "--persist-to", shared]);
  expect(after.stdout).toContain(`: ${CUSTOM.name} from ${server.url}\n`);
  expect(after.stdout).toMatch(
    /run killed-run \(shapes-32, 320 train and 0 test images loaded\) was still loading with no sign of life for 6\d\d s, longer than its lease: the runtime that held its queued work is presumed stopped, so it is closed as abandoned \(resumable\)\. shapes-32 has no complete run: D1 holds none of its images\./,
  );
  expect(after.stdout).toMatch(
    /run live-run \(mnist, 1280 train and 0 test images loaded\) is still loading, its last sign of life \d+ s ago, within its lease: a dev server on this state is presumably loading it, so it is left alone/,
  );
  expect(after.stderr + after.stdout).toMatch(new RegExp(`run \\S+ \\(${CUSTOM.name}\\) complete in \\d+\\.\\d s`));
  expect(after.code).toBe(0);
  // The summary names the dataset and counts its classes by name: 30 train and 10 test images each.
  expect(after.stdout).toMatch(new RegExp(`dataset\\s*│\\s*${CUSTOM.name}`));
  for (const c of CUSTOM.classes) expect(after.stdout).toMatch(new RegExp(`\\d ${c}\\s*│\\s*30\\s*│\\s*10\\s*│`));
  expect(after.stdout).toContain(`FROM images WHERE dataset = '${CUSTOM.name}'`);
  expect(
    await localD1(
      "SELECT r.id, r.status, r.error, (SELECT json_group_array(json_array(dataset, split, n)) FROM (SELECT dataset, split, COUNT(*) AS n FROM images GROUP BY 1, 2 ORDER BY 1, 2)) AS counts FROM runs r WHERE r.id IN ('killed-run', 'live-run') ORDER BY r.id",
      { persistTo: shared },
    ),
  ).toEqual([
    {
      id: "killed-run",
      status: "failed",
      error: `abandoned: no progress since ${silentSince}`,
      counts: JSON.stringify([
        [CUSTOM.name, "test", 30],
        [CUSTOM.name, "train", 90],
      ]),
    },
    { id: "live-run", status: "loading", error: null, counts: expect.any(String) },
  ]);

  // A run of mnist itself meets the live run, and leaves it alone too: the Worker's 409 says whose it is and how to stop it.
  const mnistFiles = join(work, "mnist-files");
  await mkdir(mnistFiles);
  await writeDataset(mnistFiles, { train: 20, test: 10 });
  const mnist = await etl(["--dataset", "mnist", "--source", mnistFiles, "--persist-to", shared]);
  expect(mnist.code).toBe(1);
  expect(mnist.stderr).toContain("could not start a run: HTTP 409: run live-run of mnist is already loading");
  expect(mnist.stderr).toContain("POST /runs/live-run/abandon");
  expect(await localD1("SELECT status FROM runs WHERE id = 'live-run'", { persistTo: shared })).toEqual([
    { status: "loading" },
  ]);
});

it("--list prints every registry dataset and starts nothing", async () => {
  const listed = await etl(["--list"]);
  expect(listed.code).toBe(0);
  for (const name of REGISTRY_NAMES) expect(listed.stdout).toMatch(new RegExp(`^${name}\\s`, "m"));
  expect(listed.stdout).toContain("https://biometrics.nist.gov/cs_links/EMNIST/gzip.zip");
  expect(listed.stdout).not.toContain("worker:");
});

it("refuses, before anything starts, a directory without the files the run needs and an incomplete custom dataset", async () => {
  const partial = join(work, "partial");
  await mkdir(partial);
  await writeCustom(partial);
  await rm(join(partial, CUSTOM.files.test[1]));
  const [missingCustom, missingDefault, missingEmnist, threeFiles, noFiles, registryWithFiles] = await Promise.all([
    etl(customFlags(partial)),
    etl(["--source", partial]),
    etl(["--dataset", "emnist-digits", "--source", partial]),
    etl(customFlags(partial).slice(0, -4)),
    etl(["--dataset", CUSTOM.name, "--source", partial]),
    etl(["--dataset", "mnist", "--source", partial, "--train-images", "train-x.gz"]),
  ]);
  for (const r of [missingCustom, missingDefault, missingEmnist, threeFiles, noFiles, registryWithFiles]) {
    expect(r.code).not.toBe(0);
    expect(r.stdout).not.toContain("worker:");
  }
  expect(missingCustom.stderr).toContain(`${partial} has no ${CUSTOM.files.test[1]}: ${CUSTOM.name} needs`);
  expect(missingDefault.stderr).toContain(`${partial} has none of fashion-mnist's files: train-images-idx3-ubyte.gz`);
  expect(missingEmnist.stderr).toContain(
    `${partial} has neither gzip.zip nor emnist-digits's four files loose (emnist-digits-train-images-idx3-ubyte.gz`,
  );
  expect(threeFiles.code).toBe(2);
  expect(threeFiles.stderr).toContain("a custom dataset names all four files together");
  expect(threeFiles.stderr).toContain("missing --test-labels");
  expect(threeFiles.stderr).toContain("usage: npm run etl");
  expect(noFiles.code).toBe(2);
  expect(noFiles.stderr).toContain(`${CUSTOM.name} is not in the registry`);
  expect(registryWithFiles.code).toBe(2);
  expect(registryWithFiles.stderr).toContain("mnist is a registry dataset, whose files are the published ones");
});
