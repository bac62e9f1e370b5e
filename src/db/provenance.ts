/**
 * Where a dataset's rows come from, as the catalog records it at the swap:
 * `official` for a registry dataset whose archives matched every published
 * MD5, wherever they came from (a local copy of the published files is the
 * published files); `source` the run's, redacted (the catalog is read by
 * anyone who can query D1 or GET /datasets).
 */
import { matchesPublished } from "../core/datasets";
import { registryEntry } from "../core/registry";
import { redactUrl } from "../codec/source";
import type { Run } from "./schema";

export interface Provenance {
  readonly official: boolean;
  readonly source: string;
}

export function runProvenance(run: Pick<Run, "dataset" | "spec" | "source" | "checksums">): Provenance {
  const entry = run.spec === null ? registryEntry(run.dataset) : undefined;
  return {
    official: entry !== undefined && matchesPublished(entry, run.checksums),
    source: redactUrl(run.source),
  };
}
