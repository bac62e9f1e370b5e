/**
 * Runs: start one (POST /runs, or POST /datasets/{name}/runs), list them (of
 * every dataset or of one), read one, resume a failed one, and abandon an
 * active one. Starting, resuming and abandoning need the bearer token.
 */
import { createRoute } from "@hono/zod-openapi";
import type { Context } from "hono";
import { DEFAULT_DATASET, registryEntry } from "../../core/registry";
import type { Run } from "../../db/schema";
import { readConfig } from "../../pipeline/config";
import { refusalBeforeStart } from "../../pipeline/admission";
import { resolveRequest } from "../../pipeline/dataset";
import { abandonRun } from "../../db/runs";
import { database } from "../../db/database";
import { getRun, listRuns, supersededRuns } from "../../db/run-reads";
import { resume, startRun } from "../../pipeline/trigger";
import { readDataset } from "../../read/datasets";
import { authErrors, requireToken, TOKEN_SECURITY } from "../auth";
import { presentRun, runContext } from "../present";
import { DatasetParams, ErrorSchema } from "../schemas/common";
import {
  ActiveRunConflictSchema,
  DatasetRunListQuery,
  RunIdParams,
  RunListQuery,
  RunListSchema,
  RunResponseSchema,
  StartDatasetRunBody,
  StartRunBody,
  type ActiveRunConflict,
  type StartDatasetRun,
} from "../schemas/runs";
import { bad, errorResponses, jsonBody, jsonResponse, openApiRoutes, type AppEnv } from "../validation";
import { unknownDataset } from "./datasets";

export const runRoutes = openApiRoutes();

/** Largest POST /runs body read, in bytes: a source is at most 2048 characters. */
const MAX_BODY_BYTES = 16 * 1024;

const security = TOKEN_SECURITY;

const runCreated = (description: string) => ({
  description,
  headers: { Location: { description: "/runs/{id} of the run.", schema: { type: "string" as const } } },
  content: { "application/json": { schema: RunResponseSchema } },
});

const activeConflictResponse = jsonResponse("Another run is active.", ActiveRunConflictSchema);

/** Runs as a list shows them: each knows whether a later run of its dataset superseded it. */
async function presentRuns<E extends AppEnv>(c: Context<E>, runs: readonly Run[]) {
  const superseded = await supersededRuns(database(c.env.DB), runs);
  const ctx = runContext(c.env);
  return runs.map((r) => presentRun(r, { ...ctx, superseded: superseded.has(r.id) }));
}

/**
 * 409 for a request that met an active run (a trigger, a deletion): which one,
 * and how a user gets past it if it is stuck. `doing`: what was refused.
 */
export function activeConflict<E extends AppEnv>(c: Context<E>, active: Run, leaseMs: number, doing?: string) {
  const silentS = Math.max(0, Math.round((Date.now() - Date.parse(active.updatedAt)) / 1000));
  const body: ActiveRunConflict = {
    error: `${doing ? `${doing}: ` : ""}run ${active.id} of ${active.dataset} is already ${active.status}`,
    activeRunId: active.id,
    hint: `its last sign of life was ${silentS} s ago; a run silent for ${leaseMs / 1000} s is presumed dead and replaced by the next trigger, or stop it now with POST /runs/${active.id}/abandon`,
    // The active run is its dataset's newest.
    run: presentRun(active, runContext(c.env)),
  };
  return c.json(body, 409);
}

/**
 * Start a run of `dataset` as `req` asks: the pipeline decides what the
 * request means (a registry dataset and its mirrors, or a custom dataset and
 * its files) and refuses what it cannot load, which is the client's 400.
 */
async function start<E extends AppEnv>(c: Context<E>, dataset: string | undefined, req: StartDatasetRun) {
  const cfg = readConfig(c.env);
  const { source, files, classes, trigger, force } = req;
  const resolved = resolveRequest({ dataset, source, files, classes }, cfg);
  if (!resolved.ok) return bad(resolved.error);
  const { dataset: name, source: from, spec, official } = resolved;
  const refused = await refusalBeforeStart(resolved, cfg, !!c.env.EXPORTS, (url, init) => fetch(url, init));
  if (refused !== undefined) return bad(refused);
  const result = await startRun(
    database(c.env.DB),
    c.env.JOBS,
    { trigger, dataset: name, source: from, spec, official, force },
    cfg.leaseMs,
  );
  if (!result.started) return activeConflict(c, result.active, cfg.leaseMs);
  return c.json({ run: presentRun(result.run, runContext(c.env)) }, 202, { Location: `/runs/${result.run.id}` });
}

