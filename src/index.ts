/**
 * idx-etl Worker: wires the three entry points to the pipeline and nothing else.
 *   fetch     — HTTP API (src/http/app.ts)
 *   scheduled — cron trigger: starts a run from the default source
 *   queue     — extraction jobs, chunk loads, dead letters
 */
import { QUEUES, readConfig } from "./pipeline/config";
import { app } from "./http/app";
import { consumeChunks, consumeDeadLetters } from "./pipeline/consume";
import { retryingD1 } from "./db/d1-retry";
import { consumeJobs } from "./pipeline/job";
import { database } from "./db/runs";
import { startRun } from "./pipeline/trigger";

export default {
  fetch: app.fetch,

  async scheduled(controller, env) {
    const cfg = readConfig(env);
    const result = await startRun(
      database(env.DB),
      env.JOBS,
      { trigger: "cron", source: cfg.defaultSource, force: false },
      cfg.leaseMs,
    );
    if (result.started) console.log(`cron ${controller.cron}: started run ${result.run.id}`);
    else
      console.log(
        `cron ${controller.cron}: run ${result.active.id} is still ${result.active.status}; not starting another`,
      );
  },

  async queue(batch, rawEnv) {
    // Transient D1 errors are retried in-process, not spent on the queue's max_retries (d1-retry.ts).
    const env: Env = { ...rawEnv, DB: retryingD1(rawEnv.DB) };
    const cfg = readConfig(env);
    switch (batch.queue) {
      case QUEUES.deadLetter:
        return consumeDeadLetters(batch, env);
      case QUEUES.chunks:
        return consumeChunks(batch, env, cfg);
      case QUEUES.jobs:
        return consumeJobs(batch, env, cfg);
      default:
        console.error(`message batch from unknown queue ${batch.queue}; retrying later`);
        batch.retryAll();
    }
  },
} satisfies ExportedHandler<Env>;
