/**
 * A dataset's images: one described as JSON or drawn as a PNG of any shape
 * (GET /datasets/{name}/images/{split}/{image}, and /images/{split}/{image}
 * for the default dataset), and a split browsed page by page, of one class
 * or all (GET /datasets/{name}/images).
 */
import { createRoute, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import type { Split } from "../../core/datasets";
import { DEFAULT_DATASET } from "../../core/registry";
import { encodePng, isPngChannels, upscale } from "../../codec/png";
import { toBytes } from "../../codec/transform";
import { hasImage, readClasses } from "../../read/datasets";
import { readImage, readImagePage } from "../../read/images";
import { DatasetParams } from "../schemas/common";
import {
  DatasetImageParams,
  DEFAULT_PAGE_IMAGES,
  ImagePageQuery,
  ImagePageSchema,
  ImageParams,
  ImageQuery,
  ImageSchema,
  MAX_PNG_SIDE,
} from "../schemas/images";
import { bad, errorResponses, jsonResponse, notFound, openApiRoutes, type AppEnv } from "../validation";
import { requireLoaded } from "./datasets";
import { BROKEN_409 } from "../schemas/common";

export const imageRoutes = openApiRoutes();

const imageResponses = {
  200: {
    description: "The image: JSON for an index, PNG for index.png.",
    content: {
      "application/json": { schema: ImageSchema },
      "image/png": { schema: z.string().openapi({ format: "binary" }) },
    },
  },
  ...errorResponses({
    400: "A bad dataset name, split, image or scale.",
    404: "The dataset is unknown or not loaded, or the split has no such image.",
    409: BROKEN_409,
    503: "The dataset was reloaded, in another shape, while the image was read: ask again.",
  }),
};

const IMAGE_DESCRIPTION = `\`…/train/17\`: the image's label, class and shape [rows, cols, channels]. \`…/train/17.png?scale=4\`: the image as an 8-bit PNG, \`scale\` times its size, pixels round(x · 255).`;

imageRoutes.openapi(
  createRoute({
    method: "get",
    path: "/datasets/{name}/images/{split}/{image}",
    tags: ["images"],
    summary: "One image of a dataset",
    description: IMAGE_DESCRIPTION,
    request: { params: DatasetImageParams, query: ImageQuery },
    responses: imageResponses,
  }),
  (c) => {
    const { name, split, image } = c.req.valid("param");
    return serveImage(c, name, split, image, c.req.valid("query").scale ?? 1);
  },
);

imageRoutes.openapi(
  createRoute({
    method: "get",
    path: "/images/{split}/{image}",
    tags: ["images"],
    summary: `One image of ${DEFAULT_DATASET}`,
    description: `GET /datasets/${DEFAULT_DATASET}/images/{split}/{image}. ${IMAGE_DESCRIPTION}`,
    request: { params: ImageParams, query: ImageQuery },
    responses: imageResponses,
  }),
  (c) => {
    const { split, image } = c.req.valid("param");
    return serveImage(c, DEFAULT_DATASET, split, image, c.req.valid("query").scale ?? 1);
  },
);

async function serveImage(
  c: Context<AppEnv>,
  name: string,
  split: Split,
  image: { readonly idx: number; readonly png: boolean },
  scale: number,
) {
  const { idx } = image;
  const dataset = await requireLoaded(c.env.DB, name);
  const missing = () =>
    notFound(`no image ${split}/${idx} in ${name}: its ${split} split holds ${dataset.counts[split]} images`);
  // Beyond the split's rows, no query: the catalog already says there is no such image.
  if (!hasImage(dataset, split, idx)) return missing();
  const stored = (await readImage(c.env.DB, dataset, split, idx)) ?? missing();
  const { rows, cols, channels } = dataset.shape;
  if (!image.png)
    return c.json(
      { dataset: name, split, idx, label: stored.label, class: stored.className, shape: [rows, cols, channels] },
      200,
    );
  // The catalog and the row are two reads: a swap between them can bring rows of another shape.
  if (stored.values.length !== rows * cols * channels)
    return c.json({ error: `dataset ${name} was reloaded while image ${split}/${idx} was read; ask again` }, 503, {
      "Retry-After": "1",
    });
  // The IDX parser admits only 1 to 4 channels, all a PNG can hold.
  if (!isPngChannels(channels)) throw new Error(`${name}: ${channels} channels cannot be drawn as a PNG`);
  if (scale > 1 && Math.max(rows, cols) * scale > MAX_PNG_SIDE)
    bad(
      `scale must be at most ${Math.max(1, Math.floor(MAX_PNG_SIDE / Math.max(rows, cols)))} for ${name}'s ${rows}×${cols} images (a PNG is at most ${MAX_PNG_SIDE} pixels a side), got ${scale}`,
    );
  const png = encodePng(upscale({ width: cols, height: rows, channels, pixels: toBytes(stored.values) }, scale));
  return c.body(png, 200, { "Content-Type": "image/png", "Cache-Control": "public, max-age=60" });
}

imageRoutes.openapi(
  createRoute({
    method: "get",
    path: "/datasets/{name}/images",
    tags: ["images"],
    summary: "A page of a dataset's images",
    description:
      "Up to `limit` images of a split in idx order (index and label), of one class or all; pass `next` as `after` for the next page.",
    request: { params: DatasetParams, query: ImagePageQuery },
    responses: {
      200: jsonResponse("The page.", ImagePageSchema),
      ...errorResponses({
        400: "A bad dataset name, split, label, after or limit.",
        404: "The dataset is unknown or not loaded.",
        409: BROKEN_409,
      }),
    },
  }),
  async (c) => {
    const { name } = c.req.valid("param");
    const { split, label, after, limit = DEFAULT_PAGE_IMAGES } = c.req.valid("query");
    const dataset = await requireLoaded(c.env.DB, name);
    if (label !== undefined) {
      // A class the dataset does not have is a mistake to name, not an empty class.
      const classes = await readClasses(c.env.DB, name);
      if (classes.length > 0 && !classes.some((k) => k.label === label))
        bad(`label ${label} is not a class of ${name}: its labels are 0 to ${classes.length - 1}`);
    }
    const page = await readImagePage(c.env.DB, dataset, split, {
      ...(label === undefined ? {} : { label }),
      after: after ?? -1,
      limit,
    });
    return c.json({ dataset: name, ...page }, 200);
  },
);
