/**
 * scripts/lib/state-lock.ts in this process: who holds a local state, and
 * when a lock left behind is taken over. interrupt.cli.ts runs the commands.
 */
import { spawnSync } from "node:child_process";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { holderAlive, processStart, StateBusy, StateLock, type Holder } from "../../scripts/lib/state-lock";

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "idx-etl-lock-"));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A pid no process has now: a child's, once it has exited. */
const deadPid = (): number => spawnSync("true").pid!;

const holder = (h: Partial<Holder>): Holder => ({ pid: 1, since: "2026-01-01T00:00:00.000Z", nonce: "n", ...h });

it("is held by one process at a time, names its run, and goes on release", async () => {
  const state = join(dir, "held");
  const { lock, stale } = await StateLock.acquire(state);
  expect(stale).toBeUndefined();
  const path = join(state, "etl.lock");
  expect(JSON.parse(await readFile(path, "utf8"))).toMatchObject({
    pid: process.pid,
    start: processStart(process.pid),
  });
  await lock.recordRun("run-1");
  expect(JSON.parse(await readFile(path, "utf8"))).toMatchObject({ pid: process.pid, runId: "run-1" });

  const busy = await StateLock.acquire(state).catch((err: unknown) => err);
  expect(busy).toBeInstanceOf(StateBusy);
  expect((busy as StateBusy).holder).toMatchObject({ pid: process.pid, runId: "run-1" });

  await lock.release();
  expect(await readdir(state)).toEqual([]);
  const next = await StateLock.acquire(state);
  await next.lock.release();
});

it("takes over a lock whose process is gone, or whose pid another process now has, and says which run it held", async () => {
  for (const [name, left] of [
    ["dead", holder({ pid: deadPid(), nonce: "a", runId: "run-dead" })],
    ["reused", holder({ pid: process.pid, start: "1", nonce: "b", runId: "run-reused" })],
  ] as const) {
    const state = join(dir, name);
    await StateLock.acquire(state).then(({ lock }) => lock.release());
    await writeFile(join(state, "etl.lock"), JSON.stringify(left));
    const { lock, stale } = await StateLock.acquire(state);
    expect(stale, name).toEqual(left);
    expect(JSON.parse(await readFile(join(state, "etl.lock"), "utf8")).nonce, name).not.toBe(left.nonce);
    await lock.release();
    expect(await readdir(state), name).toEqual([]);
  }
});

it("a holder is alive while its pid runs with the start time recorded, or with none recorded", () => {
  const probe = (alive: boolean, start: string | undefined) => ({ alive: () => alive, start: () => start });
  expect(holderAlive(holder({ start: "7" }), probe(true, "7"))).toBe(true);
  expect(holderAlive(holder({ start: "7" }), probe(true, "8"))).toBe(false);
  expect(holderAlive(holder({ start: "7" }), probe(false, "7"))).toBe(false);
  expect(holderAlive(holder({}), probe(true, "8"))).toBe(true);
  // The start time is unreadable (the process ended meanwhile, or no /proc): the pid decides.
  expect(holderAlive(holder({ start: "7" }), probe(true, undefined))).toBe(true);
  if (process.platform === "linux") expect(processStart(process.pid)).toMatch(/^\d+$/);
});
