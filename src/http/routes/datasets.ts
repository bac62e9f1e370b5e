/**
 * GET /datasets and GET /datasets/{name}: which datasets there are (every
 * registry entry, loaded or not, and every custom dataset a run has loaded),
 * and for each its state, shape, counts, size and newest run. Also the
 * lookup the per-dataset routes share: a dataset's catalog entry, or the 404
 * that says why there is none.
 */
import { createRoute } from "@hono/zod-openapi";
import { REGISTRY, REGISTRY_NAMES, registryEntry } from "../../core/registry";
import { database } from "../../db/database";
import { listRuns, newestRunPerDataset } from "../../db/run-reads";
import type { Run } from "../../db/schema";
import {
  brokenHint,
  isBroken,
  readClassCounts,
  readClasses,
  readDataset,
  readDatasets,
  type LoadedDataset,
} from "../../read/datasets";
import { readFileRecords } from "../../db/exports";
import { readFacts } from "../../read/export-files";
import { isLoaded, presentDataset, presentExports, runContext, type Loaded } from "../present";
import { BROKEN_409, DatasetParams } from "../schemas/common";
import { DatasetListSchema, DatasetSchema, type DatasetView } from "../schemas/datasets";
import { conflict, errorResponses, jsonResponse, notFound, openApiRoutes } from "../validation";

export const datasetRoutes = openApiRoutes();

/** 404 for a name that is neither in the registry nor a custom dataset anyone has loaded. */
export const unknownDataset = (name: string): never =>
  notFound(
    `no dataset ${name}: the registry has ${REGISTRY_NAMES.join(", ")}, and no custom dataset of that name has been loaded`,
  );

/** 404 for a dataset known but without rows: say how to load it. */
export const notLoaded = (name: string): never =>
  notFound(`dataset ${name} has not been loaded; start a run with POST /datasets/${name}/runs`);

/** 409 for a dataset whose tables are gone: what is missing, and the fix. */
export const brokenDataset = (d: LoadedDataset): never => conflict(`dataset ${d.name} is broken: ${brokenHint(d)}`);

/**
 * A catalog entry as the routes that read rows need it: loaded, and whole;
 * else the 404 that says why not, or the 409 of a broken dataset.
 */
export function usable(name: string, d: LoadedDataset | undefined): Loaded {
  if (isLoaded(d)) return isBroken(d) ? brokenDataset(d) : d;
  return d !== undefined || registryEntry(name) ? notLoaded(name) : unknownDataset(name);
}

/** The dataset's catalog entry if a swap has loaded it and its tables are there; else the 404 or 409 that says why not. */
export async function requireLoaded(db: D1Database, name: string): Promise<Loaded> {
  return usable(name, await readDataset(db, name));
}

/** The error responses of a route that reads a dataset's rows: unknown, not loaded, broken. */

datasetRoutes.openapi(
  createRoute({
    method: "get",
    path: "/datasets",
    tags: ["datasets"],
    summary: "Every dataset",
    description:
      "Every registry dataset, loaded or not, then every custom dataset a run has started, with its status and counts.",
    responses: { 200: jsonResponse("The datasets.", DatasetListSchema) },
  }),
  async (c) => {
    const [catalog, lastRuns, classCounts] = await Promise.all([
      readDatasets(c.env.DB),
      newestRunPerDataset(database(c.env.DB)),
      readClassCounts(c.env.DB),
    ]);
    const byName = new Map(catalog.map((d) => [d.name, d]));
    const ctx = runContext(c.env);
    const runOf = new Map<string, Run>(lastRuns.map((r) => [r.dataset, r]));
    // Custom datasets: those loaded, and those a run has been started for (loading, or failed).
    const custom = [...new Set([...byName.keys(), ...runOf.keys()])].filter((n) => !registryEntry(n)).sort();
    const names = [...REGISTRY.map((d) => d.name), ...custom];
    return c.json(
      {
        datasets: names.map((name) =>
          presentDataset(name, byName.get(name), runOf.get(name), classCounts.get(name) ?? 0, !!c.env.EXPORTS, ctx),
        ),
      },
      200,
    );
  },
);

datasetRoutes.openapi(
  createRoute({
    method: "get",
    path: "/datasets/{name}",
    tags: ["datasets"],
    summary: "One dataset",
    description: "A dataset as GET /datasets lists it, with its class names.",
    request: { params: DatasetParams },
    responses: {
      200: jsonResponse("The dataset.", DatasetSchema),
      ...errorResponses({
        400: "An invalid dataset name.",
        404: "Neither a registry dataset nor a custom one that has been loaded.",
      }),
    },
  }),
  async (c) => {
    const { name } = c.req.valid("param");
    const [catalog, lastRun, names] = await Promise.all([
      readDataset(c.env.DB, name),
      listRuns(database(c.env.DB), 1, name),
      readClasses(c.env.DB, name),
    ]);
    const facts = isLoaded(catalog) ? await readFacts(c.env.DB, catalog, names) : undefined;
    const records = facts ? await readFileRecords(database(c.env.DB), name, facts.version) : [];
    const entry = registryEntry(name);
    if (!entry && catalog === undefined && lastRun.length === 0) return unknownDataset(name);
    // The names the last swap recorded; before any, the published ones.
    const classList = names.length > 0 ? names : (entry?.classes ?? []).map((n, label) => ({ label, name: n }));
    const body: DatasetView = {
      ...presentDataset(name, catalog, lastRun[0], names.length, !!c.env.EXPORTS, runContext(c.env)),
      classes: classList,
      exports: facts ? presentExports(facts, records) : [],
    };
    return c.json(body, 200);
  },
);
