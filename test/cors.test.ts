/**
 * CORS: a page of another origin reads every GET and HEAD, ranged and
 * conditional downloads included, after a preflight; writes never get CORS
 * headers and nothing allows credentials. CORS_ORIGINS is `*` in
 * wrangler.toml; a list of origins is tried through the app with its own env.
 */
import { env, SELF } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import { CORS_EXPOSED_HEADERS, parseCorsOrigins } from "../src/http/cors";
import { appFetch } from "./app-fetch";
import { postRun, publish, runToEnd, syntheticArchives } from "./helpers";

const NOTEBOOK = "https://notebook.example";

const call = (path: string, init: RequestInit = {}) => SELF.fetch(`http://worker${path}`, init);

/** The app answering with CORS_ORIGINS set to `origins`. */
async function withOrigins(origins: string, path: string, init: RequestInit = {}): Promise<Response> {
  return (await appFetch(path, { ...env, CORS_ORIGINS: origins }, init)).res;
}

const preflight = (requestHeaders = "range, if-none-match", method = "GET") => ({
  method: "OPTIONS",
  headers: {
    Origin: NOTEBOOK,
    "Access-Control-Request-Method": method,
    "Access-Control-Request-Headers": requestHeaders,
  },
});

/** The comma-separated list of a header, lower-cased. */
const listOf = (res: Response, header: string) =>
  (res.headers.get(header) ?? "")
    .split(",")
    .map((s) => s.trim().toLowerCase())
    .filter((s) => s !== "");

beforeAll(async () => {
  const run = await runToEnd({ source: await publish(syntheticArchives(60, 20)) });
  expect(run.status).toBe("complete");
});

describe("reads from another origin (CORS_ORIGINS = *)", () => {
  it("a preflight is 204 and allows GET, HEAD and the range and conditional headers, without credentials", async () => {
    for (const path of ["/datasets/fashion-mnist/export/train.npy", "/export/train.npy", "/datasets", "/"]) {
      const res = await call(path, preflight());
      expect(res.status, path).toBe(204);
      expect(res.headers.get("Access-Control-Allow-Origin")).toBe("*");
      expect(listOf(res, "Access-Control-Allow-Methods")).toEqual(["get", "head"]);
      expect(listOf(res, "Access-Control-Allow-Headers")).toEqual(
        expect.arrayContaining(["range", "if-none-match", "if-match", "if-range"]),
      );
      expect(Number(res.headers.get("Access-Control-Max-Age"))).toBeGreaterThan(0);
      expect(res.headers.get("Access-Control-Allow-Credentials")).toBeNull();
      expect(await res.text()).toBe("");
    }
  });

  it("a ranged GET is 206 and exposes its length, range, ETag and source", async () => {
    const res = await call("/datasets/fashion-mnist/export/train.npy", {
      headers: { Origin: NOTEBOOK, Range: "bytes=0-127" },
    });
    expect(res.status).toBe(206);
    expect((await res.arrayBuffer()).byteLength).toBe(128);
    expect(res.headers.get("Access-Control-Allow-Origin")).toBe("*");
    expect(res.headers.get("Vary")).toBeNull();
    const exposed = listOf(res, "Access-Control-Expose-Headers");
    for (const h of ["Content-Range", "Content-Length", "Accept-Ranges", "ETag", "X-Export-Source"])
      expect(exposed).toContain(h.toLowerCase());
    expect(exposed).toEqual(CORS_EXPOSED_HEADERS.map((h) => h.toLowerCase()));
    expect(res.headers.get("Content-Range")).toMatch(/^bytes 0-127\/\d+$/);
    expect(res.headers.get("Access-Control-Allow-Credentials")).toBeNull();
  });

  it("HEAD, a 304 and the errors carry the same headers", async () => {
    const head = await call("/export/test.npy", { method: "HEAD", headers: { Origin: NOTEBOOK } });
    expect(head.status).toBe(200);
    expect(head.headers.get("Access-Control-Allow-Origin")).toBe("*");
    const etag = head.headers.get("ETag")!;
    const notModified = await call("/export/test.npy", { headers: { Origin: NOTEBOOK, "If-None-Match": etag } });
    expect(notModified.status).toBe(304);
    expect(notModified.headers.get("Access-Control-Allow-Origin")).toBe("*");
    for (const [path, status] of [
      ["/datasets/no-such-set", 404],
      ["/export/train.npy?dtpye=uint8", 400],
      ["/nope", 404],
    ] as const) {
      const res = await call(path, { headers: { Origin: NOTEBOOK } });
      expect(res.status, path).toBe(status);
      expect(res.headers.get("Access-Control-Allow-Origin"), path).toBe("*");
      await res.arrayBuffer();
    }
  });

  it("a write gets no CORS headers, and a preflight for one does not allow its method", async () => {
    const res = await postRun({ dataset: "no such dataset" });
    expect(res.status).toBe(400);
    await res.arrayBuffer();
    const cross = await call("/runs", { method: "POST", headers: { Origin: NOTEBOOK }, body: "{}" });
    expect(cross.status).toBe(401);
    expect(cross.headers.get("Access-Control-Allow-Origin")).toBeNull();
    expect(cross.headers.get("Access-Control-Allow-Credentials")).toBeNull();
    await cross.arrayBuffer();
    const pre = await call("/runs", preflight("authorization, content-type", "POST"));
    expect(pre.status).toBe(204);
    expect(listOf(pre, "Access-Control-Allow-Methods")).not.toContain("post");
    expect(listOf(pre, "Access-Control-Allow-Headers")).not.toContain("authorization");
    expect(pre.headers.get("Access-Control-Allow-Credentials")).toBeNull();
  });
});

