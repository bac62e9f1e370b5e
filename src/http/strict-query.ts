/**
 * Unknown query parameters are refused, on every route: a misspelt one
 * (`?dtpye=uint8`) would otherwise be ignored and the answer would silently be
 * another than asked. A route takes exactly the keys of the query schema it
 * declares (src/http/schemas/), read from the app's OpenAPI registry, so a
 * parameter added to a schema is accepted without anything else to change;
 * a route that declares no query takes none. (A route declared with `hide`
 * is not in the registry, and so takes no query parameter either.)
 */
import { z, type OpenAPIHono } from "@hono/zod-openapi";
import { createMiddleware } from "hono/factory";
import { matchedRoutes } from "hono/route";
import type { AppEnv } from "./validation";

/** A declared query's keys: a z.object's, or those of the object a pipe starts from. */
function queryKeys(schema: unknown): readonly string[] {
  if (schema instanceof z.ZodObject) return Object.keys(schema.shape);
  if (schema instanceof z.ZodPipe) return queryKeys(schema.in);
  return [];
}

/** A route as Hono's router names it: "GET /datasets/:name/export/:file". */
const routeKey = (method: string, honoPath: string) => `${method.toUpperCase()} ${honoPath}`;

/** The OpenAPI template ("/datasets/{name}") as a Hono path ("/datasets/:name"), as @hono/zod-openapi registers it. */
const honoPath = (openApiPath: string) => openApiPath.replaceAll(/\/{(.+?)}/g, "/:$1");

interface Declared {
  /** The route as the API reference names it, for the message. */
  readonly template: string;
  readonly keys: ReadonlySet<string>;
}

function declaredQueries(app: OpenAPIHono<AppEnv>): ReadonlyMap<string, Declared> {
  const routes = new Map<string, Declared>();
  for (const def of app.openAPIRegistry.definitions) {
    if (def.type !== "route") continue;
    const { method, path, request } = def.route;
    routes.set(routeKey(method, honoPath(path)), {
      template: `${method.toUpperCase()} ${path}`,
      keys: new Set(queryKeys(request?.query)),
    });
  }
  return routes;
}

/** The message for `unknown` parameters of a route that takes `keys`. */
export function unknownQueryMessage(unknown: readonly string[], template: string, keys: ReadonlySet<string>): string {
  const names = unknown.map((k) => JSON.stringify(k)).join(", ");
  const takes = keys.size === 0 ? "no query parameters" : [...keys].join(", ");
  return `unknown query parameter${unknown.length > 1 ? "s" : ""} ${names}: ${template} takes ${takes}`;
}

/**
 * Middleware for the whole `app`: 400 naming each query parameter the matched
 * route does not declare, before its own validation. Requests that match no
 * route go on to their 404 or 405. The declarations are read on first use,
 * once every route is registered.
 */
export function rejectUnknownQuery(app: OpenAPIHono<AppEnv>) {
  let declared: ReadonlyMap<string, Declared> | undefined;
  return createMiddleware<AppEnv>(async (c, next) => {
    const route = matchedRoutes(c).find((r) => r.method !== "ALL");
    if (route === undefined) return next();
    const search = new URL(c.req.url).searchParams;
    if (search.size === 0) return next();
    declared ??= declaredQueries(app);
    const own = declared.get(routeKey(route.method, route.path));
    const keys = own?.keys ?? new Set<string>();
    const unknown = [...new Set(search.keys())].filter((k) => !keys.has(k));
    if (unknown.length === 0) return next();
    return c.json({ error: unknownQueryMessage(unknown, own?.template ?? `${route.method} ${route.path}`, keys) }, 400);
  });
}
