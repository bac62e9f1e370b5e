/**
 * `npm run etl` itself, as a user runs it: a child process that starts
 * wrangler dev, loads a directory of archives and exits 0 with a summary — or
 * exits 1 with the run's error, leaving the loaded dataset as it was. Local
 * state goes to a fresh --persist-to directory, never the developer's own.
 */
import { execFile } from "node:child_process";
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { gzipSync } from "fflate";
import { afterAll, beforeAll, expect, it } from "vitest";
import { FASHION_MNIST } from "../../src/core/registry";
import { idxBytes } from "../idx-fixtures";
import { localD1 } from "../../scripts/lib/dev-server";

const run = promisify(execFile);
const tsx = join(process.cwd(), "node_modules", ".bin", "tsx");

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

async function etl(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(tsx, ["scripts/etl.ts", ...args], { maxBuffer: 16 * 1024 * 1024 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

let work: string;
let state: string;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "idx-etl-cli-"));
  state = join(work, "state");
});

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

it("loads a directory of archives, prints the summary and exits 0; a corrupt archive exits 1 with the run's error", async () => {
  const good = join(work, "good");
  await mkdir(good);
  await writeDataset(good, { train: 600, test: 100 });
  const ok = await etl(["--source", good, "--persist-to", state]);
  expect(ok.stderr + ok.stdout).toMatch(/complete in \d+\.\d s/);
  expect(ok.code).toBe(0);
  expect(ok.stdout).toContain("600");
  expect(
    await localD1("SELECT split, COUNT(*) AS n FROM images GROUP BY split ORDER BY split", { persistTo: state }),
  ).toEqual([
    { split: "test", n: 100 },
    { split: "train", n: 600 },
  ]);

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

  // An earlier `npm run etl` killed mid-load left its run active: the next one says what became of it, and loads.
  await localD1(
    "INSERT INTO runs (id, trigger, source, status, train_loaded, test_loaded, chunks_total, created_at, updated_at) VALUES ('killed-run', 'cli', 'http://127.0.0.1:9', 'loading', 320, 0, 5, strftime('%Y-%m-%dT%H:%M:%fZ'), strftime('%Y-%m-%dT%H:%M:%fZ'))",
    { persistTo: state },
  );
  const after = await etl(["--source", good, "--persist-to", state, "--force"]);
  expect(after.stdout).toContain(
    "run killed-run was still loading (320 train, 0 test images loaded) when an earlier dev server stopped",
  );
  expect(after.code).toBe(0);
  expect(await localD1("SELECT status, error FROM runs WHERE id = 'killed-run'", { persistTo: state })).toEqual([
    { status: "failed", error: "interrupted: the local dev server stopped before the run finished" },
  ]);
});
