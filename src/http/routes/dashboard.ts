/** GET /: the dashboard page (src/http/dashboard.ts). */
import { createRoute, z } from "@hono/zod-openapi";
import { DASHBOARD_HTML } from "../dashboard";
import { openApiRoutes } from "../validation";

export const dashboardRoutes = openApiRoutes();

dashboardRoutes.openapi(
  createRoute({
    method: "get",
    path: "/",
    tags: ["pages"],
    summary: "Dashboard",
    description: "An HTML page: the latest runs, counts per class, and sample images.",
    responses: { 200: { description: "The page.", content: { "text/html": { schema: z.string() } } } },
  }),
  (c) => c.html(DASHBOARD_HTML, 200),
);
