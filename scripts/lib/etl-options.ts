/**
 * `npm run etl`'s command line: what it asks for, checked before anything
 * starts. Mistakes the Worker would refuse anyway (a registry name given
 * custom files, three of the four files) are refused here too, as usage
 * errors, because reaching the Worker first costs a migration and a
 * `wrangler dev` start.
 */
import { parseArgs } from "node:util";
import {
  customSpec,
  isDatasetName,
  MAX_DATASET_NAME,
  type CustomFiles,
  type DatasetSpec,
} from "../../src/core/datasets";
import { DEFAULT_DATASET, REGISTRY_NAMES, registryEntry } from "../../src/core/registry";

export const USAGE = `usage: npm run etl -- [--dataset NAME] [--source DIR|URL] [--force] [--timeout SECONDS] [--persist-to DIR]
       npm run etl -- --dataset NAME --source DIR|URL --train-images F --train-labels F --test-images F --test-labels F [--classes A,B,…]
       npm run etl -- --list
       npm run etl -- --delete NAME [--persist-to DIR]

  --dataset NAME     a registry dataset (--list shows them; default ${DEFAULT_DATASET}), or a name of your own
                     for a custom dataset, which then names its four gzipped IDX files at --source
  --source DIR|URL   where the files are: a directory (served to the Worker from this machine) or a base URL;
                     default, for a registry dataset: its official mirrors, held to the published MD5s
  --classes A,B,…    a custom dataset's class names, label 0's first (default: the labels as numbers)
  --force            reload even if the archives are unchanged since the dataset's last complete run
  --list             print the registry and exit
  --delete NAME      delete a dataset from the local D1 and R2: its tables, runs and exports (DELETE /datasets/NAME)`;

/** A mistake in the command line: printed with USAGE, exit code 2. */
export class UsageError extends Error {}

/** The custom-dataset flags, by the field of POST /runs's `files` each fills. */
export const FILE_FLAGS = {
  trainImages: "train-images",
  trainLabels: "train-labels",
  testImages: "test-images",
  testLabels: "test-labels",
} as const satisfies Record<keyof CustomFiles, string>;
const FILE_KEYS = Object.keys(FILE_FLAGS) as (keyof CustomFiles)[];
const flagList = (keys: readonly (keyof CustomFiles)[]) => keys.map((k) => `--${FILE_FLAGS[k]}`).join(", ");

/** A run's default timeout covers this many images; bigger datasets get proportionally longer. */
const TIMEOUT_IMAGES = 70_000;
const DEFAULT_TIMEOUT_SECONDS = 1800;

export interface EtlOptions {
  readonly list: boolean;
  readonly help: boolean;
  /** As given with --dataset; undefined without it, when the run's request and output stay those of the default dataset. */
  readonly named?: string;
  /** The dataset the run loads: a registry entry, or the custom one the flags describe. */
  readonly spec: DatasetSpec;
  /** For a custom dataset: POST /runs's `files` and `classes`. */
  readonly custom?: { readonly files: CustomFiles; readonly classes?: readonly string[] };
  readonly source?: string;
  readonly force: boolean;
  readonly timeoutMs: number;
  readonly persistTo?: string;
  /** --delete NAME: delete that dataset instead of loading one. */
  readonly delete?: string;
}

export const isUrl = (source: string): boolean => /^https?:\/\//i.test(source);

/** `scheme://…`: a URL, not a path (a directory named `ftp:` would be written `./ftp:/…`). */
const hasScheme = (source: string): boolean => /^[a-z][a-z0-9+.-]*:\/\//i.test(source);

