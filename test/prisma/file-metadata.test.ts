/**
 * The SHA-256 and size of uploads as the storages read them (`digestContent`), for every content
 * kind and the storages that are not S3 (the Prisma suites cover S3), and the value that clears a
 * `Json?` column.
 */
import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FileSystemStorage, MemoryStorage, type Storage } from "../../src/index.js";
import { clearFileMetadata, digestContent, digestStored } from "../../src/prisma/file-metadata.js";
import type { FileContent } from "../../src/storage/storage.js";
import { Prisma } from "../generated/prisma/client.js";

const bytes = randomBytes(200_000);
const expected = { size: bytes.length, sha256: createHash("sha256").update(bytes).digest("hex") };
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "psf-digest-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const contents: [string, () => FileContent][] = [
  ["a Buffer", () => Buffer.from(bytes)],
  ["an ArrayBuffer", () => new Uint8Array(bytes).buffer],
  ["a File", () => new File([new Uint8Array(bytes)], "f.bin", { type: "application/octet-stream" })],
  ["a Node Readable", () => Readable.from([bytes.subarray(0, 70_000), bytes.subarray(70_000)])],
  ["a web ReadableStream", () => Readable.toWeb(Readable.from([bytes])) as ReadableStream<Uint8Array>],
  [
    "an async iterable",
    () =>
      (async function* () {
        yield bytes.subarray(0, 1);
        yield bytes.subarray(1);
      })(),
  ],
];

describe.each([
  ["MemoryStorage", () => new MemoryStorage() as Storage],
  ["FileSystemStorage", () => new FileSystemStorage({ location: dir }) as Storage],
])("digestContent on %s", (_name, makeStorage) => {
  it.each(contents)("%s: the digest of what was stored", async (label, make) => {
    const storage = makeStorage();
    const digest = digestContent(make());
    const key = await storage.save(`d/${label.replaceAll(" ", "-")}.bin`, digest.content);
    expect(digest.result()).toEqual(expected);
    expect(await digestStored(storage, key)).toEqual(expected);
  });
});

it("a File stays a File: its length is known and it can be read again, each read hashed afresh", async () => {
  const digest = digestContent(new File([new Uint8Array(bytes)], "again.bin"));
  const blob = digest.content as Blob;
  expect(blob.size).toBe(bytes.length);
  expect((blob as File).name).toBe("again.bin");
  for (let i = 0; i < 2; i++) {
    const chunks: Uint8Array[] = [];
    for await (const chunk of blob.stream() as unknown as AsyncIterable<Uint8Array>) chunks.push(chunk);
    expect(Buffer.concat(chunks)).toEqual(bytes);
    expect(digest.result()).toEqual(expected);
  }
});

it("clearing sets a Json? column to Prisma's DbNull (SQL NULL, not JSON null) and Int? columns to null", () => {
  const record: Record<string, unknown> = { avatarHeight: 5 };
  clearFileMetadata(record, {
    uploadTo: "",
    storage: "default",
    maxSize: null,
    accept: null,
    keepFiles: false,
    deleteAfterSeconds: 0,
    maxLength: null,
    nullable: true,
    metadata: "avatarMeta",
    widthField: "avatarWidth",
    heightField: "avatarHeight",
  });
  const dbNull = record.avatarMeta as { _getName(): string };
  expect(Prisma.DbNull.toString()).toBe("Prisma.DbNull");
  expect(String(dbNull)).toBe(Prisma.DbNull.toString());
  expect(dbNull._getName()).toBe(Prisma.DbNull._getName());
  expect(record).toMatchObject({ avatarWidth: null, avatarHeight: 5 });
});
