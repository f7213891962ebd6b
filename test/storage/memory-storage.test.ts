import { Readable } from "node:stream";
import { describe, expect, it } from "vitest";
import { FileExistsError, StorageError, SuspiciousFileOperationError } from "../../src/errors.js";
import type { ByteRange, MoveObjectRequest, ObjectStat, WriteObjectRequest } from "../../src/storage/base-storage.js";
import { filepathToUri } from "../../src/storage/base-storage.js";
import {
  ContentTooLargeError,
  meterContent,
  normalizeContent,
  readAll,
  resolveContentType,
} from "../../src/storage/content.js";
import { MemoryStorage } from "../../src/storage/memory-storage.js";
import type { SaveProgress } from "../../src/storage/storage.js";
import { describeStorageConformance, UNSAFE_NAMES } from "./conformance.js";

describeStorageConformance("MemoryStorage", async ({ fileOverwrite, limitSegments }) => {
  // No limit by default; the name-length tests set MinIO's and the file systems' 255 bytes.
  const maxSegmentBytes = limitSegments ? 255 : undefined;
  const storage = new MemoryStorage({ baseUrl: "https://media.example.com/files/", fileOverwrite, maxSegmentBytes });
  return { storage, listAll: async () => storage.keys(), maxSegmentBytes };
});

/** Records every primitive call, and can make writes fail on demand. */
class SpyStorage extends MemoryStorage {
  calls: string[] = [];
  /** Throw this many FileExistsErrors from writeObject before writing. */
  clashes = 0;
  /** Return this name from writeObject instead of the stored one. */
  returnName: string | undefined;

  protected override async writeObject(request: WriteObjectRequest): Promise<string> {
    this.calls.push(`write:${request.name}`);
    if (this.clashes > 0) {
      this.clashes--;
      throw new FileExistsError(request.name);
    }
    const stored = await super.writeObject(request);
    return this.returnName ?? stored;
  }
  protected override async openObject(name: string, range: ByteRange): Promise<Readable> {
    this.calls.push(`open:${name}`);
    return super.openObject(name, range);
  }
  protected override async statObject(name: string): Promise<ObjectStat> {
    this.calls.push(`stat:${name}`);
    return super.statObject(name);
  }
  protected override async objectExists(name: string): Promise<boolean> {
    this.calls.push(`exists:${name}`);
    return super.objectExists(name);
  }
  protected override async deleteObject(name: string): Promise<void> {
    this.calls.push(`delete:${name}`);
    return super.deleteObject(name);
  }
  protected override async moveObject(request: MoveObjectRequest): Promise<string> {
    this.calls.push(`move:${request.from}->${request.name}`);
    return super.moveObject(request);
  }
}

describe("MemoryStorage specifics", () => {
  it("keeps the content type (explicit, Blob type, extension, fallback) and metadata", async () => {
    const storage = new MemoryStorage();
    await storage.save("a.json", Buffer.from("{}"), { contentType: "text/x-explicit", metadata: { owner: "7" } });
    await storage.save("b.bin", new Blob(["x"], { type: "image/webp" }));
    await storage.save("c.png", Buffer.from("x"));
    await storage.save("d.unknown-ext", Buffer.from("x"));
    await storage.save("e.txt", new File(["x"], "e.txt", { type: "" }));
    expect(storage.getObject("a.json")).toMatchObject({ contentType: "text/x-explicit", metadata: { owner: "7" } });
    expect(storage.getObject("b.bin")?.contentType).toBe("image/webp");
    expect(storage.getObject("c.png")?.contentType).toBe("image/png");
    expect(storage.getObject("d.unknown-ext")?.contentType).toBe("application/octet-stream");
    expect(storage.getObject("e.txt")?.contentType).toBe("text/plain");
  });

  it("move keeps the content type, metadata and modification time", async () => {
    const storage = new MemoryStorage();
    await storage.save("pending/a.json", Buffer.from("{}"), {
      contentType: "text/x-explicit",
      metadata: { owner: "7" },
    });
    const before = storage.getObject("pending/a.json");
    expect(await storage.move("pending/a.json", "final/a.json")).toBe("final/a.json");
    expect(storage.getObject("final/a.json")).toEqual(before);
    expect(storage.keys()).toEqual(["final/a.json"]);
  });

  it("url: adds the trailing slash to baseUrl; without a baseUrl it is a StorageError", async () => {
    expect(await new MemoryStorage({ baseUrl: "/media" }).url("a b.txt")).toBe("/media/a%20b.txt");
    const error = await new MemoryStorage().url("a.txt").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StorageError);
    expect((error as StorageError).code).toBe("URL_UNAVAILABLE");
  });

  it("stored bytes cannot be changed through open() chunks", async () => {
    const storage = new MemoryStorage();
    await storage.save("x.txt", Buffer.from("abc"));
    for await (const chunk of await storage.open("x.txt")) (chunk as Buffer).fill(0);
    expect(Buffer.from(await storage.read("x.txt")).toString()).toBe("abc");
  });
});

