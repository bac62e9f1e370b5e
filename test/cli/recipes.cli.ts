/**
 * The query recipes in README.md and docs/data.md work as written: the SQL of
 * every `wrangler d1 execute images --local` command in their sh blocks runs
 * against a fresh local D1 (migrated, holding one known image), and what a
 * recipe pipes that output into (the Python decoders) gets the output of its
 * own query and must print the image's bytes. The commands are read from the
 * documents themselves, so a recipe that drifts from the schema fails here.
 * One `wrangler d1 execute` runs every query: each call costs seconds.
 */
import { exec, execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { delimiter, dirname, join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, expect, it } from "vitest";
import { applyLocalMigrations, localD1 } from "../../scripts/lib/dev-server";
import { FLOAT_OF_BYTE, float32LE } from "../../src/codec/transform";

const sh = promisify(exec);
const run = promisify(execFile);
const wrangler = join(process.cwd(), "node_modules", ".bin", "wrangler");

/** `wrangler d1 execute images --local --json` of `sql` (several statements): each statement's output, in order. */
async function localD1Results(sql: string): Promise<unknown[]> {
  const args = ["d1", "execute", "images", "--local", "--persist-to", state, "--json", "--command", sql];
  const { stdout } = await run(wrangler, args, { maxBuffer: 1 << 26 });
  return JSON.parse(stdout) as unknown[];
}

const DOCS = ["README.md", "docs/data.md"];

/** A Python with numpy for the recipes that use it: IDX_ETL_PYTHON (CI's venv) first, else python3. */
const PYTHON = process.env.IDX_ETL_PYTHON ?? "python3";

/** Whether `text` leaves a '…' or "…" open, as the shell reads quotes. */
function openQuote(text: string): boolean {
  let quote: string | undefined;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (quote === undefined) {
      if (ch === "'" || ch === '"') quote = ch;
      else if (ch === "\\") i++;
    } else if (ch === quote) quote = undefined;
    else if (quote === '"' && ch === "\\") i++;
  }
  return quote !== undefined;
}

/**
 * The shell commands of a document's sh blocks that query the local D1: a
 * command goes on while a line ends in `\` or `|`, or leaves a quote open (a
 * multi-line SQL text, a Python program); comment lines between commands are
 * skipped.
 */
function d1Commands(markdown: string): string[] {
  const commands: string[] = [];
  for (const block of markdown.matchAll(/```sh\n([\s\S]*?)```/g)) {
    let current = "";
    for (const line of block[1]!.split("\n")) {
      if (current === "" && (line.trim() === "" || line.trimStart().startsWith("#"))) continue;
      current += (current ? "\n" : "") + line;
      if (openQuote(current) || /[\\|]\s*$/.test(line)) continue;
      commands.push(current);
      current = "";
    }
  }
  return commands.filter((c) => c.includes("wrangler d1 execute images --local"));
}

let work: string;
let state: string;
let numpy: boolean;
/** Image 0 of fashion-mnist's test split: byte i is 7·i mod 256; label 9. */
const BYTES = Uint8Array.from({ length: 784 }, (_, i) => (i * 7) % 256);

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "idx-etl-recipes-"));
  state = join(work, "state");
  await applyLocalMigrations({ persistTo: state });
  const hex = Buffer.from(float32LE(Float32Array.from(BYTES, (b) => FLOAT_OF_BYTE[b]!))).toString("hex");
  await localD1(
    `INSERT INTO images__fashion_mnist__test (idx, label, pixels) VALUES (0, 9, unhex('${hex}'));
     INSERT INTO images__fashion_mnist__train (idx, label, pixels) VALUES (0, 2, unhex('${hex}'))`,
    { persistTo: state },
  );
  numpy = await run(PYTHON, ["-c", "import numpy"]).then(
    () => true,
    () => false,
  );
  if (!numpy) console.warn(`the README's numpy recipe is not run: ${PYTHON} has no numpy (set IDX_ETL_PYTHON)`);
});

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

/** A recipe's query (its `--command "…"`), and the program its output is piped into, if any. */
function parseRecipe(command: string): { sql: string; pipe?: string } {
  const m = /--command(?:\s|\\\n)+"([^"]*)"\s*(?:\|\s*([\s\S]*))?$/.exec(command);
  if (!m) throw new Error(`no --command "…" in ${command}`);
  return { sql: m[1]!.replace(/\s+/g, " "), ...(m[2] ? { pipe: m[2] } : {}) };
}

it("runs every D1 recipe of the README and docs/data.md, and the decoders print the image", async () => {
  const recipes = new Map<string, string[]>();
  for (const doc of DOCS) recipes.set(doc, d1Commands(await readFile(doc, "utf8")));
  const readme = recipes.get("README.md")!;
  // The README's count query and numpy decoder, and the decoder without numpy (README or docs/data.md), so this
  // cannot pass on no recipe at all.
  const all = [...recipes.values()].flat();
  expect(readme.some((c) => c.includes("python3 -c") && c.includes("numpy"))).toBe(true);
  expect(all.filter((c) => c.includes("python3 -c") && c.includes("struct"))).toHaveLength(1);
  expect(readme.length).toBeGreaterThanOrEqual(2);
  expect(recipes.get("docs/data.md")!.length).toBeGreaterThanOrEqual(3);

  const parsed = [...recipes.values()].flat().map(parseRecipe);
  // One statement per recipe, in order; a statement D1 refuses fails the whole call, naming it.
  const results = await localD1Results(parsed.map((r) => r.sql).join(";\n"));
  expect(results).toHaveLength(parsed.length);
  expect(JSON.stringify(results[0])).toContain("fashion-mnist");

  // `python3` in a recipe is the interpreter chosen above: a venv's directory goes first on the PATH.
  const path = PYTHON.includes("/") ? [dirname(PYTHON), process.env.PATH].join(delimiter) : process.env.PATH;
  const printed: string[] = [];
  for (const [i, recipe] of parsed.entries()) {
    if (!recipe.pipe || (recipe.pipe.includes("numpy") && !numpy)) continue;
    const child = sh(recipe.pipe, { shell: "/bin/bash", env: { ...process.env, PATH: path } });
    child.child.stdin!.end(JSON.stringify([results[i]]));
    printed.push((await child).stdout.trim());
  }
  expect(printed).toContain("9 784 [0, 7, 14, 21]");
  if (numpy) expect(printed.some((p) => /^9 \(28, 28, 1\) \[\s*0\.\s+7\.\s+14\.\s+21\.\]$/.test(p))).toBe(true);
}, 300_000);
