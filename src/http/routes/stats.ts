/**
 * GET /datasets/{name}/stats (and GET /stats for the default dataset): images
 * per class per split, and sample indices per class (the dashboard's data).
 */
import { createRoute } from "@hono/zod-openapi";
import type { Context } from "hono";
import { DEFAULT_DATASET, registryEntry } from "../../core/registry";
import { isBroken, readDataset } from "../../read/datasets";
import { readStats } from "../../read/images";
import { isLoaded } from "../present";
import { DatasetParams } from "../schemas/common";
import { StatsSchema, type Stats } from "../schemas/datasets";
import { errorResponses, jsonResponse, openApiRoutes, type AppEnv } from "../validation";
import { brokenDataset, unknownDataset } from "./datasets";
import { BROKEN_409 } from "../schemas/common";

export const statsRoutes = openApiRoutes();

/** Sample images per class: one row of the dashboard. */
const SAMPLES_PER_CLASS = 8;

const DESCRIPTION = `Images per class per split, and the first ${SAMPLES_PER_CLASS} image indices of each class (from the test split if it has any). A dataset not loaded yet counts 0 in every class.`;

statsRoutes.openapi(
  createRoute({
    method: "get",
    path: "/datasets/{name}/stats",
    tags: ["images"],
    summary: "Counts and samples of a dataset",
    description: DESCRIPTION,
    request: { params: DatasetParams },
    responses: {
      200: jsonResponse("The counts.", StatsSchema),
      ...errorResponses({
        400: "An invalid dataset name.",
        404: "Neither a registry dataset nor a custom one that has been loaded.",
        409: BROKEN_409,
      }),
    },
  }),
  (c) => serveStats(c, c.req.valid("param").name),
);

statsRoutes.openapi(
  createRoute({
    method: "get",
    path: "/stats",
    tags: ["images"],
    summary: `Counts and samples of ${DEFAULT_DATASET}`,
    description: `GET /datasets/${DEFAULT_DATASET}/stats. ${DESCRIPTION}`,
    responses: { 200: jsonResponse("The counts.", StatsSchema), ...errorResponses({ 409: BROKEN_409 }) },
  }),
  (c) => serveStats(c, DEFAULT_DATASET),
);

async function serveStats(c: Context<AppEnv>, name: string) {
  const dataset = await readDataset(c.env.DB, name);
  if (isLoaded(dataset) && isBroken(dataset)) return brokenDataset(dataset);
  if (isLoaded(dataset)) return c.json(await readStats(c.env.DB, dataset, SAMPLES_PER_CLASS), 200);
  const entry = registryEntry(name);
  if (!entry && dataset === undefined) return unknownDataset(name);
  // Not loaded: its published classes, none of them with an image yet (a fresh database's dashboard shows this).
  const classes = (entry?.classes ?? []).map((className, label) => ({ label, name: className, count: 0 }));
  const empty: Stats = {
    dataset: name,
    splits: { train: { total: 0, classes }, test: { total: 0, classes } },
    samples: null,
  };
  return c.json(empty, 200);
}
