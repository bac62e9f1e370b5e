/// <reference lib="dom" />
/**
 * The dashboard in a real headless browser (Debian's Chromium driven by
 * playwright-core), against `wrangler dev` with a fresh local state and a small
 * real dataset: the first 600 train and 300 test Fashion-MNIST images. Runs in
 * Node (vitest.node.config.ts), not in workerd. Skips, saying why, where
 * /usr/bin/chromium (or $CHROMIUM_PATH) is absent. `UPDATE_SCREENSHOT=1 npm run test:node`
 * refreshes docs/dashboard.png (not on every run: it would dirty the tree).
 */
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { copyFile, mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { gunzipSync, gzipSync } from "node:zlib";
import { chromium, type BrowserContext } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { archiveFiles, serveArchives, type ArchiveServer } from "../../scripts/lib/archive-server";
import { applyLocalMigrations, startDevServer, type DevServer } from "../../scripts/lib/dev-server";
import type { RunResponse, Stats } from "../../src/http/schemas";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const SHARED = resolve(process.env.FASHION_MNIST_DIR ?? "../shared/fashion-mnist");
const TRAIN = 600;
const TEST = 300;

const hasChromium = existsSync(CHROMIUM);
// CI installs Chromium (.ci/run): there, a missing browser is a failure, not a skip.
if (!hasChromium && process.env.CI) throw new Error(`no Chromium at ${CHROMIUM}; .ci/run should have installed it`);
if (!hasChromium)
  console.warn(`dashboard browser test skipped: no Chromium at ${CHROMIUM} (apt-get install -y chromium)`);

/** The first `n` images of an IDX archive, re-gzipped: real pictures, a short load. */
async function headOfArchive(file: string, n: number): Promise<Buffer> {
  const idx = gunzipSync(await readFile(join(SHARED, file)));
  const ndim = idx[3]!;
  const perItem = ndim === 3 ? idx.readUInt32BE(8) * idx.readUInt32BE(12) : 1;
  const header = Buffer.from(idx.subarray(0, 4 + 4 * ndim));
  header.writeUInt32BE(n, 4);
  return gzipSync(Buffer.concat([header, idx.subarray(header.length, header.length + n * perItem)]));
}

describe.skipIf(!hasChromium)("dashboard in headless Chromium", () => {
  let dir: string;
  let archives: ArchiveServer;
  let dev: DevServer;
  let browser: BrowserContext;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "idx-etl-dashboard-"));
    const data = join(dir, "archives");
    await mkdir(data);
    for (const file of archiveFiles())
      await writeFile(join(data, file), await headOfArchive(file, file.startsWith("train") ? TRAIN : TEST));
    archives = await serveArchives(data);
    const state = join(dir, "state");
    await applyLocalMigrations({ persistTo: state });
    const token = randomBytes(16).toString("hex");
    dev = await startDevServer({ persistTo: state, vars: { ETL_TOKEN: token } });
    const res = await fetch(`${dev.url}/runs`, {
      method: "POST",
      headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
      body: JSON.stringify({ source: archives.url, trigger: "cli" }),
    });
    expect(res.status).toBe(202);
    const { run } = (await res.json()) as RunResponse;
    for (let status = ""; status !== "complete"; await new Promise((r) => setTimeout(r, 200))) {
      status = ((await (await fetch(`${dev.url}/runs/${run.id}`)).json()) as RunResponse).run.status;
      expect(status).not.toBe("failed");
    }
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
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await dev?.stop();
    await archives?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("loads, shows the runs and counts, and renders the sample images", async () => {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    page.on("console", (m) => m.type() === "error" && errors.push(m.text()));
    await page.goto(dev.url);
    await page.waitForSelector("body[data-ready]", { timeout: 30_000 });
    expect(await page.getAttribute("body", "data-ready")).toBe("true");
    expect(await page.textContent("#error")).toBe("");

    const runs = await page.$$eval("#runs tbody tr", (trs: Element[]) => trs.map((tr) => tr.textContent ?? ""));
    expect(runs).toHaveLength(1);
    expect(runs[0]).toContain("complete");
    expect(runs[0]).toContain(`${TRAIN} / ${TRAIN}`);

    const counts = await page.$$eval("#counts tbody tr", (trs: Element[]) =>
      trs.map((tr) => Array.from(tr.children, (td) => td.textContent)),
    );
    expect(counts).toHaveLength(11);
    expect(counts.at(-1)).toEqual(["total", String(TRAIN), String(TEST)]);
    // Per-class counts sum to the totals and match the API.
    const stats = (await (await fetch(`${dev.url}/stats`)).json()) as Stats;
    expect(counts.slice(0, 10)).toEqual(
      stats.splits.train!.classes.map((c, i) => [
        c.name,
        String(c.count),
        String(stats.splits.test!.classes[i]!.count),
      ]),
    );

    // Every sample image decoded by the browser as a 56×56 PNG (28 × scale 2).
    await page.waitForFunction(() => Array.from(document.images).every((img) => img.complete));
    const images = await page.$$eval("#samples img", (imgs: HTMLImageElement[]) =>
      imgs.map((img) => ({ src: img.getAttribute("src"), w: img.naturalWidth, h: img.naturalHeight })),
    );
    expect(images).toHaveLength(80);
    expect(images.every((i) => i.w === 56 && i.h === 56)).toBe(true);
    expect(images[0]!.src).toMatch(/^\/images\/test\/\d+\.png\?scale=2$/);

    const shot = join(dir, "dashboard.png");
    await page.screenshot({ path: shot, fullPage: true });
    expect((await stat(shot)).size).toBeGreaterThan(10_000);
    if (process.env.UPDATE_SCREENSHOT) await copyFile(shot, "docs/dashboard.png");
    expect(errors).toEqual([]);
  }, 60_000);
});
