/**
 * Requests: POST /runs and POST /runs/:id/resume need `Authorization: Bearer
 * <ETL_TOKEN>`; with no token configured they fail closed and say how to set
 * one; every error is JSON `{ "error": … }` with a fitting status.
 */
import { createExecutionContext, SELF } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { app } from "../src/http/app";
import worker from "../src/index";
import { rows } from "./faults-helpers";
import { archiveServer, postRun, publish, syntheticArchives, TOKEN, waitForRun, type RunView } from "./helpers";

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

  it("a read with a trailing slash is redirected to its route; one without a route stays 404", async () => {
    for (const path of ["/datasets/", "/openapi.json/", "/datasets/fashion-mnist/?x=1"]) {
      const res = await call(path, { redirect: "manual" });
      expect(res.status, path).toBe(301);
      expect(res.headers.get("Location"), path).toBe(`http://worker${path.replace(/\/(\?|$)/, "$1")}`);
    }
    // Followed, a redirect to no route is the 404 it would be anyway; writes are never redirected.
    await expectError(await call("/nope/"), 404, "no route for GET /nope");
    await expectError(await call("/runs/", { method: "POST" }), 404, "no route for POST /runs/");
  });

  it("an unknown run is 404", async () => {
    await expectError(await call("/runs/no-such-run"), 404, "no run no-such-run");
    for (const action of ["resume", "abandon"]) {
      const res = await call(`/runs/no-such-run/${action}`, {
        method: "POST",
        headers: { Authorization: "Bearer test-token" },
      });
      await expectError(res, 404, "no run no-such-run");
    }
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
    [
      "not JSON",
      "{source:",
      'body must be JSON: { "dataset"?: name, "source"?: URL, "force"?: boolean, "files"?: {…}, "classes"?: […] }',
    ],
    ["an array", "[]", "body must be a JSON object"],
    ["null", "null", "body must be a JSON object"],
    ["an unknown field", '{"sauce":"x"}', "unknown field: sauce"],
    ["a source that is not a string", '{"source":42}', "source must be a string URL"],
    ["a source that is not a URL", '{"source":"fashion"}', 'source is not a URL: "fashion"'],
    ["a source that is not http(s)", '{"source":"file:///etc/passwd"}', "source must be an http(s) URL, got file:"],
    ["a source with a fragment", '{"source":"http://h/p#x"}', "source must not have a #fragment"],
    ["a force that is not a boolean", '{"force":"yes"}', "force must be true or false"],
    ["a trigger that HTTP may not claim", '{"trigger":"cron"}', "trigger must be one of http, cli"],
  ])("a POST /runs body that is %s is 400", async (_, body, error) => {
    const before = await runCount();
    const res = await call("/runs", { method: "POST", headers: { Authorization: "Bearer test-token" }, body });
    await expectError(res, 400, error);
    expect(await runCount()).toBe(before);
  });

  // Strict decimal digits: no hex, exponent, fraction, sign or empty string (Number() took "0x10" and "1e1").
  it.each(["0", "101", "abc", "1.5", "", "0x10", "1e1", "20.0", "-1", "9007199254740993"])(
    "GET /runs?limit=%s is 400",
    async (limit) => {
      await expectError(
        await call(`/runs?limit=${limit}`),
        400,
        `limit must be an integer from 1 to 100, got "${limit}"`,
      );
    },
  );

  it("a POST /runs body is JSON whatever its Content-Type, as before (curl -d sends form-urlencoded)", async () => {
    for (const type of ["application/x-www-form-urlencoded", "text/plain"]) {
      const res = await call("/runs", {
        method: "POST",
        headers: { Authorization: "Bearer test-token", "Content-Type": type },
        body: '{"force":"yes"}',
      });
      await expectError(res, 400, "force must be true or false");
    }
  });

  it("validation happens after the token check: a bad body without a token is 401", async () => {
    await expectError(await call("/runs", { method: "POST", body: "{source:" }), 401, "unauthorized");
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

describe("the OpenAPI description", () => {
  const operations = (doc: { paths: Record<string, Record<string, unknown>> }) =>
    Object.entries(doc.paths).flatMap(([path, item]) => Object.keys(item).map((m) => `${m.toUpperCase()} ${path}`));

  it("GET /openapi.json is an OpenAPI 3 document describing every route the app serves", async () => {
    const res = await call("/openapi.json");
    expect(res.status).toBe(200);
    expect(res.headers.get("Content-Type")).toMatch(/^application\/json/);
    const doc = (await res.json()) as {
      openapi: string;
      info: { title: string; version: string };
      paths: Record<string, Record<string, { security?: unknown }>>;
      components: { securitySchemes: Record<string, { type: string; scheme: string }> };
    };
    expect(doc.openapi).toMatch(/^3\.0\.\d+$/);
    expect(doc.info).toMatchObject({ title: "idx-etl", version: expect.stringMatching(/^\d+\.\d+\.\d+/) });
    // The app's own routing table, not a list kept here: a route added without a schema fails this.
    const served = new Set(
      app.routes.filter((r) => r.method !== "ALL").map((r) => `${r.method} ${r.path.replace(/:(\w+)/g, "{$1}")}`),
    );
    expect(served.size).toBeGreaterThanOrEqual(10);
    expect(operations(doc).sort()).toEqual([...served].sort());
    // The routes that start or delete work declare the bearer token; the others do not.
    expect(doc.components.securitySchemes.bearer).toMatchObject({ type: "http", scheme: "bearer" });
    const secured = Object.entries(doc.paths).flatMap(([path, item]) =>
      Object.entries(item)
        .filter(([, op]) => op.security !== undefined)
        .map(([m]) => `${m.toUpperCase()} ${path}`),
    );
    expect(secured.sort()).toEqual([
      "DELETE /datasets/{name}",
      "POST /datasets/{name}/runs",
      "POST /runs",
      "POST /runs/{id}/abandon",
      "POST /runs/{id}/resume",
    ]);
  });

  it("GET /docs is an HTML page listing every operation of the document", async () => {
    const doc = (await (await call("/openapi.json")).json()) as { paths: Record<string, Record<string, unknown>> };
    const res = await call("/docs");
    expect(res.status).toBe(200);
    expect(res.headers.get("Content-Type")).toMatch(/^text\/html/);
    const html = await res.text();
    expect(html).toContain('href="/openapi.json"');
    for (const op of operations(doc)) {
      const [method, path] = op.split(" ") as [string, string];
      expect(html, op).toContain(`<span class="m">${method}</span> <code>${path}</code>`);
    }
    expect(html).toContain('id="schema-Run"');
    expect(html).not.toMatch(/<script/);
  });
});

describe("sources", () => {
  const post = async (body: string | ReadableStream<Uint8Array>, e: Env = env) =>
    (worker.fetch as ExportedHandlerFetchHandler<Env>)(
      new Request("http://worker/runs", { method: "POST", headers: { Authorization: `Bearer ${TOKEN}` }, body }),
      e,
      createExecutionContext(),
    );

  it("the default source spelled with a trailing slash or another case is stored as the default source", async () => {
    // A default source that answers 404, so that the runs fail at once instead of loading Fashion-MNIST.
    const defaultSource = `${archiveServer()}/f/default-${Date.now()}`;
    const e = { ...env, DEFAULT_SOURCE: defaultSource } as Env;
    for (const body of [
      "{}",
      JSON.stringify({ source: `${defaultSource}/` }),
      JSON.stringify({ source: `${defaultSource.replace("http://", "HTTP://")}//` }),
    ]) {
      const res = await post(body, e);
      expect(res.status).toBe(202);
      const { run } = (await res.json()) as { run: RunView };
      // job.ts decides `official` by comparing the stored source with DEFAULT_SOURCE.
      expect(run.source).toBe(defaultSource);
      expect((await waitForRun(run.id)).error).toMatch(/HTTP 404/);
    }
  });

  it("a source with a query string keeps it after the file name, and loads", async () => {
    const base = await publish(syntheticArchives(3, 2));
    const res = await postRun({ source: `${base}/?t=1` });
    expect(res.status).toBe(202);
    const { run } = (await res.json()) as { run: RunView };
    expect(run.source).toBe(`${base}?t=***`);
    const [stored] = await rows<{ source: string }>("SELECT source FROM runs WHERE id = ?", run.id);
    expect(stored!.source).toBe(`${base}?t=1`);
    const done = await waitForRun(run.id);
    expect(done.error).toBeNull();
    expect(done.status).toBe("complete");
    expect(done.splits).toEqual({ train: { expected: 3, loaded: 3 }, test: { expected: 2, loaded: 2 } });
  });

  it("a 5 MB source is refused (413) before it is parsed, and nothing is stored", async () => {
    const before = await runCount();
    const source = `http://h/${"a".repeat(5 * 1024 * 1024)}`;
    const size = JSON.stringify({ source }).length;
    await expectError(await postRun({ source }), 413, `body must be at most 16384 bytes, got ${size}`);
    expect(await runCount()).toBe(before);
  });

  it("a body streamed without a Content-Length is cut off at 16 KB", async () => {
    const before = await runCount();
    const chunk = new TextEncoder().encode("a".repeat(1024));
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(new TextEncoder().encode('{"source":"http://h/'));
      },
      pull(c) {
        if (sent++ < 5 * 1024) c.enqueue(chunk);
        else c.close();
      },
    });
    await expectError(await post(body), 413, "body must be at most 16384 bytes");
    expect(sent).toBeLessThan(100); // not read to the end
    expect(await runCount()).toBe(before);
  });

  it("a source over 2048 characters is 400 and says so; nothing is stored", async () => {
    const before = await runCount();
    const source = `http://h/${"a".repeat(3000)}`;
    const res = await postRun({ source });
    await expectError(res, 400, "source must be at most 2048 characters, got 3009");
    expect(await runCount()).toBe(before);
  });

  it("credentials in a source never show in GET /runs or GET /runs/:id", async () => {
    const base = archiveServer().replace("http://", "http://user:secret@");
    const res = await postRun({ source: `${base}/f/creds-${Date.now()}?token=s3cret&x=1` });
    expect(res.status).toBe(202);
    const { run } = (await res.json()) as { run: RunView };
    const failed = await waitForRun(run.id);
    // The run used them: D1 holds the source as given, and the fetch failed on the archive, not the URL.
    const [stored] = await rows<{ source: string }>("SELECT source FROM runs WHERE id = ?", run.id);
    expect(stored!.source).toContain("user:secret@");
    expect(stored!.source).toContain("token=s3cret");
    expect(failed.status).toBe("failed");
    for (const path of ["/runs", `/runs/${run.id}`]) {
      const text = await (await call(path)).text();
      expect(text).toContain(run.id);
      expect(text).not.toMatch(/user|secret|s3cret/);
    }
    expect(failed.source).toMatch(/^http:\/\/\*\*\*@127\.0\.0\.1:\d+\/f\/creds-\d+\?token=\*\*\*&x=\*\*\*$/);
    // The error still says what failed, where.
    expect(failed.error).toMatch(
      /from http:\/\/\*\*\*@127\.0\.0\.1:\d+\/f\/creds-\d+\/[a-z0-9-]+\.gz\?token=\*\*\*&x=\*\*\*$/,
    );
  });
});
