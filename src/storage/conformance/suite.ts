/**
 * The storage contract as one test suite, run against every backend: this package's own, and
 * third-party ones (`prisma-s3-files/storage` exports it, as Shrine ships its storage linter). A
 * backend is done when `describeStorageConformance("name", setup, { describe, it, expect,
 * beforeEach, afterEach })` passes on it, with the test framework's functions passed in (Vitest's
 * and Jest's fit; nothing here imports one).
 */
import { createHash } from "node:crypto";
import { Readable } from "node:stream";
import { FileNotFoundError, StorageError, SuspiciousFileOperationError } from "../../errors.js";
import type { FileContent, SaveProgress, Storage } from "../storage.js";

/** The matchers the suite uses; Vitest's and Jest's `expect(value)` have them. */
export interface ConformanceMatchers {
  toBe(expected: unknown): unknown;
  toEqual(expected: unknown): unknown;
  toMatch(expected: string | RegExp): unknown;
  toMatchObject(expected: object): unknown;
  toBeInstanceOf(expected: unknown): unknown;
  toBeUndefined(): unknown;
  toBeGreaterThan(expected: number): unknown;
  toBeGreaterThanOrEqual(expected: number): unknown;
  toBeLessThan(expected: number): unknown;
  toBeLessThanOrEqual(expected: number): unknown;
  toContain(expected: unknown): unknown;
  toHaveLength(expected: number): unknown;
  toThrow(expected?: unknown): unknown;
}

/** `expect(value)`: the matchers, negated with `not`, and on a promise with `resolves`/`rejects`. */
export interface ConformanceAssertion extends ConformanceMatchers {
  not: ConformanceMatchers;
  resolves: ConformanceMatchers;
  rejects: ConformanceMatchers;
}

/** The test framework's functions the suite registers its tests with. */
export interface ConformanceTestApi {
  describe(name: string, body: () => void): unknown;
  it(name: string, body: () => Promise<void> | void): unknown;
  beforeEach(body: () => Promise<void> | void): unknown;
  afterEach(body: () => Promise<void> | void): unknown;
  /** `message` labels a failure (Vitest shows it; frameworks without it ignore it). */
  expect(actual: unknown, message?: string): ConformanceAssertion;
}

/** What the setup of a run may be asked for. */
export interface ConformanceSetupOptions {
  /** Must be honoured: the overwrite tests need a storage created with it. */
  fileOverwrite?: boolean;
  /**
   * The name-length tests ask for a storage that limits path segments: its default limit, or
   * one set for the test (`maxSegmentBytes`), reported in {@link ConformanceTarget.maxSegmentBytes}.
   */
  limitSegments?: boolean;
}

/** One fresh, empty storage for one test. */
export interface ConformanceTarget {
  storage: Storage;
  /** Removes whatever the test left. */
  teardown?: () => Promise<void>;
  /**
   * Every stored name, including what a backend may hide from `listdir()` (temporary files,
   * dangling uploads), so "nothing was left behind" can be checked. Defaults to walking `listdir()`.
   */
  listAll?: () => Promise<string[]>;
  /** The storage's limit on each path segment in UTF-8 bytes; required when asked with `limitSegments`. */
  maxSegmentBytes?: number;
}

export type ConformanceSetup = (options: ConformanceSetupOptions) => Promise<ConformanceTarget>;

const SUFFIX = "[A-Za-z0-9]{7}";
const enc = new TextEncoder();
const dec = new TextDecoder();

/** Deterministic pseudo-random bytes (so failures are reproducible). */
export function testBytes(size: number, seed = 1): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

async function collect(stream: AsyncIterable<Uint8Array | string>): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(typeof chunk === "string" ? Buffer.from(chunk) : Buffer.from(chunk));
  return new Uint8Array(Buffer.concat(chunks));
}

async function walk(storage: Storage, dir = ""): Promise<string[]> {
  const { directories, files } = await storage.listdir(dir);
  const prefix = dir === "" ? "" : `${dir}/`;
  const nested = await Promise.all(directories.map((d) => walk(storage, prefix + d)));
  return [...files.map((f) => prefix + f), ...nested.flat()].sort();
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A web stream of the given chunks. */
function webStream(chunks: Uint8Array[]): ReadableStream<Uint8Array> {
  let i = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      const chunk = chunks[i++];
      if (chunk) controller.enqueue(chunk);
      else controller.close();
    },
  });
}

/** Names that must never reach a backend, whatever the operation. */
export const UNSAFE_NAMES: readonly string[] = [
  "../escape.txt",
  "a/../../escape.txt",
  "dir/../../escape.txt",
  "/etc/passwd",
  "/abs.txt",
  "..",
  ".",
  "",
  "dir/",
  "dir/..",
  "nul\0byte.txt",
  "dir/nul\0.txt",
  "line\nbreak.txt",
  "tab\there.txt",
  "del\u007f.txt",
  "..\\escape.txt",
  "dir\\..\\..\\escape.txt",
  "\\\\server\\share\\x.txt",
  "\\rooted.txt",
  "C:\\windows\\x.txt",
  "C:/windows/x.txt",
  "C:relative.txt",
];

/**
 * Registers the conformance suite for one backend with the given test framework. `setup` makes
 * one fresh, empty storage per test (honouring the options it is given).
 *
 * @example
 * import { afterEach, beforeEach, describe, expect, it } from "vitest";
 * import { describeStorageConformance } from "prisma-s3-files/storage";
 *
 * describeStorageConformance("my backend", async () => ({ storage: new MyStorage() }), {
 *   describe, it, expect, beforeEach, afterEach,
 * });
 */
