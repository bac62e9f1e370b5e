/**
 * GET /openapi.json is a valid OpenAPI 3 document, by a real validator
 * (@seriousme/openapi-schema-validator: the official OpenAPI JSON Schemas, with
 * ajv, which compiles code and so runs here in Node rather than in workerd).
 * The document comes from the app itself, through `app.request`: the same
 * handler the Worker serves it with. Runs in Node (vitest.node.config.ts);
 * type-checked with the Worker's types (test/tsconfig.json), as it imports
 * the Worker's app.
 */
import { Validator } from "@seriousme/openapi-schema-validator";
import { describe, expect, it } from "vitest";
import { app } from "../../src/http/app";

describe("GET /openapi.json", () => {
  it("is a valid OpenAPI 3 document, its every $ref resolved", async () => {
    const res = await app.request("/openapi.json");
    expect(res.status).toBe(200);
    const doc = (await res.json()) as Record<string, unknown>;
    expect(doc.openapi).toMatch(/^3\./);

    const validator = new Validator();
    const result = await validator.validate(doc);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
  });

  it.each([
    ["a response without its description", { 200: { content: {} } }],
    [
      "a $ref to no schema",
      { 200: { description: "x", content: { "application/json": { schema: { $ref: "#/components/schemas/Nope" } } } } },
    ],
  ])("with %s fails the validator, so the check above means something", async (_, responses) => {
    const doc = (await (await app.request("/openapi.json")).json()) as { paths: Record<string, unknown> };
    doc.paths["/runs"] = { get: { responses } };
    expect((await new Validator().validate(doc)).valid).toBe(false);
  });
});
