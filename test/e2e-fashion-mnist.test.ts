/**
 * The real t10k archives, downloaded by the Worker from the test archive server
 * as the default ("official") source, so the published MD5s are enforced. The
 * train archives are served too: this is the whole pipeline on real data.
 */
import { env } from "cloudflare:workers";
import { expect, it } from "vitest";
import { FLOAT_OF_BYTE } from "../src/codec/transform";
import { runToEnd } from "./helpers";

const one = async <T>(sql: string, ...params: unknown[]) =>
  (await env.DB.prepare(sql)
    .bind(...params)
    .first<T>())!;

it("loads all 70,000 real Fashion-MNIST images, bit-exact", async () => {
  const run = await runToEnd({}); // no source: the default, with MD5 checks
  expect(run.error).toBeNull();
  expect(run.status).toBe("complete");
  expect(run.splits).toEqual({ train: { expected: 60000, loaded: 60000 }, test: { expected: 10000, loaded: 10000 } });
  expect(run.checksums).toEqual({
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
  });
  // From the official source with the published MD5s checked: official, in the run and in the catalog.
  expect(run.official).toBe(true);
  expect(await one("SELECT official, source FROM datasets WHERE name = 'fashion-mnist'")).toEqual({
    official: 1,
    source: run.source,
  });

  const perLabel = await env.DB.prepare(
    "SELECT label, COUNT(*) AS n FROM images WHERE split = 'test' GROUP BY label",
  ).all();
  expect(perLabel.results).toEqual(Array.from({ length: 10 }, (_, label) => ({ label, n: 1000 })));
  expect(await one("SELECT COUNT(*) AS n FROM images WHERE split = 'train'")).toEqual({ n: 60000 });

  // t10k image 0 is an ankle boot; its first non-zero pixels (215, 216, 219) are 3, 1, 7, and pixel 400 is 1, 500 is 172.
  const first = await one<{ label: number; name: string; pixels: number[] }>(
    "SELECT i.label, c.name, i.pixels FROM images i JOIN classes c USING (label) WHERE split = 'test' AND idx = 0",
  );
  expect(first.label).toBe(9);
  expect(first.name).toBe("Ankle boot");
  // D1 hands BLOBs to JavaScript as arrays of byte values.
  const px = new Float32Array(Uint8Array.from(first.pixels).buffer);
  expect(px.length).toBe(28 * 28 * 1);
  expect(px[0]).toBe(0);
  expect([px[215], px[216], px[219], px[400], px[500]]).toEqual([3, 1, 7, 1, 172].map((b) => FLOAT_OF_BYTE[b]));
  // Sum of t10k image 0's bytes is 33456; of all t10k bytes 573469082 (numpy).
  expect(Math.round(px.reduce((a, b) => a + b, 0) * 255)).toBe(33456);
  const total = await one<{ s: number }>("SELECT SUM(length(pixels)) AS s FROM images WHERE split = 'test'");
  expect(total.s).toBe(10000 * 3136);
}, 120_000);
