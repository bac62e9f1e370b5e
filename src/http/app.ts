/**
 * The HTTP API, assembled: one module per resource under src/http/routes/,
 * each route declared with zod schemas (src/http/schemas/) that validate
 * its requests and describe it in GET /openapi.json (and GET /docs). Routes
 * stay thin — validate, call one pipeline function, answer JSON. Errors are
 * always `{ "error": … }` with a fitting status.
 */
import { HTTPException } from "hono/http-exception";
import { methodNotAllowed } from "hono/method-not-allowed";
import { trimTrailingSlash } from "hono/trailing-slash";
import packageJson from "../../package.json";
import { DEFAULT_DATASET } from "../core/registry";
import type { OpenAPIDocument } from "./docs";
import { croissantRoutes } from "./routes/croissant";
import { dashboardRoutes } from "./routes/dashboard";
import { datasetDeleteRoutes } from "./routes/dataset-delete";
import { datasetRoutes } from "./routes/datasets";
import { docsRoutes } from "./routes/docs";
import { exportRoutes } from "./routes/exports";
import { imageRoutes } from "./routes/images";
import { rawRoutes } from "./routes/raw";
import { runRoutes } from "./routes/runs";
import { statsRoutes } from "./routes/stats";
import { crossOriginReads } from "./cors";
import { rejectUnknownQuery } from "./strict-query";
import { openApiRoutes } from "./validation";

export const app = openApiRoutes();

// First, so that every GET/HEAD answer carries CORS headers, errors included, and a preflight is never a 405.
app.use(crossOriginReads);
// `/datasets/` for `/datasets`: a read that matched no route only for its trailing slash is sent to the route.
app.use(trimTrailingSlash());
app.use(
  methodNotAllowed({
    app,
    onMethodNotAllowed: (c, allowed) =>
      c.json({ error: `method ${c.req.method} not allowed; use ${allowed.join(", ")}` }, 405, {
        Allow: allowed.join(", "),
      }),
  }),
);
app.use(rejectUnknownQuery(app));

app.openAPIRegistry.registerComponent("securitySchemes", "bearer", {
  type: "http",
  scheme: "bearer",
  description: "The Worker's ETL_TOKEN secret. Without one configured, these routes answer 503.",
});

let document: OpenAPIDocument | undefined;

/** The OpenAPI document of every route below, generated on first use. */
export function openApiDocument(): OpenAPIDocument {
  document ??= app.getOpenAPIDocument({
    openapi: "3.0.3",
    info: {
      title: "idx-etl",
      version: packageJson.version,
      description: packageJson.description,
    },
    tags: [
      { name: "datasets", description: "Which datasets there are, loaded or not." },
      { name: "runs", description: "Loading a dataset into D1." },
      {
        name: "images",
        description: `Reading a loaded dataset: under /datasets/{name}, and without it for ${DEFAULT_DATASET}.`,
      },
      { name: "pages", description: "Pages for people, and this description." },
    ],
  });
  return document;
}

app.route("/", datasetRoutes);
app.route("/", datasetDeleteRoutes);
app.route("/", runRoutes);
app.route("/", imageRoutes);
app.route("/", statsRoutes);
app.route("/", exportRoutes);
app.route("/", croissantRoutes);
app.route("/", rawRoutes);
app.route("/", dashboardRoutes);
app.route("/", docsRoutes(openApiDocument));

app.notFound((c) => c.json({ error: `no route for ${c.req.method} ${new URL(c.req.url).pathname}` }, 404));

app.onError((err, c) => {
  if (err instanceof HTTPException) return c.json({ error: err.message }, err.status);
  console.error(`${c.req.method} ${c.req.url}: ${err.stack ?? err.message}`);
  return c.json({ error: "internal error; see the Worker's logs" }, 500);
});
