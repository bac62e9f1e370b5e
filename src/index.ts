/**
 * idx-etl Worker: wires the three entry points to the pipeline and nothing else.
 *   fetch     — HTTP API (src/http/app.ts)
 *   scheduled — cron trigger: starts a run of each dataset in DATASETS
 *   queue     — extraction jobs, chunk loads, dead letters
 */
import { QUEUES, readConfig } from "./pipeline/config";
import { app } from "./http/app";
import { consumeChunks, consumeDeadLetters } from "./pipeline/consume";
import { retryingD1 } from "./db/d1-retry";
import { consumeJobs } from "./pipeline/job";
import { database } from "./db/database";
import { startRun } from "./pipeline/trigger";
import { resolveRequest } from "./pipeline/dataset";

export default {
  fetch: app.fetch,

  async scheduled(controller, env) {
    const cfg = readConfig(env);
    const db = database(env.DB);
    // One run per dataset: each finishes on its own, unchanged ones without rewriting a row.
    for (const dataset of cfg.cronDatasets) {
      const req = resolveRequest({ dataset }, cfg);
      if (!req.ok) {
        console.error(`cron ${controller.cron}: ${req.error}`);
        continue;
      }
      const result = await startRun(db, env.JOBS, { trigger: "cron", ...req, force: false }, cfg.leaseMs);
      if (result.started) console.log(`cron ${controller.cron}: started ${dataset} run ${result.run.id}`);
      else
        console.log(
          `cron ${controller.cron}: ${dataset} run ${result.active.id} is still ${result.active.status}; not starting another`,
        );
    }
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
