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
 *     norange                  ignore Range headers: 200 and the whole file, no Accept-Ranges
 *     type:<media type>        answer with this Content-Type (e.g. a web page in place of an archive)
 *   PUT /f/<name>/<file>?fault=next:<n>  on an uploaded fixture: serve this
 *                              body instead from request n + 1 on (a source that changes)
 *   GET /f/<name>/<file>/hits  how many times the file was requested
 * Both GETs honour one Range (bytes=a-b, a- or -n) as a server that supports
 * them does: 206 with Content-Range, 416 when unsatisfiable, and
 * Accept-Ranges: bytes on a 200. The faults that send a body (cut, hang,
 * trickle) apply to the range asked for, with its 206 headers.
 */
import { createReadStream, existsSync, statSync } from "node:fs";
import { createServer, type IncomingMessage, type OutgoingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";
import { join, resolve } from "node:path";
import type { TestProject } from "vitest/node";
import { byteRange } from "../scripts/lib/archive-server";

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

/**
 * The status, headers and byte span (inclusive) that answer `range` for a
 * file of `size` bytes; `status` 416 has no span.
 */
function answer(
  range: string | undefined,
  size: number,
): { status: number; headers: OutgoingHttpHeaders; start: number; end: number } {
  const r = byteRange(range, size);
  if (r === "unsatisfiable") return { status: 416, headers: { "Content-Range": `bytes */${size}` }, start: 0, end: -1 };
  if (r === undefined) {
    return { status: 200, headers: { "Content-Length": size, "Accept-Ranges": "bytes" }, start: 0, end: size - 1 };
  }
  const headers = { "Content-Length": r.end - r.start + 1, "Content-Range": `bytes ${r.start}-${r.end}/${size}` };
  return { status: 206, headers, ...r };
}

export default async function setup(project: TestProject) {
  if (!existsSync(SHARED)) throw new Error(`Fashion-MNIST archives not found at ${SHARED} (set FASHION_MNIST_DIR)`);
  const fixtures = new Map<string, Fixture>();
  const server = createServer(async (req, res) => {
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    const path = decodeURIComponent(url.pathname);
    if (path.startsWith("/fashion-mnist/")) {
      const file = join(SHARED, path.slice("/fashion-mnist/".length).replace(/[/\\]/g, ""));
      if (!existsSync(file)) return void res.writeHead(404).end("not found");
      const a = answer(req.headers.range, statSync(file).size);
      res.writeHead(a.status, { "Content-Type": "application/gzip", ...a.headers });
      if (a.status === 416) return void res.end();
      return void createReadStream(file, { start: a.start, end: a.end }).pipe(res);
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
    const whole = f.later && f.hits > f.later.after ? f.later.body : f.body;
    if (kind === "norange") return void res.writeHead(200, { "Content-Length": whole.length }).end(whole);
    const { status, headers, start, end } = answer(req.headers.range, whole.length);
    if (status === 416) return void res.writeHead(status, headers).end();
    const served = whole.subarray(start, end + 1);
    if (kind === "cut" && (b === undefined || f.hits <= Number(b))) {
      res.writeHead(status, headers);
      res.write(served.subarray(0, Number(a)));
      return void setTimeout(() => req.socket.destroy(), 20);
    }
    if (kind === "trickle") {
      res.writeHead(status, headers);
      const [step, every] = [Number(a), Number(b)];
      let at = 0;
      // Stopped when the client gives up, else it would write on into a closed socket for minutes.
      const timer = setInterval(() => {
        if (res.destroyed || res.writableEnded) return void clearInterval(timer);
        res.write(served.subarray(at, at + step));
        at += step;
        if (at >= served.length) {
          clearInterval(timer);
          res.end();
        }
      }, every);
      return void res.on("close", () => clearInterval(timer));
    }
    if (kind === "hang") {
      res.writeHead(status, headers);
      return void res.write(served.subarray(0, Math.min(64, served.length)));
    }
    res.writeHead(status, kind === "type" ? { ...headers, "Content-Type": a } : headers).end(served);
  });
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  const { port } = server.address() as AddressInfo;
  project.provide("archiveServer", `http://127.0.0.1:${port}`);
  return async () => {
    server.closeAllConnections();
    await new Promise((ok) => server.close(ok));
  };
}
