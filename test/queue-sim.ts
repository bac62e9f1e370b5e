/**
 * A production-like Queues broker for tests. Miniflare delivers one batch at a
 * time per queue; production runs up to `max_concurrency` consumer invocations
 * at once, in no particular order, at least once. This broker drives the
 * Worker's own queue handler (`worker.queue`) the way production would:
 *
 *   - batches of up to `max_batch_size` (read from wrangler.toml), made of
 *     whatever is ready when a consumer slot frees up (max_batch_timeout = 0
 *     behaviour; timeouts are not simulated);
 *   - up to `max_concurrency` invocations of a queue in flight at once (250,
 *     Cloudflare's limit, if wrangler.toml sets none), or what the test says;
 *   - shuffled order (seeded), and optionally duplicate deliveries: a sent
 *     message is then delivered twice, independently (at-least-once);
 *   - `msg.retry()`, `retryAll()` and a thrown handler redeliver with attempts+1
 *     after the delay (the message's own, else the consumer's `retry_delay`),
 *     scaled from seconds down to `msPerSecond` milliseconds so tests stay fast;
 *     explicitly acknowledged messages of a thrown batch are not redelivered;
 *   - a message that failed `max_retries` + 1 deliveries goes to the consumer's
 *     `dead_letter_queue`, whose consumer (the same handler) gets it.
 *
 * The handler's env has the simulated queues as its producer bindings (JOBS,
 * CHUNKS: every `[[queues.producers]]` of wrangler.toml), so what the extraction
 * job sends is captured here and delivered to the chunk consumer.
 *
 * Each invocation gets a real `createMessageBatch` batch and a fresh execution
 * context; `getQueueResult` reads its acks and retries (the batch the handler
 * sees wraps the real one only to note the retry delays, which getQueueResult
 * does not report).
 */
import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { parse } from "smol-toml";
import wranglerToml from "../wrangler.toml?raw";
import { mulberry32 } from "./flaky-d1";

/** A `[[queues.consumers]]` entry as wrangler.toml spells it. */
export interface ConsumerConfig {
  readonly queue: string;
  readonly max_batch_size?: number;
  readonly max_batch_timeout?: number;
  readonly max_retries?: number;
  readonly dead_letter_queue?: string;
  readonly max_concurrency?: number;
  readonly retry_delay?: number;
}

export interface ProducerConfig {
  readonly binding: string;
  readonly queue: string;
}

/** wrangler.toml, parsed (the same text `wrangler` and the vitest pool read). */
export const wrangler = parse(wranglerToml) as unknown as {
  readonly queues: { readonly producers: readonly ProducerConfig[]; readonly consumers: readonly ConsumerConfig[] };
};

/** Cloudflare's defaults for what a consumer entry leaves out (queues/configuration/batching-retries). */
export const CONSUMER_DEFAULTS = { max_batch_size: 10, max_retries: 3, max_concurrency: 250, retry_delay: 0 } as const;

export function consumerConfig(queue: string): ConsumerConfig | undefined {
  return wrangler.queues.consumers.find((c) => c.queue === queue);
}

export type QueueHandler = (batch: MessageBatch<unknown>, env: Env, ctx: ExecutionContext) => void | Promise<void>;

export interface QueueSimOptions {
  /** The Worker's queue handler: `worker.queue` from src/index.ts. */
  readonly handler: QueueHandler;
  /** The env the handler gets; its producer bindings are replaced by the simulated queues. */
  readonly env: Env;
  /** Seeds the shuffling and the duplicates. */
  readonly seed?: number;
  /** Concurrent invocations per queue name, overriding wrangler.toml's max_concurrency. */
  readonly concurrency?: Readonly<Record<string, number>>;
  /** Probability that a sent message is delivered twice (two independent deliveries). */
  readonly duplicateRate?: number;
  /** Real milliseconds per second of delay (delaySeconds, retry_delay). Default 10: 2 s → 20 ms. */
  readonly msPerSecond?: number;
}

export interface DeadLetter {
  readonly queue: string;
  readonly body: unknown;
  readonly attempts: number;
}

