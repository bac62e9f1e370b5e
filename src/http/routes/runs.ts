/**
 * Runs: start one (POST /runs), list them, read one, resume a failed one, and
 * abandon an active one. Starting, resuming and abandoning need the bearer token.
 */
import { createRoute } from "@hono/zod-openapi";
import type { Context } from "hono";
import type { Run } from "../../db/schema";
import { readConfig } from "../../pipeline/config";
import { abandonRun, database, getRun, listRuns } from "../../db/runs";
import { resume, startRun } from "../../pipeline/trigger";
import { requireToken } from "../auth";
import { presentRun } from "../present";
import {
  ActiveRunConflictSchema,
  ErrorSchema,
  RunIdParams,
  RunListQuery,
  RunListSchema,
  RunResponseSchema,
  StartRunBody,
  type ActiveRunConflict,
} from "../schemas";
import { errorResponses, jsonBody, jsonResponse, openApiRoutes, type AppEnv } from "../validation";

export const runRoutes = openApiRoutes();

/** Largest POST /runs body read, in bytes: a source is at most 2048 characters. */
const MAX_BODY_BYTES = 16 * 1024;

const security = [{ bearer: [] }];

/** 401 and 503 of the token guard (src/http/auth.ts). */
const authErrors = errorResponses({
  401: "Missing or wrong bearer token.",
  503: "ETL_TOKEN is not configured: nothing can be started over HTTP.",
});

const runCreated = (description: string) => ({
  description,
  headers: { Location: { description: "/runs/{id} of the run.", schema: { type: "string" as const } } },
  content: { "application/json": { schema: RunResponseSchema } },
});

const activeConflictResponse = jsonResponse("Another run is active.", ActiveRunConflictSchema);

/** 409 for a trigger that met an active run: which one, and how a user gets past it if it is stuck. */
function activeConflict<E extends AppEnv>(c: Context<E>, active: Run, leaseMs: number) {
  const silentS = Math.max(0, Math.round((Date.now() - Date.parse(active.updatedAt)) / 1000));
  const body: ActiveRunConflict = {
    error: `run ${active.id} is already ${active.status}`,
    activeRunId: active.id,
    hint: `its last sign of life was ${silentS} s ago; a run silent for ${leaseMs / 1000} s is presumed dead and replaced by the next trigger, or stop it now with POST /runs/${active.id}/abandon`,
    run: presentRun(active),
  };
  return c.json(body, 409);
}

// The body is validated by jsonBody (bounded, JSON whatever the Content-Type);
// the route documents the same schema by reference.
runRoutes.openAPIRegistry.register("StartRun", StartRunBody);

runRoutes.openapi(
  createRoute({
    method: "post",
    path: "/runs",
    tags: ["runs"],
    summary: "Start a run",
    description:
      "Starts a run from `source` (default: the Worker's DEFAULT_SOURCE). The body is optional; it is read as JSON whatever its Content-Type.",
    security,
    middleware: [
      requireToken,
      jsonBody(StartRunBody, {
        maxBytes: MAX_BODY_BYTES,
        malformed: 'body must be JSON: { "source"?: URL, "force"?: boolean }',
      }),
    ] as const,
    request: {
      body: { required: false, content: { "application/json": { schema: { $ref: "#/components/schemas/StartRun" } } } },
    },
    responses: {
      202: runCreated("The run is queued."),
      409: activeConflictResponse,
      ...errorResponses({ 400: "The body is not a valid StartRun.", 413: `The body is over ${MAX_BODY_BYTES} bytes.` }),
      ...authErrors,
    },
  }),
  async (c) => {
    const req = c.var.body;
    const cfg = readConfig(c.env);
    const source = req.source ?? cfg.defaultSource;
    const result = await startRun(
      database(c.env.DB),
      c.env.JOBS,
      { trigger: req.trigger, source, force: req.force },
      cfg.leaseMs,
    );
    if (!result.started) return activeConflict(c, result.active, cfg.leaseMs);
    return c.json({ run: presentRun(result.run) }, 202, { Location: `/runs/${result.run.id}` });
  },
);