describe("BaseStorage pipeline", () => {
  it("makes no storage call for a name that fails validation", async () => {
    const storage = new SpyStorage();
    for (const name of UNSAFE_NAMES) {
      await expect(storage.save(name, Buffer.from("x"))).rejects.toBeInstanceOf(SuspiciousFileOperationError);
      await expect(storage.open(name)).rejects.toBeInstanceOf(SuspiciousFileOperationError);
      await expect(storage.exists(name)).rejects.toBeInstanceOf(SuspiciousFileOperationError);
      await expect(storage.delete(name)).rejects.toBeInstanceOf(SuspiciousFileOperationError);
      await expect(storage.size(name)).rejects.toBeInstanceOf(SuspiciousFileOperationError);
    }
    expect(storage.calls).toEqual([]);
  });

  it("retries replayable content under another name after a clash from an exclusive create", async () => {
    const storage = new SpyStorage();
    storage.clashes = 2;
    const name = await storage.save("clash.txt", Buffer.from("payload"));
    expect(name).toMatch(/^clash_[A-Za-z0-9]{7}\.txt$/);
    expect(storage.calls.filter((c) => c.startsWith("write:"))).toHaveLength(3);
    expect(Buffer.from(await storage.read(name)).toString()).toBe("payload");
  });

  it("passes a clash on for one-shot streams (they cannot be read twice)", async () => {
    const storage = new SpyStorage();
    storage.clashes = 1;
    await expect(storage.save("clash.txt", Readable.from([Buffer.from("x")]))).rejects.toBeInstanceOf(FileExistsError);
    expect(storage.keys()).toEqual([]);
  });

  it("progress stays monotonic when a retry reads the content again", async () => {
    const events: number[] = [];
    // The first attempt reads a chunk before it clashes, so the retry starts again from zero.
    const data = Buffer.alloc(300_000, 1);
    let first = true;
    class HalfReadThenClash extends MemoryStorage {
      protected override async writeObject(request: WriteObjectRequest): Promise<string> {
        if (first) {
          first = false;
          for await (const _ of request.body) break;
          throw new FileExistsError(request.name);
        }
        return super.writeObject(request);
      }
    }
    const other = new HalfReadThenClash();
    await other.save("p.bin", data, { onProgress: (p: SaveProgress) => events.push(p.loaded) });
    expect(events.at(-1)).toBe(data.length);
    for (let i = 1; i < events.length; i++) expect(events[i]!).toBeGreaterThan(events[i - 1]!);
    expect(other.keys()).toHaveLength(1);
  });

  it("validates the name the backend returns (CVE-2021-45452)", async () => {
    const storage = new SpyStorage();
    storage.returnName = "../escaped.txt";
    await expect(storage.save("ok.txt", Buffer.from("x"))).rejects.toBeInstanceOf(SuspiciousFileOperationError);
  });

  it("validates the name a subclass's getAvailableName returns (CVE-2024-39330)", async () => {
    class Sneaky extends SpyStorage {
      override async getAvailableName(): Promise<string> {
        return "../../sneaky.txt";
      }
    }
    const storage = new Sneaky();
    await expect(storage.save("ok.txt", Buffer.from("x"))).rejects.toBeInstanceOf(SuspiciousFileOperationError);
    expect(storage.calls.filter((c) => c.startsWith("write:"))).toEqual([]);
  });

  it("wraps a backend's own error in a StorageError that keeps it as cause", async () => {
    const failure = new Error("disk on fire");
    class Broken extends MemoryStorage {
      protected override async statObject(): Promise<ObjectStat> {
        throw failure;
      }
    }
    const error = await new Broken().size("x.txt").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StorageError);
    expect((error as StorageError).cause).toBe(failure);
    expect((error as StorageError).fileName).toBe("x.txt");
  });

  it("names being written count as taken for getAvailableName", async () => {
    const storage = new MemoryStorage();
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const slow = (async function* () {
      await gate;
      yield Buffer.from("slow");
    })();
    const pending = storage.save("busy.txt", slow);
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(await storage.exists("busy.txt")).toBe(false);
    expect(await storage.getAvailableName("busy.txt")).toMatch(/^busy_[A-Za-z0-9]{7}\.txt$/);
    release();
    expect(await pending).toBe("busy.txt");
    expect(await storage.getAvailableName("other.txt")).toBe("other.txt");
  });
});

