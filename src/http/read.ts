/**
 * Read routes over the loaded dataset: single images as JSON or PNG, counts
 * per class, .npy exports streamed page by page, and the dashboard page.
 * Mounted at "/" by src/http/app.ts; errors surface there as `{ "error": … }`.
 */
import { Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import { FASHION_MNIST, isSplit, type Split } from "../datasets";
import { encodeGrayPng, MAX_SCALE, MIN_SCALE, upscale } from "../formats/png";
import { toBytes } from "../pipeline/transform";
import { npyExport, type ExportKind } from "../read/export";
import { readExtent, readImage, readStats } from "../read/images";
import { DASHBOARD_HTML } from "./dashboard";

export const readRoutes = new Hono<{ Bindings: Env }>();

const bad = (message: string): never => {
  throw new HTTPException(400, { message });
};

const notFound = (message: string): never => {
  throw new HTTPException(404, { message });
};

function splitParam(raw: string): Split {
  return isSplit(raw) ? raw : bad(`split must be train or test, got ${JSON.stringify(raw)}`);
}

/** A query parameter that must be a whole number in [min, max], or absent. */
function intParam(name: string, raw: string | undefined, min: number, max?: number): number | undefined {
  if (raw === undefined) return undefined;
  const n = /^\d+$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(n) || n < min || (max !== undefined && n > max))
    bad(
      `${name} must be an integer ${max === undefined ? `of at least ${min}` : `from ${min} to ${max}`}, got ${JSON.stringify(raw)}`,
    );
  return n;
}

/** "123" or "123.png" */
function imageName(raw: string): { idx: number; png: boolean } {
  const m = /^(\d{1,9})(\.png)?$/.exec(raw);
  if (!m) return bad(`image must be an index or index.png, got ${JSON.stringify(raw)}`);
  return { idx: Number(m[1]), png: m[2] !== undefined };
}

readRoutes.get("/images/:split/:name", async (c) => {
  const split = splitParam(c.req.param("split"));
  const { idx, png } = imageName(c.req.param("name"));
  const scale = png ? (intParam("scale", c.req.query("scale"), MIN_SCALE, MAX_SCALE) ?? 1) : 1;
  const image = await readImage(c.env.DB, split, idx);
  if (!image) return notFound(`no image ${split}/${idx}`);
  const d = FASHION_MNIST;
  if (!png)
    return c.json({ split, idx, label: image.label, class: image.className, shape: [d.rows, d.cols, d.channels] });
  const pngBytes = encodeGrayPng(upscale({ width: d.cols, height: d.rows, pixels: toBytes(image.values) }, scale));
  return c.body(pngBytes, 200, { "Content-Type": "image/png", "Cache-Control": "public, max-age=60" });
});

readRoutes.get("/stats", async (c) => c.json(await readStats(c.env.DB, 8)));

/** "train.npy" or "train-labels.npy" */
function exportName(raw: string): { split: Split; kind: ExportKind } {
  const m = /^([a-z0-9]+)(-labels)?\.npy$/.exec(raw);
  if (!m) return notFound(`no export ${JSON.stringify(raw)}; use <split>.npy or <split>-labels.npy`);
  return { split: splitParam(m[1]!), kind: m[2] ? "labels" : "images" };
}

readRoutes.get("/export/:name", async (c) => {
  const { split, kind } = exportName(c.req.param("name"));
  const offset = intParam("offset", c.req.query("offset"), 0) ?? 0;
  const limit = intParam("limit", c.req.query("limit"), 1);
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
});

readRoutes.get("/", (c) => c.html(DASHBOARD_HTML));
