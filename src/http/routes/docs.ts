/** GET /openapi.json and GET /docs: the API's description, as data and as a page. */
import { createRoute, z } from "@hono/zod-openapi";
import { docsHtml, type OpenAPIDocument } from "../docs";
import { openApiRoutes } from "../validation";

/** The routes serving `document()`: the whole app's, built once it is assembled. */
export function docsRoutes(document: () => OpenAPIDocument) {
  const routes = openApiRoutes();
  routes.openapi(
    createRoute({
      method: "get",
      path: "/openapi.json",
      tags: ["pages"],
      summary: "This API's OpenAPI document",
      description: "OpenAPI 3.0, generated from the schemas that validate the requests.",
      responses: {
        200: {
          description: "The document.",
          content: { "application/json": { schema: z.record(z.string(), z.unknown()) } },
        },
      },
    }),
    (c) => c.json(document() as unknown as Record<string, unknown>, 200),
  );
  routes.openapi(
    createRoute({
      method: "get",
      path: "/docs",
      tags: ["pages"],
      summary: "API documentation",
      description: "This document as an HTML page.",
      responses: { 200: { description: "The page.", content: { "text/html": { schema: z.string() } } } },
    }),
    (c) => c.html(docsHtml(document()), 200),
  );
  return routes;
}
