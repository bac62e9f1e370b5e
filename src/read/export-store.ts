/**
 * Exports read from R2 instead of D1: once a dataset version's .npy files are
 * materialised (pipeline/materialise.ts), an export of it is a byte range of
 * one stored object, streamed as R2 hands it over, with not one image row read
 * from D1. A slice (offset, limit) is its own header, computed here, followed
 * by the rows' bytes of the whole split's file.
 */
import type { Split } from "../core/datasets";
import {
  exportStem,
  locateRange,
  spanHeader,
  type ByteRange,
  type ExportKind,
  type ExportSpan,
  type NpyExport,
} from "./export";

/** Where a version's file lives in the bucket: one prefix per dataset, then one per version. */
export const exportKey = (dataset: string, version: string, split: Split, kind: ExportKind): string =>
  `${dataset}/${version}/${exportStem(split, kind)}.npy`;

/** The prefix of every version's files of a dataset, and of one version's. */
export const datasetPrefix = (dataset: string): string => `${dataset}/`;
export const versionPrefix = (dataset: string, version: string): string => `${dataset}/${version}/`;

export interface StoredSpan extends ExportSpan {
  readonly version: string;
  /** Rows in the whole split: the stored file holds all of them. */
  readonly rows: number;
}

/**
 * Bytes `range` (default: all) of the span's .npy file, from the stored file
 * of the whole split; undefined when there is nothing stored to serve from
 * (the object is missing, or not the size the whole file must be), and the
 * caller reads D1 instead. A range within the header reads nothing here
 * either: D1 answers it without reading a row.
 */
export async function storedExport(
  bucket: R2Bucket,
  span: StoredSpan,
  range?: ByteRange,
): Promise<NpyExport | undefined> {
  const { header, perRow, start, stop, dataStart, dataStop } = locateRange(span, range);
  if (dataStop <= dataStart) return undefined;

  const wholeHeader = spanHeader({ ...span, count: span.rows }).length;
  const wholeSize = wholeHeader + span.rows * perRow;
  const key = exportKey(span.dataset, span.version, span.split, span.kind);
  // The whole split's file from its start: its own header is the one asked for, so one range covers both.
  const whole = span.offset === 0 && span.count === span.rows;
  const part = whole
    ? { offset: start, length: stop - start }
    : { offset: wholeHeader + span.offset * perRow + dataStart, length: dataStop - dataStart };
  const object = await bucket.get(key, { range: part });
  if (object === null) return undefined;
  if (object.size !== wholeSize) {
    await object.body.cancel();
    console.error(`export ${key}: stored ${object.size} bytes, the file is ${wholeSize}; reading D1 instead`);
    return undefined;
  }
  const head = whole ? new Uint8Array(0) : header.subarray(Math.min(start, header.length), header.length);
  return { body: prefixed(head, object.body), byteLength: stop - start };
}

/** `head`, then everything `rest` yields. */
function prefixed(head: Uint8Array, rest: ReadableStream<Uint8Array>): ReadableStream<Uint8Array> {
  if (head.length === 0) return rest;
  const reader = rest.getReader();
  let headSent = false;
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        if (!headSent) {
          headSent = true;
          controller.enqueue(head);
          return;
        }
        const { done, value } = await reader.read();
        if (done) controller.close();
        else controller.enqueue(value);
      },
      cancel: (reason) => reader.cancel(reason),
    },
    { highWaterMark: 0 },
  );
}
