/**
 * The end-of-run summary table of `npm run etl` (cli-table3), the counts it
 * shows, and where the local D1 file lives.
 */
import { readdir, stat } from "node:fs/promises";
import { join, relative } from "node:path";
import Table from "cli-table3";
import type { RunView } from "../../src/http/schemas/runs";
import type { Stats } from "../../src/http/schemas/datasets";
import type { D1File } from "./d1-file";

/** What the summary shows of a run (GET /runs/:id). */
export type SummaryRun = Pick<RunView, "id" | "unchanged" | "durationMs" | "checksums">;

/**
 * The local D1 file most recently written (there is one per database id).
 * Miniflare keeps each local D1 database as one SQLite file under the state
 * directory (`.wrangler/state`, or wrangler's `--persist-to`).
 */
export async function localDatabaseFile(stateDir = join(".wrangler", "state")): Promise<string | undefined> {
  const D1_STATE = join(stateDir, "v3", "d1", "miniflare-D1DatabaseObject");
  const names = await readdir(D1_STATE).catch(() => [] as string[]);
  const files = await Promise.all(
    names
      .filter((n) => n.endsWith(".sqlite") && n !== "metadata.sqlite")
      .map(async (n) => ({ path: join(D1_STATE, n), mtime: (await stat(join(D1_STATE, n))).mtimeMs })),
  );
  return files.sort((a, b) => b.mtime - a.mtime)[0]?.path;
}

/**
 * A dataset's counts per split and class read from the local D1's file (the
 * tables GET /datasets/{name}/stats reads): after a load the Worker is busy
 * with the export job, and its routes answer only when that has finished.
 */
export function localStats(dataset: string, d1: D1File): Stats {
  const rows = d1.query<{ split: "train" | "test"; label: number; name: string; n: number }>(
    `SELECT s.split, c.label, c.name, COALESCE(g.n, 0) AS n
       FROM classes c CROSS JOIN (SELECT 'train' AS split UNION ALL SELECT 'test') s
       LEFT JOIN class_counts g ON g.dataset = c.dataset AND g.split = s.split AND g.label = c.label
      WHERE c.dataset = ? ORDER BY s.split, c.label`,
    dataset,
  );
  const split = (s: "train" | "test") => {
    const classes = rows.filter((r) => r.split === s).map((r) => ({ label: r.label, name: r.name, count: r.n }));
    return { total: classes.reduce((n, c) => n + c.count, 0), classes };
  };
  return {
    dataset,
    splits: { train: split("train"), test: split("test") },
    samples: null,
  };
}

/** No lines between rows; colours only on a terminal, so logs and pipes stay plain text. */
const tableStyle = (color: boolean) => ({
  chars: { mid: "", "left-mid": "", "mid-mid": "", "right-mid": "" },
  style: color ? {} : { head: [], border: [] },
});

/**
 * `dataset`: a line naming the dataset, for a run that named one (a run of
 * the default dataset, not named, keeps the summary it always had).
 */
export function summaryTable(
  run: SummaryRun,
  stats: Stats,
  dbFile: string | undefined,
  color = false,
  dataset?: string,
): string {
  const splits = Object.keys(stats.splits) as (keyof Stats["splits"])[];
  const perClass = new Table({
    ...tableStyle(color),
    head: ["class", ...splits],
    colAligns: ["left", ...splits.map(() => "right" as const)],
  });
  const first = stats.splits[splits[0]!]!;
  first.classes.forEach((c, i) =>
    perClass.push([
      // A custom dataset without class names has its labels as names: once is enough.
      c.name === String(c.label) ? c.name : `${c.label} ${c.name}`,
      ...splits.map((s) => stats.splits[s]!.classes[i]!.count.toLocaleString("en")),
    ]),
  );
  perClass.push(["total", ...splits.map((s) => stats.splits[s]!.total.toLocaleString("en"))]);

  const facts = new Table(tableStyle(color));
  facts.push(
    ...(dataset === undefined ? [] : [{ dataset }]),
    { run: run.id },
    {
      duration: `${(run.durationMs / 1000).toFixed(1)} s${run.unchanged ? " (archives unchanged: nothing rewritten)" : ""}`,
    },
    ...Object.entries(run.checksums ?? {}).map(([file, md5]) => ({ [file]: `md5 ${md5}` })),
    { "database file": dbFile ? relative(process.cwd(), dbFile) : "(not found under .wrangler/state)" },
  );
  return `${perClass.toString()}\n${facts.toString()}`;
}
