import { Readable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { readableChunks } from "../../src/storage/content.js";

const KiB = 1024;

/** A byte stream (not object mode) pushing `count` chunks of `size` bytes; `pushed` are the very Buffers. */
function byteSource(count: number, size: number, highWaterMark = 4 * size) {
  const pushed: Buffer[] = [];
  let reads = 0;
  const stream = new Readable({
    highWaterMark,
    read() {
      reads++;
      if (pushed.length === count) {
        this.push(null);
        return;
      }
      const chunk = Buffer.alloc(size, pushed.length);
      pushed.push(chunk);
      this.push(chunk);
    },
  });
  return { stream, pushed, reads: () => reads };
}

describe("readableChunks", () => {
  it("hands over each pushed chunk as is, where Readable's own iterator joins what is buffered", async () => {
    const joined = byteSource(16, 64 * KiB);
    joined.stream.read(0); // start buffering: several chunks wait when the iterator first reads
    await sleep(5);
    const viaIterator: Buffer[] = [];
    for await (const c of joined.stream) viaIterator.push(c as Buffer);
    // The built-in iterator's read() concatenates: fewer, larger, copied chunks.
    expect(viaIterator.length).toBeLessThan(16);

    const source = byteSource(16, 64 * KiB);
    source.stream.read(0);
    await sleep(5);
    const got: unknown[] = [];
    for await (const c of readableChunks(source.stream)) got.push(c);
    expect(got).toHaveLength(16);
    for (const [i, c] of got.entries()) expect(c).toBe(source.pushed[i]); // the same Buffers: no copy
  });

  it("reads ahead no further than the stream's high-water mark while the consumer waits", async () => {
    const source = byteSource(1000, 64 * KiB, 256 * KiB);
    const iterator = readableChunks(source.stream)[Symbol.asyncIterator]();
    await iterator.next();
    await sleep(50);
    // One chunk handed over, at most the high-water mark (4 chunks) buffered, one being pushed.
    expect(source.pushed.length).toBeLessThanOrEqual(6);
    await iterator.return(undefined);
    expect(source.stream.destroyed).toBe(true);
  });

  it("an early return pauses instead of destroying when asked (a server's request body)", async () => {
    const source = byteSource(100, 16 * KiB);
    for await (const _ of readableChunks(source.stream, false)) break;
    expect(source.stream.destroyed).toBe(false);
    expect(source.stream.isPaused()).toBe(true);
    // The rest can still be read by whoever owns it.
    let rest = 0;
    for await (const c of source.stream) rest += (c as Buffer).byteLength;
    expect(rest).toBe(99 * 16 * KiB);
  });

  it("rejects with the stream's error, and on a close before the end", async () => {
    const failing = new Readable({
      read() {
        this.destroy(new Error("disk gone"));
      },
    });
    await expect(drain(readableChunks(failing))).rejects.toThrow("disk gone");

    const source = byteSource(100, 16 * KiB);
    const cut = drain(readableChunks(source.stream), () => source.stream.destroy());
    await expect(cut).rejects.toMatchObject({ code: "ERR_STREAM_PREMATURE_CLOSE" });
  });

  it("ends on an empty stream and reads a stream someone else listens to with 'readable' the usual way", async () => {
    expect(await drain(readableChunks(Readable.from([])))).toBe(0);
    const source = byteSource(8, 16 * KiB);
    source.stream.on("readable", () => undefined);
    expect(await drain(readableChunks(source.stream))).toBe(8 * 16 * KiB);
  });
});

/** Bytes in `chunks`; `afterFirst` runs once the first chunk is in. */
async function drain(chunks: AsyncIterable<unknown>, afterFirst?: () => void): Promise<number> {
  let n = 0;
  for await (const c of chunks) {
    if (n === 0) afterFirst?.();
    n += (c as Buffer).byteLength ?? 0;
  }
  return n;
}

describe("readableChunks with object-mode streams", () => {
  it("hands over every object, undefined included, for the caller to refuse", async () => {
    const values: unknown[] = [];
    for await (const v of readableChunks(Readable.from(["a", undefined, "b"]))) values.push(v);
    expect(values).toEqual(["a", undefined, "b"]);
  });
});
