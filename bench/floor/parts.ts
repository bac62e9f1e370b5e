/** The parts of the required stack the floor Worker times (stack.ts); no imports, so Node can load it. */
export type StackPart = "archives" | "queue" | "mirror";
export const STACK_PARTS: readonly StackPart[] = ["archives", "queue", "mirror"];

export interface StackResult {
  readonly part: StackPart;
  readonly seconds: number;
  /** Inflated bytes, messages delivered, or bytes stored. */
  readonly amount: number;
}
