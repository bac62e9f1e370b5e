/** GET /images/{split}/{image}: one image, described as JSON or drawn as a PNG. */
import { createRoute, z } from "@hono/zod-openapi";
import { FASHION_MNIST } from "../../core/datasets";
import { encodeGrayPng, upscale } from "../../codec/png";
import { toBytes } from "../../codec/transform";
import { readImage } from "../../read/images";
import { ImageParams, ImageQuery, ImageSchema } from "../schemas";
import { errorResponses, notFound, openApiRoutes } from "../validation";

export const imageRoutes = openApiRoutes();

imageRoutes.openapi(
  createRoute({
    method: "get",
    path: "/images/{split}/{image}",
    tags: ["images"],
    summary: "One image",
    description:
      "`/images/train/17`: the image's label, class and shape. `/images/train/17.png?scale=4`: the image as an 8-bit grayscale PNG, 28×28 times `scale`; pixels are round(x · 255).",
    request: { params: ImageParams, query: ImageQuery },
    responses: {
      200: {
        description: "The image: JSON for an index, PNG for index.png.",
        content: {
          "application/json": { schema: ImageSchema },
          "image/png": { schema: z.string().openapi({ format: "binary" }) },
        },
      },
      ...errorResponses({ 400: "A bad split, image or scale.", 404: "The image is not loaded." }),
    },
  }),
  async (c) => {
    const { split, image } = c.req.valid("param");
    const { scale = 1 } = c.req.valid("query");
    const stored = await readImage(c.env.DB, split, image.idx);
    if (!stored) return notFound(`no image ${split}/${image.idx}`);
    const d = FASHION_MNIST;
    if (!image.png)
      return c.json(
        { split, idx: image.idx, label: stored.label, class: stored.className, shape: [d.rows, d.cols, d.channels] },
        200,
      );
    const png = encodeGrayPng(upscale({ width: d.cols, height: d.rows, pixels: toBytes(stored.values) }, scale));
    return c.body(png, 200, { "Content-Type": "image/png", "Cache-Control": "public, max-age=60" });
  },
);
