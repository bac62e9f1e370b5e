/**
 * HTTP routes: thin — parse, call one pipeline function, answer JSON.
 * Errors are always `{ "error": … }` with a fitting status.
 */
import { Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import { methodNotAllowed } from "hono/method-not-allowed";
import { TRIGGERS, type Trigger } from "../db/schema";
import { readConfig } from "../env";
import { database, getRun, listRuns } from "../pipeline/runs";
import { resume, startRun } from "../pipeline/trigger";
import { requireToken } from "./auth";
import { presentRun } from "./present";
import { readRoutes } from "./read";

type AppEnv = { Bindings: Env };

export const app = new Hono<AppEnv>();

app.use(
  methodNotAllowed({
    app,
    onMethodNotAllowed: (c, allowed) =>
      c.json({ error: `method ${c.req.method} not allowed; use ${allowed.join(", ")}` }, 405, {
        Allow: allowed.join(", "),
      }),
  }),
);

const bad = (message: string): never => {
  throw new HTTPException(400, { message });
};

interface RunRequest {
  source?: string;
  force: boolean;
  trigger: Exclude<Trigger, "cron">;
}

async function parseRunRequest(req: Request): Promise<RunRequest> {
  const text = await req.text();
  let body: unknown = {};
  if (text.trim() !== "") {
    try {
      body = JSON.parse(text);
    } catch {
      bad('body must be JSON: { "source"?: URL, "force"?: boolean }');
    }
  }
  if (typeof body !== "object" || body === null || Array.isArray(body)) return bad("body must be a JSON object");
  const { source, force = false, trigger = "http", ...rest } = body as Record<string, unknown>;
  const unknown = Object.keys(rest);
  if (unknown.length > 0) bad(`unknown field${unknown.length > 1 ? "s" : ""}: ${unknown.join(", ")}`);
  if (source !== undefined) {
    if (typeof source !== "string") bad("source must be a string URL");
    let url: URL | undefined;
    try {
      url = new URL(source as string);
    } catch {
      bad(`source is not a URL: ${JSON.stringify(source)}`);
    }
    if (url!.protocol !== "http:" && url!.protocol !== "https:") bad("source must be an http(s) URL");
  }
  if (typeof force !== "boolean") bad("force must be true or false");
  if (trigger !== "http" && trigger !== "cli")
    bad(`trigger must be one of ${TRIGGERS.filter((t) => t !== "cron").join(", ")}`);
  return { source: source as string | undefined, force: force as boolean, trigger: trigger as RunRequest["trigger"] };
}

app.post("/runs", requireToken, async (c) => {
  const req = await parseRunRequest(c.req.raw);
  const source = req.source ?? readConfig(c.env).defaultSource;
  const result = await startRun(database(c.env.DB), c.env.JOBS, { trigger: req.trigger, source, force: req.force });
  if (!result.started) {
    return c.json(
      {
        error: `run ${result.active.id} is already ${result.active.status}`,
        activeRunId: result.active.id,
        run: presentRun(result.active),
      },
      409,
    );
  }
  return c.json({ run: presentRun(result.run) }, 202, { Location: `/runs/${result.run.id}` });
});

app.post("/runs/:id/resume", requireToken, async (c) => {
  const result = await resume(database(c.env.DB), c.env.JOBS, c.req.param("id"));
  if (result.resumed) return c.json({ run: presentRun(result.run) }, 202, { Location: `/runs/${result.run.id}` });
  if (result.why === "unknown") return c.json({ error: result.message }, 404);
  if (result.why === "active") {
    return c.json(
      {
        error: `run ${result.active.id} is already ${result.active.status}`,
        activeRunId: result.active.id,
        run: presentRun(result.active),
      },
      409,
    );
  }
  return c.json({ error: result.message }, 409);
});

app.get("/runs", async (c) => {
  const raw = c.req.query("limit") ?? "20";
  const limit = Number(raw);
  if (!Number.isInteger(limit) || limit < 1 || limit > 100) bad(`limit must be an integer from 1 to 100, got "${raw}"`);
  const runs = await listRuns(database(c.env.DB), limit);
  return c.json({ runs: runs.map(presentRun) });
});

app.get("/runs/:id", async (c) => {
  const run = await getRun(database(c.env.DB), c.req.param("id"));
  if (!run) return c.json({ error: `no run ${c.req.param("id")}` }, 404);
  return c.json({ run: presentRun(run) });
});

app.route("/", readRoutes);

app.notFound((c) => c.json({ error: `no route for ${c.req.method} ${new URL(c.req.url).pathname}` }, 404));

app.onError((err, c) => {
  if (err instanceof HTTPException) return c.json({ error: err.message }, err.status);
  console.error(`${c.req.method} ${c.req.url}: ${err.stack ?? err.message}`);
  return c.json({ error: "internal error; see the Worker's logs" }, 500);
});