export interface QueueSimStats {
  sent: Record<string, number>;
  /** Handler invocations per queue. */
  invocations: Record<string, number>;
  /** The most invocations of a queue that were in flight at once. */
  maxInFlight: Record<string, number>;
  /** Messages acknowledged (explicitly, by ackAll, or by returning). */
  acked: number;
  /** Redeliveries scheduled (retry, retryAll, thrown handler). */
  retried: number;
  /** Invocations whose handler threw. */
  thrown: number;
  /** Extra deliveries made to simulate at-least-once delivery. */
  duplicates: number;
  /** Messages that exhausted their retries, in order. */
  deadLettered: DeadLetter[];
  /** Errors of the broker itself (never of the handler); a test should expect none. */
  brokerErrors: unknown[];
}

interface Delivery {
  readonly id: string;
  readonly body: unknown;
  readonly attempts: number;
  readonly timestamp: Date;
}

const QUEUE_SEND_MAX_MESSAGES = 100;

export class QueueSim {
  readonly env: Env;
  readonly stats: QueueSimStats = {
    sent: {},
    invocations: {},
    maxInFlight: {},
    acked: 0,
    retried: 0,
    thrown: 0,
    duplicates: 0,
    deadLettered: [],
    brokerErrors: [],
  };

  private readonly randoms = new Map<string, () => number>();
  private readonly ready = new Map<string, Delivery[]>();
  private readonly inFlight = new Map<string, number>();
  private readonly paused = new Set<string>();
  /** Timers (delayed messages, scheduled pumps) not yet fired. */
  private timers = 0;
  private nextId = 0;
  private waiters: (() => void)[] = [];

  constructor(private readonly opts: QueueSimOptions) {
    const producers: Record<string, Queue> = {};
    for (const p of wrangler.queues.producers) producers[p.binding] = this.producer(p.queue);
    this.env = { ...opts.env, ...producers } as Env;
  }

  /** A producer binding for `queue`, as the handler's env carries it. */
  producer(queue: string): Queue {
    const metadata = () => ({ metrics: { backlogCount: this.ready.get(queue)?.length ?? 0, backlogBytes: 0 } });
    return {
      send: async (body: unknown, options?: QueueSendOptions) => {
        this.send(queue, body, options?.delaySeconds);
        return { metadata: metadata() };
      },
      sendBatch: async (messages: Iterable<MessageSendRequest>, options?: QueueSendBatchOptions) => {
        const list = [...messages];
        if (list.length > QUEUE_SEND_MAX_MESSAGES)
          throw new Error(`sendBatch: ${list.length} messages, at most ${QUEUE_SEND_MAX_MESSAGES} allowed`);
        for (const m of list) this.send(queue, m.body, m.delaySeconds ?? options?.delaySeconds);
        return { metadata: metadata() };
      },
      metrics: async () => metadata().metrics,
    } as unknown as Queue;
  }

  /** Put a message on `queue`, as a producer would (the body is copied, as serialization does). */
  send(queue: string, body: unknown, delaySeconds = 0): void {
    this.stats.sent[queue] = (this.stats.sent[queue] ?? 0) + 1;
    const copy = structuredClone(body);
    const id = `${queue}-${this.nextId++}`;
    this.enqueue(queue, { id, body: copy, attempts: 1, timestamp: new Date() }, delaySeconds);
    if ((this.opts.duplicateRate ?? 0) > 0 && this.random(queue)() < this.opts.duplicateRate!) {
      this.stats.duplicates++;
      // Its own delivery id, so that both copies can be in one batch and be told apart.
      this.enqueue(
        queue,
        { id: `${id}-dup`, body: structuredClone(body), attempts: 1, timestamp: new Date() },
        delaySeconds,
      );
    }
  }

  /** Hold deliveries of `queue` (like `wrangler queues pause-delivery`); messages accumulate. */
  pause(queue: string): void {
    this.paused.add(queue);
  }

  resume(queue: string): void {
    this.paused.delete(queue);
    this.schedule(queue);
  }

  /**
   * Take the bodies of the messages waiting on `queue` (a paused one, typically)
   * off it, in the order they were sent: the test delivers them itself.
   */
  take(queue: string): unknown[] {
    const list = this.ready.get(queue) ?? [];
    this.ready.set(queue, []);
    return list.map((d) => d.body);
  }

