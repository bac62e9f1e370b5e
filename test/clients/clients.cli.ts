/**
 * The Python clients against a live Worker: Fashion-MNIST (the real archives
 * of ../shared/fashion-mnist) and a custom RGB dataset written here (8×8×3
 * images, an IDX header of four dimensions) are loaded as `npm run etl` loads
 * them (migrations, `wrangler dev` on a free port over a fresh state
 * directory, POST /runs from an archive server on 127.0.0.1, then the export
 * job), and test/clients/check_clients.py reads them with numpy, Hugging Face
 * `datasets`, polars, pyarrow over fsspec, Croissant, a torchvision-style
 * mirror and a cross-origin fetch, comparing every image and label with the
 * IDX source. One test per check.
 *
 * The Python comes from IDX_ETL_PYTHON (`.ci/run` makes the venv with
 * scripts/python-venv.sh). Without it, or without ../shared, the suite fails
 * in CI (CI=true) and is skipped elsewhere, saying why.
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { accessSync, constants } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FASHION_MNIST } from "../../src/core/registry";
import type { RunResponse, RunView } from "../../src/http/schemas/runs";
import { archiveFiles, serveArchives, type ArchiveServer } from "../../scripts/lib/archive-server";
import { applyLocalMigrations, startDevServer, type DevServer } from "../../scripts/lib/dev-server";
import { idxBytes, mulberry32 } from "../idx-fixtures";

const run = promisify(execFile);
const SCRIPT = resolve("test/clients/check_clients.py");
const SHARED = resolve(process.env.FASHION_MNIST_DIR ?? "../shared/fashion-mnist");

/** The custom dataset: RGB, in files named as no registry names them. */
const CUSTOM = {
  name: "rgb-8",
  classes: ["red", "green", "blue"],
  shape: [8, 8, 3],
  count: { train: 50, test: 20 },
  files: {
    trainImages: "rgb-train-x.gz",
    trainLabels: "rgb-train-y.gz",
    testImages: "rgb-test-x.gz",
    testLabels: "rgb-test-y.gz",
  },
} as const;

/** Every check the script makes, by dataset: a check it does not report fails too. */
const CHECKS = [
  ...[
    "cors",
    "raw",
    "npy uint8",
    "npz",
    "parquet datasets",
    "parquet polars",
    "parquet pyarrow",
    "croissant",
    "aliases",
  ].map((c) => `${FASHION_MNIST.name} ${c}`),
  ...["raw", "npy uint8", "npz", "parquet datasets", "parquet polars", "parquet pyarrow", "croissant"].map(
    (c) => `${CUSTOM.name} ${c}`,
  ),
];

interface CheckResult {
  readonly check: string;
  readonly ok: boolean;
  readonly detail: string;
  readonly seconds: number;
}

/** Why the suite cannot run here, or undefined if it can. */
function missing(): string | undefined {
  const python = process.env.IDX_ETL_PYTHON;
  if (python === undefined || python === "")
    return "IDX_ETL_PYTHON is not set: point it at a Python with numpy, pyarrow, polars, datasets, pillow, fsspec and aiohttp (`export IDX_ETL_PYTHON=$(bash scripts/python-venv.sh)` makes one)";
  try {
    accessSync(python, constants.X_OK);
  } catch {
    return `IDX_ETL_PYTHON=${python} is not an executable file`;
  }
  for (const f of archiveFiles(FASHION_MNIST)) {
    try {
      accessSync(join(SHARED, f), constants.R_OK);
    } catch {
      return `${SHARED} has no ${f}: the Fashion-MNIST archives are needed (FASHION_MNIST_DIR names another directory)`;
    }
  }
  return undefined;
}

const why = missing();
const inCi = process.env.CI === "true";
if (why !== undefined && !inCi) console.warn(`test/clients: skipped: ${why}`);

/** RGB images whose every byte depends on image, position and channel; label i % 3. */
async function writeCustom(dir: string): Promise<void> {
  const random = mulberry32(8);
  const [rows, cols, channels] = CUSTOM.shape;
  for (const split of ["train", "test"] as const) {
    const n = CUSTOM.count[split];
    const pixels = Uint8Array.from({ length: n * rows * cols * channels }, () => Math.floor(random() * 256));
    const labels = Uint8Array.from({ length: n }, (_, i) => i % CUSTOM.classes.length);
    const [images, labelsFile] =
      split === "train"
        ? [CUSTOM.files.trainImages, CUSTOM.files.trainLabels]
        : [CUSTOM.files.testImages, CUSTOM.files.testLabels];
    await writeFile(join(dir, images), gzipSync(idxBytes([n, rows, cols, channels], pixels)));
    await writeFile(join(dir, labelsFile), gzipSync(idxBytes([n], labels)));
  }
}

