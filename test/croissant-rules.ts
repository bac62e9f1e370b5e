/**
 * The rules a Croissant 1.1 document must follow to pass `mlcroissant validate`
 * (not installable here), from the specification (docs/croissant-spec-1.1.md:
 * "Required" dataset properties, FileObject, RecordSet, Field, DataSource,
 * Categorical Data) and mlcroissant's checks (structure_graph/nodes/*.py:
 * FileObject's mandatory encodingFormat, @id, contentUrl and md5 or sha256;
 * a record set's data rows keyed by exactly its field ids; one source per
 * record set unless joined by references; every reference resolving; @ids
 * without whitespace). Returns every broken rule, so a test can expect none.
 */

type Json = Record<string, unknown>;

const ISO_8601 = /^\d{4}(-\d{2}(-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?)?)?$/;
const ids = (x: unknown): string[] =>
  (Array.isArray(x) ? x : x === undefined ? [] : [x]).map((r) => (r as Json)["@id"] as string);
const list = (x: unknown): Json[] => (Array.isArray(x) ? x : x === undefined ? [] : [x]) as Json[];

export function croissantProblems(doc: Json): string[] {
  const problems: string[] = [];
  const need = (ok: boolean, what: string) => void (ok || problems.push(what));
  const context = doc["@context"] as Json | undefined;
  need(typeof context === "object" && context !== null, "@context is an object");
  need(context?.["@vocab"] === "https://schema.org/", "@context's @vocab is schema.org (as mlcroissant expands it)");
  for (const k of ["sc", "cr", "dct", "conformsTo", "citeAs", "recordSet", "field", "source", "extract", "fileObject"])
    need(context?.[k] !== undefined, `@context defines ${k}`);
  need(doc["@type"] === "sc:Dataset", "@type is sc:Dataset");
  need(doc.conformsTo === "http://mlcommons.org/croissant/1.1", "conformsTo is Croissant 1.1");
  for (const k of ["name", "description", "url", "citeAs", "datePublished"])
    need(typeof doc[k] === "string" && (doc[k] as string).length > 0, `${k} is a non-empty string`);
  need(ISO_8601.test(String(doc.datePublished)), "datePublished is ISO 8601");
  need(list(doc.license).length > 0, "license is given");
  for (const l of list(doc.license))
    need(
      typeof l === "string" || (l["@type"] === "sc:CreativeWork" && typeof l.name === "string"),
      "license is a URL or CreativeWork",
    );
  need(list(doc.creator).length > 0, "creator is given");
  for (const c of list(doc.creator))
    need(
      ["sc:Organization", "sc:Person"].includes(c["@type"] as string) && typeof c.name === "string",
      "creator is a named Organization or Person",
    );

  const allIds: string[] = [];
  const files = list(doc.distribution);
  need(files.length > 0, "distribution is not empty");
  for (const f of files) {
    const id = f["@id"] as string;
    allIds.push(id);
    need(f["@type"] === "cr:FileObject", `${id}: @type cr:FileObject`);
    need(typeof f.contentUrl === "string" && /^https?:\/\//.test(f.contentUrl as string), `${id}: absolute contentUrl`);
    need(typeof f.encodingFormat === "string" && (f.encodingFormat as string).length > 0, `${id}: encodingFormat`);
    need(/^[0-9a-f]{64}$/.test(String(f.sha256)) || /^[0-9a-f]{32}$/.test(String(f.md5)), `${id}: sha256 or md5`);
  }
  const fileIds = new Set(files.map((f) => f["@id"] as string));
  const sets = list(doc.recordSet);
  const fieldIds = new Set(sets.flatMap((s) => ids(s.field)));
  for (const s of sets) {
    const id = s["@id"] as string;
    allIds.push(id);
    need(s["@type"] === "cr:RecordSet", `${id}: @type cr:RecordSet`);
    const fields = list(s.field);
    need(fields.length > 0, `${id}: has fields`);
    for (const k of ids(s.key)) need(ids(s.field).includes(k), `${id}: key ${k} is one of its fields`);
    const parents = new Set<string>();
    const joined = new Set<string>();
    for (const f of fields) {
      const fid = f["@id"] as string;
      allIds.push(fid);
      need(f["@type"] === "cr:Field", `${fid}: @type cr:Field`);
      need(f.dataType !== undefined, `${fid}: dataType`);
      need(!(f.value !== undefined && f.source !== undefined), `${fid}: not both value and source`);
      const source = f.source as Json | undefined;
      if (source) {
        const parent = (source.fileObject as Json | undefined)?.["@id"] as string | undefined;
        need(parent !== undefined && fileIds.has(parent), `${fid}: source names a FileObject of the distribution`);
        if (parent) parents.add(parent);
        const extract = (source.extract ?? {}) as Json;
        need(["column", "fileProperty", "jsonPath"].filter((k) => k in extract).length === 1, `${fid}: one extract`);
        if (source.transform !== undefined) {
          const t = source.transform as Json;
          need(
            ["format", "jsonPath", "regex", "replace", "separator"].filter((k) => k in t).length === 1,
            `${fid}: one string transform`,
          );
        }
      }
      const ref = (f.references as Json | undefined)?.field as Json | undefined;
      if (f.references !== undefined) {
        need(ref !== undefined && fieldIds.has(ref["@id"] as string), `${fid}: references resolve to a field`);
        if (ref) joined.add(ref["@id"] as string);
      }
    }
    need(parents.size <= 1 || joined.size > 0, `${id}: one source, or sources joined by references`);
    if (s.data !== undefined) {
      const want = [...ids(s.field)].sort().join(",");
      for (const [i, row] of list(s.data).entries())
        need(Object.keys(row).sort().join(",") === want, `${id}: data row ${i} has exactly its fields`);
    }
    if (s.dataType === "sc:Enumeration")
      need(
        ids(s.field).some((f) => f.endsWith("/name")),
        `${id}: an enumeration has a name field`,
      );
  }
  need(new Set(allIds).size === allIds.length, "every @id is unique");
  for (const id of allIds)
    need(typeof id === "string" && !/\s/.test(id), `@id ${JSON.stringify(id)} has no whitespace`);
  return problems;
}