  /** Messages of `queue` waiting for delivery (delayed ones excluded). */
  backlog(queue: string): number {
    return this.ready.get(queue)?.length ?? 0;
  }

  /**
   * Resolves when nothing can happen any more: no invocation in flight, no
   * delayed message pending, and no deliverable message (paused queues keep theirs).
   */
  async settled(timeoutMs = 30_000): Promise<QueueSimStats> {
    if (!this.isSettled()) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        new Promise<void>((resolve) => this.waiters.push(resolve)),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () =>
              reject(
                new Error(
                  `queues not settled after ${timeoutMs} ms: ${JSON.stringify({
                    inFlight: Object.fromEntries(this.inFlight),
                    ready: Object.fromEntries([...this.ready].map(([q, l]) => [q, l.length])),
                    timers: this.timers,
                  })}`,
                ),
              ),
            timeoutMs,
          );
        }),
      ]).finally(() => timer !== undefined && clearTimeout(timer));
    }
    return this.stats;
  }

  private isSettled(): boolean {
    if (this.timers > 0) return false;
    for (const n of this.inFlight.values()) if (n > 0) return false;
    for (const [queue, list] of this.ready)
      if (list.length > 0 && !this.paused.has(queue) && this.consumes(queue)) return false;
    return true;
  }

  private checkSettled(): void {
    if (!this.isSettled()) return;
    const waiters = this.waiters;
    this.waiters = [];
    for (const resolve of waiters) resolve();
  }

  /**
   * One seeded sequence per queue: how one queue's deliveries are shuffled does
   * not depend on when another queue's consumer happened to run.
   */
  private random(queue: string): () => number {
    let r = this.randoms.get(queue);
    if (!r) {
      let h = this.opts.seed ?? 1;
      for (let i = 0; i < queue.length; i++) h = Math.imul(h ^ queue.charCodeAt(i), 0x9e3779b1);
      r = mulberry32(h);
      this.randoms.set(queue, r);
    }
    return r;
  }

  /** The stats with each dead letter described rather than dumped (bodies carry pixels). */
  summary(): Record<string, unknown> {
    return { ...this.stats, deadLettered: this.stats.deadLettered.map(describeDeadLetter) };
  }

  private consumes(queue: string): boolean {
    return consumerConfig(queue) !== undefined;
  }

  private concurrency(queue: string): number {
    return (
      this.opts.concurrency?.[queue] ?? consumerConfig(queue)?.max_concurrency ?? CONSUMER_DEFAULTS.max_concurrency
    );
  }

  private enqueue(queue: string, delivery: Delivery, delaySeconds: number): void {
    const ms = Math.max(0, delaySeconds) * (this.opts.msPerSecond ?? 10);
    if (ms === 0) {
      this.ready.set(queue, [...(this.ready.get(queue) ?? []), delivery]);
      this.schedule(queue);
      return;
    }
    this.timers++;
    setTimeout(() => {
      this.timers--;
      this.ready.set(queue, [...(this.ready.get(queue) ?? []), delivery]);
      this.pump(queue);
      this.checkSettled();
    }, ms);
  }

  /** Pump on a later turn: a producer's send returns before any consumer runs. */
  private schedule(queue: string): void {
    this.timers++;
    setTimeout(() => {
      this.timers--;
      this.pump(queue);
      this.checkSettled();
    }, 0);
  }

  private pump(queue: string): void {
    const cfg = consumerConfig(queue);
    if (!cfg || this.paused.has(queue)) return;
    const ready = this.ready.get(queue) ?? [];
    const size = cfg.max_batch_size ?? CONSUMER_DEFAULTS.max_batch_size;
    while (ready.length > 0 && (this.inFlight.get(queue) ?? 0) < this.concurrency(queue)) {
      const batch: Delivery[] = [];
      while (batch.length < size && ready.length > 0) {
        batch.push(ready.splice(Math.floor(this.random(queue)() * ready.length), 1)[0]!);
      }
      const n = (this.inFlight.get(queue) ?? 0) + 1;
      this.inFlight.set(queue, n);
      this.stats.maxInFlight[queue] = Math.max(this.stats.maxInFlight[queue] ?? 0, n);
      this.stats.invocations[queue] = (this.stats.invocations[queue] ?? 0) + 1;
      void this.invoke(queue, cfg, batch)
        .catch((err: unknown) => void this.stats.brokerErrors.push(err))
        .finally(() => {
          this.inFlight.set(queue, (this.inFlight.get(queue) ?? 1) - 1);
          this.pump(queue);
          this.checkSettled();
        });
    }
    this.ready.set(queue, ready);
  }

  private async invoke(queue: string, cfg: ConsumerConfig, deliveries: readonly Delivery[]): Promise<void> {
    const real = createMessageBatch(
      queue,
      deliveries.map((d) => ({ id: d.id, timestamp: d.timestamp, attempts: d.attempts, body: d.body })),
    );
    // What getQueueResult does not report: the delay each retry asked for (the first call wins).
    const delays = new Map<string, number | undefined>();
    let batchDelay: number | undefined;
    const seen: MessageBatch<unknown> = {
      queue: real.queue,
      metadata: { metrics: { backlogCount: this.backlog(queue), backlogBytes: 0 } },
      messages: real.messages.map((m) => ({
        id: m.id,
        timestamp: m.timestamp,
        body: m.body,
        attempts: m.attempts,
        ack: () => m.ack(),
        retry: (o?: QueueRetryOptions) => {
          if (!delays.has(m.id)) delays.set(m.id, o?.delaySeconds);
          m.retry(o);
        },
      })),
      ackAll: () => real.ackAll(),
      retryAll: (o?: QueueRetryOptions) => {
        batchDelay ??= o?.delaySeconds;
        real.retryAll(o);
      },
    };
    const ctx = createExecutionContext();
    let thrown = false;
    try {
      await this.opts.handler(seen, this.env, ctx);
    } catch {
      thrown = true; // the runtime logs it; the batch's undecided messages are retried
      this.stats.thrown++;
    }
    const result = await getQueueResult(real, ctx);
    const acked = new Set(result.explicitAcks);
    const retried = new Set(result.retryMessages.map((r) => r.msgId));
    const retryDelay = cfg.retry_delay ?? CONSUMER_DEFAULTS.retry_delay;
    for (const d of deliveries) {
      if (retried.has(d.id)) this.retry(queue, cfg, d, delays.get(d.id) ?? retryDelay);
      else if (acked.has(d.id)) this.stats.acked++;
      else if (thrown || result.retryBatch.retry) this.retry(queue, cfg, d, batchDelay ?? retryDelay);
      else this.stats.acked++; // ackAll, or the handler returned
    }
  }

  private retry(queue: string, cfg: ConsumerConfig, d: Delivery, delaySeconds: number): void {
    const maxRetries = cfg.max_retries ?? CONSUMER_DEFAULTS.max_retries;
    if (d.attempts <= maxRetries) {
      this.stats.retried++;
      this.enqueue(queue, { ...d, attempts: d.attempts + 1 }, delaySeconds);
      return;
    }
    this.stats.deadLettered.push({ queue, body: d.body, attempts: d.attempts });
    if (cfg.dead_letter_queue !== undefined) {
      this.stats.sent[cfg.dead_letter_queue] = (this.stats.sent[cfg.dead_letter_queue] ?? 0) + 1;
      this.enqueue(
        cfg.dead_letter_queue,
        { id: `${cfg.dead_letter_queue}-${this.nextId++}`, body: d.body, attempts: 1, timestamp: new Date() },
        0,
      );
    }
  }
}

/** "idx-etl-chunks: chunk train 560+20 after 6 deliveries": a dead letter in a line. */
export function describeDeadLetter(d: DeadLetter): string {
  const b = (typeof d.body === "object" && d.body !== null ? d.body : {}) as Record<string, unknown>;
  const what = b.kind === "chunk" ? `chunk ${String(b.split)} ${String(b.start)}+${String(b.count)}` : String(b.kind);
  return `${d.queue}: ${what} after ${d.attempts} deliveries`;
}
