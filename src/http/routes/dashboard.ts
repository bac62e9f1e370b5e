/** GET /: the dashboard page (src/http/dashboard/), with a fresh script nonce for its Content-Security-Policy. */
import { createRoute, z } from "@hono/zod-openapi";
import { dashboardCsp, dashboardHtml } from "../dashboard/page";
import { openApiRoutes } from "../validation";

export const dashboardRoutes = openApiRoutes();

// The page reads its parameters itself (an unknown dataset is an error shown on the page, not a 400), so they are
// described here but accepted as any string.
const DashboardQuery = z.object({
  dataset: z
    .string()
    .optional()
    .openapi({
      param: { name: "dataset", in: "query" },
      description: "The dataset shown (default: fashion-mnist); the others are listed.",
      example: "mnist",
    }),
  split: z
    .string()
    .optional()
    .openapi({ param: { name: "split", in: "query" }, description: "The split browsed: train (default) or test." }),
  label: z
    .string()
    .optional()
    .openapi({ param: { name: "label", in: "query" }, description: "Browse only this class's images." }),
});

dashboardRoutes.openapi(
  createRoute({
    method: "get",
    path: "/",
    tags: ["pages"],
    summary: "Dashboard",
    description: "An HTML page: every dataset, and for one of them its images per class, its images and its runs.",
    request: { query: DashboardQuery },
    responses: { 200: { description: "The page.", content: { "text/html": { schema: z.string() } } } },
  }),
  (c) => {
    const nonce = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))));
    return c.html(dashboardHtml(nonce), 200, { "Content-Security-Policy": dashboardCsp(nonce) });
  },
);
