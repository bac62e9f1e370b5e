/**
 * HTTP routes: thin — parse, call one pipeline function, answer JSON.
 * Errors are always `{ "error": … }` with a fitting status.
 */
import { Hono, type Context } from "hono";
import { HTTPException } from "hono/http-exception";
import { methodNotAllowed } from "hono/method-not-allowed";
import { TRIGGERS, type Run, type Trigger } from "../db/schema";
import { readConfig } from "../env";
import { abandonRun, database, getRun, listRuns } from "../pipeline/runs";
import { parseSource } from "../pipeline/source";
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

/** Largest POST /runs body read, in bytes: a source is at most 2048 characters. */
const MAX_BODY_BYTES = 16 * 1024;

/** The body as text, refused with 413 past MAX_BODY_BYTES (by Content-Length, else while reading). */
async function readBoundedText(req: Request): Promise<string> {
  const tooLarge = (size?: number): never => {
    throw new HTTPException(413, {
      message: `body must be at most ${MAX_BODY_BYTES} bytes${size === undefined ? "" : `, got ${size}`}`,
    });
  };
  const declared = req.headers.get("Content-Length");
  if (declared !== null && Number(declared) > MAX_BODY_BYTES) tooLarge(Number(declared));
  if (req.body === null) return "";
  const reader = req.body.getReader();
  const parts: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > MAX_BODY_BYTES) {
      await reader.cancel().catch(() => {});
      tooLarge();
    }
    parts.push(value);
  }
  const bytes = new Uint8Array(size);
  let at = 0;
  for (const p of parts) {
    bytes.set(p, at);
    at += p.byteLength;
  }
  return new TextDecoder().decode(bytes);
}

async function parseRunRequest(req: Request): Promise<RunRequest> {
  const text = await readBoundedText(req);
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
  let normalised: string | undefined;
  if (source !== undefined) {
    if (typeof source !== "string") return bad("source must be a string URL");
    const parsed = parseSource(source);
    if (!parsed.ok) return bad(parsed.error);
    normalised = parsed.source;
  }
  if (typeof force !== "boolean") bad("force must be true or false");
  if (trigger !== "http" && trigger !== "cli")
    bad(`trigger must be one of ${TRIGGERS.filter((t) => t !== "cron").join(", ")}`);
  return { source: normalised, force: force as boolean, trigger: trigger as RunRequest["trigger"] };
}

/** 409 for a trigger that met an active run: which one, and how a user gets past it if it is stuck. */
function activeConflict(c: Context<AppEnv>, active: Run, leaseMs: number) {
  const silentS = Math.max(0, Math.round((Date.now() - Date.parse(active.updatedAt)) / 1000));
  return c.json(
    {
      error: `run ${active.id} is already ${active.status}`,
      activeRunId: active.id,
      hint: `its last sign of life was ${silentS} s ago; a run silent for ${leaseMs / 1000} s is presumed dead and replaced by the next trigger, or stop it now with POST /runs/${active.id}/abandon`,
      run: presentRun(active),
    },
    409,
  );
}

app.post("/runs", requireToken, async (c) => {
  const req = await parseRunRequest(c.req.raw);
  const cfg = readConfig(c.env);
  const source = req.source ?? cfg.defaultSource;
  const result = await startRun(
    database(c.env.DB),
    c.env.JOBS,
    { trigger: req.trigger, source, force: req.force },
    cfg.leaseMs,
  );
  if (!result.started) return activeConflict(c, result.active, cfg.leaseMs);
  return c.json({ run: presentRun(result.run) }, 202, { Location: `/runs/${result.run.id}` });
});

app.post("/runs/:id/resume", requireToken, async (c) => {
  const { leaseMs } = readConfig(c.env);
  const result = await resume(database(c.env.DB), c.env.JOBS, c.req.param("id"), leaseMs);
  if (result.resumed) return c.json({ run: presentRun(result.run) }, 202, { Location: `/runs/${result.run.id}` });
  if (result.why === "unknown") return c.json({ error: result.message }, 404);
  if (result.why === "active") return activeConflict(c, result.active, leaseMs);
  return c.json({ error: result.message }, 409);
});

/**
 * Stop an active run now (a crash left it active, or it is not wanted): it
 * fails, its late messages write nothing, and — if it had begun loading — it
 * can still be resumed. Without this, a stuck run blocks triggers for a lease.
 */
app.post("/runs/:id/abandon", requireToken, async (c) => {
  const db = database(c.env.DB);
  const id = c.req.param("id");
  const result = await abandonRun(db, id);
  if (result.abandoned) return c.json({ run: presentRun(result.run) });
  if (result.run === undefined) return c.json({ error: `no run ${id}` }, 404);
  return c.json({ error: `run ${id} is ${result.run.status}; only an active run can be abandoned` }, 409);
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
