/**
 * What the required stack adds to the Worker floor, measured part by part in
 * the floor's Worker: the work a load of these archives cannot skip beyond
 * binding its rows into D1, done with nothing of the product around it.
 *
 * - `archives`: the four archives checked and inflated as a run must (fflate,
 *   the gzip trailer's CRC-32 and length, their MD5s), in the product's
 *   256 KiB blocks, through the product's own VerifyingGunzip.
 * - `queue`: the load's chunk messages (CHUNK_SIZE images each) sent as v8
 *   in pairs and delivered to a consumer that only acknowledges them, 4 per
 *   batch (the product's consumer settings).
 * - `mirror`: the four archives stored in R2 as a run keeps them
 *   (rawKeeper: one put, or a multipart upload of 5 MiB parts).
 *
 * Local Queues deliver to this Worker's own isolate, so the consumer counts
 * into a module variable that the sender polls.
 */
import { VerifyingGunzip } from "../../src/codec/gunzip";
import { workersMd5 } from "../../src/codec/digest";
import { READ_BLOCK_BYTES } from "../../src/pipeline/archive";
import { rawKeeper } from "../../src/pipeline/raw-archives";
import type { StackPart, StackResult } from "./parts";

export interface StackEnv {
  readonly CHUNKS: Queue<ChunkBody>;
  readonly MIRROR: R2Bucket;
}

export interface ChunkBody {
  readonly labels: Uint8Array;
  readonly pixels: Uint8Array;
}

const MESSAGES_PER_SEND = 2;

/** The archives as served, by file name (POST /archive). */
const archives = new Map<string, Uint8Array>();
let delivered = 0;

export const keepArchive = (file: string, bytes: Uint8Array): void => void archives.set(file, bytes);

/** The queue consumer: acknowledges and counts. */
export function consume(batch: MessageBatch<ChunkBody>): void {
  for (const m of batch.messages) {
    if (m.body.pixels.length > 0) delivered++;
    m.ack();
  }
}

/** Every archive checked and inflated; the inflated bytes' total. */
async function inflateAll(): Promise<number> {
  let inflated = 0;
  for (const [file, gz] of archives) {
    const gunzip = new VerifyingGunzip(file);
    const md5 = workersMd5();
    for (let at = 0; at < gz.length; at += READ_BLOCK_BYTES) {
      const block = gz.subarray(at, at + READ_BLOCK_BYTES);
      await md5.update(block);
      for (const out of gunzip.push(block)) inflated += out.length;
    }
    for (const out of gunzip.finish()) inflated += out.length;
    await md5.hex();
  }
  return inflated;
}

/** Each split's images as chunk messages of `shape.chunk` images through the queue and back. */
async function roundTrip(queue: Queue<ChunkBody>, splits: readonly Uint8Array[], shape: ChunkShape) {
  delivered = 0;
  let sent = 0;
  for (const pixels of splits) sent += await send(queue, pixels, shape);
  while (delivered < sent) await new Promise((r) => setTimeout(r, 2));
  return sent;
}

async function send(queue: Queue<ChunkBody>, pixels: Uint8Array, { chunk, pixelsPerImage }: ChunkShape) {
  const images = pixels.length / pixelsPerImage;
  const chunks = Math.ceil(images / chunk);
  for (let c = 0; c < chunks; c += MESSAGES_PER_SEND) {
    const messages = [];
    for (let k = c; k < Math.min(c + MESSAGES_PER_SEND, chunks); k++) {
      const from = k * chunk;
      const n = Math.min(chunk, images - from);
      // A copy, as the producer's: a view would serialize its whole backing buffer.
      const px = pixels.slice(from * pixelsPerImage, (from + n) * pixelsPerImage);
      messages.push({ body: { labels: new Uint8Array(n), pixels: px }, contentType: "v8" as const });
    }
    await queue.sendBatch(messages);
  }
  return chunks;
}

async function mirror(bucket: R2Bucket): Promise<number> {
  const keeper = rawKeeper(bucket, "fashion-mnist", crypto.randomUUID());
  let bytes = 0;
  for (const [file, gz] of archives) {
    const copy = keeper.begin(file)!;
    for (let at = 0; at < gz.length; at += READ_BLOCK_BYTES) await copy.write(gz.subarray(at, at + READ_BLOCK_BYTES));
    await copy.commit(`md5-of-${file}`);
    bytes += gz.length;
  }
  return bytes;
}

/** Images per chunk message, and bytes per image. */
export interface ChunkShape {
  readonly chunk: number;
  readonly pixelsPerImage: number;
}

/** One part, timed; `splits` are the pixels the floor holds (train, test). */
export async function stackPart(
  part: StackPart,
  env: StackEnv,
  splits: readonly Uint8Array[],
  shape: ChunkShape,
): Promise<StackResult> {
  if (archives.size !== 4) throw new Error(`POST /archive the four archives first (have ${archives.size})`);
  // Workers' clock moves only across I/O: a timer on both sides makes the interval the work's.
  await new Promise((r) => setTimeout(r, 0));
  const t0 = performance.now();
  const amount =
    part === "archives"
      ? await inflateAll()
      : part === "queue"
        ? await roundTrip(env.CHUNKS, splits, shape)
        : await mirror(env.MIRROR);
  await new Promise((r) => setTimeout(r, 0));
  return { part, seconds: (performance.now() - t0) / 1000, amount };
}
