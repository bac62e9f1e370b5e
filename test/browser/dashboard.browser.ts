/// <reference lib="dom" />
/**
 * The dashboard in a real headless browser (Debian's Chromium driven by
 * playwright-core), against `wrangler dev` with a fresh local state and two
 * small datasets: the first 600 train and 300 test Fashion-MNIST images, and
 * a synthetic custom dataset of 12×20 RGB images in 62 classes, two of them
 * named with markup. Runs in Node (vitest.node.config.ts), not in workerd.
 * Skips, saying why, where /usr/bin/chromium (or $CHROMIUM_PATH) is absent.
 * `UPDATE_SCREENSHOT=1 npm run test:node` refreshes docs/dashboard.png (not on
 * every run: it would dirty the tree).
 */
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { copyFile, mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { gunzipSync, gzipSync } from "node:zlib";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { serveArchives, type ArchiveServer } from "../../scripts/lib/archive-server";
import { applyLocalMigrations, startDevServer, type DevServer } from "../../scripts/lib/dev-server";
import { DEFAULT_DATASET, registryEntry } from "../../src/core/registry";
import type { RunResponse } from "../../src/http/schemas/runs";
import type { DatasetView } from "../../src/http/schemas/datasets";
import { idxBytes, mulberry32 } from "../idx-fixtures";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const SHARED = resolve(process.env.FASHION_MNIST_DIR ?? "../shared/fashion-mnist");
const TRAIN = 600;
const TEST = 300;
/** A run of either small dataset that takes longer is stuck: fail with the Worker's log rather than at the hook's timeout. */
const RUN_TIMEOUT_MS = 90_000;
/** The dashboard's page size. */
const PAGE = 48;

const hasChromium = existsSync(CHROMIUM);
// CI installs Chromium (.ci/run): there, a missing browser is a failure, not a skip.
if (!hasChromium && process.env.CI) throw new Error(`no Chromium at ${CHROMIUM}; .ci/run should have installed it`);
if (!hasChromium)
  console.warn(`dashboard browser test skipped: no Chromium at ${CHROMIUM} (apt-get install -y chromium)`);

// The API's answers, as the dashboard reads them (only the fields checked here).
interface ClassCount {
  label: number;
  name: string;
  count: number;
}
interface DatasetStats {
  dataset: string;
  splits: Record<"train" | "test", { total: number; classes: ClassCount[] }>;
}
interface ImagePage {
  images: { idx: number; label: number }[];
  next: number | null;
}
interface DatasetSummary {
  name: string;
  registry: boolean;
  status: string;
  counts: { train: number; test: number };
}

/** The first `n` images of an IDX archive, re-gzipped: real pictures, a short load. */
async function headOfArchive(file: string, n: number): Promise<Buffer> {
  const idx = gunzipSync(await readFile(join(SHARED, file)));
  const ndim = idx[3]!;
  const perItem = ndim === 3 ? idx.readUInt32BE(8) * idx.readUInt32BE(12) : 1;
  const header = Buffer.from(idx.subarray(0, 4 + 4 * ndim));
  header.writeUInt32BE(n, 4);
  return gzipSync(Buffer.concat([header, idx.subarray(header.length, header.length + n * perItem)]));
}

/**
 * The custom dataset: not square and not grayscale, so the thumbnails' size
 * follows the shape; 62 classes as EMNIST ByClass has, so the chart's labels
 * must stay readable; class names with markup, which must show as text.
 */
const CUSTOM = {
  name: "tiny-rgb",
  shape: { rows: 12, cols: 20, channels: 3 },
  counts: { train: 400, test: 150 },
  files: {
    trainImages: "tiny-train-images.gz",
    trainLabels: "tiny-train-labels.gz",
    testImages: "tiny-test-images.gz",
    testLabels: "tiny-test-labels.gz",
  },
  classes: [
    `<img src=x onerror="window.__xss=1">`,
    `<b>bold</b> & "quoted"`,
    ...Array.from("23456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"),
  ],
} as const;

/** Labels per split: every class in the first 62 train images, then seeded random ones. */
function customLabels(): Record<"train" | "test", Uint8Array> {
  const rand = mulberry32(62);
  const n = CUSTOM.classes.length;
  const make = (count: number, seedAll: boolean) =>
    Uint8Array.from({ length: count }, (_, i) => (seedAll && i < n ? i : Math.floor(rand() * n)));
  return { train: make(CUSTOM.counts.train, true), test: make(CUSTOM.counts.test, false) };
}

async function writeCustom(dir: string, labels: Record<"train" | "test", Uint8Array>): Promise<void> {
  const rand = mulberry32(7);
  const { rows, cols, channels } = CUSTOM.shape;
  for (const split of ["train", "test"] as const) {
    const n = CUSTOM.counts[split];
    const pixels = Uint8Array.from({ length: n * rows * cols * channels }, () => Math.floor(rand() * 256));
    const [images, labelFile] =
      split === "train"
        ? [CUSTOM.files.trainImages, CUSTOM.files.trainLabels]
        : [CUSTOM.files.testImages, CUSTOM.files.testLabels];
    await writeFile(join(dir, images), gzipSync(idxBytes([n, rows, cols, channels], pixels)));
    await writeFile(join(dir, labelFile), gzipSync(idxBytes([n], labels[split])));
  }
}

async function getJson<T>(url: string): Promise<T> {
  const res = await fetch(url);
  const body = (await res.json()) as T & { error?: string };
  if (!res.ok) throw new Error(`GET ${url}: ${res.status} ${body.error ?? ""}`);
  return body;
}

describe.skipIf(!hasChromium)("dashboard in headless Chromium", () => {
  let dir: string;
  let archives: ArchiveServer;
  let dev: DevServer;
  let browser: BrowserContext;
  const labels = customLabels();

  /** POST /runs, then wait for the run to complete. */
  async function load(token: string, body: object): Promise<void> {
    const res = await fetch(`${dev.url}/runs`, {
      method: "POST",
      headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    expect(res.status, `POST /runs ${JSON.stringify(body)}: ${await res.clone().text()}`).toBe(202);
    const { run } = (await res.json()) as RunResponse;
    for (const deadline = Date.now() + RUN_TIMEOUT_MS; ;) {
      const now = (await getJson<RunResponse>(`${dev.url}/runs/${run.id}`)).run;
      expect(now.status, `run ${run.id}: ${now.error}`).not.toBe("failed");
      if (now.status === "complete") return;
      if (Date.now() > deadline) {
        const log = (await readFile(dev.logFile, "utf8").catch(() => "")).split("\n").slice(-40).join("\n");
        throw new Error(
          `run ${run.id} still ${now.status} (${now.retrying ?? "no error"}); the Worker's log ends:\n${log}`,
        );
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  /** A new page that records script errors, console errors (a failed image, a CSP violation) and page errors. */
  async function open(path: string): Promise<{ page: Page; errors: string[] }> {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    page.on("console", (m) => m.type() === "error" && errors.push(m.text()));
    await page.goto(dev.url + path);
    await page.waitForSelector("body[data-ready]", { timeout: 30_000 });
    return { page, errors };
  }

  /** After a control changed the image grid: wait for its page to arrive and its images to decode. */
  async function settled(page: Page): Promise<void> {
    await page.waitForSelector('#grid[aria-busy="false"]', { state: "attached" });
    await page.waitForFunction(() =>
      Array.from(document.querySelectorAll<HTMLImageElement>("#grid img")).every((img) => img.complete),
    );
  }

  const shownIdx = (page: Page): Promise<number[]> =>
    page.$$eval("#grid li[data-idx]", (lis: Element[]) => lis.map((li) => Number((li as HTMLElement).dataset.idx)));

  /** idx → label of a whole split, read through the API's keyset paging. */
  async function apiLabels(name: string, split: string): Promise<Map<number, number>> {
    const out = new Map<number, number>();
    for (let after: number | null = null; ;) {
      const from: string = after === null ? "" : `&after=${after}`;
      const page: ImagePage = await getJson<ImagePage>(
        `${dev.url}/datasets/${name}/images?split=${split}&limit=${PAGE}${from}`,
      );
      for (const i of page.images) out.set(i.idx, i.label);
      if (page.next === null) return out;
      after = page.next;
    }
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "idx-etl-dashboard-"));
    const data = join(dir, "archives");
    await mkdir(data);
    const fashion = registryEntry(DEFAULT_DATASET)!.splits.flatMap((s) => [s.images.file, s.labels.file]);
    for (const file of fashion)
      await writeFile(join(data, file), await headOfArchive(file, file.startsWith("train") ? TRAIN : TEST));
    await writeCustom(data, labels);
    archives = await serveArchives(data, [...fashion, ...Object.values(CUSTOM.files)]);
    const state = join(dir, "state");
    await applyLocalMigrations({ persistTo: state });
    const token = randomBytes(16).toString("hex");
    dev = await startDevServer({ persistTo: state, vars: { ETL_TOKEN: token } });
    await load(token, { source: archives.url, trigger: "cli" });
    await load(token, {
      dataset: CUSTOM.name,
      source: archives.url,
      files: CUSTOM.files,
      classes: CUSTOM.classes,
      trigger: "cli",
    });
    browser = await chromium.launchPersistentContext(join(dir, "chromium-profile"), {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1100, height: 1000 },
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    });
  }, 240_000);

  afterAll(async () => {
    await browser?.close();
    await dev?.stop();
    await archives?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("lists the datasets and shows the default one: runs, a bar per class, the first page of images", async () => {
    const res = await fetch(dev.url);
    expect(res.headers.get("Content-Security-Policy")).toMatch(/script-src 'nonce-[^']+'/);
    const { page, errors } = await open("/");
    expect(await page.textContent("#error")).toBe("");
    expect(await page.getAttribute("body", "data-ready")).toBe("true");

    // Every dataset the API lists, in its order, with its status and counts.
    const { datasets } = await getJson<{ datasets: DatasetSummary[] }>(`${dev.url}/datasets`);
    const listed = await page.$$eval("#datasets tbody tr", (trs: Element[]) =>
      trs.map((tr) => Array.from(tr.children, (td) => td.textContent ?? "")),
    );
    // A name cell holds the name and perhaps a badge: custom, or unofficial.
    expect(listed.map((cells) => cells[0]!.replace(/(custom|unofficial)$/, ""))).toEqual(datasets.map((d) => d.name));
    const row = (name: string) => listed[datasets.findIndex((d) => d.name === name)]!;
    expect(row(DEFAULT_DATASET).slice(1, 4)).toEqual(["loaded", String(TRAIN), String(TEST)]);
    expect(row(DEFAULT_DATASET)[7]).toContain("complete");
    // Loaded from this test's archive server, not the official mirrors: a visible badge says so, and from where.
    expect(row(DEFAULT_DATASET)[0]).toBe(`${DEFAULT_DATASET}unofficial`);
    const badge = page.locator(`#datasets tr[data-name="${DEFAULT_DATASET}"] .tag.unofficial`);
    expect(await badge.isVisible()).toBe(true);
    expect(await badge.getAttribute("title")).toContain(`source: ${archives.url}`);
    expect(await page.textContent("#provenance")).toBe(`unofficial loaded from ${archives.url}`);
    expect(await page.isVisible("#provenance .tag.unofficial")).toBe(true);
    expect(row(CUSTOM.name)[0]).toBe(`${CUSTOM.name}custom`);
    expect(row(CUSTOM.name).slice(1, 6)).toEqual([
      "loaded",
      String(CUSTOM.counts.train),
      String(CUSTOM.counts.test),
      "62",
      "12×20×3",
    ]);
    expect(row("mnist")[1]).toBe("empty");
    expect(await page.getAttribute("#datasets tr.current a", "aria-current")).toBe("page");
    expect(await page.textContent("#dataset-name")).toBe(DEFAULT_DATASET);
    // Where downloads come from (R2 once the job after the load has written them), then every file.
    expect(await page.textContent("#exports")).toMatch(
      /^9 export files below · (streamed from R2|read from D1 until the job after the load has written them to R2)$/,
    );
    const files = await page.$$eval("#files tbody tr td:first-child a", (as: Element[]) =>
      as.map((a) => a.textContent),
    );
    expect(files).toEqual([
      "train.npy",
      "train.npy?dtype=uint8",
      "train-labels.npy",
      "train.parquet",
      "test.npy",
      "test.npy?dtype=uint8",
      "test-labels.npy",
      "test.parquet",
      `${DEFAULT_DATASET}.npz`,
    ]);
    // A snippet per client, each naming this Worker's URLs; torchvision only for the datasets it knows.
    const snippets = await page.$$eval("#snippets li", (lis: Element[]) =>
      lis.map((li) => [(li as HTMLElement).dataset.client, li.querySelector("code")?.textContent ?? ""]),
    );
    expect(snippets.map(([client]) => client)).toEqual([
      "numpy",
      "Keras",
      "datasets",
      "polars",
      "torchvision",
      "Croissant",
    ]);
    for (const [client, code] of snippets) expect(code, client).toContain(`${dev.url}/datasets/${DEFAULT_DATASET}/`);
    expect(snippets[4]![1]).toContain(
      `datasets.FashionMNIST.mirrors = ["${dev.url}/datasets/${DEFAULT_DATASET}/raw/"]`,
    );
    // Keras caches by file name: the snippet names this version's file, at its versioned URL.
    const shown = await getJson<DatasetView>(`${dev.url}/datasets/${DEFAULT_DATASET}`);
    const npz = shown.exports!.find((e) => e.format === "npz")!;
    expect(snippets[1]![1]).toMatch(
      new RegExp(
        `keras\\.utils\\.get_file\\("${DEFAULT_DATASET}-${shown.version!.slice(0, 8)}\\.npz", "${dev.url}${npz.versionedUrl}"(, file_hash="[0-9a-f]{64}")?\\)`,
      ),
    );

    const runs = await page.$$eval("#runs tbody tr", (trs: Element[]) => trs.map((tr) => tr.textContent ?? ""));
    expect(runs).toHaveLength(1);
    expect(runs[0]).toContain("complete");
    expect(runs[0]).toContain(`${TRAIN} / ${TRAIN}`);

    // One row per class, each with a train and a test bar, the counts as the API gives them.
    const stats = await getJson<DatasetStats>(`${dev.url}/datasets/${DEFAULT_DATASET}/stats`);
    const chart = await page.$$eval("#chart tbody tr", (trs: Element[]) =>
      trs.map((tr) => ({
        name: tr.querySelector(".name")?.textContent,
        train: tr.querySelector<HTMLElement>(".bar-train")?.dataset.count,
        test: tr.querySelector<HTMLElement>(".bar-test")?.dataset.count,
      })),
    );
    expect(chart).toEqual(
      stats.splits.train.classes.map((c, i) => ({
        name: c.name,
        train: String(c.count),
        test: String(stats.splits.test.classes[i]!.count),
      })),
    );
    expect(await page.textContent("#chart tfoot")).toBe(`total${TRAIN}${TEST}`);

    // The first page of train images, decoded by the browser as 56×56 PNGs (28 × scale 2).
    await settled(page);
    const images = await page.$$eval("#grid img", (imgs: HTMLImageElement[]) =>
      imgs.map((img) => ({ src: img.getAttribute("src"), alt: img.alt, w: img.naturalWidth, h: img.naturalHeight })),
    );
    expect(images).toHaveLength(PAGE);
    expect(images.every((i) => i.w === 56 && i.h === 56)).toBe(true);
    expect(images[0]!.src).toBe(`/datasets/${DEFAULT_DATASET}/images/train/0.png?scale=2`);
    expect(images[0]!.alt).toMatch(/^.+, train image 0$/);
    expect(await shownIdx(page)).toEqual(Array.from({ length: PAGE }, (_, i) => i));
    expect(await page.isDisabled("#prev")).toBe(true);

    const shot = join(dir, "dashboard.png");
    await page.screenshot({ path: shot, fullPage: true });
    expect((await stat(shot)).size).toBeGreaterThan(10_000);
    if (process.env.UPDATE_SCREENSHOT) await copyFile(shot, "docs/dashboard.png");
    expect(errors).toEqual([]);
    await page.close();
  }, 60_000);

  it("pages forward to the last image and back to the first", async () => {
    const { page, errors } = await open("/");
    expect(await page.textContent("#error")).toBe("");
    await settled(page);
    const first = await shownIdx(page);
    const pages = [first];
    while (!(await page.isDisabled("#next"))) {
      await page.click("#next");
      await settled(page);
      pages.push(await shownIdx(page));
    }
    expect(pages).toHaveLength(Math.ceil(TRAIN / PAGE));
    // Every image once, in order: the pages are disjoint and nothing is skipped.
    expect(pages.flat()).toEqual(Array.from({ length: TRAIN }, (_, i) => i));
    expect(await page.textContent("#page-info")).toContain(`page ${pages.length} of ${pages.length}`);

    for (let i = pages.length - 2; i >= 0; i--) {
      await page.click("#prev");
      await settled(page);
      expect(await shownIdx(page), `page ${i + 1} on the way back`).toEqual(pages[i]);
    }
    expect(await page.isDisabled("#prev")).toBe(true);
    expect(await shownIdx(page)).toEqual(first);

    // One class, over more than one page: each page holds only that class, and together every image of it.
    const byIdx = await apiLabels(DEFAULT_DATASET, "train");
    const label = 9;
    const want = [...byIdx].filter(([, l]) => l === label).map(([idx]) => idx);
    expect(want.length).toBeGreaterThan(PAGE);
    await page.selectOption("#label", String(label));
    await settled(page);
    const filtered = [await shownIdx(page)];
    while (!(await page.isDisabled("#next"))) {
      await page.click("#next");
      await settled(page);
      filtered.push(await shownIdx(page));
    }
    expect(filtered.flat()).toEqual(want);
    await page.click("#prev");
    await settled(page);
    expect(await shownIdx(page)).toEqual(filtered.at(-2));
    expect(errors).toEqual([]);
    await page.close();
  }, 90_000);

  it("switches to the custom dataset: 62 bars, its class names as text, thumbnails of its shape", async () => {
    const { page, errors } = await open("/");
    await page.click(`#datasets a[href="?dataset=${CUSTOM.name}"]`);
    await page.waitForURL(`**/?dataset=${CUSTOM.name}`);
    await page.waitForSelector("body[data-ready]", { timeout: 30_000 });
    expect(await page.textContent("#error")).toBe("");
    expect(await page.getAttribute("body", "data-ready")).toBe("true");
    expect(await page.textContent("#dataset-name")).toBe(CUSTOM.name);

    const chart = await page.$$eval("#chart tbody tr", (trs: Element[]) =>
      trs.map((tr) => ({
        name: tr.querySelector(".name")?.textContent,
        bars: tr.querySelectorAll(".bar-train").length,
      })),
    );
    expect(chart).toEqual(CUSTOM.classes.map((name) => ({ name, bars: 1 })));
    const counts = await page.$$eval("#chart tbody .bar-train", (bars: Element[]) =>
      bars.map((b) => Number((b as HTMLElement).dataset.count)),
    );
    expect(counts).toEqual(CUSTOM.classes.map((_, label) => labels.train.filter((l) => l === label).length));

    // The markup in class names is text: in the chart, the class select and the captions; none of it ran.
    const options = await page.$$eval("#label option", (os: HTMLOptionElement[]) => os.map((o) => o.textContent));
    expect(options.slice(1, 3)).toEqual([`0 · ${CUSTOM.classes[0]}`, `1 · ${CUSTOM.classes[1]}`]);
    await settled(page);
    expect(await page.textContent('#grid li[data-idx="0"] .cap')).toBe(`#0 · ${CUSTOM.classes[0]}`);
    expect(await page.getAttribute('#grid li[data-idx="1"] img', "alt")).toBe(`${CUSTOM.classes[1]}, train image 1`);
    expect(await page.$$('img[src="x"], b')).toHaveLength(0);
    expect(await page.evaluate(() => (window as unknown as { __xss?: number }).__xss)).toBeUndefined();

    // 12×20 images at scale 3 (the long side nearest 56 px).
    const sizes = await page.$$eval("#grid img", (imgs: HTMLImageElement[]) =>
      imgs.map((img) => `${img.naturalWidth}×${img.naturalHeight}`),
    );
    expect(sizes).toHaveLength(PAGE);
    expect(new Set(sizes)).toEqual(new Set(["60×36"]));
    expect(errors).toEqual([]);
    await page.close();
  }, 60_000);

  it("filters by class, in either split, showing every image of that class and no other", async () => {
    const { page, errors } = await open(`/?dataset=${CUSTOM.name}`);
    expect(await page.textContent("#error")).toBe("");
    await settled(page);
    for (const split of ["train", "test"] as const) {
      const byIdx = await apiLabels(CUSTOM.name, split);
      expect([...byIdx.values()]).toEqual([...labels[split]]);
      if ((await page.inputValue("#split")) !== split) {
        await page.selectOption("#split", split);
        await settled(page);
      }
      for (const label of [1, 16]) {
        await page.selectOption("#label", String(label));
        await settled(page);
        const shown = await shownIdx(page);
        const want = [...byIdx].filter(([, l]) => l === label).map(([idx]) => idx);
        expect(want.length, `${split} images of class ${label}`).toBeGreaterThan(0);
        expect(want.length).toBeLessThanOrEqual(PAGE);
        expect(shown, `${split}, class ${label}`).toEqual(want);
        expect(new URL(page.url()).searchParams.get("label")).toBe(String(label));
      }
      await page.selectOption("#label", "");
      await settled(page);
      expect(await shownIdx(page)).toEqual([...byIdx.keys()].slice(0, PAGE));
    }
    // A class the test split lacks: an empty page, not an error.
    expect(labels.test.includes(7)).toBe(false);
    await page.selectOption("#label", "7");
    await settled(page);
    expect(await shownIdx(page)).toEqual([]);
    expect(await page.textContent("#grid")).toBe("no images");
    expect(await page.isDisabled("#next")).toBe(true);
    expect(errors).toEqual([]);
    await page.close();

    // The address holds dataset, split and class: opened again, it shows the same images.
    const testOf16 = [...labels.test.entries()].filter(([, l]) => l === 16).map(([idx]) => idx);
    const again = await open(`/?dataset=${CUSTOM.name}&split=test&label=16`);
    await settled(again.page);
    expect(await again.page.inputValue("#split")).toBe("test");
    expect(await again.page.inputValue("#label")).toBe("16");
    expect(await shownIdx(again.page)).toEqual(testOf16);
    expect(again.errors).toEqual([]);
    await again.page.close();
  }, 60_000);

  it("shows an unknown or malformed dataset name as an error, as text", async () => {
    const { page } = await open(`/?dataset=${encodeURIComponent('<b id="injected">x</b>')}`);
    expect(await page.getAttribute("body", "data-ready")).toBe("error");
    expect(await page.textContent("#error")).not.toBe("");
    expect(await page.$$("#injected, b")).toHaveLength(0);
    expect(await page.isHidden("#dataset")).toBe(true);
    expect(await page.$$("#datasets tbody tr")).not.toHaveLength(0);
    await page.close();
  }, 30_000);
});
