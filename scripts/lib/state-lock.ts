/**
 * Which `npm run etl` holds a local state, and which run it is loading:
 * `<state>/etl.lock`, a small JSON file. It is created exclusively before the
 * command starts a Worker (two runtimes on one state trip over each other's
 * D1 writes), names the run once the run has started, and is removed when
 * the command ends. One left behind by a process that is gone (SIGKILL)
 * names a run whose queued work died with that process's runtime (Miniflare
 * holds local queue messages in memory): the next command takes the lock
 * over and abandons that run. Runs started over HTTP (`npm run dev`) are
 * never in it, and are left alone.
 */
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { link, mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";

export interface Holder {
  readonly pid: number;
  /**
   * The process's start time (clock ticks since boot, from /proc/<pid>/stat):
   * a pid reused by another process after a reboot or a wrap-around has
   * another. Absent where /proc is not (macOS): there a reused pid makes the
   * lock look held until that process ends, a small risk taken knowingly.
   */
  readonly start?: string;
  readonly since: string;
  /** Tells this lock from a later one of the same process. */
  readonly nonce: string;
  /** The run the holder started, once it has. */
  readonly runId?: string;
}

/** Another process holds the state: its holder, for the message. */
export class StateBusy extends Error {
  constructor(
    readonly path: string,
    readonly holder: Holder,
  ) {
    super(`${path} is held by pid ${holder.pid}`);
  }
}

export const isAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
};

/** Field 22 of /proc/<pid>/stat, counted after the command name, which may hold spaces and parentheses. */
export function processStart(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
  } catch {
    return undefined;
  }
}

/** Whether the holder's process is still the one running under its pid. */
export function holderAlive(
  holder: Holder,
  probe: { alive(pid: number): boolean; start(pid: number): string | undefined } = {
    alive: isAlive,
    start: processStart,
  },
): boolean {
  if (!probe.alive(holder.pid)) return false;
  const start = holder.start === undefined ? undefined : probe.start(holder.pid);
  return start === undefined || start === holder.start;
}

export function parseHolder(text: string): Holder | undefined {
  try {
    const h = JSON.parse(text) as Partial<Holder>;
    return typeof h.pid === "number" && typeof h.nonce === "string" && typeof h.since === "string"
      ? (h as Holder)
      : undefined;
  } catch {
    return undefined;
  }
}

const readHolder = async (path: string): Promise<Holder | undefined | null> => {
  const text = await readFile(path, "utf8").catch((err: NodeJS.ErrnoException) => {
    if (err.code === "ENOENT") return null;
    throw err;
  });
  return text === null ? null : parseHolder(text);
};

export class StateLock {
  private constructor(
    readonly path: string,
    private holder: Holder,
  ) {}

  /**
   * Takes `<stateDir>/etl.lock`, or throws StateBusy if a live process holds
   * it. `stale`: the holder of one left behind by a dead process, taken over.
   */
  static async acquire(stateDir: string): Promise<{ lock: StateLock; stale?: Holder }> {
    await mkdir(stateDir, { recursive: true });
    const path = join(stateDir, "etl.lock");
    const start = processStart(process.pid);
    const mine: Holder = {
      pid: process.pid,
      ...(start !== undefined ? { start } : {}),
      since: new Date().toISOString(),
      nonce: randomBytes(8).toString("hex"),
    };
    let stale: Holder | undefined;
    for (let attempt = 0; ; attempt++) {
      if (await createExclusive(path, mine)) return { lock: new StateLock(path, mine), ...(stale ? { stale } : {}) };
      const held = await readHolder(path);
      if (held === null) continue; // removed meanwhile: try again
      if (held !== undefined && holderAlive(held)) throw new StateBusy(path, held);
      // A dead process's lock is taken over; so is an unreadable one, which this code never writes (createExclusive
      // links only whole files). Others racing for it may make a few rounds; more would be a loop.
      if (attempt >= 5) throw new Error(`${path}: could not take over a stale lock`);
      if (await removeIfSame(path, held)) stale = held ?? stale;
    }
  }

  /** Names the run this process holds: a later command knows whose it was if this process dies. */
  async recordRun(runId: string): Promise<void> {
    this.holder = { ...this.holder, runId };
    const tmp = `${this.path}.${process.pid}.tmp`;
    await writeFile(tmp, JSON.stringify(this.holder));
    await rename(tmp, this.path);
  }

  /** Removes the lock if it is still this process's. */
  async release(): Promise<void> {
    const held = await readHolder(this.path).catch(() => undefined);
    if (held?.nonce === this.holder.nonce) await rm(this.path, { force: true });
  }
}

/** Creates `path` holding `holder`, only if it does not exist: link() is atomic, and the file is whole when linked. */
async function createExclusive(path: string, holder: Holder): Promise<boolean> {
  const tmp = `${path}.${process.pid}.${holder.nonce}.tmp`;
  await writeFile(tmp, JSON.stringify(holder));
  try {
    await link(tmp, path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw err;
  } finally {
    await rm(tmp, { force: true });
  }
}

/**
 * Removes the stale lock `held` (undefined: an unreadable one), unless another
 * command replaced it meanwhile: the file is moved aside atomically, and put
 * back if it turns out to be a newer lock than the one judged stale.
 */
async function removeIfSame(path: string, held: Holder | undefined): Promise<boolean> {
  const aside = `${path}.${process.pid}.stale`;
  try {
    await rename(path, aside);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw err;
  }
  const moved = await readHolder(aside);
  const same = held === undefined ? moved === undefined : moved?.nonce === held.nonce;
  if (!same) await link(aside, path).catch(() => {});
  await rm(aside, { force: true });
  return same;
}
