/**
 * A loaded dataset version as Croissant 1.1 JSON-LD (docs.mlcommons.org/croissant),
 * pure: the dataset-level properties the specification requires (name,
 * description, conformsTo, license, url, creator, datePublished) and citeAs;
 * a `cr:FileObject` per export file with its versioned URL, media type, size
 * and the SHA-256 of the bytes served; a `classes` enumeration; and a record
 * set per split whose `image` (sc:ImageObject) and `label` fields read the
 * split's Parquet columns. The context is the one mlcroissant writes for 1.1
 * (schema.org over https, as its validator expands it).
 */
import type { DatasetAbout } from "../core/datasets";
import type { VersionFacts } from "../read/encoders";
import type { ExportEntry } from "./schemas/datasets";

export const CROISSANT_CONTEXT = {
  "@language": "en",
  "@vocab": "https://schema.org/",
  sc: "https://schema.org/",
  cr: "http://mlcommons.org/croissant/",
  rai: "http://mlcommons.org/croissant/RAI/",
  dct: "http://purl.org/dc/terms/",
  citeAs: "cr:citeAs",
  column: "cr:column",
  conformsTo: "dct:conformsTo",
  containedIn: "cr:containedIn",
  data: { "@id": "cr:data", "@type": "@json" },
  dataType: { "@id": "cr:dataType", "@type": "@vocab" },
  examples: { "@id": "cr:examples", "@type": "@json" },
  extract: "cr:extract",
  field: "cr:field",
  fileProperty: "cr:fileProperty",
  fileObject: "cr:fileObject",
  fileSet: "cr:fileSet",
  format: "cr:format",
  includes: "cr:includes",
  isLiveDataset: "cr:isLiveDataset",
  jsonPath: "cr:jsonPath",
  key: "cr:key",
  md5: "cr:md5",
  parentField: "cr:parentField",
  path: "cr:path",
  recordSet: "cr:recordSet",
  references: "cr:references",
  regex: "cr:regex",
  repeated: "cr:repeated",
  replace: "cr:replace",
  separator: "cr:separator",
  source: "cr:source",
  subField: "cr:subField",
  transform: "cr:transform",
} as const;

export const CROISSANT_1_1 = "http://mlcommons.org/croissant/1.1";

export interface CroissantInput {
  readonly facts: VersionFacts;
  readonly about: DatasetAbout;
  /** Every export file, each with its SHA-256. */
  readonly files: readonly (ExportEntry & { readonly sha256: string })[];
  /** This Worker's origin, for absolute URLs: `https://idx-etl.example.workers.dev`. */
  readonly origin: string;
  /** When the version was swapped in. */
  readonly modified: string | null;
}

