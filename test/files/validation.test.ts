import { createHash } from "node:crypto";
import { Readable } from "node:stream";
import { setImmediate as tick } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { PrismaS3FilesError } from "../../src/errors.js";
import { SNIFF_BYTES } from "../../src/files/sniff.js";
import {
  checkDeclaredSize,
  checkType,
  type FileFieldRef,
  type FileRules,
  FileValidationError,
  toFileValidationError,
} from "../../src/files/validation.js";
import { ContentTooLargeError, meterContent, normalizeContent, readAll } from "../../src/storage/content.js";
import type { FileContent } from "../../src/storage/storage.js";

const PNG_1X1 = Buffer.from(
  "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==",
  "base64",
);
const JPEG = Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 0x4a, 0x46, 0x49, 0x46, 0x00, 1, 1, 0, 0, 1, 0, 1, 0, 0]);
const PDF = Buffer.from("%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "latin1");
const HTML = Buffer.from("<!DOCTYPE html><html><script>alert(document.cookie)</script></html>");
const SVG = Buffer.from(
  '<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
);
const TEXT = Buffer.from("just some words\n");
const CSV = Buffer.from("id,name\n1,Ada\n");
const ZIP = Buffer.from([0x50, 0x4b, 0x03, 0x04, 0x14, 0, 0, 0, 8, 0]);
const WAV = Buffer.concat([Buffer.from("RIFF"), Buffer.from([36, 0, 0, 0]), Buffer.from("WAVEfmt ")]);
const WEBM = Buffer.concat([Buffer.from([0x1a, 0x45, 0xdf, 0xa3, 0x9f, 0x42, 0x82, 0x84]), Buffer.from("webm")]);
const M4A_ISOM = Buffer.concat([Buffer.from([0, 0, 0, 0x18]), Buffer.from("ftypisom\0\0\0\0isommp42")]);
const UNKNOWN = Buffer.from([0x13, 0x37, 0x00, 0x42, 0x99, 0x01, 0x02, 0x03]);

const where = { model: "User", field: "avatar" };
const rules = (accept: readonly string[] | null, maxSize: number | null = null): FileRules => ({ accept, maxSize });

function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

async function bytesOf(content: FileContent): Promise<Uint8Array> {
  return readAll(normalizeContent(content).open());
}

describe("FileValidationError", () => {
  it("is a typed package error with a stable code", () => {
    const error = new FileValidationError("too_large", "User.avatar: too big", { ...where, limit: 10 });
    expect(error).toBeInstanceOf(PrismaS3FilesError);
    expect(error).toBeInstanceOf(Error);
    expect(error.code).toBe("FILE_VALIDATION");
    expect(error.name).toBe("FileValidationError");
    expect(error).toMatchObject({ model: "User", field: "avatar", reason: "too_large", limit: 10 });
  });
});

describe("checkDeclaredSize", () => {
  it("refuses a known length over maxSize, naming model.field", () => {
    let caught: unknown;
    try {
      checkDeclaredSize(5_000_001, rules(null, 5_000_000), where);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(FileValidationError);
    expect(caught).toMatchObject({ reason: "too_large", limit: 5_000_000, model: "User", field: "avatar" });
    expect((caught as Error).message).toBe("User.avatar: file is larger than 5 MB (5000000 bytes)");
  });

  it("formats other sizes and partial locations", () => {
    expect(() => checkDeclaredSize(2, rules(null, 1), { field: "doc" })).toThrow(/^doc: file is larger than 1 byte$/);
    expect(() => checkDeclaredSize(6_000_000, rules(null, 5_242_880))).toThrow(
      /^File is larger than 5\.24 MB \(5242880 bytes\)$/,
    );
    expect(() => checkDeclaredSize(2000, rules(null, 1500), where)).toThrow(/1\.5 kB \(1500 bytes\)/);
  });

  it("lets through lengths at the limit, unknown lengths, and no limit", () => {
    expect(() => checkDeclaredSize(100, rules(null, 100), where)).not.toThrow();
    expect(() => checkDeclaredSize(undefined, rules(null, 100), where)).not.toThrow();
    expect(() => checkDeclaredSize(10 ** 12, rules(null, null), where)).not.toThrow();
  });
});

describe("toFileValidationError", () => {
  it("maps meterContent's ContentTooLargeError to too_large with the cause attached", async () => {
    const source = Readable.from([Buffer.alloc(600), Buffer.alloc(600)]);
    let caught: unknown;
    try {
      for await (const _ of meterContent(normalizeContent(source).open(), { limit: 1000 })) {
        // consume
      }
    } catch (error) {
      caught = toFileValidationError(error, where);
    }
    expect(caught).toBeInstanceOf(FileValidationError);
    expect(caught).toMatchObject({ reason: "too_large", limit: 1000, model: "User", field: "avatar" });
    expect((caught as Error).message).toBe("User.avatar: file is larger than 1 kB (1000 bytes)");
    expect((caught as Error).cause).toBeInstanceOf(ContentTooLargeError);
  });

  it("returns anything else unchanged", () => {
    const other = new Error("network down");
    expect(toFileValidationError(other, where)).toBe(other);
    expect(toFileValidationError("nope", where)).toBe("nope");
  });
});

describe("checkType", () => {
  const reject = (head: Uint8Array, declared: string, accept: readonly string[], at: FileFieldRef = where) => {
    try {
      checkType(head, declared, rules(accept), at);
    } catch (error) {
      expect(error).toBeInstanceOf(FileValidationError);
      expect(error).toMatchObject({ reason: "type_not_accepted" });
      return error as FileValidationError;
    }
    throw new Error(`expected ${declared} to be refused by ${accept.join(", ")}`);
  };

  it("refuses a .png whose bytes are HTML, naming both types and model.field", () => {
    const error = reject(HTML, "image/png", ["image/png", "image/jpeg"]);
    expect(error.message).toBe(
      "User.avatar: file type text/html (detected from its content; declared image/png) is not accepted " +
        "(accepted: image/png, image/jpeg)",
    );
    expect(error).toMatchObject({
      declaredType: "image/png",
      detectedType: "text/html",
      model: "User",
      field: "avatar",
    });
    expect(error.accept).toEqual(["image/png", "image/jpeg"]);
  });

  it("refuses a declared type that is not accepted", () => {
    const error = reject(PNG_1X1, "application/pdf", ["image/png", "image/jpeg"]);
    expect(error.message).toBe(
      "User.avatar: file type application/pdf is not accepted (accepted: image/png, image/jpeg)",
    );
  });

  it.each([
    // [what, head, declared, accept, detected]
    ["a real PNG", PNG_1X1, "image/png", ["image/png", "image/jpeg"], "image/png"],
    ["a PNG named .jpg (both accepted)", PNG_1X1, "image/jpeg", ["image/png", "image/jpeg"], "image/png"],
    ["parameters and case", PNG_1X1, "Image/PNG; foo=bar", ["IMAGE/png"], "image/png"],
    ["image/*", JPEG, "image/jpeg", ["image/*"], "image/jpeg"],
    ["unknown bytes: the declared type decides", UNKNOWN, "image/x-exotic", ["image/*"], undefined],
    ["octet-stream declared: the content decides", PNG_1X1, "application/octet-stream", ["image/png"], "image/png"],
    ["empty declared type: the content decides", JPEG, "", ["image/*"], "image/jpeg"],
    ["a .csv sniffed as plain text", CSV, "text/csv", ["text/csv"], "text/plain"],
    ["JSON sniffed as plain text", TEXT, "application/json", ["application/json"], "text/plain"],
    ["HTML inside a text/plain upload (served as text)", HTML, "text/plain", ["text/plain"], "text/html"],
    [
      "a .docx is a ZIP",
      ZIP,
      "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
      ["application/vnd.openxmlformats-officedocument.wordprocessingml.document"],
      "application/zip",
    ],
    ["an alias of the declared type in accept", WAV, "audio/wav", ["audio/x-wav"], "audio/wav"],
    ["audio-only WebM sniffs as video/webm", WEBM, "audio/webm", ["audio/*"], "video/webm"],
    ["an M4A with a generic ISO brand", M4A_ISOM, "audio/mp4", ["audio/mp4"], "video/mp4"],
    ["SVG listed explicitly", SVG, "image/svg+xml", ["image/*", "image/svg+xml"], "image/svg+xml"],
    ["SVG under */*", SVG, "image/svg+xml", ["*/*"], "image/svg+xml"],
    ["HTML listed explicitly", HTML, "text/html", ["text/html"], "text/html"],
  ] as const)("accepts %s", (_what, head, declared, accept, detected) => {
    expect(checkType(head, declared, rules(accept), where)).toEqual({ detectedType: detected });
  });

  it("checks nothing when accept is null, but still reports the detected type", () => {
    expect(checkType(HTML, "image/png", rules(null), where)).toEqual({ detectedType: "text/html" });
  });

  it.each([
    ["HTML named .png", HTML, "image/png", ["image/*"]],
    ["a PDF named .png", PDF, "image/png", ["image/png"]],
    ["a PNG named .pdf", PNG_1X1, "application/pdf", ["application/pdf"]],
    ["plain text named .png, even with text/plain accepted", TEXT, "image/png", ["image/*", "text/plain"]],
    ["HTML named .png, even with text/html accepted", HTML, "image/png", ["image/png", "text/html"]],
    ["SVG named .png, even with SVG accepted", SVG, "image/png", ["image/png", "image/svg+xml"]],
    ["plain text named .svg", TEXT, "image/svg+xml", ["image/svg+xml"]],
    ["text posing as a font", TEXT, "font/woff2", ["font/*", "text/*"]],
    ["a ZIP declared as ZIP where only .docx is accepted", ZIP, "application/zip", ["application/vnd.ms-word"]],
    ["octet-stream with unknown bytes", UNKNOWN, "application/octet-stream", ["image/*"]],
    ["octet-stream with HTML", HTML, "application/octet-stream", ["image/*"]],
    ["anything when accept is empty", PNG_1X1, "image/png", []],
  ] as const)("refuses %s", (_what, head, declared, accept) => {
    reject(head, declared, accept);
  });

  it("refuses SVG matched only by image/* (it can carry scripts)", () => {
    const error = reject(SVG, "image/svg+xml", ["image/*"]);
    expect(error.message).toBe(
      "User.avatar: file type image/svg+xml is not accepted: it can carry scripts, so it must be listed explicitly " +
        "(accepted: image/*)",
    );
  });

  it("refuses HTML matched only by text/*, and SVG content without a declared type", () => {
    expect(reject(HTML, "text/html", ["text/*"]).message).toMatch(/text\/html is not accepted: it can carry scripts/);
    const error = reject(SVG, "application/octet-stream", ["image/*"]);
    expect(error.message).toMatch(
      /file type image\/svg\+xml \(detected from its content; declared application\/octet-stream\)/,
    );
    expect(error.detectedType).toBe("image/svg+xml");
  });

  it("explains text posing as an image when both types are accepted", () => {
    const error = reject(TEXT, "image/png", ["image/*", "text/plain"]);
    expect(error.message).toBe(
      "User.avatar: file type text/plain (detected from its content; declared image/png) is not accepted: " +
        "text content declared as image/png (accepted: image/*, text/plain)",
    );
  });

  it("names what it knows of the field, and quotes hostile declared types safely", () => {
    expect(reject(PDF, "image/png", ["image/png"], {}).message).toMatch(/^File type application\/pdf \(detected/);
    expect(reject(PDF, "image/png", ["image/png"], { field: "doc" }).message).toMatch(/^doc: file type/);
    const error = reject(PNG_1X1, `text/evil\u0007\n${"x".repeat(300)}`, ["image/png"]);
    expect([...error.message].some((char) => char.charCodeAt(0) < 0x20)).toBe(false);
    expect(error.message.length).toBeLessThan(250);
  });
});

// ---------------------------------------------------------------------------------------------
// NormalizedContent.peek
// ---------------------------------------------------------------------------------------------

/** Peeks as storeUploads does: normalize, then peek the sniffing window (or `bytes`). */
function peekContent(content: FileContent, bytes: number = SNIFF_BYTES) {
  return normalizeContent(content).peek(bytes);
}

const SAMPLE = Buffer.concat([PNG_1X1, Buffer.alloc(10_000, 7), Buffer.from("tail")]);

/** A Readable of `count` chunks of `size` bytes (chunk i filled with i % 251), counting pulls. */
function countingReadable(count: number, size: number, options: { failAt?: number } = {}) {
  const state = { pulled: 0 };
  const stream = new Readable({
    highWaterMark: 16 * 1024,
    read() {
      if (state.pulled === options.failAt) {
        this.destroy(new Error("disk on fire"));
        return;
      }
      if (state.pulled === count) {
        this.push(null);
        return;
      }
      const chunk = Buffer.alloc(size, state.pulled % 251);
      state.pulled++;
      this.push(chunk);
    },
  });
  return { stream, state };
}

function expectedBytes(count: number, size: number): Buffer {
  return Buffer.concat(Array.from({ length: count }, (_, i) => Buffer.alloc(size, i % 251)));
}

describe("NormalizedContent.peek: in-memory content", () => {
  it.each([
    ["Buffer", () => Buffer.from(SAMPLE)],
    ["Uint8Array", () => new Uint8Array(SAMPLE)],
    ["ArrayBuffer", () => new Uint8Array(SAMPLE).buffer],
  ])("%s: a view of the start, content unchanged", async (_kind, make) => {
    const content = make();
    const { head, content: after } = await peekContent(content, 4096);
    expect(Buffer.from(head)).toEqual(SAMPLE.subarray(0, 4096));
    expect(after).toBe(content);
    expect(Buffer.from(await bytesOf(after))).toEqual(SAMPLE);
  });

  it("short content: the whole of it", async () => {
    const { head } = await peekContent(PNG_1X1);
    expect(Buffer.from(head)).toEqual(PNG_1X1);
  });

  it("Blob and File: slices, and returns the same object with name and type", async () => {
    const file = new File([SAMPLE], "avatar.png", { type: "image/png" });
    const { head, content } = await peekContent(file, 100);
    expect(Buffer.from(head)).toEqual(SAMPLE.subarray(0, 100));
    expect(content).toBe(file);
    expect((content as File).name).toBe("avatar.png");
    expect((content as File).type).toBe("image/png");
    expect(Buffer.from(await bytesOf(content))).toEqual(SAMPLE);

    const blob = new Blob([PNG_1X1]);
    expect(Buffer.from((await peekContent(blob)).head)).toEqual(PNG_1X1);
  });

  it("a peeked stream is spent: open() and peek() then throw CONTENT_CONSUMED; bytes stay replayable", async () => {
    const normalized = normalizeContent(Readable.from([Buffer.from("hello")]));
    const { head, content } = await normalized.peek(2);
    expect(Buffer.from(head).toString()).toBe("he");
    expect(() => normalized.open()).toThrow(expect.objectContaining({ code: "CONTENT_CONSUMED" }));
    await expect(normalized.peek(2)).rejects.toMatchObject({ code: "CONTENT_CONSUMED" });
    expect(Buffer.from(await bytesOf(content)).toString()).toBe("hello");

    const bytes = normalizeContent(Buffer.from("hello"));
    await bytes.peek(2);
    expect(Buffer.from(await readAll(bytes.open())).toString()).toBe("hello");
    expect(Buffer.from((await bytes.peek(3)).head).toString()).toBe("hel");
  });

  it("refuses a bad byte count", async () => {
    await expect(peekContent(SAMPLE, -1)).rejects.toThrow(RangeError);
    await expect(peekContent(SAMPLE, 1.5)).rejects.toThrow(RangeError);
    expect((await peekContent(SAMPLE, 0)).head.byteLength).toBe(0);
  });
});

describe("NormalizedContent.peek: Node Readable", () => {
  it("peeking 4 KiB of 10 MiB in 64 KiB chunks pulls only the first chunk, and loses nothing", async () => {
    const { stream, state } = countingReadable(160, 64 * 1024);
    const { head, content } = await peekContent(stream, 4096);
    expect(head.byteLength).toBe(4096);
    expect(Buffer.from(head)).toEqual(Buffer.alloc(4096, 0));
    expect(state.pulled).toBe(1);
    await tick();
    await tick();
    expect(state.pulled).toBe(1); // no read-ahead either
    expect(content).toBeInstanceOf(Readable);

    const all = await bytesOf(content);
    expect(all.byteLength).toBe(10 * 1024 * 1024);
    expect(sha256(all)).toBe(sha256(expectedBytes(160, 64 * 1024)));
  });

  it("reads the source only as the returned stream is read (backpressure)", async () => {
    const { stream, state } = countingReadable(160, 64 * 1024);
    const { content } = await peekContent(stream, 4096);
    const iterator = (content as Readable)[Symbol.asyncIterator]();
    for (let i = 0; i < 3; i++) await iterator.next();
    await new Promise((resolve) => setTimeout(resolve, 20));
    const pulled = state.pulled;
    // Each read takes one chunk through, plus what the source buffers to its highWaterMark.
    expect(pulled).toBeLessThanOrEqual(8);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(state.pulled).toBe(pulled); // nothing more while the consumer waits
    await iterator.return?.();
    expect(stream.destroyed).toBe(true);
  });

  it("collects small chunks until the head is full", async () => {
    const { stream, state } = countingReadable(100, 1000);
    const { head, content } = await peekContent(stream, 4096);
    expect(Buffer.from(head)).toEqual(expectedBytes(100, 1000).subarray(0, 4096));
    expect(state.pulled).toBeLessThan(40);
    expect(Buffer.from(await bytesOf(content))).toEqual(expectedBytes(100, 1000));
  });

  it("object mode (Readable.from) with Buffers and strings", async () => {
    const source = Readable.from([Buffer.from("ab"), "cd", Buffer.from("efgh")]);
    const { head, content } = await peekContent(source, 3);
    expect(Buffer.from(head).toString()).toBe("abc");
    expect(Buffer.from(await bytesOf(content)).toString()).toBe("abcdefgh");
  });

  it("a stream with an encoding set: its strings as UTF-8, as without peeking", async () => {
    const make = () => {
      const source = new Readable({ read() {} });
      source.push(Buffer.from(SAMPLE));
      source.push(null);
      source.setEncoding("hex");
      return source;
    };
    const hex = Buffer.from(SAMPLE.toString("hex"), "utf8");
    const { head, content } = await peekContent(make(), 64);
    expect(Buffer.from(head)).toEqual(hex.subarray(0, 64));
    expect(Buffer.from(await bytesOf(content))).toEqual(hex);
    expect(Buffer.from(await bytesOf(make()))).toEqual(hex);
  });

  it("a stream shorter than the head, and an empty one", async () => {
    const short = await peekContent(Readable.from([Buffer.from("hi")]));
    expect(Buffer.from(short.head).toString()).toBe("hi");
    expect(Buffer.from(await bytesOf(short.content)).toString()).toBe("hi");

    const empty = await peekContent(Readable.from([]));
    expect(empty.head.byteLength).toBe(0);
    expect((await bytesOf(empty.content)).byteLength).toBe(0);
  });

  it("waits for a slow source", async () => {
    const source = new Readable({ read() {} });
    const peeked = peekContent(source, 4);
    setTimeout(() => source.push(Buffer.from("ab")), 5);
    setTimeout(() => source.push(Buffer.from("cdef")), 10);
    setTimeout(() => source.push(null), 15);
    const { head, content } = await peeked;
    expect(Buffer.from(head).toString()).toBe("abcd");
    expect(Buffer.from(await bytesOf(content)).toString()).toBe("abcdef");
  });

  it("an error before the head is read rejects the peek", async () => {
    const { stream } = countingReadable(10, 100, { failAt: 2 });
    await expect(peekContent(stream, 4096)).rejects.toThrow("disk on fire");
    expect(stream.destroyed).toBe(true);
  });

  it("an error mid-stream reaches the consumer of the returned stream", async () => {
    const { stream } = countingReadable(100, 64 * 1024, { failAt: 5 });
    const { content } = await peekContent(stream, 4096);
    await expect(bytesOf(content)).rejects.toThrow("disk on fire");
  });

  it("a source destroyed without an error fails the returned stream (premature close)", async () => {
    const { stream } = countingReadable(100, 64 * 1024);
    const { content } = await peekContent(stream, 4096);
    const consumed = bytesOf(content);
    stream.destroy();
    await expect(consumed).rejects.toThrow(/Premature close/);
  });

  it("destroying the returned stream destroys the source", async () => {
    const { stream } = countingReadable(100, 64 * 1024);
    const { content } = await peekContent(stream, 4096);
    expect(stream.destroyed).toBe(false);
    (content as Readable).destroy();
    expect(stream.destroyed).toBe(true);
  });
});

describe("NormalizedContent.peek: web ReadableStream", () => {
  function countingWebStream(count: number, size: number, options: { failAt?: number } = {}) {
    const state = { pulled: 0, cancelled: undefined as unknown };
    const stream = new ReadableStream<Uint8Array>(
      {
        pull(controller) {
          if (state.pulled === options.failAt) {
            controller.error(new Error("upstream reset"));
            return;
          }
          if (state.pulled === count) {
            controller.close();
            return;
          }
          controller.enqueue(new Uint8Array(size).fill(state.pulled % 251));
          state.pulled++;
        },
        cancel(reason) {
          state.cancelled = reason ?? "cancelled";
        },
      },
      { highWaterMark: 0 },
    );
    return { stream, state };
  }

  it("yields the peeked chunk, then the rest; pulls only what it needs", async () => {
    const { stream, state } = countingWebStream(160, 64 * 1024);
    const { head, content } = await peekContent(stream, 4096);
    expect(head.byteLength).toBe(4096);
    expect(state.pulled).toBe(1);
    expect(content).toBeInstanceOf(ReadableStream);
    const all = await bytesOf(content);
    expect(sha256(all)).toBe(sha256(expectedBytes(160, 64 * 1024)));
  });

  it("propagates errors and cancellation", async () => {
    const failing = countingWebStream(100, 64 * 1024, { failAt: 3 });
    await expect(bytesOf((await peekContent(failing.stream, 4096)).content)).rejects.toThrow("upstream reset");

    const early = countingWebStream(100, 100, { failAt: 1 });
    await expect(peekContent(early.stream, 4096)).rejects.toThrow("upstream reset");

    const cancelled = countingWebStream(100, 64 * 1024);
    const { content } = await peekContent(cancelled.stream, 4096);
    await (content as ReadableStream<Uint8Array>).cancel("no thanks");
    expect(cancelled.state.cancelled).toBe("no thanks");
  });

  it("a short stream", async () => {
    const stream = new Blob([Buffer.from("tiny")]).stream() as ReadableStream<Uint8Array>;
    const { head, content } = await peekContent(stream);
    expect(Buffer.from(head).toString()).toBe("tiny");
    expect(Buffer.from(await bytesOf(content)).toString()).toBe("tiny");
  });
});

describe("NormalizedContent.peek: async iterables", () => {
  function counting(count: number, size: number, options: { failAt?: number } = {}) {
    const state = { pulled: 0, closed: false };
    async function* generate() {
      try {
        for (let i = 0; i < count; i++) {
          if (i === options.failAt) throw new Error("generator broke");
          state.pulled++;
          yield new Uint8Array(size).fill(i % 251);
        }
      } finally {
        state.closed = true;
      }
    }
    return { iterable: generate(), state };
  }

  it("yields the peeked chunks, then the rest", async () => {
    const { iterable, state } = counting(20, 1000);
    const { head, content } = await peekContent(iterable, 2500);
    expect(Buffer.from(head)).toEqual(expectedBytes(20, 1000).subarray(0, 2500));
    expect(state.pulled).toBe(3);
    expect(Buffer.from(await bytesOf(content))).toEqual(expectedBytes(20, 1000));
  });

  it("errors mid-stream propagate; breaking out closes the source", async () => {
    const failing = counting(20, 1000, { failAt: 5 });
    await expect(bytesOf((await peekContent(failing.iterable, 2500)).content)).rejects.toThrow("generator broke");

    const early = counting(20, 1000, { failAt: 1 });
    await expect(peekContent(early.iterable, 2500)).rejects.toThrow("generator broke");

    const { iterable, state } = counting(20, 1000);
    const { content } = await peekContent(iterable, 100);
    for await (const _ of content as AsyncIterable<Uint8Array>) break;
    expect(state.closed).toBe(true);
  });

  it("destroy() reaches the source, also before the content is read", async () => {
    const { iterable, state } = counting(20, 1000);
    const { content } = await peekContent(iterable, 100);
    normalizeContent(content).destroy();
    await tick();
    expect(state.closed).toBe(true);
  });
});