describe("CORS_ORIGINS listing origins", () => {
  const ORIGINS = `${NOTEBOOK}, http://localhost:8888`;

  it("echoes a listed Origin with Vary: Origin, and allows no other", async () => {
    for (const origin of [NOTEBOOK, "http://localhost:8888"]) {
      const res = await withOrigins(ORIGINS, "/datasets", { headers: { Origin: origin } });
      expect(res.status).toBe(200);
      expect(res.headers.get("Access-Control-Allow-Origin")).toBe(origin);
      expect(listOf(res, "Vary")).toContain("origin");
    }
    for (const origin of ["https://elsewhere.example", "https://notebook.example.evil", "null"]) {
      const res = await withOrigins(ORIGINS, "/datasets", { headers: { Origin: origin } });
      expect(res.status).toBe(200);
      expect(res.headers.get("Access-Control-Allow-Origin")).toBeNull();
      expect(listOf(res, "Vary")).toContain("origin");
    }
    const pre = await withOrigins(ORIGINS, "/export/train.npy", preflight());
    expect(pre.status).toBe(204);
    expect(pre.headers.get("Access-Control-Allow-Origin")).toBe(NOTEBOOK);
    expect(listOf(pre, "Vary")).toContain("origin");
    const other = await withOrigins(ORIGINS, "/export/train.npy", {
      ...preflight(),
      headers: { ...preflight().headers, Origin: "https://elsewhere.example" },
    });
    expect(other.headers.get("Access-Control-Allow-Origin")).toBeNull();
  });

  it("a malformed CORS_ORIGINS is a configuration error that names the entry", async () => {
    expect(parseCorsOrigins(undefined)).toBe("*");
    expect(parseCorsOrigins(" * ")).toBe("*");
    expect(parseCorsOrigins("")).toBe("*");
    expect(parseCorsOrigins("https://a.example,https://a.example, http://b.example:8080")).toEqual([
      "https://a.example",
      "http://b.example:8080",
    ]);
    for (const bad of ["https://a.example/", "a.example", "https://a.example/path", "*,https://a.example", "ftp://a"])
      expect(() => parseCorsOrigins(bad), bad).toThrow(/^CORS_ORIGINS must be "\*" or origins separated by commas/);
    const res = await withOrigins("https://a.example/", "/datasets", { headers: { Origin: NOTEBOOK } });
    expect(res.status).toBe(500);
  });
});
