/**
 * Runs in Node before the workerd tests: an HTTP server on 127.0.0.1 that plays
 * the archive source. It serves
 *   GET /fashion-mnist/<file>  the real archives from ../shared/fashion-mnist
 *   PUT /f/<name>/<file>       a fixture uploaded by a test, served back by
 *   GET /f/<name>/<file>       with the faults named at upload (?fault=…):
 *     status:<code>[:<times>]  answer <code> the first <times> requests (default: always)
 *     cut:<bytes>[:<times>]    send the headers for the whole file, then stop after <bytes>
 *                              (the first <times> requests; default: always)
 *     hang                     send the headers and some bytes, then nothing
 *     trickle:<bytes>:<ms>     send the headers for the whole file, then <bytes> bytes
 *                              every <ms> ms until done or the client goes away
 *     refuse                   drop the connection without answering
 *   PUT /f/<name>/<file>?fault=next:<n>  on an uploaded fixture: serve this
 *                              body instead from request n + 1 on (a source that changes)
 *   GET /f/<name>/<file>/hits  how many times the file was requested
 */
import { createReadStream, existsSync } from "node:fs";
import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { join, resolve } from "node:path";
import type { TestProject } from "vitest/node";

const SHARED = resolve(process.env.FASHION_MNIST_DIR ?? "../shared/fashion-mnist");

interface Fixture {
  body: Buffer;
  fault?: string;
  hits: number;
  later?: { after: number; body: Buffer };
}

const body = async (req: IncomingMessage): Promise<Buffer> => {
  const parts: Buffer[] = [];
  for await (const p of req) parts.push(p as Buffer);
  return Buffer.concat(parts);
};

export default async function setup(project: TestProject) {
  if (!existsSync(SHARED)) throw new Error(`Fashion-MNIST archives not found at ${SHARED} (set FASHION_MNIST_DIR)`);
  const fixtures = new Map<string, Fixture>();
  const server = createServer(async (req, res) => {
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    const path = decodeURIComponent(url.pathname);
    if (path.startsWith("/fashion-mnist/")) {
      const file = join(SHARED, path.slice("/fashion-mnist/".length).replace(/[/\\]/g, ""));
      if (!existsSync(file)) return void res.writeHead(404).end("not found");
      res.writeHead(200, { "Content-Type": "application/gzip" });
      return void createReadStream(file).pipe(res);
    }
    if (path.endsWith("/hits")) {
      return void res.end(String(fixtures.get(path.slice(0, -"/hits".length))?.hits ?? 0));
    }
    if (req.method === "PUT") {
      const fault = url.searchParams.get("fault") ?? undefined;
      const next = /^next:(\d+)$/.exec(fault ?? "");
      const existing = fixtures.get(path);
      if (next && existing) existing.later = { after: Number(next[1]), body: await body(req) };
      else fixtures.set(path, { body: await body(req), fault, hits: 0 });
      return void res.writeHead(201).end();
    }
    const f = fixtures.get(path);
    if (!f) return void res.writeHead(404).end("not found");
    f.hits++;
    const [kind, a, b] = (f.fault ?? "").split(":");
    if (kind === "status" && (b === undefined || f.hits <= Number(b)))
      return void res.writeHead(Number(a)).end("fault");
    if (kind === "refuse") return void req.socket.destroy();
    if (kind === "cut" && (b === undefined || f.hits <= Number(b))) {
      res.writeHead(200, { "Content-Length": f.body.length });
      res.write(f.body.subarray(0, Number(a)));
      return void setTimeout(() => req.socket.destroy(), 20);
    }
    if (kind === "trickle") {
      res.writeHead(200, { "Content-Length": f.body.length });
      const [step, every] = [Number(a), Number(b)];
      let at = 0;
      // Stopped when the client gives up, else it would write on into a closed socket for minutes.
      const timer = setInterval(() => {
        if (res.destroyed || res.writableEnded) return void clearInterval(timer);
        res.write(f.body.subarray(at, at + step));
        at += step;
        if (at >= f.body.length) {
          clearInterval(timer);
          res.end();
        }
      }, every);
      return void res.on("close", () => clearInterval(timer));
    }
    if (kind === "hang") {
      res.writeHead(200, { "Content-Length": f.body.length });
      return void res.write(f.body.subarray(0, Math.min(64, f.body.length)));
    }
    const served = f.later && f.hits > f.later.after ? f.later.body : f.body;
    res.writeHead(200, { "Content-Length": served.length }).end(served);
  });
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  const { port } = server.address() as AddressInfo;
  project.provide("archiveServer", `http://127.0.0.1:${port}`);
  return async () => {
    server.closeAllConnections();
    await new Promise((ok) => server.close(ok));
  };
}
