/**
 * A huge file through the Prisma write path and back: `TORTURE_HUGE_MIB` MiB (default 256 in CI;
 * `npm run torture` uses 1024) generated on the fly, uploaded with `upload(stream)` in
 * `post.create` on a default `S3Storage` (8 MiB parts, 4 at a time), then read back through the
 * row's `cover.open()` and compared on the fly. Peak RSS growth (sampled every 20 ms from
 * `process.memoryUsage().rss`, after a warm-up) stays under 64 MiB in both directions: nothing
 * buffers the file, whatever its size.
 */
import { randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { createSession, MemoryStorage, type S3Session, S3Storage, upload } from "../../src/index.js";
import { s3Files } from "../../src/prisma/extension.js";
import { listKeys, sessionOptionsFor } from "../harness/s3.js";
import { fileFields, plainClient } from "../prisma/client.js";
import { envInt, MiB, rssSampler } from "./support.js";

const s3 = inject("s3");
const SIZE_MIB = envInt("TORTURE_HUGE_MIB", 256);
const LIMIT = 64 * MiB;
const location = `torture/huge-${randomBytes(3).toString("hex")}`;

/** A full collection before each baseline, so garbage of earlier work is not counted (or not freed) mid-measurement. */
setFlagsFromString("--expose-gc");
const collect = runInNewContext("gc") as () => void;

/** The content: 1 MiB of fixed pseudo-random bytes, rotated differently in each MiB, so every offset has a known byte. */
const BLOCK = (() => {
  const b = Buffer.allocUnsafe(MiB);
  let x = 0x9e3779b9;
  for (let i = 0; i < MiB; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
})();
const rotation = (chunk: number) => (chunk * 7919) % MiB;

/** Writes the expected bytes for [offset, offset + out.length) into `out`. */
function expected(offset: number, out: Buffer): void {
  let written = 0;
  while (written < out.length) {
    const pos = offset + written;
    const chunk = Math.floor(pos / MiB);
    const within = pos % MiB;
    const take = Math.min(out.length - written, MiB - within);
    const start = (within + rotation(chunk)) % MiB;
    const first = Math.min(take, MiB - start);
    BLOCK.copy(out, written, start, start + first);
    if (first < take) BLOCK.copy(out, written + first, 0, take - first);
    written += take;
  }
}

/**
 * Chunks the source cycles through, allocated before measuring: the source itself adds no
 * garbage, so RSS growth is what the library holds. A consumer holding more than `RING` chunks
 * at once would see them overwritten, and the read-back comparison would catch it.
 */
const RING = 24;
const ring = Array.from({ length: RING }, () => Buffer.alloc(MiB)); // zero-filled: resident before measuring

/** `size` bytes, produced 1 MiB at a time as they are read. */
function generated(size: number): Readable {
  return Readable.from(
    (function* () {
      for (let offset = 0, n = 0; offset < size; offset += MiB, n++) {
        const chunk = ring[n % RING]!.subarray(0, Math.min(MiB, size - offset));
        expected(offset, chunk);
        yield chunk;
      }
    })(),
    // One chunk read ahead, like a network stream (Readable.from would otherwise buffer 16 MiB here).
    { highWaterMark: 1 },
  );
}

let session: S3Session;
let prisma: ReturnType<typeof makeClient>;
const plain = plainClient();

function makeClient() {
  return plainClient().$extends(
    s3Files(session, {
      fields: fileFields,
      storages: {
        default: new S3Storage({ session, location }),
        private: new S3Storage({ session, location: `${location}-private` }),
        public: new MemoryStorage(),
      },
    }),
  );
}

beforeAll(() => {
  session = createSession(sessionOptionsFor(s3));
  prisma = makeClient();
});

afterAll(async () => {
  await prisma?.$disconnect();
  await plain.$disconnect();
  await session?.destroy();
});

describe("a huge file through upload() and open()", () => {
  it(`${SIZE_MIB} MiB in post.create and back through cover.open(): RSS growth under 64 MiB, bytes equal`, async () => {
    const size = SIZE_MIB * MiB;
    const author = await prisma.user.create({
      data: { email: `huge-${location.slice(-6)}@huge.torture`, badge: "badges/huge.pdf" },
    });
    // Warm-up: one 64 MiB round trip loads the code paths and lets the allocator reach its steady
    // state (its arenas stay with the process), so the measurement shows growth with the file's
    // size, not the first use of multipart buffers.
    const warm = await prisma.post.create({
      data: {
        title: "warm-up",
        cover: upload(generated(64 * MiB), { filename: "warm.bin" }),
        author: { connect: { id: author.id } },
      },
    });
    for await (const _ of await warm.cover!.open()) {
      // drain
    }
    await prisma.post.delete({ where: { id: warm.id } });

    collect();
    const up = rssSampler(20);
    const t0 = Date.now();
    const post = await prisma.post.create({
      data: {
        title: "huge",
        cover: upload(generated(size), { filename: "huge.bin" }),
        author: { connect: { id: author.id } },
      },
    });
    const upload_ = up.stop();
    const uploadSeconds = (Date.now() - t0) / 1000;
    expect(await post.cover!.size()).toBe(size);

    collect();
    const down = rssSampler(20);
    const t1 = Date.now();
    let offset = 0;
    let mismatch: number | undefined;
    const scratch = Buffer.alloc(4 * MiB);
    const row = await prisma.post.findUniqueOrThrow({ where: { id: post.id } });
    for await (const chunk of await row.cover!.open()) {
      const got = chunk as Buffer;
      for (let at = 0; at < got.length && mismatch === undefined; at += scratch.length) {
        const part = got.subarray(at, at + scratch.length);
        const want = scratch.subarray(0, part.length);
        expected(offset + at, want);
        if (!part.equals(want)) {
          for (let k = 0; k < part.length; k++) {
            if (part[k] !== want[k]) {
              mismatch = offset + at + k;
              break;
            }
          }
        }
      }
      offset += got.length;
      if (mismatch !== undefined) break;
    }
    const download = down.stop();
    const downloadSeconds = (Date.now() - t1) / 1000;

    console.log(
      `[torture:huge-file] ${SIZE_MIB} MiB: upload ${uploadSeconds.toFixed(1)}s, peak RSS growth ${(upload_.growth / MiB).toFixed(1)} MiB ` +
        `(Buffers ${(upload_.buffersGrowth / MiB).toFixed(1)} MiB, ${upload_.samples} samples); read back ${downloadSeconds.toFixed(1)}s, ` +
        `peak RSS growth ${(download.growth / MiB).toFixed(1)} MiB (Buffers ${(download.buffersGrowth / MiB).toFixed(1)} MiB, ${download.samples} samples)`,
    );
    expect(mismatch, "first differing byte").toBeUndefined();
    expect(offset, "bytes read back").toBe(size);
    expect(upload_.growth, "peak RSS growth while uploading").toBeLessThan(LIMIT);
    expect(download.growth, "peak RSS growth while reading back").toBeLessThan(LIMIT);

    await prisma.user.delete({ where: { id: author.id } });
    // The cascade leaves the cover to the sweeper; remove it here.
    await new S3Storage({ session, location }).delete(post.cover!.name);
    expect(await listKeys(s3, location)).toEqual([]);
  }, 900_000);
});
