/**
 * Requests: POST /runs and POST /runs/:id/resume need `Authorization: Bearer
 * <ETL_TOKEN>`; with no token configured they fail closed and say how to set
 * one; every error is JSON `{ "error": … }` with a fitting status.
 */
import { createExecutionContext, SELF } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import worker from "../src/index";
import { rows } from "./faults-helpers";
import { postRun, waitForRun } from "./helpers";

const runCount = async () => (await rows<{ n: number }>("SELECT COUNT(*) AS n FROM runs"))[0]!.n;

const call = (path: string, init: RequestInit = {}) => SELF.fetch(`http://worker${path}`, init);

async function expectError(res: Response, status: number, error: string | RegExp): Promise<void> {
  expect(res.status).toBe(status);
  expect(res.headers.get("Content-Type")).toMatch(/^application\/json/);
  const body = (await res.json()) as Record<string, unknown>;
  expect(Object.keys(body)).toEqual(["error"]);
  expect(body.error).toMatch(
    typeof error === "string" ? new RegExp(`^${error.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}$`) : error,
  );
}

describe("the bearer token", () => {
  it.each([
    ["no Authorization header", undefined],
    ["a wrong token", "Bearer wrong-token"],
    ["a token that is a prefix of the right one", "Bearer test-tok"],
    ["the right token with another scheme", "Basic test-token"],
    ["the right token with trailing junk", "Bearer test-token extra"],
  ])("%s gets 401 and learns nothing", async (_, authorization) => {
    const before = await runCount();
    for (const path of ["/runs", "/runs/some-id/resume"]) {
      const res = await call(path, {
        method: "POST",
        headers: authorization ? { Authorization: authorization } : {},
        body: "{}",
      });
      expect(res.headers.get("WWW-Authenticate")).toBe('Bearer realm="idx-etl"');
      await expectError(res, 401, "unauthorized");
    }
    expect(await runCount()).toBe(before);
  });

  it.each([
    ["not configured", undefined],
    ["empty", ""],
  ])("an ETL_TOKEN that is %s refuses every trigger and says how to set it", async (_, token) => {
    const before = await runCount();
    for (const authorization of ["Bearer test-token", "Bearer ", "Bearer undefined"]) {
      const res = await (worker.fetch as ExportedHandlerFetchHandler<Env>)(
        new Request("http://worker/runs", { method: "POST", headers: { Authorization: authorization }, body: "{}" }),
        { ...env, ETL_TOKEN: token } as Env,
        createExecutionContext(),
      );
      await expectError(
        res,
        503,
        "ETL_TOKEN is not configured, so runs cannot be started over HTTP. Set it in .dev.vars locally (ETL_TOKEN=…) or with `wrangler secret put ETL_TOKEN` on Cloudflare.",
      );
    }
    expect(await runCount()).toBe(before);
  });
});

describe("routes, methods and parameters", () => {
  it("an unknown path is 404", async () => {
    await expectError(await call("/nope"), 404, "no route for GET /nope");
    await expectError(await call("/runs/x/y/z", { method: "POST" }), 404, "no route for POST /runs/x/y/z");
  });

  it("an unknown run is 404", async () => {
    await expectError(await call("/runs/no-such-run"), 404, "no run no-such-run");
  });

  it.each([
    ["PUT", "/runs", "POST, GET, HEAD"],
    ["DELETE", "/runs/abc", "GET, HEAD"],
    ["GET", "/runs/abc/resume", "POST"],
  ])("%s %s is 405 and names the allowed methods", async (method, path, allow) => {
    const res = await call(path, { method, headers: { Authorization: "Bearer test-token" } });
    expect(res.headers.get("Allow")).toBe(allow);
    await expectError(res, 405, `method ${method} not allowed; use ${allow}`);
  });

  it.each([
    ["not JSON", "{source:", 'body must be JSON: { "source"?: URL, "force"?: boolean }'],
    ["an array", "[]", "body must be a JSON object"],
    ["null", "null", "body must be a JSON object"],
    ["an unknown field", '{"sauce":"x"}', "unknown field: sauce"],
    ["a source that is not a string", '{"source":42}', "source must be a string URL"],
    ["a source that is not a URL", '{"source":"fashion"}', 'source is not a URL: "fashion"'],
    ["a source that is not http(s)", '{"source":"file:///etc/passwd"}', "source must be an http(s) URL"],
    ["a force that is not a boolean", '{"force":"yes"}', "force must be true or false"],
    ["a trigger that HTTP may not claim", '{"trigger":"cron"}', "trigger must be one of http, cli"],
  ])("a POST /runs body that is %s is 400", async (_, body, error) => {
    const before = await runCount();
    const res = await call("/runs", { method: "POST", headers: { Authorization: "Bearer test-token" }, body });
    await expectError(res, 400, error);
    expect(await runCount()).toBe(before);
  });

  it.each(["0", "101", "abc", "1.5", ""])("GET /runs?limit=%s is 400", async (limit) => {
    await expectError(
      await call(`/runs?limit=${limit}`),
      400,
      `limit must be an integer from 1 to 100, got "${limit}"`,
    );
  });

  it("a good request with the right token is accepted", async () => {
    const res = await postRun({ source: "http://127.0.0.1:9/nothing-here" });
    expect(res.status).toBe(202);
    const { run } = (await res.json()) as { run: { id: string } };
    expect(res.headers.get("Location")).toBe(`/runs/${run.id}`);
    // Nothing listens there: the run fails, saying so.
    expect((await waitForRun(run.id)).error).toMatch(/could not connect/);
  });
});
