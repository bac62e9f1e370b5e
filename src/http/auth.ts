/**
 * Bearer-token guard for the routes that start work. Fails closed: with no
 * ETL_TOKEN configured nothing can be triggered over HTTP, and the answer says
 * how to configure it. Wrong or missing tokens learn nothing but 401.
 */
import type { MiddlewareHandler } from "hono";
import { timingSafeEqual } from "hono/utils/buffer";
import { errorResponses } from "./validation";

/** The OpenAPI security of a route behind requireToken (the scheme is registered in app.ts). */
export const TOKEN_SECURITY = [{ bearer: [] }];

/** The 401 and 503 of requireToken, for a route's OpenAPI description. */
export const authErrors = errorResponses({
  401: "Missing or wrong bearer token.",
  503: "ETL_TOKEN is not configured: nothing can be started over HTTP.",
});

export const requireToken: MiddlewareHandler<{ Bindings: Env }> = async (c, next) => {
  const expected = c.env.ETL_TOKEN;
  if (!expected) {
    return c.json(
      {
        error:
          "ETL_TOKEN is not configured, so runs cannot be started over HTTP. Set it in .dev.vars locally (ETL_TOKEN=…) or with `wrangler secret put ETL_TOKEN` on Cloudflare.",
      },
      503,
    );
  }
  const header = c.req.header("Authorization") ?? "";
  const match = /^Bearer ([^\s]+)$/i.exec(header);
  // timingSafeEqual hashes both sides first, so neither length nor content leaks through timing.
  if (!match || !(await timingSafeEqual(match[1]!, expected))) {
    return c.json({ error: "unauthorized" }, 401, { "WWW-Authenticate": 'Bearer realm="idx-etl"' });
  }
  await next();
};