async function startRun(dev: DevServer, token: string, body: Record<string, unknown>): Promise<string> {
  const res = await fetch(`${dev.url}/runs`, {
    method: "POST",
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: JSON.stringify({ trigger: "cli", ...body }),
  });
  const json = (await res.json()) as Partial<RunResponse> & { error?: string };
  if (res.status !== 202 || !json.run) throw new Error(`POST /runs answered ${res.status}: ${json.error}`);
  return json.run.id;
}

/** The run to its end, then its exports written (as `npm run etl` waits for them). */
async function loaded(dev: DevServer, id: string, dataset: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { run: r } = (await (await fetch(`${dev.url}/runs/${id}`)).json()) as { run: RunView };
    if (r.status === "failed") throw new Error(`run ${id} of ${dataset} failed: ${r.error}`);
    if (r.status === "complete") {
      const view = (await (await fetch(`${dev.url}/datasets/${dataset}`)).json()) as { exportsStored: boolean | null };
      if (view.exportsStored !== false) return;
    }
    if (Date.now() > deadline) throw new Error(`${dataset} not loaded and exported within ${timeoutMs / 1000} s`);
    await new Promise((ok) => setTimeout(ok, 500));
  }
}

describe.skipIf(why !== undefined && !inCi)("Python clients against wrangler dev", () => {
  let work: string;
  let dev: DevServer | undefined;
  const servers: ArchiveServer[] = [];
  const results = new Map<string, CheckResult>();
  let output = "";

  beforeAll(async () => {
    if (why !== undefined) throw new Error(`CI=true, and ${why}`);
    work = await mkdtemp(join(tmpdir(), "idx-etl-clients-"));
    const state = join(work, "state");
    const custom = join(work, "custom");
    await mkdir(custom);
    await writeCustom(custom);
    const [fashion, own] = await Promise.all([
      serveArchives(SHARED, archiveFiles(FASHION_MNIST)),
      serveArchives(custom, Object.values(CUSTOM.files)),
    ]);
    servers.push(fashion, own);

    const t0 = Date.now();
    await applyLocalMigrations({ persistTo: state });
    const token = randomBytes(24).toString("hex");
    dev = await startDevServer({ vars: { ETL_TOKEN: token }, persistTo: state });
    const ids = await Promise.all([
      startRun(dev, token, { source: fashion.url }),
      startRun(dev, token, { dataset: CUSTOM.name, source: own.url, files: CUSTOM.files, classes: CUSTOM.classes }),
    ]);
    await Promise.all([loaded(dev, ids[0], FASHION_MNIST.name, 300_000), loaded(dev, ids[1], CUSTOM.name, 300_000)]);
    const t1 = Date.now();

    const config = join(work, "clients.json");
    const sourceFiles = (dir: string, files: Record<string, string>) =>
      Object.fromEntries(Object.entries(files).map(([k, f]) => [k, join(dir, f)]));
    const [train, test] = FASHION_MNIST.splits;
    await writeFile(
      config,
      JSON.stringify({
        base: dev.url,
        datasets: [
          {
            name: FASHION_MNIST.name,
            classes: FASHION_MNIST.classes,
            default: true,
            files: sourceFiles(SHARED, {
              trainImages: train!.images.file,
              trainLabels: train!.labels.file,
              testImages: test!.images.file,
              testLabels: test!.labels.file,
            }),
          },
          { name: CUSTOM.name, classes: CUSTOM.classes, files: sourceFiles(custom, CUSTOM.files) },
        ],
      }),
    );
    const hfHome = join(work, "hf");
    const { stdout, stderr } = await run(process.env.IDX_ETL_PYTHON!, [SCRIPT, config], {
      maxBuffer: 64 * 1024 * 1024,
      env: { ...process.env, HF_HOME: hfHome, HF_HUB_DISABLE_TELEMETRY: "1", HF_HUB_DISABLE_PROGRESS_BARS: "1" },
    });
    output = stderr;
    for (const line of stdout.split("\n").filter((l) => l.startsWith("{"))) {
      const r = JSON.parse(line) as CheckResult;
      results.set(r.check, r);
    }
    console.log(
      `test/clients: loaded and exported in ${((t1 - t0) / 1000).toFixed(1)} s; Python checks ${((Date.now() - t1) / 1000).toFixed(1)} s\n${stderr
        .split("\n")
        .filter((l) => /^(ok {2}|FAIL) /.test(l))
        .join("\n")}`,
    );
  }, 600_000);

  afterAll(async () => {
    await dev?.stop();
    for (const s of servers) await s.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it("the script reports exactly the expected checks", () => {
    expect([...results.keys()].sort(), output).toEqual([...CHECKS].sort());
  });

  it.each(CHECKS)("%s", (name) => {
    const r = results.get(name);
    expect(r, `no result for ${name}:\n${output}`).toBeDefined();
    expect(r!.ok, r!.detail).toBe(true);
  });
});