export function describeStorageConformance(label: string, setup: ConformanceSetup, api: ConformanceTestApi): void {
  const { describe, it, beforeEach, afterEach } = api;
  const expect = (actual: unknown, message?: string) => api.expect(actual, message);
  /** `each(cases)(title, body)`, with the cases' values in place of the title's `%s`. */
  const each =
    <T extends readonly unknown[]>(cases: readonly T[]) =>
    (title: string, body: (...args: T) => Promise<void>) => {
      for (const args of cases) {
        let i = 0;
        it(
          title.replace(/%s/g, () => String(args[i++])),
          () => body(...args),
        );
      }
    };
  describe(`storage conformance: ${label}`, () => {
    let target: ConformanceTarget;
    let storage: Storage;
    const listAll = () => (target.listAll ? target.listAll() : walk(storage));

    beforeEach(async () => {
      target = await setup({});
      storage = target.storage;
    });
    afterEach(async () => {
      await target.teardown?.();
    });

    async function expectNothingStored(): Promise<void> {
      expect(await listAll()).toEqual([]);
    }

    describe("save and read", () => {
      it("stores under the requested name when it is free and reads the bytes back", async () => {
        const data = enc.encode("hello world");
        expect(await storage.save("hello.txt", Buffer.from(data))).toBe("hello.txt");
        expect(await storage.read("hello.txt")).toEqual(data);
        expect(await listAll()).toEqual(["hello.txt"]);
      });

      const data = testBytes(200_000, 7);
      const kinds: Array<[string, () => FileContent]> = [
        ["Buffer", () => Buffer.from(data)],
        ["Uint8Array view with an offset", () => new Uint8Array([9, 9, 9, ...data, 9]).subarray(3, 3 + data.length)],
        ["ArrayBuffer", () => data.slice().buffer],
        ["Blob", () => new Blob([data])],
        ["File", () => new File([data], "upload.bin", { type: "application/x-test" })],
        ["Node Readable", () => Readable.from([data.subarray(0, 1000), data.subarray(1000)], { objectMode: false })],
        [
          "web ReadableStream",
          () => webStream([data.subarray(0, 5), data.subarray(5, 100_000), data.subarray(100_000)]),
        ],
        [
          "async generator",
          () =>
            (async function* () {
              for (let i = 0; i < data.length; i += 30_000) yield data.subarray(i, i + 30_000);
            })(),
        ],
      ];
      each(kinds)("accepts a %s", async (_kind, make) => {
        const name = await storage.save("kind.bin", make());
        expect(name).toBe("kind.bin");
        expect(sha256(await storage.read(name))).toBe(sha256(data));
        expect(await storage.size(name)).toBe(data.length);
      });

      it("accepts a Readable of strings (text mode) as UTF-8", async () => {
        const name = await storage.save("text.txt", Readable.from(["grüß ", "dich"]));
        expect(dec.decode(await storage.read(name))).toBe("grüß dich");
      });

      each<[string, () => FileContent]>([
        ["Buffer", () => Buffer.alloc(0)],
        ["stream", () => Readable.from([], { objectMode: false })],
      ])("stores empty content from a %s", async (_kind, make) => {
        const name = await storage.save("empty.txt", make());
        expect(await storage.read(name)).toEqual(new Uint8Array(0));
        expect(await storage.size(name)).toBe(0);
        expect(await storage.exists(name)).toBe(true);
      });

      it("keeps its own copy: changing the caller's buffer afterwards changes nothing", async () => {
        const buffer = Buffer.from("original");
        const name = await storage.save("copy.txt", buffer);
        buffer.fill(0);
        expect(dec.decode(await storage.read(name))).toBe("original");
      });

      it("rejects content of an unsupported type with a TypeError and writes nothing", async () => {
        await expect(storage.save("bad.txt", 42 as unknown as FileContent)).rejects.toBeInstanceOf(TypeError);
        await expect(storage.save("bad.txt", "text" as unknown as FileContent)).rejects.toBeInstanceOf(TypeError);
        await expectNothingStored();
      });

      it("stores nested names as given and returns them", async () => {
        expect(await storage.save("a/b/c.txt", Buffer.from("c"))).toBe("a/b/c.txt");
        expect(await storage.save("a/top.txt", Buffer.from("t"))).toBe("a/top.txt");
        expect(dec.decode(await storage.read("a/b/c.txt"))).toBe("c");
        expect(await listAll()).toEqual(["a/b/c.txt", "a/top.txt"]);
      });

      it("stores names with spaces and non-ASCII characters unchanged (save does not clean names)", async () => {
        const name = "some dir/naïve résumé (1).txt";
        expect(await storage.save(name, Buffer.from("x"))).toBe(name);
        expect(dec.decode(await storage.read(name))).toBe("x");
      });
    });

    describe("open", () => {
      const data = testBytes(10_000, 3);
      beforeEach(async () => {
        await storage.save("range.bin", Buffer.from(data));
      });

      it("streams the whole object", async () => {
        const stream = await storage.open("range.bin");
        expect(typeof stream.pipe).toBe("function");
        expect(await collect(stream)).toEqual(data);
      });

      each<[string, { start?: number; end?: number }, number, number]>([
        ["start and end (inclusive)", { start: 10, end: 19 }, 10, 20],
        ["start only", { start: 9_990 }, 9_990, 10_000],
        ["end only", { end: 0 }, 0, 1],
        ["an end past the size", { start: 9_000, end: 50_000 }, 9_000, 10_000],
        ["the last byte", { start: 9_999, end: 9_999 }, 9_999, 10_000],
      ])("streams a range: %s", async (_case, range, from, to) => {
        expect(await collect(await storage.open("range.bin", range))).toEqual(data.subarray(from, to));
      });

      it("rejects invalid ranges with a RangeError", async () => {
        await expect(storage.open("range.bin", { start: -1 })).rejects.toBeInstanceOf(RangeError);
        await expect(storage.open("range.bin", { start: 5, end: 4 })).rejects.toBeInstanceOf(RangeError);
        await expect(storage.open("range.bin", { start: 1.5 })).rejects.toBeInstanceOf(RangeError);
      });

      it("streams a multi-MiB object in chunks without reading it fully first", async () => {
        const big = testBytes(8 * 1024 * 1024, 11);
        await storage.save("big.bin", Buffer.from(big));
        const stream = await storage.open("big.bin");
        const iterator = stream[Symbol.asyncIterator]();
        const first = await iterator.next();
        expect(first.done).toBe(false);
        const chunk = first.value as Uint8Array;
        expect(chunk.byteLength).toBeGreaterThan(0);
        expect(chunk.byteLength).toBeLessThan(big.length / 4);
        expect(Buffer.from(chunk).equals(Buffer.from(big.subarray(0, chunk.byteLength)))).toBe(true);
        stream.destroy();
        // And the full stream is the full object.
        expect(sha256(await collect(await storage.open("big.bin")))).toBe(sha256(big));
      });
    });

    describe("exists, size, modifiedTime, delete", () => {
      it("exists tells saved names from others", async () => {
        await storage.save("there.txt", Buffer.from("x"));
        expect(await storage.exists("there.txt")).toBe(true);
        expect(await storage.exists("missing.txt")).toBe(false);
        expect(await storage.exists("there.txt/below.txt")).toBe(false);
      });

      it("size is the byte length", async () => {
        await storage.save("sized.bin", Buffer.from(testBytes(12_345)));
        expect(await storage.size("sized.bin")).toBe(12_345);
      });

      it("modifiedTime is the time of the save", async () => {
        const before = Date.now();
        await storage.save("timed.txt", Buffer.from("x"));
        const after = Date.now();
        const mtime = await storage.modifiedTime("timed.txt");
        expect(mtime).toBeInstanceOf(Date);
        // Backends keep whole seconds (S3) or coarse file system clocks: allow for that.
        expect(mtime.getTime()).toBeGreaterThanOrEqual(before - 2_000);
        expect(mtime.getTime()).toBeLessThanOrEqual(after + 2_000);
      });

      it("delete removes the object; deleting a missing one is not an error", async () => {
        await storage.save("gone.txt", Buffer.from("x"));
        await storage.delete("gone.txt");
        expect(await storage.exists("gone.txt")).toBe(false);
        await expect(storage.delete("gone.txt")).resolves.toBeUndefined();
        await expect(storage.delete("never/was.txt")).resolves.toBeUndefined();
        await expectNothingStored();
      });

      it("deleteMany removes the named objects, counts missing ones as deleted, and leaves the rest", async () => {
        const names = ["many/a.txt", "many/b.txt", "many/deep/c.txt"];
        for (const n of names) await storage.save(n, Buffer.from(n));
        await storage.save("many/kept.txt", Buffer.from("kept"));
        const result = await storage.deleteMany([...names, "many/never.txt", "many/a.txt"]);
        expect([...result.deleted].sort()).toEqual([...names, "many/never.txt"].sort());
        expect(result.failed).toEqual([]);
        for (const n of names) expect(await storage.exists(n)).toBe(false);
        expect(await storage.exists("many/kept.txt")).toBe(true);
        await expect(storage.deleteMany([])).resolves.toEqual({ deleted: [], failed: [] });
      });

      it("deleteMany refuses an unsafe name before deleting anything", async () => {
        await storage.save("safe/one.txt", Buffer.from("1"));
        await expect(storage.deleteMany(["safe/one.txt", "../escape.txt"])).rejects.toMatchObject({
          code: "SUSPICIOUS_FILE_OPERATION",
        });
        expect(await storage.exists("safe/one.txt")).toBe(true);
      });

      it("stat gives size and modification time (and the content type where the backend keeps one)", async () => {
        await storage.save("stat/it.png", Buffer.from(testBytes(321)), { contentType: "image/png" });
        const stat = await storage.stat("stat/it.png");
        expect(stat.size).toBe(321);
        expect(stat.modifiedTime).toBeInstanceOf(Date);
        if (stat.contentType !== undefined) expect(stat.contentType).toBe("image/png");
        await expect(storage.stat("stat/missing.png")).rejects.toMatchObject({ code: "FILE_NOT_FOUND" });
      });

      const missing: Array<[string, (s: Storage) => Promise<unknown>]> = [
        ["open", (s) => s.open("missing.txt")],
        ["open with a range", (s) => s.open("missing.txt", { start: 1, end: 2 })],
        ["read", (s) => s.read("missing.txt")],
        ["size", (s) => s.size("missing.txt")],
        ["modifiedTime", (s) => s.modifiedTime("missing.txt")],
        ["read in a missing directory", (s) => s.read("no/such/dir.txt")],
      ];
      each(missing)("%s of a missing name rejects with FileNotFoundError", async (_op, run) => {
        const error = await run(storage).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(FileNotFoundError);
        expect((error as FileNotFoundError).fileName).toMatch(/\.txt$/);
      });
    });

    describe("listdir", () => {
      beforeEach(async () => {
        for (const name of ["a.txt", "b.txt", "dir/c.txt", "dir/sub/d.txt", "dir/sub/e.txt", "other/f.txt"]) {
          await storage.save(name, Buffer.from(name));
        }
      });

      it("listAll walks every depth with sizes and times; a prefix narrows it; unsafe prefixes are refused", async () => {
        const all = [];
        for await (const o of storage.listAll()) all.push(o);
        expect(all.map((o) => o.name).sort()).toEqual([
          "a.txt",
          "b.txt",
          "dir/c.txt",
          "dir/sub/d.txt",
          "dir/sub/e.txt",
          "other/f.txt",
        ]);
        for (const o of all) {
          expect(o.size).toBe(o.name.length);
          expect(o.modifiedTime).toBeInstanceOf(Date);
          expect(Math.abs(o.modifiedTime.getTime() - Date.now())).toBeLessThan(10 * 60_000);
        }
        const under = [];
        for await (const o of storage.listAll("dir/sub")) under.push(o.name);
        expect(under.sort()).toEqual(["dir/sub/d.txt", "dir/sub/e.txt"]);
        await expect(
          (async () => {
            for await (const _ of storage.listAll("../x")) void _;
          })(),
        ).rejects.toBeInstanceOf(SuspiciousFileOperationError);
      });

      it("lists the root: directories and files, sorted", async () => {
        expect(await storage.listdir("")).toEqual({ directories: ["dir", "other"], files: ["a.txt", "b.txt"] });
      });

      it("lists a sub-directory, with or without a trailing slash", async () => {
        const expected = { directories: ["sub"], files: ["c.txt"] };
        expect(await storage.listdir("dir")).toEqual(expected);
        expect(await storage.listdir("dir/")).toEqual(expected);
        expect(await storage.listdir("dir/sub")).toEqual({ directories: [], files: ["d.txt", "e.txt"] });
      });

      it("lists a missing directory as empty", async () => {
        expect(await storage.listdir("nowhere")).toEqual({ directories: [], files: [] });
      });

      it("does not match sibling prefixes", async () => {
        await storage.save("dirt/x.txt", Buffer.from("x"));
        expect(await storage.listdir("dir")).toEqual({ directories: ["sub"], files: ["c.txt"] });
      });
    });

    describe("url", () => {
      it("is an absolute URL whose path ends with the percent-encoded name", async () => {
        const name = "some dir/ä b.txt";
        await storage.save(name, Buffer.from("x"));
        const url = new URL(await storage.url(name));
        expect(url.pathname.endsWith("/some%20dir/%C3%A4%20b.txt")).toBe(true);
      });

      it("accepts the download and contentType options", async () => {
        await storage.save("report.pdf", Buffer.from("x"));
        for (const opts of [{ download: true }, { download: "Q1 report.pdf" }, { contentType: "text/plain" }]) {
          const url = new URL(await storage.url("report.pdf", opts));
          expect(url.pathname.endsWith("/report.pdf")).toBe(true);
        }
      });
    });

    describe("naming (Django's rules)", () => {
      it("getValidName cleans a name like get_valid_filename", () => {
        expect(storage.getValidName("john's portrait in 2004.jpg")).toBe("johns_portrait_in_2004.jpg");
        expect(storage.getValidName("  spaced  out .txt ")).toBe("spaced__out_.txt");
        for (const bad of ["", ".", "..", "$%^"]) {
          expect(() => storage.getValidName(bad), JSON.stringify(bad)).toThrow(SuspiciousFileOperationError);
        }
      });

      it("generateFilename keeps the directory, cleans the base name and refuses `..`", () => {
        expect(storage.generateFilename("path/to/some file.txt")).toBe("path/to/some_file.txt");
        expect(storage.generateFilename("path\\to\\win file.txt")).toBe("path/to/win_file.txt");
        expect(() => storage.generateFilename("../up.txt")).toThrow(SuspiciousFileOperationError);
        expect(() => storage.generateFilename("a/../../up.txt")).toThrow(SuspiciousFileOperationError);
      });

      it("getAvailableName returns a free name unchanged", async () => {
        expect(await storage.getAvailableName("free.txt")).toBe("free.txt");
        expect(await storage.getAvailableName("dir/free.txt")).toBe("dir/free.txt");
      });

      it("getAvailableName puts `_XXXXXXX` before all extensions of a taken name", async () => {
        await storage.save("dir/archive.tar.gz", Buffer.from("x"));
        const name = await storage.getAvailableName("dir/archive.tar.gz");
        expect(name).toMatch(new RegExp(`^dir/archive_${SUFFIX}\\.tar\\.gz$`));
      });

      it("saving a taken name stores an alternative; both keep their own content", async () => {
        expect(await storage.save("dup.txt", Buffer.from("first"))).toBe("dup.txt");
        const second = await storage.save("dup.txt", Buffer.from("second"));
        expect(second).toMatch(new RegExp(`^dup_${SUFFIX}\\.txt$`));
        expect(dec.decode(await storage.read("dup.txt"))).toBe("first");
        expect(dec.decode(await storage.read(second))).toBe("second");
      });

      it("shortens the root to fit maxLength, keeping the extension", async () => {
        const first = await storage.save("abcdefghij.txt", Buffer.from("1"), { maxLength: 20 });
        expect(first).toBe("abcdefghij.txt");
        const second = await storage.save("abcdefghij.txt", Buffer.from("2"), { maxLength: 20 });
        expect(second).toMatch(new RegExp(`^abcdefgh_${SUFFIX}\\.txt$`));
        expect(second.length).toBeLessThanOrEqual(20);
        // A free name that is too long is shortened too.
        const long = await storage.save("abcdefghijklmnop.txt", Buffer.from("3"), { maxLength: 18 });
        expect(long).toMatch(new RegExp(`^abcdef_${SUFFIX}\\.txt$`));
        expect(dec.decode(await storage.read(long))).toBe("3");
      });

      it("rejects a maxLength that leaves no root, without writing", async () => {
        await expect(storage.getAvailableName("aaaa.txt", 5)).rejects.toBeInstanceOf(SuspiciousFileOperationError);
        await expect(storage.save("aaaa.txt", Buffer.from("x"), { maxLength: 5 })).rejects.toBeInstanceOf(
          SuspiciousFileOperationError,
        );
        await expectNothingStored();
      });
    });

    describe("unsafe names", () => {
      each(UNSAFE_NAMES.map((n) => [JSON.stringify(n), n]))(
        "save(%s) rejects with SuspiciousFileOperationError and writes nothing",
        async (_label, name) => {
          await expect(storage.save(name, Buffer.from("evil"))).rejects.toBeInstanceOf(SuspiciousFileOperationError);
          await expect(storage.save(name, Readable.from([Buffer.from("evil")]))).rejects.toBeInstanceOf(
            SuspiciousFileOperationError,
          );
          await expectNothingStored();
        },
      );

      const operations: Array<[string, (s: Storage, name: string) => Promise<unknown>]> = [
        ["open", (s, n) => s.open(n)],
        ["read", (s, n) => s.read(n)],
        ["exists", (s, n) => s.exists(n)],
        ["size", (s, n) => s.size(n)],
        ["modifiedTime", (s, n) => s.modifiedTime(n)],
        ["delete", (s, n) => s.delete(n)],
        ["url", (s, n) => s.url(n)],
      ];
      each(operations)("%s rejects every unsafe name with SuspiciousFileOperationError", async (_op, run) => {
        for (const name of UNSAFE_NAMES) {
          const error = await run(storage, name).then(
            () => undefined,
            (e: unknown) => e,
          );
          expect(error, JSON.stringify(name)).toBeInstanceOf(SuspiciousFileOperationError);
        }
      });

      it("listdir rejects paths that leave the root", async () => {
        for (const path of ["..", "../", "a/../..", "/", "/etc", "nul\0"]) {
          await expect(storage.listdir(path), JSON.stringify(path)).rejects.toBeInstanceOf(
            SuspiciousFileOperationError,
          );
        }
      });

      it("rejects unsafe names before getAvailableName looks at the storage", async () => {
        await expect(storage.getAvailableName("../x.txt")).rejects.toBeInstanceOf(SuspiciousFileOperationError);
        await expect(storage.getAvailableName("a/../../x.txt")).rejects.toBeInstanceOf(SuspiciousFileOperationError);
      });
    });

    describe("abort and failure leave nothing", () => {
      it("an already aborted signal rejects with its reason before writing", async () => {
        const reason = new Error("stop before start");
        await expect(storage.save("never.txt", Buffer.from("x"), { signal: AbortSignal.abort(reason) })).rejects.toBe(
          reason,
        );
        await expectNothingStored();
      });

      it("aborting mid-stream rejects with the signal's reason and leaves nothing", async () => {
        const controller = new AbortController();
        const reason = new Error("user cancelled");
        let produced = 0;
        async function* slow() {
          for (let i = 0; i < 1000; i++) {
            produced++;
            yield testBytes(16 * 1024, i + 1);
            await sleep(2);
          }
        }
        const saving = storage.save("aborted.bin", slow(), {
          signal: controller.signal,
          onProgress: ({ loaded }) => {
            if (loaded >= 64 * 1024) controller.abort(reason);
          },
        });
        await expect(saving).rejects.toBe(reason);
        // It stopped reading soon after the abort instead of draining the source.
        expect(produced).toBeLessThan(20);
        await expectNothingStored();
      });

      it("aborting while the source stalls rejects promptly and destroys the stream", async () => {
        const controller = new AbortController();
        const stalled = new Readable({ read() {} });
        stalled.push(Buffer.from("first chunk, then nothing"));
        const saving = storage.save("stalled.bin", stalled, { signal: controller.signal });
        await sleep(100);
        controller.abort();
        // A save that waits for the stalled source would hang: give it two seconds.
        const outcome = await Promise.race([
          saving.then(
            () => "resolved",
            (e: unknown) => e,
          ),
          sleep(2_000).then(() => "still pending"),
        ]);
        if (!stalled.destroyed) stalled.destroy();
        expect((outcome as Error).name).toBe("AbortError");
        expect(stalled.destroyed).toBe(true);
        await expectNothingStored();
      });

      it("a Readable that errors mid-way rejects with its error and leaves nothing", async () => {
        const failure = new Error("connection reset by peer");
        async function* broken() {
          yield testBytes(100_000, 1);
          await sleep(5);
          yield testBytes(100_000, 2);
          throw failure;
        }
        await expect(storage.save("broken.bin", Readable.from(broken(), { objectMode: false }))).rejects.toBe(failure);
        await expectNothingStored();
      });

      it("a web ReadableStream that errors mid-way rejects and leaves nothing", async () => {
        const failure = new Error("upstream failed");
        let sent = false;
        const stream = new ReadableStream<Uint8Array>({
          pull(controller) {
            if (!sent) {
              sent = true;
              controller.enqueue(testBytes(50_000));
            } else controller.error(failure);
          },
        });
        await expect(storage.save("broken-web.bin", stream)).rejects.toBe(failure);
        await expectNothingStored();
      });

      it("a failing beforeWrite hook ends the save before it writes, with the hook's own error", async () => {
        const failure = new Error("the journal refused");
        const names: string[] = [];
        const saving = storage.save("hooked.txt", Buffer.from("x"), {
          beforeWrite: (name) => {
            names.push(name);
            throw failure;
          },
        });
        await expect(saving).rejects.toBe(failure);
        expect(names).toEqual(["hooked.txt"]);
        await expectNothingStored();
      });

      it("a failing save does not reserve its name: the next save gets it", async () => {
        const failing = (async function* () {
          yield Buffer.from("x");
          throw new Error("boom");
        })();
        await expect(storage.save("retry.txt", failing)).rejects.toThrow("boom");
        expect(await storage.save("retry.txt", Buffer.from("ok"))).toBe("retry.txt");
      });

      it("overwrite: true stores under exactly the name, replacing what is there, hook called once", async () => {
        expect(await storage.save("derived/a.webp", Buffer.from("first"))).toBe("derived/a.webp");
        const names: string[] = [];
        const long = `derived/${"n".repeat(60)}.webp`;
        const saved = await storage.save("derived/a.webp", Buffer.from("second"), {
          overwrite: true,
          beforeWrite: (name) => void names.push(name),
        });
        expect(saved).toBe("derived/a.webp");
        expect(names).toEqual(["derived/a.webp"]);
        expect(dec.decode(await storage.read("derived/a.webp"))).toBe("second");
        // Never shortened: the name is what a reader derives, so it must be exactly this.
        expect(await storage.save(long, Buffer.from("x"), { overwrite: true, maxLength: 20 })).toBe(long);
        await expect(storage.save("../escape.webp", Buffer.from("x"), { overwrite: true })).rejects.toBeInstanceOf(
          SuspiciousFileOperationError,
        );
        expect((await listAll()).sort()).toEqual(["derived/a.webp", long].sort());
      });
    });

    describe("progress", () => {
      function recorder() {
        const events: SaveProgress[] = [];
        return { events, onProgress: (p: SaveProgress) => events.push({ ...p }) };
      }
      function expectMonotonic(events: SaveProgress[], size: number) {
        expect(events.length).toBeGreaterThan(0);
        for (let i = 1; i < events.length; i++) {
          expect(events[i]!.loaded).toBeGreaterThan(events[i - 1]!.loaded);
        }
        expect(events.at(-1)!.loaded).toBe(size);
      }

      it("reports growing byte counts up to the size, with the total when known", async () => {
        const { events, onProgress } = recorder();
        const data = testBytes(1024 * 1024 + 17);
        await storage.save("progress.bin", Buffer.from(data), { onProgress });
        expectMonotonic(events, data.length);
        expect(events.every((e) => e.total === data.length)).toBe(true);
      });

      it("reports a stream's progress without a total", async () => {
        const { events, onProgress } = recorder();
        const data = testBytes(300_000);
        const stream = Readable.from([data.subarray(0, 100_000), data.subarray(100_000)], { objectMode: false });
        await storage.save("progress-stream.bin", stream, { onProgress });
        expectMonotonic(events, data.length);
        expect(events.every((e) => e.total === undefined)).toBe(true);
      });
    });

    describe("move", () => {
      it("moves an object to a free name: returns it, the bytes move, the source is gone", async () => {
        const data = testBytes(300_000, 11);
        await storage.save("pending/a b/ü 1.bin", Buffer.from(data));
        expect(await storage.move("pending/a b/ü 1.bin", "final/a b/ü 1.bin")).toBe("final/a b/ü 1.bin");
        expect(sha256(await storage.read("final/a b/ü 1.bin"))).toBe(sha256(data));
        expect(await storage.size("final/a b/ü 1.bin")).toBe(data.byteLength);
        expect(await storage.exists("pending/a b/ü 1.bin")).toBe(false);
        expect(await listAll()).toEqual(["final/a b/ü 1.bin"]);
      });

      it("a taken target gets an available variant; the existing object is untouched", async () => {
        await storage.save("final/photo.png", Buffer.from("already here"));
        await storage.save("pending/x.png", Buffer.from("moved"));
        const moved = await storage.move("pending/x.png", "final/photo.png");
        expect(moved).toMatch(new RegExp(`^final/photo_${SUFFIX}\\.png$`));
        expect(dec.decode(await storage.read("final/photo.png"))).toBe("already here");
        expect(dec.decode(await storage.read(moved))).toBe("moved");
        expect(await listAll()).toEqual(["final/photo.png", moved].sort());
      });

      it("normalises both names like save()", async () => {
        await storage.save("p/src.txt", Buffer.from("x"));
        expect(await storage.move("./p//src.txt", "q/./dst.txt")).toBe("q/dst.txt");
        expect(await listAll()).toEqual(["q/dst.txt"]);
      });

      it("a missing source: FileNotFoundError, nothing created, the target name stays free", async () => {
        await storage.save("other.txt", Buffer.from("other"));
        const error = await storage.move("missing.txt", "final/target.txt").catch((e: unknown) => e);
        expect(error).toBeInstanceOf(FileNotFoundError);
        expect((error as FileNotFoundError).fileName).toBe("missing.txt");
        expect(await listAll()).toEqual(["other.txt"]);
        expect(await storage.save("final/target.txt", Buffer.from("y"))).toBe("final/target.txt");
      });

      it("refuses unsafe names on either side before touching anything", async () => {
        await storage.save("src.txt", Buffer.from("keep"));
        for (const name of UNSAFE_NAMES) {
          await expect(storage.move(name, "ok.txt"), JSON.stringify(name)).rejects.toBeInstanceOf(
            SuspiciousFileOperationError,
          );
          await expect(storage.move("src.txt", name), JSON.stringify(name)).rejects.toBeInstanceOf(
            SuspiciousFileOperationError,
          );
        }
        expect(await listAll()).toEqual(["src.txt"]);
        expect(dec.decode(await storage.read("src.txt"))).toBe("keep");
      });

      it("shortens the target to fit maxLength, like save()", async () => {
        await storage.save("src.txt", Buffer.from("x"));
        const moved = await storage.move("src.txt", "abcdefghijklmnop.txt", { maxLength: 18 });
        expect(moved).toMatch(new RegExp(`^abcdef_${SUFFIX}\\.txt$`));
        expect(dec.decode(await storage.read(moved))).toBe("x");
        await storage.save("src2.txt", Buffer.from("y"));
        await expect(storage.move("src2.txt", "aaaa.txt", { maxLength: 5 })).rejects.toBeInstanceOf(
          SuspiciousFileOperationError,
        );
        expect(await storage.exists("src2.txt")).toBe(true);
      });

      it("concurrent moves and saves to one name all get distinct names; every source is gone", async () => {
        const sources = await Promise.all(
          Array.from({ length: 15 }, (_, i) => storage.save(`pending/${i}.txt`, Buffer.from(`moved ${i}`))),
        );
        const results = await Promise.all([
          ...sources.map((src) => storage.move(src, "final/same.txt")),
          ...Array.from({ length: 5 }, (_, i) => storage.save("final/same.txt", Buffer.from(`saved ${i}`))),
        ]);
        expect(new Set(results).size).toBe(20);
        for (const name of results) expect(name).toMatch(new RegExp(`^final/same(_${SUFFIX})?\\.txt$`));
        const contents = await Promise.all(results.map(async (n) => dec.decode(await storage.read(n))));
        expect(contents).toEqual([
          ...sources.map((_, i) => `moved ${i}`),
          ...Array.from({ length: 5 }, (_, i) => `saved ${i}`),
        ]);
        expect(await listAll()).toEqual([...results].sort());
      });
    });

    describe("concurrency", () => {
      it("100 concurrent saves of one name give 100 distinct names, each with its own content", async () => {
        const names = await Promise.all(
          Array.from({ length: 100 }, (_, i) => storage.save("same.txt", Buffer.from(`content ${i}`))),
        );
        expect(new Set(names).size).toBe(100);
        expect(names.filter((n) => n === "same.txt")).toHaveLength(1);
        for (const name of names) expect(name).toMatch(new RegExp(`^same(_${SUFFIX})?\\.txt$`));
        const contents = await Promise.all(names.map(async (n) => dec.decode(await storage.read(n))));
        expect(contents).toEqual(names.map((_, i) => `content ${i}`));
        expect(await listAll()).toHaveLength(100);
      });

      it("concurrent one-shot stream saves of one name all land under distinct names", async () => {
        const names = await Promise.all(
          Array.from({ length: 20 }, (_, i) =>
            storage.save("stream.txt", Readable.from([Buffer.from(`stream ${i}`)], { objectMode: false })),
          ),
        );
        expect(new Set(names).size).toBe(20);
        const contents = await Promise.all(names.map(async (n) => dec.decode(await storage.read(n))));
        expect(contents).toEqual(names.map((_, i) => `stream ${i}`));
      });
    });
  });

  describe(`storage conformance: ${label} with fileOverwrite: true`, () => {
    let target: ConformanceTarget;
    let storage: Storage;
    beforeEach(async () => {
      target = await setup({ fileOverwrite: true });
      storage = target.storage;
    });
    afterEach(async () => {
      await target.teardown?.();
    });

    it("replaces an existing object under the same name", async () => {
      expect(await storage.save("same.txt", Buffer.from("one"))).toBe("same.txt");
      expect(await storage.save("same.txt", Buffer.from("two, longer"))).toBe("same.txt");
      expect(dec.decode(await storage.read("same.txt"))).toBe("two, longer");
      expect(await storage.getAvailableName("same.txt")).toBe("same.txt");
      expect(await (target.listAll ? target.listAll() : walk(storage))).toEqual(["same.txt"]);
    });

    it("concurrent overwrites leave one complete version", async () => {
      const versions = Array.from({ length: 10 }, (_, i) => `version ${i} `.repeat(1000));
      const names = await Promise.all(versions.map((v) => storage.save("race.txt", Buffer.from(v))));
      expect(new Set(names)).toEqual(new Set(["race.txt"]));
      expect(versions).toContain(dec.decode(await storage.read("race.txt")));
    });

    it("still shortens names to maxLength", async () => {
      const name = await storage.save("abcdefghij.txt", Buffer.from("x"), { maxLength: 10 });
      expect(name).toBe("abcdef.txt");
    });

    it("still rejects unsafe names", async () => {
      await expect(storage.save("../escape.txt", Buffer.from("x"))).rejects.toBeInstanceOf(
        SuspiciousFileOperationError,
      );
    });

    it("move replaces an existing object under the target name", async () => {
      await storage.save("final.txt", Buffer.from("old"));
      await storage.save("pending.txt", Buffer.from("new"));
      expect(await storage.move("pending.txt", "final.txt")).toBe("final.txt");
      expect(dec.decode(await storage.read("final.txt"))).toBe("new");
      expect(await (target.listAll ? target.listAll() : walk(storage))).toEqual(["final.txt"]);
    });

    it("moving an object onto its own name keeps it; a missing one is not found", async () => {
      await storage.save("here.txt", Buffer.from("stay"));
      expect(await storage.move("here.txt", "here.txt")).toBe("here.txt");
      expect(dec.decode(await storage.read("here.txt"))).toBe("stay");
      await expect(storage.move("gone.txt", "gone.txt")).rejects.toBeInstanceOf(FileNotFoundError);
      await expect(storage.move("gone.txt", "elsewhere.txt")).rejects.toBeInstanceOf(FileNotFoundError);
      expect(await (target.listAll ? target.listAll() : walk(storage))).toEqual(["here.txt"]);
    });
  });
  describe(`storage conformance: ${label} with a limit on path segments (UTF-8 bytes)`, () => {
    let target: ConformanceTarget;
    let storage: Storage;
    /** The limit under test. */
    let limit: number;
    const listAll = () => (target.listAll ? target.listAll() : walk(storage));
    const bytes = (s: string) => Buffer.byteLength(s, "utf8");
    const baseOf = (name: string) => name.slice(name.lastIndexOf("/") + 1);

    beforeEach(async () => {
      target = await setup({ limitSegments: true });
      storage = target.storage;
      if (target.maxSegmentBytes === undefined) throw new Error(`${label}: the setup reported no maxSegmentBytes`);
      limit = target.maxSegmentBytes;
    });
    afterEach(async () => {
      await target.teardown?.();
    });

    /** `name` was stored, fits the limit, reads back, and is the only object. */
    async function expectStoredFitting(name: string, content: string): Promise<void> {
      for (const segment of name.split("/")) expect(bytes(segment)).toBeLessThanOrEqual(limit);
      // Cut between code points: no replacement character, no lone surrogate.
      expect(name).not.toMatch(/[\uFFFD\p{Cs}]/u);
      expect(dec.decode(await storage.read(name))).toBe(content);
      expect(await storage.exists(name)).toBe(true);
    }

    it("a file name of exactly the limit is stored unchanged", async () => {
      const name = `dir/${"a".repeat(limit - 4)}.txt`;
      expect(await storage.save(name, Buffer.from("exact"))).toBe(name);
      await expectStoredFitting(name, "exact");
    });

    each([
      ["ASCII", "a", ".txt"],
      ["2-byte é", "é", ".txt"],
      ["3-byte €", "€", ".tar.gz"],
      ["4-byte 😀", "😀", ".png"],
    ])("a %s file name over the limit is cut to fit, extension kept, and round-trips", async (_kind, char, ext) => {
      const root = char.repeat(limit + 10);
      const name = await storage.save(`dir/${root}${ext}`, Buffer.from(`long ${char}`));
      const base = baseOf(name);
      expect(name.startsWith("dir/")).toBe(true);
      expect(base.endsWith(ext)).toBe(true);
      // Only the root was cut, as little as the limit asks: less than one more character would fit.
      const kept = base.slice(0, base.length - ext.length);
      expect(root.startsWith(kept)).toBe(true);
      expect(bytes(base)).toBeLessThanOrEqual(limit);
      expect(bytes(base) + bytes(char)).toBeGreaterThan(limit);
      await expectStoredFitting(name, `long ${char}`);
      expect(await listAll()).toEqual([name]);
    });

    it("a long name taken: the alternative's root is cut further so `_XXXXXXX` fits", async () => {
      const requested = `dir/${"é".repeat(limit)}.txt`;
      const first = await storage.save(requested, Buffer.from("first"));
      const second = await storage.save(requested, Buffer.from("second"));
      expect(second).not.toBe(first);
      expect(baseOf(second)).toMatch(new RegExp(`^é+_${SUFFIX}\\.txt$`));
      await expectStoredFitting(first, "first");
      await expectStoredFitting(second, "second");
      expect((await listAll()).sort()).toEqual([first, second].sort());
    });

    it("an extension too long to keep is cut with the name", async () => {
      const name = await storage.save(`a.${"b".repeat(limit + 10)}`, Buffer.from("ext"));
      expect(name).toMatch(/^a\.b+$/);
      expect(bytes(name)).toBe(limit);
      await expectStoredFitting(name, "ext");
    });

    each([
      ["ASCII", "d"],
      ["2-byte é", "é"],
      ["4-byte 😀", "😀"],
    ])("a %s directory segment over the limit is refused with NAME_TOO_LONG, nothing written", async (_kind, char) => {
      const segment = char.repeat(Math.floor(limit / bytes(char)) + 1);
      const error = await storage.save(`ok/${segment}/x.txt`, Buffer.from("x")).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(StorageError);
      expect((error as StorageError).code).toBe("NAME_TOO_LONG");
      expect((error as Error).message).toContain(`is ${bytes(segment)} bytes`);
      expect((error as Error).message).toContain(`limit of ${limit} bytes per path segment`);
      await expect(storage.getAvailableName(`${segment}/x.txt`)).rejects.toMatchObject({ code: "NAME_TOO_LONG" });
      expect(await listAll()).toEqual([]);
    });

    it("move: a long target file name is cut; a long target directory is refused and the source kept", async () => {
      await storage.save("src.txt", Buffer.from("moving"));
      const moved = await storage.move("src.txt", `final/${"😀".repeat(limit)}.txt`);
      expect(moved).toMatch(/^final\/(😀)+\.txt$/u);
      await expectStoredFitting(moved, "moving");
      expect(await storage.exists("src.txt")).toBe(false);

      await storage.save("src2.txt", Buffer.from("staying"));
      await expect(storage.move("src2.txt", `${"d".repeat(limit + 1)}/x.txt`)).rejects.toMatchObject({
        code: "NAME_TOO_LONG",
      });
      expect(dec.decode(await storage.read("src2.txt"))).toBe("staying");
      expect((await listAll()).sort()).toEqual([moved, "src2.txt"].sort());
    });
  });

  describe(`storage conformance: ${label} with a limit on path segments and fileOverwrite: true`, () => {
    let target: ConformanceTarget;
    beforeEach(async () => {
      target = await setup({ limitSegments: true, fileOverwrite: true });
    });
    afterEach(async () => {
      await target.teardown?.();
    });

    it("cuts a long name the same way every time, so saving it again replaces the object", async () => {
      const { storage } = target;
      const requested = `dir/${"é".repeat(300)}.txt`;
      const first = await storage.save(requested, Buffer.from("one"));
      expect(await storage.save(requested, Buffer.from("two"))).toBe(first);
      expect(Buffer.byteLength(first.slice(4))).toBeLessThanOrEqual(target.maxSegmentBytes as number);
      expect(dec.decode(await storage.read(first))).toBe("two");
      expect(await (target.listAll ? target.listAll() : walk(storage))).toEqual([first]);
    });
  });
}