runRoutes.openapi(
  createRoute({
    method: "post",
    path: "/runs/{id}/resume",
    tags: ["runs"],
    summary: "Resume a failed run",
    description:
      "Resumes the latest run if it failed after loading began: re-extracts, requires the same checksums, and queues only the chunks not yet recorded.",
    security,
    middleware: [requireToken] as const,
    request: { params: RunIdParams },
    responses: {
      202: runCreated("The run is queued again."),
      404: jsonResponse("No such run.", ErrorSchema),
      409: jsonResponse(
        "Another run is active (ActiveRunConflict), or this one cannot be resumed (Error).",
        ActiveRunConflictSchema.or(ErrorSchema),
      ),
      ...authErrors,
    },
  }),
  async (c) => {
    const { leaseMs } = readConfig(c.env);
    const result = await resume(database(c.env.DB), c.env.JOBS, c.req.valid("param").id, leaseMs);
    if (result.resumed) return c.json({ run: presentRun(result.run) }, 202, { Location: `/runs/${result.run.id}` });
    if (result.why === "unknown") return c.json({ error: result.message }, 404);
    if (result.why === "active") return activeConflict(c, result.active, leaseMs);
    return c.json({ error: result.message }, 409);
  },
);

/**
 * Stop an active run now (a crash left it active, or it is not wanted): it
 * fails, its late messages write nothing, and — if it had begun loading — it
 * can still be resumed. Without this, a stuck run blocks triggers for a lease.
 */
runRoutes.openapi(
  createRoute({
    method: "post",
    path: "/runs/{id}/abandon",
    tags: ["runs"],
    summary: "Abandon an active run",
    description:
      "Fails an active run now; its late messages write nothing, and if it had begun loading it can still be resumed.",
    security,
    middleware: [requireToken] as const,
    request: { params: RunIdParams },
    responses: {
      200: jsonResponse("The run, now failed.", RunResponseSchema),
      ...errorResponses({ 404: "No such run.", 409: "The run is not active." }),
      ...authErrors,
    },
  }),
  async (c) => {
    const { id } = c.req.valid("param");
    const result = await abandonRun(database(c.env.DB), id);
    if (result.abandoned) return c.json({ run: presentRun(result.run) }, 200);
    if (result.run === undefined) return c.json({ error: `no run ${id}` }, 404);
    return c.json({ error: `run ${id} is ${result.run.status}; only an active run can be abandoned` }, 409);
  },
);

runRoutes.openapi(
  createRoute({
    method: "get",
    path: "/runs",
    tags: ["runs"],
    summary: "The latest runs",
    description: "The latest runs, newest first, with their progress.",
    request: { query: RunListQuery },
    responses: {
      200: jsonResponse("The runs.", RunListSchema),
      ...errorResponses({ 400: "An invalid limit." }),
    },
  }),
  async (c) => {
    const { limit = 20 } = c.req.valid("query");
    const runs = await listRuns(database(c.env.DB), limit);
    return c.json({ runs: runs.map(presentRun) }, 200);
  },
);

runRoutes.openapi(
  createRoute({
    method: "get",
    path: "/runs/{id}",
    tags: ["runs"],
    summary: "One run",
    description: "Status, expected and loaded images per split, checksums, error and timings.",
    request: { params: RunIdParams },
    responses: {
      200: jsonResponse("The run.", RunResponseSchema),
      ...errorResponses({ 404: "No such run." }),
    },
  }),
  async (c) => {
    const { id } = c.req.valid("param");
    const run = await getRun(database(c.env.DB), id);
    if (!run) return c.json({ error: `no run ${id}` }, 404);
    return c.json({ run: presentRun(run) }, 200);
  },
);
