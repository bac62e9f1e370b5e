/** The raw archives' schemas: which archive of a dataset version, by its file name. */
import { z } from "@hono/zod-openapi";
import { datasetParam } from "./common";
import { FILE_RULE, isFileName, MAX_FILE_NAME } from "./runs";

const rawFile = z
  .string()
  .refine(isFileName, { error: (iss) => `file must be ${FILE_RULE}, got ${JSON.stringify(iss.input)}` })
  .openapi({
    param: { name: "file", in: "path" },
    type: "string",
    minLength: 1,
    maxLength: MAX_FILE_NAME,
    description:
      "An archive the dataset's current version was loaded from, by its published name (an EMNIST zip member without its gzip/ folder).",
    example: "train-images-idx3-ubyte.gz",
  });

export const RawParams = z.object({ file: rawFile });
export const DatasetRawParams = z.object({ name: datasetParam, file: rawFile });
