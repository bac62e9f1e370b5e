/**
 * The images' schemas: one image (as JSON or a PNG) and a page of a split's
 * images.
 */
import { z } from "@hono/zod-openapi";
import { SPLITS } from "../../core/datasets";
import { MAX_SCALE, MIN_SCALE } from "../../codec/png";
import { datasetParam, integerQuery, splitEnum, splitParam } from "./common";

const imageParam = z
  .string()
  .regex(/^\d{1,9}(\.png)?$/, {
    error: (iss) => `image must be an index or index.png, got ${JSON.stringify(iss.input)}`,
  })
  .transform((s) => ({ idx: Number.parseInt(s, 10), png: s.endsWith(".png") }))
  .openapi({
    param: { name: "image", in: "path" },
    type: "string",
    pattern: "^\\d{1,9}(\\.png)?$",
    description: "The image's index in the split; with .png, the picture instead of its description.",
    example: "17.png",
  });

/** "123" or "123.png": an image's index, as JSON or as a PNG. */
export const ImageParams = z.object({ split: splitParam, image: imageParam });
export const DatasetImageParams = z.object({ name: datasetParam, split: splitParam, image: imageParam });

/** The longest side a scaled PNG may have: the picture is built in memory, width × height × channels bytes. */
export const MAX_PNG_SIDE = 1024;

export const ImageQuery = z.object({
  scale: integerQuery("scale", MIN_SCALE, MAX_SCALE)
    .optional()
    .openapi({
      param: { name: "scale", in: "query" },
      default: 1,
      description: `PNG only: each pixel becomes scale × scale pixels (nearest neighbour), as long as the picture stays within ${MAX_PNG_SIDE} pixels a side.`,
    }),
});

/** Most images on one page of GET /datasets/{name}/images. */
export const MAX_PAGE_IMAGES = 200;
export const DEFAULT_PAGE_IMAGES = 100;

export const ImagePageQuery = z.object({
  split: splitEnum().openapi({ param: { name: "split", in: "query" }, example: "train" }),
  label: integerQuery("label", 0, 255)
    .optional()
    .openapi({ param: { name: "label", in: "query" }, description: "Only images of this class." }),
  after: integerQuery("after", 0)
    .optional()
    .openapi({
      param: { name: "after", in: "query" },
      description: "Images after this idx: the previous page's `next`. Omitted: from the split's first image.",
    }),
  limit: integerQuery("limit", 1, MAX_PAGE_IMAGES)
    .optional()
    .openapi({ param: { name: "limit", in: "query" }, default: DEFAULT_PAGE_IMAGES, description: "Images per page." }),
});

export const ImageSchema = z
  .object({
    dataset: z.string(),
    split: z.enum(SPLITS),
    idx: z.number().int(),
    label: z.number().int(),
    class: z.string(),
    shape: z.array(z.number().int()).openapi({ description: "[rows, cols, channels]", example: [28, 28, 1] }),
  })
  .openapi("Image", {
    example: { dataset: "fashion-mnist", split: "train", idx: 17, label: 7, class: "Sneaker", shape: [28, 28, 1] },
  });
export type ImageView = z.infer<typeof ImageSchema>;

export const ImagePageSchema = z
  .object({
    dataset: z.string(),
    split: z.enum(SPLITS),
    label: z.number().int().nullable().openapi({ description: "The class filter; null: every class." }),
    // Read-only arrays, as src/read/images.ts produces them.
    images: z
      .array(z.object({ idx: z.number().int(), label: z.number().int() }))
      .readonly()
      .openapi({ description: "In idx order." }),
    next: z
      .number()
      .int()
      .nullable()
      .openapi({ description: "Pass as `after` for the next page; null on the last page." }),
  })
  .openapi("ImagePage");
export type ImagePageView = z.infer<typeof ImagePageSchema>;
