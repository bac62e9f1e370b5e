/**
 * GET /docs: the OpenAPI document (GET /openapi.json) rendered as one small
 * HTML page on the server — every operation with its parameters, body and
 * answers, then every schema. Generated from the same document, so it cannot
 * drift from it; no script and nothing fetched from elsewhere, so it works
 * offline and under any Content-Security-Policy. GET routes without path
 * parameters are links to try.
 */
import type { OpenAPIHono } from "@hono/zod-openapi";

export type OpenAPIDocument = ReturnType<OpenAPIHono["getOpenAPIDocument"]>;

type Json = Record<string, unknown>;

const esc = (s: unknown): string => String(s).replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);

/** Escaped text whose `backticks` become <code>. */
const prose = (s: unknown): string => esc(s).replace(/`([^`]+)`/g, "<code>$1</code>");

const refName = (ref: string): string => ref.replace("#/components/schemas/", "");

/** A schema in one line: a link for a $ref, else its type and constraints. */
function typeOf(schema: Json | undefined): string {
  if (schema === undefined) return "";
  if (typeof schema.$ref === "string") {
    const name = refName(schema.$ref);
    return `<a href="#schema-${esc(name)}">${esc(name)}</a>`;
  }
  const alternatives = schema.oneOf ?? schema.anyOf;
  if (Array.isArray(alternatives)) return (alternatives as Json[]).map(typeOf).join(" or ");
  const parts: string[] = [esc(schema.type ?? "any")];
  if (Array.isArray(schema.enum)) parts.push(`one of ${schema.enum.map((v) => `<code>${esc(v)}</code>`).join(", ")}`);
  for (const key of ["format", "pattern", "minimum", "maximum", "maxLength", "default"])
    if (schema[key] !== undefined) parts.push(`${key} <code>${esc(JSON.stringify(schema[key]))}</code>`);
  return parts.join(", ");
}

function contentList(content: Json | undefined): string {
  if (!content) return "";
  return Object.entries(content)
    .map(([type, media]) => `<code>${esc(type)}</code> ${typeOf((media as Json).schema as Json)}`)
    .join("; ");
}

function operation(path: string, method: string, op: Json): string {
  const params = (op.parameters ?? []) as Json[];
  const body = op.requestBody as Json | undefined;
  const responses = Object.entries((op.responses ?? {}) as Record<string, Json>);
  const tryIt = method === "get" && !path.includes("{") ? ` <a href="${esc(path)}">try</a>` : "";
  return `<section id="${esc(`${method}-${path}`)}">
<h3><span class="m">${esc(method.toUpperCase())}</span> <code>${esc(path)}</code>${tryIt}${op.security ? ' <span class="auth">bearer token</span>' : ""}</h3>
<p><b>${esc(op.summary ?? "")}</b>. ${prose(op.description ?? "")}</p>
${
  params.length === 0
    ? ""
    : `<table><tr><th>parameter</th><th>in</th><th>type</th><th></th></tr>${params
        .map(
          (p) =>
            `<tr><td><code>${esc(p.name)}</code>${p.required ? " (required)" : ""}</td><td>${esc(p.in)}</td><td>${typeOf(p.schema as Json)}</td><td>${prose(p.description ?? (p.schema as Json | undefined)?.description ?? "")}</td></tr>`,
        )
        .join("")}</table>`
}
${body ? `<p>body${body.required ? "" : " (optional)"}: ${contentList(body.content as Json)}</p>` : ""}
<ul>${responses
    .map(([status, r]) => `<li><b>${esc(status)}</b> ${prose(r.description)} ${contentList(r.content as Json)}</li>`)
    .join("")}</ul>
</section>`;
}

export function docsHtml(doc: OpenAPIDocument): string {
  const ops = Object.entries(doc.paths ?? {}).flatMap(([path, item]) =>
    Object.entries(item as Record<string, Json>)
      .filter(([method]) => ["get", "put", "post", "delete", "patch", "head", "options"].includes(method))
      .map(([method, op]) => operation(path, method, op)),
  );
  const schemas = Object.entries(doc.components?.schemas ?? {}).map(
    ([name, schema]) =>
      `<section id="schema-${esc(name)}"><h3>${esc(name)}</h3><pre>${esc(JSON.stringify(schema, null, 2))}</pre></section>`,
  );
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(doc.info.title)} · API</title>
<link rel="icon" href="data:,">
<style>
  body { font: 14px/1.45 system-ui, sans-serif; margin: 24px auto; max-width: 960px; padding: 0 16px; color: #222; }
  h1 { font-size: 20px; } h2 { font-size: 17px; margin-top: 32px; } h3 { font-size: 15px; margin: 24px 0 4px; }
  section { border-top: 1px solid #ddd; } table { border-collapse: collapse; } th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: left; }
  .m { display: inline-block; min-width: 44px; font-family: monospace; color: #0b5394; } .auth { font-size: 12px; color: #b45f06; }
  pre { background: #f6f6f6; padding: 8px; overflow-x: auto; font-size: 12px; }
</style>
</head>
<body>
<h1>${esc(doc.info.title)} <small>${esc(doc.info.version)}</small></h1>
<p>${esc(doc.info.description ?? "")} The machine-readable description: <a href="/openapi.json">/openapi.json</a> (OpenAPI ${esc(doc.openapi)}).</p>
<h2>Operations</h2>
${ops.join("\n")}
<h2>Schemas</h2>
${schemas.join("\n")}
</body>
</html>
`;
}
