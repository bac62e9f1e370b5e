/**
 * What a trigger can refuse before it answers 202 that only the source can
 * tell: a custom dataset whose images this Worker cannot load — too large for
 * a queue message with no R2 bucket bound to carry them (plan.ts
 * chunkTransport). Only the train images file's IDX header is read (the
 * download stops there), once, with a short time-out; a source that does not
 * answer, or a file that is not what it claims, is left to the run, which
 * says exactly what is wrong. With a bucket bound nothing is read here: every
 * size up to D1's limit loads, and a larger one fails its run at once, saying
 * so.
 */
import { customSpec, type CustomFiles } from "../core/datasets";
import { errorMessage } from "../core/errors";
import { workersMd5 } from "../codec/digest";
import { expectImages, type IdxHeader } from "../codec/idx";
import { Archives } from "./archive";
import type { Config } from "./config";
import { sourceMirrors } from "./dataset";
import { DEFAULT_RETRY, type Fetch } from "./fetch";
import { chunkTransport } from "./plan";

/** One try, briefly: the trigger is waiting for it. */
const PEEK_RETRY = { ...DEFAULT_RETRY, attempts: 1, timeoutMs: 10_000 };

export interface AdmissionRequest {
  readonly dataset: string;
  readonly source: string;
  readonly spec?: { readonly files: CustomFiles; readonly classes?: readonly string[] };
}

/** Why the run cannot load, or undefined to start it (the run checks everything again). */
export async function refusalBeforeStart(
  req: AdmissionRequest,
  cfg: Pick<Config, "chunkSize">,
  r2: boolean,
  fetch: Fetch,
): Promise<string | undefined> {
  // A registry dataset's images are published and small; with R2 any size a message cannot carry travels by it.
  if (!req.spec || r2) return undefined;
  const spec = customSpec(req.dataset, req.spec.files, req.spec.classes);
  const file = req.spec.files.trainImages;
  const archives = new Archives(
    { dataset: spec, mirrors: sourceMirrors(spec, req.source), official: false, retry: PEEK_RETRY },
    { fetch, md5: workersMd5 },
    async () => {},
  );
  let header: IdxHeader | undefined;
  try {
    for await (const item of archives.read(file, { recordsPerChunk: 1 })) {
      if (item.kind === "header") header = item.header;
      break;
    }
    if (!header) return undefined;
    const transport = chunkTransport(expectImages(header, file).shape, cfg.chunkSize, r2, file);
    return "refused" in transport ? transport.refused : undefined;
  } catch (err) {
    console.warn(`${file}: its header could not be read before the run (${errorMessage(err)}); the run will say`);
    return undefined;
  }
}
