/**
 * Cross-origin reads: every GET and HEAD may be read by the origins
 * CORS_ORIGINS allows (any, `*`, unless it lists some), so a notebook in the
 * browser can download an export, ranged or conditional, after a preflight.
 * Writes get no CORS headers: a preflight allows GET and HEAD only, so a page
 * of another origin cannot start or stop a run, and no answer ever allows
 * credentials (cookies, HTTP auth) cross-origin.
 */
import { cors } from "hono/cors";
import { createMiddleware } from "hono/factory";
import type { MiddlewareHandler } from "hono";
import type { AppEnv } from "./validation";

/** What CORS_ORIGINS allows: every origin, or these exact ones (echoed back, with `Vary: Origin`). */
export type AllowedOrigins = "*" | readonly string[];

/** Request headers a cross-origin read may send: those of a ranged or conditional download. */
export const CORS_REQUEST_HEADERS = ["Range", "If-Range", "If-None-Match", "If-Match"] as const;

/** Response headers a cross-origin script may read: sizes, ranges, versions and where the bytes came from. */
export const CORS_EXPOSED_HEADERS = [
  "Content-Length",
  "Content-Range",
  "Accept-Ranges",
  "ETag",
  "Last-Modified",
  "Content-Location",
  "Content-Disposition",
  "Link",
  "X-Export-Source",
] as const;

/** How long a browser may keep a preflight's answer, in seconds (browsers cap it lower). */
const PREFLIGHT_MAX_AGE_S = 86_400;

/**
 * CORS_ORIGINS: `*` (also when unset or empty), or origins separated by commas,
 * each exactly as a browser sends it (`https://host[:port]`, no path or
 * trailing slash). Anything else is a configuration error, thrown.
 */
export function parseCorsOrigins(raw: string | undefined): AllowedOrigins {
  const value = (raw ?? "").trim();
  if (value === "" || value === "*") return "*";
  const origins = value.split(",").map((s) => s.trim());
  for (const origin of origins) {
    let parsed: URL | undefined;
    try {
      parsed = new URL(origin);
    } catch {}
    if (parsed === undefined || !/^https?:$/.test(parsed.protocol) || parsed.origin !== origin)
      throw new Error(
        `CORS_ORIGINS must be "*" or origins separated by commas, like "https://example.com,http://localhost:8888", got ${JSON.stringify(origin)}`,
      );
  }
  return [...new Set(origins)];
}

const READ_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);
const byConfig = new Map<string, MiddlewareHandler>();

function corsFor(raw: string | undefined): MiddlewareHandler {
  const key = raw ?? "";
  let handler = byConfig.get(key);
  if (handler === undefined) {
    const origins = parseCorsOrigins(raw);
    handler = cors({
      // A string "*" answers `*` without Vary; a list echoes the request's Origin if listed, with Vary: Origin.
      origin: origins === "*" ? "*" : [...origins],
      allowMethods: ["GET", "HEAD"],
      allowHeaders: [...CORS_REQUEST_HEADERS],
      exposeHeaders: [...CORS_EXPOSED_HEADERS],
      maxAge: PREFLIGHT_MAX_AGE_S,
      credentials: false,
    });
    byConfig.set(key, handler);
  }
  return handler;
}

/**
 * Middleware: CORS headers on GET and HEAD answers, whatever their status, and
 * 204 to every OPTIONS (the preflight). Other methods pass through untouched.
 */
export const crossOriginReads = createMiddleware<AppEnv>(async (c, next) => {
  if (!READ_METHODS.has(c.req.method)) return next();
  // No env at all when the app is called bare (app.request in tests, tools): the default, `*`.
  return corsFor(c.env?.CORS_ORIGINS)(c, next);
});
