/**
 * How requests are validated and how a failure answers: every invalid request
 * is `400 { "error": "<one sentence naming the field>" }`, the same shape as
 * every other error of the API.
 *
 *  - Path and query parameters: by the route's zod schemas (src/http/schemas/),
 *    through @hono/zod-openapi's validators and `validationHook`.
 *  - JSON bodies: by `jsonBody`, with the same schemas and messages. It reads
 *    the body itself, bounded (413 past a size), and takes it as JSON whatever
 *    its Content-Type, as the API always has (`curl -d` sends form-urlencoded).
 */
import { OpenAPIHono, z, type Hook } from "@hono/zod-openapi";
import { concatBytes } from "../codec/bytes";
import { createMiddleware } from "hono/factory";
import { HTTPException } from "hono/http-exception";
import { ErrorSchema } from "./schemas/common";

export type AppEnv = { Bindings: Env };

/**
 * One sentence for a failed validation: the first issue, root issues (an
 * unknown field, a body that is not an object) before field issues. A message
 * that does not begin with its field's name is prefixed with it ("field: …").
 */
export function formatIssues(error: z.ZodError): string {
  const issue = [...error.issues].sort((a, b) => a.path.length - b.path.length)[0];
  if (issue === undefined) return "invalid request";
  const field = issue.path.map(String).join(".");
  if (field === "" || issue.message.startsWith(`${field} `)) return issue.message;
  return `${field}: ${issue.message}`;
}

/** The hook every route's validators report to. */
export const validationHook: Hook<unknown, AppEnv, string, unknown> = (result, c) => {
  if (!result.success) return c.json({ error: formatIssues(result.error) }, 400);
};

/** A group of routes, validating with `validationHook`. */
export const openApiRoutes = () => new OpenAPIHono<AppEnv>({ defaultHook: validationHook });

export const bad = (message: string): never => {
  throw new HTTPException(400, { message });
};

export const conflict = (message: string): never => {
  throw new HTTPException(409, { message });
};

export const notFound = (message: string): never => {
  throw new HTTPException(404, { message });
};

/** A JSON response of a route for its OpenAPI description. */
export const jsonResponse = <T>(description: string, schema: T) => ({
  description,
  content: { "application/json": { schema } },
});

/** Error responses of a route for its OpenAPI description: status → when. */
export function errorResponses<S extends number>(statuses: Record<S, string>) {
  return Object.fromEntries(
    Object.entries(statuses).map(([status, description]) => [status, jsonResponse(description as string, ErrorSchema)]),
  ) as Record<S, ReturnType<typeof jsonResponse<typeof ErrorSchema>>>;
}

/** The body as text, refused with 413 past `maxBytes` (by Content-Length, else while reading). */
export async function readBoundedText(req: Request, maxBytes: number): Promise<string> {
  const tooLarge = (size?: number): never => {
    throw new HTTPException(413, {
      message: `body must be at most ${maxBytes} bytes${size === undefined ? "" : `, got ${size}`}`,
    });
  };
  const declared = req.headers.get("Content-Length");
  if (declared !== null && Number(declared) > maxBytes) tooLarge(Number(declared));
  if (req.body === null) return "";
  const reader = req.body.getReader();
  const parts: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > maxBytes) {
      await reader.cancel().catch(() => {});
      tooLarge();
    }
    parts.push(value);
  }
  return new TextDecoder().decode(concatBytes(...parts));
}

/**
 * Middleware: the request body as JSON (an empty body is `{}`), at most
 * `maxBytes`, validated by `schema`; the result is `c.var.body`. Not JSON:
 * 400 with `malformed`.
 */
export function jsonBody<S extends z.ZodType>(schema: S, opts: { maxBytes: number; malformed: string }) {
  return createMiddleware<AppEnv & { Variables: { body: z.output<S> } }>(async (c, next) => {
    const text = await readBoundedText(c.req.raw, opts.maxBytes);
    let value: unknown = {};
    if (text.trim() !== "") {
      try {
        value = JSON.parse(text);
      } catch {
        bad(opts.malformed);
      }
    }
    const result = await schema.safeParseAsync(value);
    if (!result.success) bad(formatIssues(result.error));
    c.set("body", result.data as z.output<S>);
    await next();
  });
}
