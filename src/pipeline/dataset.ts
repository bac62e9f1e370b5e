/**
 * Which dataset a run loads, and from where: its spec (a registry entry, or
 * the custom files the run was given), the mirrors its archives are fetched
 * from, and whether it is official — from the dataset's own mirrors, and so
 * held to the published MD5s and counts.
 */
import { customSpec, isDatasetName, type CustomFiles, type DatasetSpec, type Mirror } from "../core/datasets";
import { DEFAULT_DATASET, REGISTRY_NAMES, registryEntry } from "../core/registry";
import { archiveUrl, sameSource } from "../codec/source";
import type { CustomRunSpec, Run } from "../db/schema";
import type { Config } from "./config";

/** A dataset's official mirrors: the registry's, or DEFAULT_SOURCE for the default dataset if set. */
export function officialMirrors(spec: DatasetSpec, cfg: Pick<Config, "defaultSource">): readonly Mirror[] {
  if (spec.name === DEFAULT_DATASET && cfg.defaultSource !== undefined) {
    return [{ url: cfg.defaultSource, packaging: spec.zip ? "zip" : "files" }];
  }
  return spec.mirrors;
}

/** Where a run from no named source downloads: the first official mirror (recorded as the run's source). */
export function officialSource(spec: DatasetSpec, cfg: Pick<Config, "defaultSource">): string | undefined {
  return officialMirrors(spec, cfg)[0]?.url;
}

/** Whether `source` is one of the dataset's official mirrors (its base URL, or its zip's URL). */
export function isOfficial(spec: DatasetSpec, source: string, cfg: Pick<Config, "defaultSource">): boolean {
  return officialMirrors(spec, cfg).some(
    (m) =>
      sameSource(source, m.url) ||
      (m.packaging === "zip" && spec.zip !== undefined && sameSource(source, archiveUrl(m.url, spec.zip.file))),
  );
}

export interface RunDataset {
  readonly spec: DatasetSpec;
  readonly mirrors: readonly Mirror[];
  readonly official: boolean;
}

/** The places a run's source may hold a dataset's files: loose at the URL, or inside the dataset's zip there. */
export function sourceMirrors(dataset: DatasetSpec, source: string): Mirror[] {
  if (!dataset.zip) return [{ url: source, packaging: "files" }];
  if (/\.zip$/i.test(new URL(source).pathname)) return [{ url: source, packaging: "zip" }];
  return [
    { url: source, packaging: "files" },
    { url: source, packaging: "zip" },
  ];
}

/** What a recorded run loads and from where; undefined if its dataset is no longer in the registry. */
export function runDataset(run: Run, cfg: Pick<Config, "defaultSource">): RunDataset | undefined {
  const spec = run.spec ? customSpec(run.dataset, run.spec.files, run.spec.classes) : registryEntry(run.dataset);
  if (!spec) return undefined;
  // Spelled differently (a trailing slash, the host's case), an official mirror is still held to the published MD5s.
  const official = !run.spec && isOfficial(spec, run.source, cfg);
  return { spec, official, mirrors: official ? officialMirrors(spec, cfg) : sourceMirrors(spec, run.source) };
}

/** What a trigger asks for: a dataset by name, perhaps from another source, or a custom one. */
export interface RunRequest {
  readonly dataset?: string;
  readonly source?: string;
  readonly files?: CustomFiles;
  readonly classes?: readonly string[];
}

export type ResolvedRequest =
  | {
      readonly ok: true;
      readonly dataset: string;
      readonly source: string;
      readonly spec?: CustomRunSpec;
      /** From the registry dataset's official mirrors (isOfficial): the run is held to the published MD5s. */
      readonly official: boolean;
    }
  | { readonly ok: false; readonly error: string };

/**
 * A trigger's dataset and source, or why not: a registry dataset loads from
 * its official mirrors unless a source is named; a custom dataset needs a
 * name of its own, a source and its four files.
 */
export function resolveRequest(req: RunRequest, cfg: Pick<Config, "defaultSource">): ResolvedRequest {
  const dataset = req.dataset ?? DEFAULT_DATASET;
  if (!isDatasetName(dataset)) {
    return {
      ok: false,
      error: `dataset must be lower-case words joined by "-" (at most 40 characters), got ${JSON.stringify(dataset)}`,
    };
  }
  const entry = registryEntry(dataset);
  if (req.files) {
    if (entry) return { ok: false, error: `${dataset} is a registry dataset; name a custom dataset differently` };
    if (!req.source) return { ok: false, error: "a custom dataset needs a source: the base URL of its files" };
    const names = Object.values(req.files);
    if (new Set(names).size !== names.length) return { ok: false, error: "a custom dataset's four files must differ" };
    return {
      ok: true,
      dataset,
      source: req.source,
      spec: { files: req.files, ...(req.classes ? { classes: req.classes } : {}) },
      official: false,
    };
  }
  if (!entry) {
    return {
      ok: false,
      error: `unknown dataset ${dataset}: the registry has ${REGISTRY_NAMES.join(", ")}; a custom dataset also names its files`,
    };
  }
  if (req.classes)
    return { ok: false, error: `${dataset} is a registry dataset: its class names are the published ones` };
  const source = req.source ?? officialSource(entry, cfg);
  if (!source) return { ok: false, error: `${dataset} has no mirror configured; name a source` };
  return { ok: true, dataset, source, official: isOfficial(entry, source, cfg) };
}