export function croissant({ facts, about, files, origin, modified }: CroissantInput) {
  const parquet = (split: string) => files.find((f) => f.format === "parquet" && f.split === split)!;
  const splits = (["train", "test"] as const).filter((s) => facts.counts[s] > 0);
  return {
    "@context": CROISSANT_CONTEXT,
    "@type": "sc:Dataset",
    name: facts.dataset,
    description: about.description,
    conformsTo: CROISSANT_1_1,
    citeAs: about.citation,
    creator: about.creators.map((c) => ({
      "@type": `sc:${c.kind}`,
      name: c.name,
      ...(c.url ? { url: c.url } : {}),
    })),
    datePublished: about.published,
    ...(modified ? { dateModified: modified } : {}),
    license: { "@type": "sc:CreativeWork", name: about.license.name, url: about.license.url },
    url: about.url,
    // Semantic versioning wants MAJOR.MINOR.PATCH; the load (the run whose swap made the rows) is build metadata.
    version: `1.0.0+${facts.version}`,
    distribution: files.map((f) => ({
      "@type": "cr:FileObject",
      "@id": f.file,
      name: f.file,
      description: fileDescription(f, facts),
      contentUrl: `${origin}${f.versionedUrl}`,
      contentSize: `${f.bytes} B`,
      encodingFormat: f.encodingFormat,
      sha256: f.sha256,
    })),
    recordSet: [
      {
        "@type": "cr:RecordSet",
        "@id": "classes",
        name: "classes",
        description: "The class of each label.",
        dataType: "sc:Enumeration",
        key: { "@id": "classes/label" },
        field: [
          { "@type": "cr:Field", "@id": "classes/label", name: "classes/label", dataType: "sc:Integer" },
          { "@type": "cr:Field", "@id": "classes/name", name: "classes/name", dataType: "sc:Text" },
        ],
        data: facts.classNames.map((name, label) => ({ "classes/label": label, "classes/name": name })),
      },
      ...splits.map((split) => ({
        "@type": "cr:RecordSet",
        "@id": split,
        name: split,
        description: `The ${split} split: ${facts.counts[split]} images, as ${split}.parquet holds them.`,
        field: [
          {
            "@type": "cr:Field",
            "@id": `${split}/image`,
            name: `${split}/image`,
            description: `The image as a PNG, ${facts.shape.rows}×${facts.shape.cols}, ${facts.shape.channels} channel(s) of 8 bits.`,
            dataType: "sc:ImageObject",
            source: {
              fileObject: { "@id": parquet(split).file },
              extract: { column: "image" },
              transform: { jsonPath: "bytes" },
            },
          },
          {
            "@type": "cr:Field",
            "@id": `${split}/label`,
            name: `${split}/label`,
            description: "The label; classes names it.",
            dataType: ["sc:Integer", "cr:Label"],
            source: { fileObject: { "@id": parquet(split).file }, extract: { column: "label" } },
            references: { field: { "@id": "classes/label" } },
          },
        ],
      })),
    ],
  };
}

function fileDescription(f: ExportEntry, facts: VersionFacts): string {
  const { rows, cols, channels } = facts.shape;
  if (f.format === "npz")
    return "Keras' layout: x_train, y_train, x_test, y_test, uint8, as keras.datasets load_data() returns.";
  if (f.format === "parquet")
    return `The ${f.split} split: image (struct of PNG bytes and path) and label (int64), Hugging Face's Image and ClassLabel.`;
  if (f.content === "labels") return `The ${f.split} split's labels, uint8 (n,).`;
  return f.content === "uint8"
    ? `The ${f.split} split's images as their original bytes, uint8 (n, ${rows}, ${cols}, ${channels}).`
    : `The ${f.split} split's images as float32 x / 255, (n, ${rows}, ${cols}, ${channels}).`;
}

/** A host only the loading machine could reach: `npm run etl --source DIR`'s own archive server, a local http.server. */
const isLoopback = (hostname: string): boolean =>
  hostname === "localhost" || hostname === "[::1]" || /^127\.\d+\.\d+\.\d+$/.test(hostname);

/**
 * A custom dataset's provenance: what its run was given, and no more. A
 * source on the loading machine's loopback is no address for anyone reading
 * the metadata (nor for that machine, once it stops serving): the dataset's
 * page on this Worker (`page`) stands in for it.
 */
export function customAbout(name: string, source: string, swappedAt: string | null, page: string): DatasetAbout {
  let url: URL | undefined;
  try {
    url = new URL(source);
  } catch {
    // Not a URL: the source as given.
  }
  const local = url !== undefined && isLoopback(url.hostname);
  const home = local ? page : source;
  return {
    description: local
      ? `${name}: a custom IDX dataset loaded by idx-etl from files on the machine that loaded it (served there at ${source} while loading).`
      : `${name}: a custom IDX dataset loaded by idx-etl from ${source}.`,
    url: home,
    license: { name: `Not stated: a custom dataset; its ${local ? "files'" : "source's"} terms apply`, url: home },
    creators: [
      { kind: "Organization", name: local ? "Not stated (files on the loading machine)" : url?.host || source },
    ],
    citation: `@misc{${name.replace(/-/g, "_")},\n  title        = {${name}},\n  howpublished = {${home}}\n}`,
    published: (swappedAt ?? new Date().toISOString()).slice(0, 10),
  };
}
