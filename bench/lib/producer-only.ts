/**
 * The product Worker with no chunk consumer (bench/gap.ts `producer`): the
 * extraction job runs as in the ETL — download, MD5, inflate, chunk messages,
 * sendBatch into Miniflare's queue — but nothing takes the chunks, so its time
 * and workerd's CPU are the producer's alone. A fresh `wrangler dev` per run
 * (the run stays `loading`, and a dataset has one active run at a time).
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse, stringify } from "smol-toml";
import { serveArchives } from "../../scripts/lib/archive-server";
import { applyLocalMigrations, startDevServer } from "../../scripts/lib/dev-server";
import { frozenConfig } from "./frozen";
import { processCpuSeconds } from "./rss";

export async function producerOnce(dataDir: string): Promise<{ seconds: number; cpu: number; chunks: number }> {
  const dir = await mkdtemp(join(tmpdir(), "idx-etl-gap-producer-"));
  const archives = await serveArchives(dataDir);
  try {
    const config = await frozenConfig({ entry: "src/index.ts", config: "wrangler.toml", dir });
    const toml = parse(await readFile(config, "utf8")) as {
      queues: { consumers: { queue: string }[] };
    };
    toml.queues.consumers = toml.queues.consumers.filter((c) => c.queue !== "idx-etl-chunks");
    await writeFile(config, stringify(toml));
    await applyLocalMigrations({ config, database: "images", persistTo: dir });
    const token = randomBytes(24).toString("hex");
    const dev = await startDevServer({ config, persistTo: dir, vars: { ETL_TOKEN: token } });
    try {
      const cpu0 = await processCpuSeconds(dev.pid, "workerd");
      const t0 = performance.now();
      const res = await fetch(`${dev.url}/runs`, {
        method: "POST",
        headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
        body: JSON.stringify({ trigger: "cli", source: archives.url, force: true }),
      });
      const { run } = (await res.json()) as { run?: { id: string } };
      if (!run) throw new Error(`POST /runs: HTTP ${res.status}`);
      for (;;) {
        const r = (await (await fetch(`${dev.url}/runs/${run.id}`)).json()) as {
          run: { status: string; error: string | null; checksums: Record<string, string> | null; chunksTotal: number };
        };
        if (r.run.status === "failed") throw new Error(`producer run failed: ${r.run.error}`);
        if (Object.keys(r.run.checksums ?? {}).length === 4) {
          const seconds = (performance.now() - t0) / 1000;
          return { seconds, cpu: (await processCpuSeconds(dev.pid, "workerd")) - cpu0, chunks: r.run.chunksTotal };
        }
        if (performance.now() - t0 > 120_000) throw new Error("producer: no checksums after 120 s");
        await new Promise((ok) => setTimeout(ok, 50));
      }
    } finally {
      await dev.stop();
    }
  } finally {
    await archives.close();
    await rm(dir, { recursive: true, force: true });
  }
}
