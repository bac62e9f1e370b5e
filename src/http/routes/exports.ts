/** GET /export/{file}: a split's images or labels as a NumPy .npy file, streamed page by page. */
import { createRoute, z } from "@hono/zod-openapi";
import { npyExport } from "../../read/export";
import { readExtent } from "../../read/images";
import { ExportParams, ExportQuery } from "../schemas";
import { bad, errorResponses, notFound, openApiRoutes } from "../validation";

export const exportRoutes = openApiRoutes();

exportRoutes.openapi(
  createRoute({
    method: "get",
    path: "/export/{file}",
    tags: ["images"],
    summary: "Export a split as .npy",
    description:
      "idx `offset` … `offset + n - 1` of a split (default: all of it): images as float32, shape (n, 28, 28, 1), or labels as uint8, shape (n,). Streamed with a Content-Length; a swap to another dataset mid-download cuts it off rather than mix the two.",
    request: { params: ExportParams, query: ExportQuery },
    responses: {
      200: {
        description: "The .npy file.",
        headers: { "Content-Disposition": { description: "attachment; filename=…", schema: { type: "string" } } },
        content: { "application/octet-stream": { schema: z.string().openapi({ format: "binary" }) } },
      },
      ...errorResponses({
        400: "An unknown file, or a bad offset or limit.",
        404: "The split holds no images: run the ETL first.",
      }),
    },
  }),
  async (c) => {
    const { split, kind } = c.req.valid("param").file;
    const { offset = 0, limit } = c.req.valid("query");
    const extent = await readExtent(c.env.DB, split);
    if (extent.count === 0) return notFound(`split ${split} holds no images; run the ETL first`);
    if (offset > extent.count) bad(`offset must be at most ${extent.count} (the size of ${split}), got ${offset}`);
    const count = Math.min(limit ?? extent.count, extent.count - offset);
    const file = npyExport(c.env.DB, { split, kind, offset, count, version: extent.version });
    // A fixed length lets clients show progress and detect a cut-off download.
    const { readable, writable } = new FixedLengthStream(file.byteLength);
    c.executionCtx.waitUntil(
      file.body.pipeTo(writable).catch((err: unknown) => console.error(`export ${c.req.url}: ${err}`)),
    );
    return c.body(readable, 200, {
      "Content-Type": "application/octet-stream",
      "Content-Length": String(file.byteLength),
      "Content-Disposition": `attachment; filename="${split}${kind === "labels" ? "-labels" : ""}${offset || limit ? `-${offset}-${offset + count}` : ""}.npy"`,
    });
  },
);
