/**
 * Metadata in the row (issue #18, first part), against the harness's S3 server and the project's
 * database: `@file(metadata, widthField, heightField)` columns written in the same row write as
 * the key, read back through `FieldFile` without a storage call, cleared with the file, refused
 * beside an upload; `maxPixels` refusing decompression bombs before any byte is stored; direct
 * uploads attached with their metadata. The test schema's `Photo` model:
 *
 * - `image`: `accept: ["image/*"]`, `metadata: "imageMeta"`, `widthField: "imageWidth"`,
 *   `heightField: "imageHeight"`, `maxPixels: 1000000`;
 * - `scan`: any type, `metadata: "scanMeta"`, the default `maxPixels` (40 MP).
 */
import { createHash, randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import {
  FieldFile,
  type FileMetadata,
  FileValidationError,
  PrismaS3FilesError,
  type S3Session,
  S3Storage,
} from "../../src/index.js";
import { s3Files } from "../../src/prisma/extension.js";
import { pendingUploadCount, upload } from "../../src/prisma/upload.js";
import { png } from "../demo/png.js";
import { jpegHeader, pngHeader } from "../files/images.js";
import { listKeys } from "../harness/s3.js";
import { fileFields, harnessSession, plainClient, sqlId } from "./client.js";
import { postUpload } from "./direct-upload-support.js";

const s3 = inject("s3");
const tag = randomBytes(4).toString("hex");
const location = `meta-${tag}`;
const secret = randomBytes(32).toString("hex");
const plain = plainClient();
let session: S3Session;
let storage: CountingS3Storage;
let prisma: ReturnType<typeof makeClient>;

/** An S3 storage that counts the calls that would read or write an object. */
class CountingS3Storage extends S3Storage {
  reads = 0;
  saves = 0;
  override async open(...args: Parameters<S3Storage["open"]>) {
    this.reads++;
    return super.open(...args);
  }
  override async stat(name: string) {
    this.reads++;
    return super.stat(name);
  }
  override async size(name: string) {
    this.reads++;
    return super.size(name);
  }
  override async exists(name: string) {
    this.reads++;
    return super.exists(name);
  }
  override async save(...args: Parameters<S3Storage["save"]>) {
    this.saves++;
    return super.save(...args);
  }
}

function makeClient() {
  return plainClient().$extends(
    s3Files(session, {
      fields: fileFields,
      storages: { default: storage, private: storage, public: storage },
      directUploads: { secret },
    }),
  );
}

const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");
const keys = (under = "") => listKeys(s3, `${location}/${under}`);
/** The row as the database holds it, through the plain client. */
const rowOf = (id: number) => plain.photo.findUniqueOrThrow({ where: { id } });

beforeAll(() => {
  session = harnessSession();
  storage = new CountingS3Storage({ session, location });
  prisma = makeClient();
});
afterAll(async () => {
  await prisma.$disconnect();
  await plain.$disconnect();
  await session.destroy();
});

describe("metadata written with the key", () => {
  it("create: the Json column and the width/height columns get the file's facts in the same row", async () => {
    const bytes = png(37, 5);
    const photo = await prisma.photo.create({ data: { image: upload(bytes, { filename: "cat.png" }) } });
    const expected: FileMetadata = {
      size: bytes.length,
      contentType: "image/png",
      sha256: sha256(bytes),
      originalName: "cat.png",
      width: 37,
      height: 5,
    };
    const row = await rowOf(photo.id);
    expect(row.image).toBe("photos/cat.png");
    expect(row.imageMeta).toEqual(expected);
    expect([row.imageWidth, row.imageHeight]).toEqual([37, 5]);
    // The bytes stored are the bytes described.
    expect(sha256(await storage.read("photos/cat.png"))).toBe(expected.sha256);
  });

  it("FieldFile reads metadata, width and height from the row, without a storage call", async () => {
    const created = await prisma.photo.create({ data: { image: upload(png(12, 34), { filename: "a.png" }) } });
    const before = storage.reads;
    const photo = await prisma.photo.findUniqueOrThrow({ where: { id: created.id } });
    expect(photo.image).toBeInstanceOf(FieldFile);
    expect(photo.image!.metadata).toMatchObject({ contentType: "image/png", width: 12, height: 34 });
    expect([photo.image!.width, photo.image!.height]).toEqual([12, 34]);
    // The write's own result carries them too.
    expect([created.image!.width, created.image!.height]).toEqual([12, 34]);
    expect(storage.reads).toBe(before);
  });

  it("FieldFile: undefined when the columns were not selected; width from widthField alone or from metadata alone", async () => {
    const { id } = await prisma.photo.create({ data: { image: upload(png(8, 9), { filename: "b.png" }) } });
    const bare = await prisma.photo.findUniqueOrThrow({ where: { id }, select: { image: true } });
    expect(bare.image!.metadata).toBeUndefined();
    expect(bare.image!.width).toBeUndefined();
    expect(bare.image!.height).toBeUndefined();
    const widthOnly = await prisma.photo.findUniqueOrThrow({
      where: { id },
      select: { image: true, imageWidth: true },
    });
    expect(widthOnly.image!.width).toBe(8);
    expect(widthOnly.image!.height).toBeUndefined();
    expect(widthOnly.image!.metadata).toBeUndefined();
    const metaOnly = await prisma.photo.findUniqueOrThrow({ where: { id }, select: { image: true, imageMeta: true } });
    expect([metaOnly.image!.width, metaOnly.image!.height]).toEqual([8, 9]);
  });

  it("streams and Files: size and SHA-256 of what the storage read, the File's name as originalName", async () => {
    const bytes = Buffer.concat([png(64, 48), randomBytes(300_000)]); // several chunks past the peeked head
    const fromStream = await prisma.photo.create({
      data: { scan: upload(Readable.from([bytes.subarray(0, 1000), bytes.subarray(1000)]), { filename: "s.png" }) },
    });
    const fromFile = await prisma.photo.create({
      data: { scan: upload(new File([new Uint8Array(bytes)], "from file.png", { type: "image/png" })) },
    });
    const fromWeb = await prisma.photo.create({
      data: { scan: upload(Readable.toWeb(Readable.from([bytes])) as ReadableStream<Uint8Array>) },
    });
    for (const { id } of [fromStream, fromFile, fromWeb]) {
      const meta = (await rowOf(id)).scanMeta as unknown as FileMetadata;
      expect(meta).toMatchObject({ size: bytes.length, sha256: sha256(bytes), width: 64, height: 48 });
    }
    expect(((await rowOf(fromFile.id)).scanMeta as unknown as FileMetadata).originalName).toBe("from file.png");
    // A stream without a name has no originalName; its stored name follows its content.
    expect((await rowOf(fromWeb.id)).scanMeta).not.toHaveProperty("originalName");
    expect(pendingUploadCount()).toBe(0);
  });

  it("a JPEG turned by EXIF (orientation 6) is described as displayed; a PDF has no dimensions", async () => {
    const jpeg = jpegHeader(4000, 3000, { orientation: 6 });
    const turned = await prisma.photo.create({ data: { scan: upload(jpeg, { filename: "turned.jpg" }) } });
    expect(turned.scan!.metadata).toMatchObject({ contentType: "image/jpeg", width: 3000, height: 4000 });
    const pdf = Buffer.from("%PDF-1.7\n%%EOF\n");
    const doc = await prisma.photo.create({ data: { scan: upload(pdf, { filename: "doc.pdf" }) } });
    expect((await rowOf(doc.id)).scanMeta).toEqual({
      size: pdf.length,
      contentType: "application/pdf",
      sha256: sha256(pdf),
      originalName: "doc.pdf",
    });
    expect(doc.scan!.width).toBeNull();
    expect(doc.scan!.height).toBeNull();
  });

  it("createMany: each row gets its own file's metadata", async () => {
    const title = `many-${tag}`;
    await prisma.photo.createMany({
      data: [
        { title, image: upload(png(3, 4), { filename: "m1.png" }) },
        { title, image: upload(png(5, 6), { filename: "m2.png" }) },
      ],
    });
    const rows = await plain.photo.findMany({ where: { title }, orderBy: { id: "asc" } });
    expect(rows.map((r) => [r.image, r.imageWidth, r.imageHeight])).toEqual([
      ["photos/m1.png", 3, 4],
      ["photos/m2.png", 5, 6],
    ]);
    expect(rows.map((r) => (r.imageMeta as unknown as FileMetadata).originalName)).toEqual(["m1.png", "m2.png"]);
  });
});

describe("the metadata follows the file", () => {
  it("update with a new upload replaces it (the long { set } form too)", async () => {
    const { id } = await prisma.photo.create({ data: { image: upload(png(10, 10), { filename: "old.png" }) } });
    await prisma.photo.update({ where: { id }, data: { image: upload(png(20, 30), { filename: "new.png" }) } });
    let row = await rowOf(id);
    expect([row.image, row.imageWidth, row.imageHeight]).toEqual(["photos/new.png", 20, 30]);
    expect(row.imageMeta).toMatchObject({ originalName: "new.png", width: 20, height: 30 });
    await prisma.photo.update({
      where: { id },
      data: { image: { set: upload(png(40, 50), { filename: "set.png" }) } },
    });
    row = await rowOf(id);
    expect([row.image, row.imageWidth, row.imageHeight]).toEqual(["photos/set.png", 40, 50]);
    expect(row.imageMeta).toMatchObject({ originalName: "set.png" });
  });

  it("null clears the columns with the file; a write that sets them itself keeps its values", async () => {
    const { id } = await prisma.photo.create({ data: { image: upload(png(10, 10), { filename: "gone.png" }) } });
    await prisma.photo.update({ where: { id }, data: { image: null } });
    let row = await rowOf(id);
    expect([row.image, row.imageMeta, row.imageWidth, row.imageHeight]).toEqual([null, null, null, null]);
    // SQL NULL, not the JSON value null (which Prisma also reads as null).
    const sqlNull = await plain.$queryRawUnsafe<unknown[]>(
      `select ${sqlId("id")} from ${sqlId("Photo")} where ${sqlId("id")} = ${Number(id)} and ${sqlId("imageMeta")} is null`,
    );
    expect(sqlNull).toHaveLength(1);
    await prisma.photo.update({ where: { id }, data: { image: upload(png(10, 10), { filename: "back.png" }) } });
    await prisma.photo.update({ where: { id }, data: { image: { set: null }, imageWidth: 7 } });
    row = await rowOf(id);
    expect([row.image, row.imageMeta, row.imageWidth, row.imageHeight]).toEqual([null, null, 7, null]);
  });

  it("a key written as-is (a copy) leaves the columns as the write gives them", async () => {
    const source = await prisma.photo.create({ data: { image: upload(png(11, 12), { filename: "src.png" }) } });
    const target = await prisma.photo.create({ data: { image: upload(png(1, 1), { filename: "dst.png" }) } });
    // Untouched when not given: the target still describes its old file.
    await prisma.photo.update({ where: { id: target.id }, data: { image: "photos/src.png" } });
    let row = await rowOf(target.id);
    expect([row.image, row.imageWidth]).toEqual(["photos/src.png", 1]);
    // Copied along when given.
    const src = await rowOf(source.id);
    await prisma.photo.update({
      where: { id: target.id },
      data: {
        image: src.image,
        imageMeta: src.imageMeta as object,
        imageWidth: src.imageWidth,
        imageHeight: src.imageHeight,
      },
    });
    row = await rowOf(target.id);
    expect([row.imageMeta, row.imageWidth, row.imageHeight]).toEqual([src.imageMeta, 11, 12]);
  });

  it("an upload with its metadata columns set too is refused before anything is stored", async () => {
    const before = await keys();
    const attempt = prisma.photo.create({
      data: { image: upload(png(2, 2), { filename: "conflict.png" }), imageWidth: 99 },
    });
    await expect(attempt).rejects.toMatchObject({ code: "FILE_METADATA_CONFLICT" });
    await expect(attempt).rejects.toBeInstanceOf(PrismaS3FilesError);
    expect(await keys()).toEqual(before);
    expect(pendingUploadCount()).toBe(0);
  });

  it("a rolled-back transaction keeps the old key and the old metadata together", async () => {
    const { id } = await prisma.photo.create({ data: { image: upload(png(10, 20), { filename: "kept.png" }) } });
    const before = await rowOf(id);
    await expect(
      prisma.$transaction(async (tx) => {
        await tx.photo.update({ where: { id }, data: { image: upload(png(30, 40), { filename: "rolled.png" }) } });
        throw new Error("changed my mind");
      }),
    ).rejects.toThrow("changed my mind");
    expect(await rowOf(id)).toEqual(before);
    expect(await keys("photos/rolled")).toEqual([]);
  });

  it("FieldFile.save() and delete() keep the row's metadata in step; attach() returns a file that knows it", async () => {
    const created = await prisma.photo.create({ data: { image: upload(png(10, 10), { filename: "f1.png" }) } });
    const photo = await prisma.photo.findUniqueOrThrow({ where: { id: created.id } });
    const saved = await photo.image!.save(png(15, 16), { filename: "f2.png" });
    expect([saved.width, saved.height]).toEqual([15, 16]);
    expect([photo.imageWidth, photo.imageHeight]).toEqual([15, 16]);
    expect((photo.imageMeta as unknown as FileMetadata).originalName).toBe("f2.png");
    await photo.image!.delete();
    expect([photo.image, photo.imageMeta, photo.imageWidth]).toEqual([null, null, null]);
    const attached = (await prisma.photo.attach({ id: created.id }, "image", png(17, 18), {
      filename: "f3.png",
    })) as FieldFile;
    expect([attached.width, attached.height]).toEqual([17, 18]);
  });
});

describe("maxPixels", () => {
  it("a 20,000 × 20,000 PNG header is refused with too_many_pixels before any byte is stored (default 40 MP)", async () => {
    const bomb = pngHeader(20_000, 20_000, 200_000);
    const saves = storage.saves;
    const attempt = prisma.photo.create({ data: { scan: upload(Readable.from([bomb]), { filename: "bomb.png" }) } });
    await expect(attempt).rejects.toBeInstanceOf(FileValidationError);
    await expect(attempt).rejects.toMatchObject({
      reason: "too_many_pixels",
      model: "Photo",
      field: "scan",
      limit: 40_000_000,
      width: 20_000,
      height: 20_000,
    });
    expect(storage.saves).toBe(saves);
    expect(await keys("scans/bomb")).toEqual([]);
    expect(pendingUploadCount()).toBe(0);
  });

  it("the field's maxPixels: 1000 × 1000 passes, 1001 × 1000 does not; other files in the write are not stored", async () => {
    const ok = await prisma.photo.create({ data: { image: upload(pngHeader(1000, 1000), { filename: "mp.png" }) } });
    expect([ok.image!.width, ok.image!.height]).toEqual([1000, 1000]);
    const attempt = prisma.photo.create({
      data: {
        scan: upload(png(1, 1), { filename: "innocent.png" }),
        image: upload(pngHeader(1001, 1000), { filename: "over.png" }),
      },
    });
    await expect(attempt).rejects.toMatchObject({ reason: "too_many_pixels", field: "image", limit: 1_000_000 });
    expect(await keys("scans/innocent")).toEqual([]);
    expect(await keys("photos/over")).toEqual([]);
  });

  it("a corrupt header is stored without dimensions (nothing can decode it to a bomb)", async () => {
    const corrupt = pngHeader(50_000, 50_000);
    corrupt.write("IHDX", 12, "latin1");
    const photo = await prisma.photo.create({ data: { image: upload(corrupt, { filename: "corrupt.png" }) } });
    const row = await rowOf(photo.id);
    expect(row.image).toBe("photos/corrupt.png");
    expect([row.imageWidth, row.imageHeight]).toEqual([null, null]);
    expect(row.imageMeta).toEqual({
      size: corrupt.length,
      contentType: "image/png",
      sha256: sha256(corrupt),
      originalName: "corrupt.png",
    });
  });
});

describe("direct uploads attach with their metadata", () => {
  async function grantFor(bytes: Buffer, filename: string, checksum = false) {
    const grant = await prisma.photo.uploadGrant("image", {
      filename,
      contentType: "image/png",
      size: bytes.length,
      ...(checksum ? { checksumSha256: createHash("sha256").update(bytes).digest("base64") } : {}),
    });
    expect((await postUpload(grant, bytes, "image/png")).status).toBeLessThan(300);
    return grant;
  }

  it("size, type, name and dimensions from what the attach reads; no SHA-256 without a declared checksum", async () => {
    const bytes = png(21, 22);
    const grant = await grantFor(bytes, "direct.png");
    const photo = await prisma.photo.create({ data: { image: grant.token } });
    const row = await rowOf(photo.id);
    expect(row.imageMeta).toEqual({
      size: bytes.length,
      contentType: "image/png",
      originalName: "direct.png",
      width: 21,
      height: 22,
    });
    expect([row.imageWidth, row.imageHeight]).toEqual([21, 22]);
  });

  it("with a declared checksum the verified SHA-256 is kept, in hex", async () => {
    const bytes = png(23, 24);
    const grant = await grantFor(bytes, "checked.png", true);
    const photo = await prisma.photo.create({ data: { image: grant.token } });
    expect(photo.image!.metadata).toMatchObject({ sha256: sha256(bytes), width: 23, height: 24 });
  });

  it("a bomb is refused on attach and its object removed", async () => {
    const bomb = pngHeader(2000, 2000);
    const grant = await grantFor(bomb, "direct-bomb.png");
    const attempt = prisma.photo.create({ data: { image: grant.token } });
    await expect(attempt).rejects.toMatchObject({ reason: "too_many_pixels", field: "image" });
    expect(await keys("photos/direct-bomb")).toEqual([]);
  });
});