const startResponses = {
  202: runCreated("The run is queued."),
  409: activeConflictResponse,
  ...errorResponses({
    400: "The body is not valid, or names a dataset or source the pipeline cannot load (the error says which).",
    413: `The body is over ${MAX_BODY_BYTES} bytes.`,
  }),
  ...authErrors,
};

const MALFORMED =
  'body must be JSON: { "dataset"?: name, "source"?: URL, "force"?: boolean, "files"?: {…}, "classes"?: […] }';

// The bodies are validated by jsonBody (bounded, JSON whatever the Content-Type);
// the routes document the same schemas by reference.
runRoutes.openAPIRegistry.register("StartRun", StartRunBody);
runRoutes.openAPIRegistry.register("StartDatasetRun", StartDatasetRunBody);

runRoutes.openapi(
  createRoute({
    method: "post",
    path: "/runs",
    tags: ["runs"],
    summary: "Start a run",
    description: `Starts a run loading \`dataset\` (default: ${DEFAULT_DATASET}) from \`source\` (default: its official mirrors); a custom dataset also names its four \`files\`. The body is optional, read as JSON whatever its Content-Type.`,
    security,
    middleware: [requireToken, jsonBody(StartRunBody, { maxBytes: MAX_BODY_BYTES, malformed: MALFORMED })] as const,
    request: {
      body: { required: false, content: { "application/json": { schema: { $ref: "#/components/schemas/StartRun" } } } },
    },
    responses: startResponses,
  }),
  (c) => {
    const { dataset, ...req } = c.var.body;
    return start(c, dataset, req);
  },
);

runRoutes.openapi(
  createRoute({
    method: "post",
    path: "/datasets/{name}/runs",
    tags: ["runs"],
    summary: "Start a run of a dataset",
    description: "POST /runs for the dataset the path names: the same body without `dataset`.",
    security,
    middleware: [
      requireToken,
      jsonBody(StartDatasetRunBody, {
        maxBytes: MAX_BODY_BYTES,
        malformed: MALFORMED.replace('"dataset"?: name, ', ""),
      }),
    ] as const,
    request: {
      params: DatasetParams,
      body: {
        required: false,
        content: { "application/json": { schema: { $ref: "#/components/schemas/StartDatasetRun" } } },
      },
    },
    responses: startResponses,
  }),
  (c) => start(c, c.req.valid("param").name, c.var.body),
);

runRoutes.openapi(
  createRoute({
    method: "post",
    path: "/runs/{id}/resume",
    tags: ["runs"],
    summary: "Resume a failed run",
    description:
      "Resumes the dataset's latest run if it failed after loading began: only the chunks not yet recorded are loaded, from unchanged archives.",
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
    if (result.resumed)
      return c.json({ run: presentRun(result.run, runContext(c.env)) }, 202, { Location: `/runs/${result.run.id}` });
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
    if (result.abandoned) return c.json({ run: presentRun(result.run, runContext(c.env)) }, 200);
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
    description: "The latest runs, newest first, with their progress: of every dataset, or of `dataset`.",
    request: { query: RunListQuery },
    responses: {
      200: jsonResponse("The runs.", RunListSchema),
      ...errorResponses({ 400: "An invalid limit or dataset name." }),
    },
  }),
  async (c) => {
    const { limit = 20, dataset } = c.req.valid("query");
    const runs = await listRuns(database(c.env.DB), limit, dataset);
    return c.json({ runs: await presentRuns(c, runs) }, 200);
  },
);

runRoutes.openapi(
  createRoute({
    method: "get",
    path: "/datasets/{name}/runs",
    tags: ["runs"],
    summary: "The latest runs of a dataset",
    description:
      "GET /runs?dataset={name}, newest first. A custom dataset's runs are listed even if none has loaded it (they say why).",
    request: { params: DatasetParams, query: DatasetRunListQuery },
    responses: {
      200: jsonResponse("The runs.", RunListSchema),
      ...errorResponses({
        400: "An invalid limit or dataset name.",
        404: "Neither a registry dataset nor one any run has named.",
      }),
    },
  }),
  async (c) => {
    const { name } = c.req.valid("param");
    const { limit = 20 } = c.req.valid("query");
    const runs = await listRuns(database(c.env.DB), limit, name);
    // No run: an unknown name is a 404 (as every other route of the dataset answers), a known one an empty list.
    if (runs.length === 0 && !registryEntry(name) && (await readDataset(c.env.DB, name)) === undefined)
      return unknownDataset(name);
    return c.json({ runs: await presentRuns(c, runs) }, 200);
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
    const [view] = await presentRuns(c, [run]);
    return c.json({ run: view! }, 200);
  },
);
