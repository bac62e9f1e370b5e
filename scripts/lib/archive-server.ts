/**
 * Serves a directory's IDX archives over HTTP on 127.0.0.1, so a local copy
 * of a dataset goes through exactly the same download path as a remote one.
 */
import { createReadStream } from "node:fs";
import { access, stat } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join, resolve } from "node:path";
import { FASHION_MNIST } from "../../src/core/datasets";

export interface ArchiveServer {
  readonly url: string;
  close(): Promise<void>;
}

export const archiveFiles = (): string[] => FASHION_MNIST.splits.flatMap((s) => [s.images.file, s.labels.file]);

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
    res.writeHead(200, { "Content-Type": "application/gzip", "Content-Length": size });
    createReadStream(path).pipe(res);
  });
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise((ok) => server.close(() => ok())),
  };
}
