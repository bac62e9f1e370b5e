/**
 * Serves a directory's IDX archives over HTTP on 127.0.0.1, so a local copy
 * of a dataset goes through exactly the same download path as a remote one.
 * It honours a single-range Range request, as the official servers do: a
 * dataset published as one zip (EMNIST's gzip.zip) is read member by member.
 */
import { createReadStream } from "node:fs";
import { access, stat } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join, resolve } from "node:path";
import { FASHION_MNIST } from "../../src/core/registry";

export interface ArchiveServer {
  readonly url: string;
  close(): Promise<void>;
}

export const archiveFiles = (): string[] => FASHION_MNIST.splits.flatMap((s) => [s.images.file, s.labels.file]);

/**
 * The bytes a Range header asks of a file of `size` bytes, inclusive, for the
 * one-range forms `bytes=a-b`, `bytes=a-` and `bytes=-n`. Undefined when there
 * is no Range header, or one to ignore (several ranges, a malformed one) by
 * serving the whole file, as RFC 9110 allows; "unsatisfiable" for a 416.
 */
export function byteRange(
  header: string | undefined,
  size: number,
): { start: number; end: number } | "unsatisfiable" | undefined {
  const m = /^bytes=(\d*)-(\d*)$/.exec(header?.trim() ?? "");
  if (!m || (m[1] === "" && m[2] === "")) return undefined;
  if (m[1] === "") {
    const n = Number(m[2]);
    if (n === 0 || size === 0) return "unsatisfiable";
    return { start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === "" ? Infinity : Number(m[2]);
  if (end < start) return undefined;
  if (start >= size) return "unsatisfiable";
  return { start, end: Math.min(end, size - 1) };
}

export async function serveArchives(dir: string, files: readonly string[] = archiveFiles()): Promise<ArchiveServer> {
  const root = resolve(dir);
  const missing: string[] = [];
  for (const f of files) await access(join(root, f)).catch(() => missing.push(f));
  if (missing.length > 0) throw new Error(`${root} lacks ${missing.join(", ")}`);
  const server = createServer(async (req, res) => {
    const name = decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname.slice(1));
    if (!files.includes(name)) {
      res.writeHead(404).end();
      return;
    }
    const path = join(root, name);
    const { size } = await stat(path);
    const type = name.endsWith(".zip") ? "application/zip" : "application/gzip";
    const range = byteRange(req.headers.range, size);
    if (range === "unsatisfiable") {
      res.writeHead(416, { "Content-Range": `bytes */${size}` }).end();
      return;
    }
    if (range === undefined) {
      res.writeHead(200, { "Content-Type": type, "Content-Length": size, "Accept-Ranges": "bytes" });
      createReadStream(path).pipe(res);
      return;
    }
    res.writeHead(206, {
      "Content-Type": type,
      "Content-Length": range.end - range.start + 1,
      "Content-Range": `bytes ${range.start}-${range.end}/${size}`,
    });
    createReadStream(path, range).pipe(res);
  });
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise((ok) => server.close(() => ok())),
  };
}
