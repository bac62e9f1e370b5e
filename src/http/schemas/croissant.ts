/**
 * croissant.json's schema, as far as OpenAPI describes it: a JSON-LD document
 * whose shape the Croissant 1.1 specification defines (http/croissant.ts).
 */
import { z } from "@hono/zod-openapi";

export const CroissantSchema = z
  .object({
    "@context": z.record(z.string(), z.unknown()),
    "@type": z.literal("sc:Dataset"),
    name: z.string(),
    conformsTo: z.string(),
    distribution: z.array(z.record(z.string(), z.unknown())),
    recordSet: z.array(z.record(z.string(), z.unknown())),
  })
  .passthrough()
  .openapi("Croissant", {
    description:
      "Croissant 1.1 JSON-LD (docs.mlcommons.org/croissant): the dataset's provenance, a FileObject per export file with its SHA-256, and record sets reading the Parquet files.",
  });
