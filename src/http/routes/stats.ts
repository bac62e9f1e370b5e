/** GET /stats: images per class per split, and sample indices per class (the dashboard's data). */
import { createRoute } from "@hono/zod-openapi";
import { readStats } from "../../read/images";
import { StatsSchema } from "../schemas";
import { jsonResponse, openApiRoutes } from "../validation";

export const statsRoutes = openApiRoutes();

/** Sample images per class: one row of the dashboard. */
const SAMPLES_PER_CLASS = 8;

statsRoutes.openapi(
  createRoute({
    method: "get",
    path: "/stats",
    tags: ["images"],
    summary: "Counts and samples",
    description: `Images per class per split, and the first ${SAMPLES_PER_CLASS} image indices of each class (from the test split if it has any).`,
    responses: { 200: jsonResponse("The counts.", StatsSchema) },
  }),
  async (c) => c.json(await readStats(c.env.DB, SAMPLES_PER_CLASS), 200),
);
