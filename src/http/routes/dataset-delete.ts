/**
 * DELETE /datasets/{name}: remove a dataset — its tables, catalog entry,
 * classes, counts, runs and R2 objects — in one guarded step
 * (pipeline/delete.ts). A registry dataset returns to `empty`; a custom one is
 * gone from GET /datasets. Refused with 409 while a run of it is active.
 */
import { createRoute } from "@hono/zod-openapi";
import { registryEntry } from "../../core/registry";
import { database } from "../../db/database";
import { readConfig } from "../../pipeline/config";
import { deleteDataset } from "../../pipeline/delete";
import { authErrors, requireToken, TOKEN_SECURITY } from "../auth";
import { presentDataset, runContext } from "../present";
import { DatasetParams, ErrorSchema } from "../schemas/common";
import { DatasetDeletedSchema, type DatasetDeleted } from "../schemas/datasets";
import { ActiveRunConflictSchema } from "../schemas/runs";
import { errorResponses, jsonResponse, openApiRoutes } from "../validation";
import { unknownDataset } from "./datasets";
import { activeConflict } from "./runs";

export const datasetDeleteRoutes = openApiRoutes();

datasetDeleteRoutes.openapi(
  createRoute({
    method: "delete",
    path: "/datasets/{name}",
    tags: ["datasets"],
    summary: "Delete a dataset",
    description:
      "Drops the dataset's tables and deletes its catalog entry, classes, counts and runs in one transaction, recreates the `images` view over the tables that exist (which also repairs it after a table was dropped by hand), then deletes its objects in R2. A registry dataset is then `empty`; a custom one is no longer listed. A dataset already partly gone, or never loaded, is cleaned up the same way.",
    security: TOKEN_SECURITY,
    middleware: [requireToken] as const,
    request: { params: DatasetParams },
    responses: {
      200: jsonResponse("What was deleted.", DatasetDeletedSchema),
      409: jsonResponse("A run of the dataset is active: abandon it first, or wait.", ActiveRunConflictSchema),
      503: jsonResponse(
        "ETL_TOKEN is not configured, or the dataset left D1 but deleting its R2 objects failed (DELETE again to finish).",
        ErrorSchema,
      ),
      ...errorResponses({ 400: "An invalid dataset name.", 404: "No dataset of that name has anything to delete." }),
      401: authErrors[401],
    },
  }),
  async (c) => {
    const { name } = c.req.valid("param");
    const { leaseMs } = readConfig(c.env);
    const db = database(c.env.DB);
    const result = await deleteDataset(db, c.env.EXPORTS, name, leaseMs);
    if (result.kind === "active") return activeConflict(c, result.run, leaseMs, `${name} cannot be deleted now`);
    if (result.kind === "objects-failed") return c.json({ error: result.message }, 503);
    const { traces, objects } = result;
    const entry = registryEntry(name);
    if (!entry && !traces.catalogued && traces.runs === 0 && traces.tables.length === 0 && objects === 0)
      return unknownDataset(name);
    const body: DatasetDeleted = {
      deleted: name,
      tables: [...traces.tables],
      runs: traces.runs,
      objects: c.env.EXPORTS ? objects : null,
      dataset: entry ? presentDataset(name, undefined, undefined, 0, !!c.env.EXPORTS, runContext(c.env)) : null,
    };
    return c.json(body, 200);
  },
);
