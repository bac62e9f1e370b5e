/**
 * The layers of src/ and the one direction of their imports (docs/architecture.md):
 * the entry (index.ts) → http → pipeline → read → db → codec → core. A module
 * may import its own folder and the folders below it, never one above or beside.
 */
import { readdir, readFile } from "node:fs/promises";
import { dirname, join, normalize, relative, sep } from "node:path";
import { expect, it } from "vitest";

/** Each folder of src/ and what it may import besides itself. */
const MAY_IMPORT: Record<string, readonly string[]> = {
  core: [],
  codec: ["core"],
  db: ["codec", "core"],
  read: ["db", "codec", "core"],
  pipeline: ["read", "db", "codec", "core"],
  http: ["pipeline", "read", "db", "codec", "core"],
};

async function sources(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  return entries.filter((e) => e.isFile() && e.name.endsWith(".ts")).map((e) => join(e.parentPath, e.name));
}

it("every module of src/ imports only its own layer and the layers below it, and says its job in a header", async () => {
  const wrong: string[] = [];
  const folders = new Set<string>();
  for (const file of await sources("src")) {
    const [, layer, ...rest] = relative(".", file).split(sep);
    const text = await readFile(file, "utf8");
    if (!text.startsWith("/**")) wrong.push(`${file}: no header comment saying its job`);
    if (rest.length === 0) continue; // src/index.ts, the entry, and src/env.ts (types only)
    folders.add(layer!);
    const allowed = MAY_IMPORT[layer!];
    if (!allowed) {
      wrong.push(`${file}: folder src/${layer} is not one of the layers`);
      continue;
    }
    for (const [, spec] of text.matchAll(/from\s+"(\.{1,2}\/[^"]+)"/g)) {
      const target = normalize(join(dirname(file), spec!)).split(sep);
      if (target[0] !== "src") continue; // package.json (the API's version)
      const to = target.length > 2 ? target[1]! : "the entry";
      if (to !== layer && !allowed.includes(to)) wrong.push(`${file} imports ${spec} (${to})`);
    }
  }
  expect(wrong).toEqual([]);
  expect([...folders].sort()).toEqual(Object.keys(MAY_IMPORT).sort());
});
