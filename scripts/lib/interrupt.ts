/**
 * SIGINT and SIGTERM for `npm run etl`. The first asks the command to stop
 * cleanly (abandon its run, stop its Worker): the long waits are raced
 * against it, and end with Interrupted. A second exits at once. One Ctrl-C may
 * arrive more than once, from the terminal (to the whole foreground process
 * group) and relayed by npm to its script: repeats within REPEAT_MS are the
 * same keypress.
 */
import { constants } from "node:os";

export type StopSignal = "SIGINT" | "SIGTERM";

const REPEAT_MS = 300;

/** The exit code of a command stopped by `signal`, as a shell reports one killed by it: 130, 143. */
export const signalExitCode = (signal: StopSignal): number => 128 + constants.signals[signal];

/** How a wait ends once a signal has come: the command unwinds to its clean stop. */
export class Interrupted extends Error {
  constructor(readonly signal: StopSignal) {
    super(`interrupted by ${signal}`);
  }
}

export interface Interrupts {
  /** The first signal, once one has come. */
  readonly signal: StopSignal | undefined;
  /** `work`'s result, or Interrupted as soon as a signal comes (the work then goes on unheeded). */
  race<T>(work: Promise<T>): Promise<T>;
}

/** Handles SIGINT and SIGTERM from now on. `exit`: what a second signal does (tests pass their own). */
export function watchInterrupts(exit: (code: number) => void = (code) => process.exit(code)): Interrupts {
  let first: { signal: StopSignal; at: number } | undefined;
  let interrupt: (err: Interrupted) => void = () => {};
  const interrupted = new Promise<never>((_, fail) => (interrupt = fail));
  interrupted.catch(() => {}); // observed by race(), if ever
  const handle = (signal: StopSignal) => {
    if (first === undefined) {
      first = { signal, at: Date.now() };
      interrupt(new Interrupted(signal));
    } else if (Date.now() - first.at >= REPEAT_MS) {
      exit(signalExitCode(signal));
    }
  };
  process.on("SIGINT", handle);
  process.on("SIGTERM", handle);
  return {
    get signal() {
      return first?.signal;
    },
    race: <T>(work: Promise<T>) => Promise.race([work, interrupted]),
  };
}