describe("BaseStorage byte limits (maxSegmentBytes, NAME_TOO_LONG)", () => {
  const bytes = (s: string) => Buffer.byteLength(s, "utf8");

  it("MemoryStorage has no limit by default: a 1200-byte file name is stored as given", async () => {
    const storage = new MemoryStorage();
    expect(storage.maxSegmentBytes).toBeUndefined();
    const name = `d/${"é".repeat(598)}.png`;
    expect(await storage.save(name, Buffer.from("x"))).toBe(name);
  });

  it("a too-long directory is refused before any storage call, by save, move and getAvailableName", async () => {
    const storage = new SpyStorage({ maxSegmentBytes: 255 });
    await storage.save("src.txt", Buffer.from("x"));
    storage.calls = [];
    const dir = "😀".repeat(64); // 256 bytes
    for (const run of [
      () => storage.save(`${dir}/x.txt`, Buffer.from("x")),
      () => storage.save(`${dir}/x.txt`, Readable.from([Buffer.from("x")])),
      () => storage.move("src.txt", `ok/${dir}/x.txt`),
      () => storage.getAvailableName(`${dir}/x.txt`),
    ]) {
      const error = await run().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(StorageError);
      expect(error).toMatchObject({ code: "NAME_TOO_LONG" });
      expect((error as Error).message).toMatch(
        /is 256 bytes, too long for this storage's limit of 255 bytes per path segment/,
      );
    }
    expect(storage.calls).toEqual([]);
    expect(storage.keys()).toEqual(["src.txt"]);
  });

  it("the first name the storage is asked about is already cut to fit", async () => {
    const storage = new SpyStorage({ maxSegmentBytes: 20 });
    const name = await storage.save("dir/ééééééééééééééé.txt", Buffer.from("x"));
    // 16 bytes of root (8 × é) + ".txt".
    expect(name).toBe("dir/éééééééé.txt");
    expect(storage.calls).toEqual([`exists:${name}`, `write:${name}`]);
  });

  it("a name cut by the byte limit still meets maxLength (characters), and the reverse", async () => {
    const storage = new MemoryStorage({ maxSegmentBytes: 30 });
    const requested = `${"😀".repeat(20)}.txt`;
    // Cut to 30 bytes: 6 × 4 + 4.
    expect(await storage.save(requested, Buffer.from("a"), { maxLength: 100 })).toBe(`${"😀".repeat(6)}.txt`);
    // Taken: `_XXXXXXX` costs 8 bytes, so two more characters go.
    const b = await storage.save(requested, Buffer.from("b"), { maxLength: 100 });
    expect(b).toMatch(/^(😀){4}_[A-Za-z0-9]{7}\.txt$/u);
    // maxLength binds first: 16 characters, well within 60 bytes.
    const wide = new MemoryStorage({ maxSegmentBytes: 60 });
    const c = await wide.save(requested, Buffer.from("c"), { maxLength: 16 });
    expect(c).toMatch(/^(😀){4}_[A-Za-z0-9]{7}\.txt$/u);
    expect(bytes(c)).toBe(28);
  });

  it("validates the option: a positive whole number, or Infinity for none", () => {
    for (const bad of [0, -1, 1.5, Number.NaN]) {
      expect(() => new MemoryStorage({ maxSegmentBytes: bad })).toThrow(RangeError);
    }
    expect(new MemoryStorage({ maxSegmentBytes: Number.POSITIVE_INFINITY }).maxSegmentBytes).toBeUndefined();
    expect(new MemoryStorage({ maxSegmentBytes: 143 }).maxSegmentBytes).toBe(143);
  });
});

