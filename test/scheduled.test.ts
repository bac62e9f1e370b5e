import { createExecutionContext, createScheduledController } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { expect, it, vi } from "vitest";
import { registryEntry } from "../src/core/registry";
import { QUEUES } from "../src/pipeline/config";
import worker from "../src/index";
import { publish, syntheticArchives, waitForRun, type RunView } from "./helpers";
import { expectSynthetic } from "./faults-helpers";
import { QueueSim, type QueueHandler } from "./queue-sim";

it("the cron trigger starts a run from the default source, and a second tick does not start another", async () => {
  const source = await publish(syntheticArchives(700, 100, 9));
  const cronEnv = { ...env, DEFAULT_SOURCE: source };
  const tick = () => worker.scheduled(createScheduledController({ cron: "17 3 * * *" }), cronEnv);
  await tick();
  await tick(); // while the first run is active

  const { runs } = (await (
    await worker.fetch(new Request("http://worker/runs"), env, createExecutionContext())
  ).json()) as {
    runs: RunView[];
  };
  expect(runs).toHaveLength(1);
  expect(runs[0]).toMatchObject({ trigger: "cron", source });
  const done = await waitForRun(runs[0]!.id);
  expect(done.status).toBe("complete");
  expect(done.splits).toEqual({ train: { expected: 700, loaded: 700 }, test: { expected: 100, loaded: 100 } });
});

it("with several DATASETS, a tick starts one run per dataset from its official source, each finishing on its own", async () => {
  const mnist = registryEntry("mnist")!;
  const fashionSource = await publish(syntheticArchives(300, 50, 12));
  // No internet in tests: MNIST's mirrors are answered from the archive server, with files that
  // are not the published ones.
  const served = syntheticArchives(200, 40, 13);
  const mnistFiles = await publish(served);
  const servedMd5 = [...new Uint8Array(await crypto.subtle.digest("MD5", served["train-labels-idx1-ubyte.gz"]!))]
    .map((b) => b.toString(16).padStart(2, "0"))
    .join("");
  const realFetch = globalThis.fetch;
  const asked: string[] = [];
  const fetchSpy = vi.spyOn(globalThis, "fetch").mockImplementation((input, init) => {
    const url = input instanceof Request ? input.url : String(input);
    const mirror = mnist.mirrors.find((m) => url.startsWith(`${m.url}/`));
    if (!mirror) return realFetch(input, init);
    asked.push(url);
    return realFetch(`${mnistFiles}${url.slice(mirror.url.length)}`, init);
  });
  // The jobs go through the Worker's queue handler (queue-sim.ts), whose env, as in the first
  // test, is the suite's: a fashion-mnist run from another source than its DEFAULT_SOURCE is not held to
  // Fashion-MNIST's MD5s, so the synthetic one loads.
  const sim = new QueueSim({ handler: worker.queue as QueueHandler, env });
  const cronEnv = { ...sim.env, DATASETS: "fashion-mnist,mnist", DEFAULT_SOURCE: fashionSource };
  const tick = () => worker.scheduled(createScheduledController({ cron: "17 3 * * *" }), cronEnv);
  try {
    await tick();
    await tick(); // both runs still active: nothing more starts
    await sim.settled();
  } finally {
    fetchSpy.mockRestore();
  }
  const started = await env.DB.prepare(
    "SELECT dataset, trigger, source, status, error FROM runs WHERE source IN (?, ?) ORDER BY created_at",
  )
    .bind(fashionSource, mnist.mirrors[0]!.url)
    .all<{ dataset: string; trigger: string; source: string; status: string; error: string | null }>();
  expect(started.results).toEqual([
    { dataset: "fashion-mnist", trigger: "cron", source: fashionSource, status: "complete", error: null },
    {
      dataset: "mnist",
      trigger: "cron",
      source: mnist.mirrors[0]!.url,
      status: "failed",
      error: expect.stringContaining(
        `train-labels-idx1-ubyte.gz: MD5 ${servedMd5} does not match the published ${mnist.splits[0]!.labels.md5}`,
      ),
    },
  ]);
  // MNIST's labels were asked of each of its official mirrors in turn, and nothing of the failed run reached `images`.
  expect(asked).toEqual(mnist.mirrors.map((m) => `${m.url}/train-labels-idx1-ubyte.gz`));
  expect(sim.stats.sent[QUEUES.jobs]).toBe(3); // two extraction jobs, and the export job of the complete run
  expect(
    (await env.DB.prepare("SELECT dataset, split, COUNT(*) AS n FROM images GROUP BY 1, 2 ORDER BY 1, 2").all())
      .results,
  ).toEqual([
    { dataset: "fashion-mnist", split: "test", n: 50 },
    { dataset: "fashion-mnist", split: "train", n: 300 },
  ]);
  await expectSynthetic(300, 50, 12);
});
