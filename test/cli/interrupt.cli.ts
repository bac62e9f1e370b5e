/**
 * `npm run etl` stopped before its run ends, as users stop it, on one fresh
 * --persist-to state: Ctrl-C (SIGINT to its process group, the runtime
 * included), SIGTERM, a second signal, SIGKILL; and a second command on the
 * same state while one runs. What must hold each time: the next command
 * starts its run at once, no run is left active, and the dataset in D1 is
 * the last complete run's.
 */
import { mkdir, mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, expect, it } from "vitest";
import { FASHION_MNIST } from "../../src/core/registry";
import { localD1 } from "../../scripts/lib/dev-server";
import { idxBytes } from "../idx-fixtures";
import { etl, startEtl, type EtlChild } from "./etl-process";

/** A dataset in Fashion-MNIST's file layout, label i % 10; `big` takes seconds to load, long enough to be stopped. */
async function writeDataset(dir: string, counts: { train: number; test: number }): Promise<void> {
  await mkdir(dir);
  for (const spec of FASHION_MNIST.splits) {
    const n = counts[spec.split];
    const pixels = Uint8Array.from({ length: n * 784 }, (_, i) => (i * 7 + (i >> 10)) % 256);
    const labels = Uint8Array.from({ length: n }, (_, i) => i % 10);
    await writeFile(join(dir, spec.images.file), gzipSync(idxBytes([n, 28, 28], pixels), { level: 1 }));
    await writeFile(join(dir, spec.labels.file), gzipSync(idxBytes([n], labels)));
  }
}

let work: string;
let state: string;
let small: string;
let big: string;
const children: EtlChild[] = [];

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "idx-etl-interrupt-"));
  state = join(work, "state");
  small = join(work, "small");
  big = join(work, "big");
  await writeDataset(small, { train: 600, test: 100 });
  await writeDataset(big, { train: 30_000, test: 5_000 });
});

afterAll(async () => {
  for (const c of children) {
    try {
      c.kill("SIGKILL", true);
    } catch {}
  }
  await rm(work, { recursive: true, force: true });
});

const runs = () =>
  localD1<{ id: string; status: string; error: string | null }>("SELECT id, status, error FROM runs", {
    persistTo: state,
  });
const lockExists = () =>
  stat(join(state, "etl.lock")).then(
    () => true,
    () => false,
  );

/** The big load, started, once it has printed its run's id. */
async function startBig(opts: { npm?: boolean } = {}): Promise<{ child: EtlChild; runId: string }> {
  const child = startEtl(["--source", big, "--persist-to", state], opts);
  children.push(child);
  const [, runId] = await child.waitFor(/^run (\S+): source /m);
  return { child, runId: runId! };
}

const IMAGES_LOADED = "\\d+ train and \\d+ test images loaded";

it("Ctrl-C, SIGTERM, a second signal and SIGKILL each leave no run in the way of the next command; a second command on the state is refused at once", async () => {
  const first = await etl(["--source", small, "--persist-to", state]);
  expect(first.stderr + first.stdout).toMatch(/complete in/);
  expect(first.code).toBe(0);
  expect(await lockExists()).toBe(false);

  // Ctrl-C in a terminal: SIGINT to the whole process group, npm, workerd and esbuild included, and npm relays it too.
  // The run is abandoned and the command says so, then exits 130 itself: npm waited for it (it was not killed).
  const a = await startBig({ npm: true });
  a.child.kill("SIGINT", true);
  const aDone = await a.child.exited;
  expect(aDone.stderr).toMatch(
    new RegExp(
      `^etl: SIGINT: run ${a.runId} abandoned, ${IMAGES_LOADED}; fashion-mnist in D1 is as its last complete run left it\\.$`,
      "m",
    ),
  );
  expect(aDone.code).toBe(130);
  expect(aDone.signal).toBeNull();
  expect(await lockExists()).toBe(false);

  // At once, another: it starts its run (no 409). While it runs, a third on the same state is refused before it
  // starts a Worker, naming the one that holds the state.
  const b = await startBig();
  const refused = await etl(["--source", small, "--persist-to", state]);
  expect(refused.stderr).toContain(`etl: another npm run etl (pid ${b.child.pid}, since `);
  expect(refused.stderr).toContain("wait for it to end, or give this one a state of its own with --persist-to DIR");
  expect(refused.stdout).not.toContain("worker:");
  expect(refused.code).toBe(1);
  // SIGKILL: no clean stop. The next command finds the run its dead holder left active and abandons it.
  b.child.kill("SIGKILL", true);
  expect((await b.child.exited).code).toBe(137);
  expect(await lockExists()).toBe(true);

  // SIGTERM to the command alone, then again while it abandons its run: it quits at once, leaving its run to the next.
  const d = await startBig();
  expect(d.child.stdout).toMatch(
    new RegExp(
      `^run ${b.runId} \\(fashion-mnist, ${IMAGES_LOADED}\\) was held by npm run etl \\(pid ${b.child.pid}\\), which ended without stopping it: its queued work is gone with it, so it is abandoned\\. fashion-mnist in D1 is as its last complete run left it\\.$`,
      "m",
    ),
  );
  d.child.kill("SIGTERM");
  const firstAt = Date.now();
  await d.child.waitFor(new RegExp(`^etl: SIGTERM: abandoning run ${d.runId}`, "m"), 10_000, "stderr");
  // Past the window in which repeats count as one signal; the abandoning takes a Worker's start, a second or more.
  await new Promise((r) => setTimeout(r, firstAt + 400 - Date.now()));
  const again = Date.now();
  d.child.kill("SIGTERM");
  const dDone = await d.child.exited;
  expect(dDone.code).toBe(143);
  expect(dDone.at - again).toBeLessThan(1000);
  expect(dDone.stderr).not.toContain(`run ${d.runId} abandoned`);
  expect(await lockExists()).toBe(true);

  const last = await etl(["--source", small, "--persist-to", state, "--force"]);
  expect(last.stdout).toMatch(
    new RegExp(
      `^run ${d.runId} \\(fashion-mnist, ${IMAGES_LOADED}\\) was held by npm run etl \\(pid ${d.child.pid}\\)`,
      "m",
    ),
  );
  expect(last.stderr + last.stdout).toMatch(/complete in/);
  expect(last.code).toBe(0);
  expect(await lockExists()).toBe(false);

  const byId = new Map((await runs()).map((r) => [r.id, r]));
  for (const id of [a.runId, b.runId, d.runId])
    expect(byId.get(id), id).toMatchObject({
      status: "failed",
      error: "abandoned by request (POST /runs/:id/abandon)",
    });
  expect([...byId.values()].filter((r) => r.status !== "failed" && r.status !== "complete")).toEqual([]);
  expect(
    await localD1("SELECT split, COUNT(*) AS n FROM images GROUP BY split ORDER BY split", { persistTo: state }),
  ).toEqual([
    { split: "test", n: 100 },
    { split: "train", n: 600 },
  ]);
});
