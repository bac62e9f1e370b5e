/**
 * Serves a directory's IDX archives over HTTP on 127.0.0.1, so a local copy
 * of a dataset goes through exactly the same download path as a remote one.
 * It honours a single-range Range request, as the official servers do: a
 * dataset published as one zip (EMNIST's gzip.zip) is read member by member.
 * Also which files of a directory a dataset's run needs (localArchives).
 */
import { createReadStream } from "node:fs";
import { access, stat } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { basename, dirname, join, resolve } from "node:path";
import type { DatasetSpec } from "../../src/core/datasets";
import { FASHION_MNIST } from "../../src/core/registry";

export interface ArchiveServer {
  readonly url: string;
  close(): Promise<void>;
}

/** A dataset's four files; a zip member by its base name, as the pipeline asks a source for loose files. */
export const archiveFiles = (spec: DatasetSpec = FASHION_MNIST): string[] =>
  spec.splits.flatMap((s) => [s.images.file, s.labels.file]).map((f) => f.replace(/^.*\//, ""));

/** What to serve for a run from a local path: these files of `dir`, and the source is the server's URL + `path`. */
export interface LocalArchives {
  readonly dir: string;
  readonly files: readonly string[];
  /** A file the source URL names itself (a zip); "" for the directory. */
  readonly path: string;
}

const exists = (path: string): Promise<boolean> =>
  access(path).then(
    () => true,
    () => false,
  );

/**
 * The files a run of `spec` needs from a local `source`, or an error naming
 * what is missing and where. A dataset published as a zip (EMNIST) is served
 * as its zip when the directory has one (the source then names the zip, so
 * the Worker reads it at once instead of first asking for loose files), else
 * as its members, loose, by their base names; a zip file itself is accepted
 * as the source too.
 */
export async function localArchives(spec: DatasetSpec, source: string): Promise<LocalArchives> {
  const root = resolve(source);
  const info = await stat(root).catch(() => undefined);
  if (!info) throw new Error(`--source ${root}: no such directory`);
  if (info.isFile()) {
    if (spec.zip && /\.zip$/i.test(root)) return { dir: dirname(root), files: [basename(root)], path: basename(root) };
    throw new Error(`--source ${root} is a file: give the directory that holds the files of ${spec.name}, or a URL`);
  }
  const loose = archiveFiles(spec);
  if (spec.zip && (await exists(join(root, spec.zip.file)))) {
    return { dir: root, files: [spec.zip.file], path: spec.zip.file };
  }
  const missing: string[] = [];
  for (const f of loose) if (!(await exists(join(root, f)))) missing.push(f);
  if (missing.length > 0) {
    const all = missing.length === loose.length;
    throw new Error(
      spec.zip
        ? all
          ? `${root} has neither ${spec.zip.file} nor ${spec.name}'s four files loose (${loose.join(", ")})`
          : `${root} has neither ${spec.zip.file} nor ${missing.join(", ")}: ${spec.name} is read from ${spec.zip.file}, or from its four files loose (${loose.join(", ")})`
        : all
          ? `${root} has none of ${spec.name}'s files: ${loose.join(", ")}`
          : `${root} has no ${missing.join(", ")}: ${spec.name} needs ${loose.join(", ")}`,
    );
  }
  return { dir: root, files: loose, path: "" };
}

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