describe("content helpers", () => {
  it("resolveContentType: explicit, else Blob type, else extension, else octet-stream", () => {
    expect(resolveContentType("a.png", { explicit: "text/plain", blobType: "image/gif" })).toBe("text/plain");
    expect(resolveContentType("a.png", { blobType: "image/gif" })).toBe("image/gif");
    expect(resolveContentType("a.png", { blobType: "" })).toBe("image/png");
    expect(resolveContentType("dir/archive.tar.gz")).toBe("application/gzip");
    expect(resolveContentType("noext")).toBe("application/octet-stream");
  });

  it("normalizeContent: lengths, Blob type and File name, replayability", async () => {
    const file = normalizeContent(new File(["hello"], "greeting.txt", { type: "text/plain" }));
    expect(file).toMatchObject({ length: 5, blobType: "text/plain", fileName: "greeting.txt", replayable: true });
    expect(Buffer.from(await readAll(file.open())).toString()).toBe("hello");
    expect(Buffer.from(await readAll(file.open())).toString()).toBe("hello");

    const stream = normalizeContent(Readable.from([Buffer.from("x")]));
    expect(stream).toMatchObject({ length: undefined, replayable: false });
    await readAll(stream.open());
    expect(() => stream.open()).toThrow(StorageError);

    expect(normalizeContent(new ArrayBuffer(3)).length).toBe(3);
    expect(() => normalizeContent({} as never)).toThrow(TypeError);
  });

  it("meterContent enforces a byte limit as soon as it is passed", async () => {
    let produced = 0;
    async function* source() {
      for (let i = 0; i < 100; i++) {
        produced++;
        yield new Uint8Array(1000);
      }
    }
    const error = await readAll(meterContent(source(), { limit: 2500 })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ContentTooLargeError);
    expect((error as ContentTooLargeError).limit).toBe(2500);
    expect(produced).toBe(3);
    // A known length over the limit fails before reading anything.
    await expect(readAll(meterContent(source(), { limit: 10, total: 11 }))).rejects.toBeInstanceOf(
      ContentTooLargeError,
    );
    await expect(readAll(meterContent(source(), { limit: 100_000 }))).resolves.toHaveLength(100_000);
  });

  it("meterContent aborts with the signal's reason and closes the source", async () => {
    const controller = new AbortController();
    let closed = false;
    async function* source() {
      try {
        yield new Uint8Array(1);
        yield new Uint8Array(1);
        yield new Uint8Array(1);
      } finally {
        closed = true;
      }
    }
    const reason = new Error("stop");
    const seen: number[] = [];
    const run = readAll(
      meterContent(source(), {
        signal: controller.signal,
        onProgress: ({ loaded }) => {
          seen.push(loaded);
          if (loaded === 1) controller.abort(reason);
        },
      }),
    );
    await expect(run).rejects.toBe(reason);
    expect(seen).toEqual([1]);
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(closed).toBe(true);
  });

  it("filepathToUri encodes like Django's filepath_to_uri", () => {
    expect(filepathToUri("a b/c?d#e%f.txt")).toBe("a%20b/c%3Fd%23e%25f.txt");
    expect(filepathToUri("~!*()'.txt")).toBe("~!*()'.txt");
    expect(filepathToUri("dir\\win.txt")).toBe("dir/win.txt");
    expect(filepathToUri("üñï.txt")).toBe("%C3%BC%C3%B1%C3%AF.txt");
  });
});