export function parseEtlArgs(args: readonly string[]): EtlOptions {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...args],
      options: {
        dataset: { type: "string" },
        source: { type: "string" },
        "train-images": { type: "string" },
        "train-labels": { type: "string" },
        "test-images": { type: "string" },
        "test-labels": { type: "string" },
        classes: { type: "string" },
        force: { type: "boolean", default: false },
        timeout: { type: "string" },
        // wrangler's own flag: local state somewhere other than .wrangler/state (the CLI test uses a fresh one).
        "persist-to": { type: "string" },
        list: { type: "boolean", default: false },
        delete: { type: "string" },
        help: { type: "boolean", short: "h", default: false },
      },
    }));
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err));
  }
  // Anything else would be taken for a relative path, and refused later as a missing directory.
  if (values.source !== undefined && hasScheme(values.source) && !isUrl(values.source))
    throw new UsageError(`--source takes a local directory or an http(s) URL, got ${JSON.stringify(values.source)}`);
  const base = {
    list: values.list,
    help: values.help,
    force: values.force,
    ...(values.source !== undefined ? { source: values.source } : {}),
    ...(values["persist-to"] !== undefined ? { persistTo: values["persist-to"] } : {}),
  };
  if (values.list || values.help) return { ...base, spec: registryEntry(DEFAULT_DATASET)!, timeoutMs: 0 };
  if (values.delete !== undefined) return { ...base, ...deleteOptions(values.delete, values), timeoutMs: 0 };

  const name = values.dataset ?? DEFAULT_DATASET;
  if (!isDatasetName(name)) {
    throw new UsageError(
      `--dataset must be lower-case letters and digits in words joined by "-" (at most ${MAX_DATASET_NAME} characters), got ${JSON.stringify(name)}`,
    );
  }
  const given = FILE_KEYS.filter((k) => values[FILE_FLAGS[k]] !== undefined);
  const entry = registryEntry(name);
  let spec: DatasetSpec;
  let custom: EtlOptions["custom"];
  if (entry) {
    if (given.length > 0) {
      throw new UsageError(
        values.dataset === undefined
          ? `${flagList(given)} name a custom dataset's files: name the dataset too, with --dataset NAME (not one of the registry's)`
          : `${name} is a registry dataset, whose files are the published ones: drop ${flagList(given)}, or give the custom dataset a name of its own`,
      );
    }
    if (values.classes !== undefined)
      throw new UsageError(`${name} is a registry dataset: its class names are the published ones; drop --classes`);
    spec = entry;
  } else {
    if (given.length === 0) {
      throw new UsageError(
        `${name} is not in the registry (${REGISTRY_NAMES.join(", ")}); a custom dataset names its four files: ${flagList(FILE_KEYS)}, and --source`,
      );
    }
    const missing = FILE_KEYS.filter((k) => !given.includes(k));
    if (missing.length > 0) {
      throw new UsageError(
        `a custom dataset names all four files together: ${flagList(FILE_KEYS)}; missing ${flagList(missing)}`,
      );
    }
    if (values.source === undefined)
      throw new UsageError(`a custom dataset needs --source DIR|URL: where its four files are`);
    const files = Object.fromEntries(FILE_KEYS.map((k) => [k, values[FILE_FLAGS[k]]!])) as unknown as CustomFiles;
    for (const k of FILE_KEYS) {
      // Each is fetched as <source>/<file>: a path would reach outside the source.
      if (/[/\\]/.test(files[k]) || files[k] === "." || files[k] === "..")
        throw new UsageError(`--${FILE_FLAGS[k]} must be a file name within --source, got ${JSON.stringify(files[k])}`);
    }
    if (new Set(Object.values(files)).size !== FILE_KEYS.length)
      throw new UsageError(`a custom dataset's four files must differ`);
    const classes = values.classes === undefined ? undefined : parseClasses(values.classes);
    spec = customSpec(name, files, classes);
    custom = { files, ...(classes ? { classes } : {}) };
  }

  const images = spec.splits.reduce((n, s) => n + (s.count ?? 0), 0);
  const seconds =
    values.timeout === undefined
      ? DEFAULT_TIMEOUT_SECONDS * Math.max(1, images / TIMEOUT_IMAGES)
      : Number(values.timeout);
  if (!(seconds > 0))
    throw new UsageError(`--timeout must be a positive number of seconds, got ${JSON.stringify(values.timeout)}`);

  return {
    ...base,
    ...(values.dataset !== undefined ? { named: name } : {}),
    spec,
    ...(custom ? { custom } : {}),
    timeoutMs: seconds * 1000,
  };
}

function parseClasses(raw: string): string[] {
  const classes = raw.split(",").map((c) => c.trim());
  const empty = classes.findIndex((c) => c === "");
  if (empty >= 0)
    throw new UsageError(
      `--classes is a comma-separated list of names; name ${empty} of ${JSON.stringify(raw)} is empty`,
    );
  return classes;
}

/** --delete NAME: a dataset name, and nothing that would describe a load. */
function deleteOptions(name: string, values: Record<string, unknown>): Pick<EtlOptions, "delete" | "spec"> {
  if (!isDatasetName(name))
    throw new UsageError(`--delete must name a dataset (lower-case words joined by "-"), got ${JSON.stringify(name)}`);
  const loadFlags = ["dataset", "source", "classes", "timeout", ...Object.values(FILE_FLAGS)].filter(
    (f) => values[f] !== undefined,
  );
  if (loadFlags.length > 0 || values.force)
    throw new UsageError(
      `--delete deletes a dataset; it takes no --${[...loadFlags, ...(values.force ? ["force"] : [])].join(", --")}`,
    );
  return {
    delete: name,
    spec: registryEntry(name) ?? customSpec(name, { trainImages: "", trainLabels: "", testImages: "", testLabels: "" }),
  };
}
