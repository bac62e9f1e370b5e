import { createExecutionContext, createScheduledController } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { expect, it } from "vitest";
import worker from "../src/index";
import { publish, syntheticArchives, waitForRun, type RunView } from "./helpers";

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
