/**
 * `npm run etl -- --list`: the registry as a compact table, from
 * src/core/registry.ts alone (no Worker, no D1), so it answers at once and
 * offline. Each dataset's title and mirrors go on lines of their own under
 * its row: side by side they would not fit a terminal.
 */
import type { DatasetSpec } from "../../src/core/datasets";
import { REGISTRY } from "../../src/core/registry";
import { archiveUrl } from "../../src/codec/source";

/** Class names as far as they fit in `width` characters, after how many there are. */
function classPreview(classes: readonly string[], width: number): string {
  let out = `${classes.length}: `;
  for (const [i, c] of classes.entries()) {
    const next = `${out}${i > 0 ? ", " : ""}${c}`;
    if (next.length > width && i > 0) return `${out}, …`;
    out = next;
  }
  return out;
}

const count = (d: DatasetSpec, split: string): string =>
  d.splits.find((s) => s.split === split)?.count?.toLocaleString("en") ?? "?";

/** A zip mirror by the zip's own URL, the one a run reads. */
const mirrorUrls = (d: DatasetSpec): string[] =>
  d.mirrors.map((m) => (m.packaging === "zip" && d.zip ? archiveUrl(m.url, d.zip.file) : m.url));

export function registryTable(): string {
  const rows = REGISTRY.map((d) => ({
    cells: [
      d.name,
      d.shape ? `${d.shape.rows}×${d.shape.cols}×${d.shape.channels}` : "?",
      count(d, "train"),
      count(d, "test"),
      classPreview(d.classes ?? [], 44),
    ],
    details: [d.title, ...mirrorUrls(d).map((u) => `mirror ${u}`)],
  }));
  const head = ["name", "shape", "train", "test", "classes"];
  const right = [false, false, true, true, false];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r.cells[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (right[i] ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join("  ")
      .trimEnd();
  return [
    line(head),
    ...rows.flatMap((r) => [line(r.cells), ...r.details.map((d) => `    ${d}`)]),
    "",
    "npm run etl -- --dataset NAME [--source DIR|URL]   loads one; any other NAME is a custom dataset, which names its files:",
    "npm run etl -- --dataset NAME --source DIR|URL --train-images F --train-labels F --test-images F --test-labels F [--classes A,B,…]",
  ].join("\n");
}
