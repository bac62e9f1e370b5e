import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { app } from "../src/http/app";

/**
 * The app's answer to one request with these bindings, its body read before the invocation's waitUntil work is
 * awaited: a download streams from work the invocation waits for, which would otherwise wait for this reader.
 */
export async function appFetch(
  path: string,
  bindings: Env,
  init: RequestInit = {},
): Promise<{ res: Response; body: Uint8Array }> {
  const ctx = createExecutionContext();
  const res = await app.fetch(new Request(`http://worker${path}`, init), bindings, ctx);
  const body = new Uint8Array(await res.arrayBuffer());
  await waitOnExecutionContext(ctx);
  return { res, body };
}
