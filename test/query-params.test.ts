/**
 * Unknown query parameters: every route of the OpenAPI document refuses one
 * with a 400 that names it, before anything else is looked at; the parameters
 * a route declares pass on to its own validation. A mini app shows that the
 * accepted keys are read from the route's declared schema, whatever it is.
 */
import { SELF } from "cloudflare:test";
import { createRoute, z } from "@hono/zod-openapi";
import { describe, expect, it } from "vitest";
import { openApiDocument } from "../src/http/app";
import { rejectUnknownQuery } from "../src/http/strict-query";
import { openApiRoutes } from "../src/http/validation";
import { TOKEN } from "./helpers";

const call = (path: string, init: RequestInit = {}) => SELF.fetch(`http://worker${path}`, init);
const errorOf = async (res: Response) => ((await res.json()) as { error: string }).error;

/** A value for each path parameter of the API, valid as far as its schema goes. */
const PATH_VALUES: Record<string, string> = {
  name: "fashion-mnist",
  split: "train",
  image: "0",
  file: "train.npy",
  version: "no-such-version",
  id: "no-such-run",
};

const operations = () =>
  Object.entries(openApiDocument().paths ?? {}).flatMap(([template, item]) =>
    (["get", "post"] as const)
      .filter((m) => item?.[m] !== undefined)
      .map((method) => {
        const declared = (item![method]!.parameters ?? [])
          .filter((p) => "in" in p && p.in === "query")
          .map((p) => (p as { name: string }).name);
        const path = template.replaceAll(/{(\w+)}/g, (_, p: string) => {
          const value = PATH_VALUES[p];
          if (value === undefined) throw new Error(`no test value for path parameter ${p} of ${template}`);
          return value;
        });
        return { template, method: method.toUpperCase(), path, declared };
      }),
  );

describe("unknown query parameters", () => {
  it("the issue's example: a misspelt dtype is a 400 naming it", async () => {
    const res = await call("/datasets/fashion-mnist/export/train.npy?dtpye=uint8");
    expect(res.status).toBe(400);
    expect(await errorOf(res)).toMatch(
      /^unknown query parameter "dtpye": GET \/datasets\/\{name\}\/export\/\{file\} takes (\w+, )*offset, limit\b/,
    );
  });

  it("every route of the API refuses one, naming it and what the route takes", async () => {
    const ops = operations();
    expect(ops.length).toBeGreaterThan(15);
    for (const op of ops) {
      const res = await call(`${op.path}?bogus=1`, {
        method: op.method,
        headers: { Authorization: `Bearer ${TOKEN}` },
        ...(op.method === "POST" ? { body: "{}" } : {}),
      });
      expect(res.status, `${op.method} ${op.template}`).toBe(400);
      expect(await errorOf(res)).toBe(
        `unknown query parameter "bogus": ${op.method} ${op.template} takes ${op.declared.length === 0 ? "no query parameters" : op.declared.join(", ")}`,
      );
      // HEAD of a GET route: the same status, no body.
      if (op.method === "GET") expect((await call(`${op.path}?bogus=1`, { method: "HEAD" })).status).toBe(400);
    }
  });

  it("names every unknown one, once, and keeps 404 and 405 for what matches no route", async () => {
    const res = await call("/stats?b=1&a=2&b=3");
    expect(res.status).toBe(400);
    expect(await errorOf(res)).toBe('unknown query parameters "b", "a": GET /stats takes no query parameters');
    const limitTwice = await call("/runs?limit=1&limit=2&x=1");
    expect(await errorOf(limitTwice)).toBe('unknown query parameter "x": GET /runs takes limit, dataset');
    expect((await call("/nope?x=1")).status).toBe(404);
    expect((await call("/runs/abc?x=1", { method: "DELETE" })).status).toBe(405);
  });

  it("declared parameters reach the route's own validation", async () => {
    // Not loaded in this file: the export's 404, not a 400.
    const exported = await call("/datasets/fashion-mnist/export/train.npy?offset=0&limit=5");
    expect(exported.status).toBe(404);
    expect(await errorOf(exported)).toContain("has not been loaded");
    const badLimit = await call("/runs?limit=0");
    expect(await errorOf(badLimit)).toBe('limit must be an integer from 1 to 100, got "0"');
    expect((await call("/runs?limit=1&dataset=mnist")).status).toBe(200);
    const page = await call("/?dataset=mnist&split=test&label=3");
    expect(page.status).toBe(200);
    await page.arrayBuffer();
  });
});

describe("the accepted keys are the declared schema's", () => {
  const mini = () => {
    const app = openApiRoutes();
    app.use(rejectUnknownQuery(app));
    const sub = openApiRoutes();
    sub.openapi(
      createRoute({
        method: "get",
        path: "/things/{id}",
        request: {
          params: z.object({ id: z.string() }),
          query: z.object({ dtype: z.enum(["uint8", "float32"]).optional(), offset: z.string().optional() }),
        },
        responses: { 200: { description: "ok" } },
      }),
      (c) => c.json({ query: c.req.valid("query") }, 200),
    );
    sub.openapi(createRoute({ method: "get", path: "/bare", responses: { 200: { description: "ok" } } }), (c) =>
      c.json({}, 200),
    );
    // Mounted under a prefix, as a group of routes is: the declarations follow it.
    app.route("/v1", sub);
    return app;
  };

  it("a key the schema declares passes, any other is refused; a route without a query takes none", async () => {
    const app = mini();
    const ok = await app.request("/v1/things/7?dtype=uint8&offset=3");
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual({ query: { dtype: "uint8", offset: "3" } });
    const refused = await app.request("/v1/things/7?dtype=uint8&limit=3");
    expect(refused.status).toBe(400);
    expect(await errorOf(refused)).toBe('unknown query parameter "limit": GET /v1/things/{id} takes dtype, offset');
    // A declared key with a bad value is the route's own 400.
    const badValue = await app.request("/v1/things/7?dtype=int8");
    expect(badValue.status).toBe(400);
    expect(await errorOf(badValue)).toMatch(/^dtype: /);
    expect((await app.request("/v1/bare")).status).toBe(200);
    expect(await errorOf(await app.request("/v1/bare?x"))).toBe(
      'unknown query parameter "x": GET /v1/bare takes no query parameters',
    );
  });
});
