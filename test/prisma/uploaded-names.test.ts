/**
 * Stored names and types follow the content: a recognised binary format whose name says
 * otherwise (or nothing) is stored under the format's extension and Content-Type; names that
 * agree, and text, keep what the client sent.
 */
import { randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import { HeadObjectCommand } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { nameForContent } from "../../src/files/validation.js";
import { s3Files } from "../../src/prisma/extension.js";
import { upload } from "../../src/prisma/upload.js";
import type { S3Session } from "../../src/session/session.js";
import { MemoryStorage } from "../../src/storage/memory-storage.js";
import { S3Storage } from "../../src/storage/s3/s3-storage.js";
import { strftime } from "../../src/storage/strftime.js";
import { fileFields, harnessSession, plainClient } from "./client.js";

const tag = randomBytes(4).toString("hex");
const location = `names-${tag}`;
const PNG = Buffer.from(
  "89504e470d0a1a0a0000000d4948445200000001000000010806000000" +
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082",
  "hex",
);
const PDF = Buffer.from("%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n", "latin1");
const month = strftime("%Y/%m/", new Date());
let session: S3Session;
let prisma: ReturnType<typeof makeClient>;
let n = 0;
const email = () => `names${n++}-${tag}@example.com`;

function makeClient() {
  const storages = {
    default: new S3Storage({ session, location }),
    private: new S3Storage({ session, location: `${location}-private` }),
    public: new MemoryStorage(),
  };
  return plainClient().$extends(s3Files(session, { fields: fileFields, storages }));
}

/** The stored object's Content-Type, from S3. */
async function storedType(key: string, prefix = location): Promise<string | undefined> {
  const head = await session.client.send(
    new HeadObjectCommand({ Bucket: inject("s3").bucket, Key: `${prefix}/${key}` }),
  );
  return head.ContentType;
}

beforeAll(() => {
  session = harnessSession();
  prisma = makeClient();
});
afterAll(async () => {
  await prisma.$disconnect();
  await session.destroy();
});

describe("stored names follow the sniffed type", () => {
  it("PNG bytes named x.exe, to an image/png column, are stored as x.png with image/png", async () => {
    const user = await prisma.user.create({
      data: { email: email(), avatar: upload(PNG, { filename: "x.exe" }), badge: "b" },
    });
    expect(user.avatar?.name).toBe(`avatars/${month}x.png`);
    expect(await storedType(user.avatar!.name)).toBe("image/png");
    const response = await fetch(await user.avatar!.url());
    expect(response.headers.get("content-type")).toBe("image/png");
  });

  it("PNG bytes without a name are stored as file.png with image/png", async () => {
    const user = await prisma.user.create({
      data: { email: email(), avatar: upload(Readable.from([PNG])), badge: "b" },
    });
    expect(user.avatar?.name).toBe(`avatars/${month}file.png`);
    expect(await storedType(user.avatar!.name)).toBe("image/png");
  });

  it("a PDF named scan.png, in a column that accepts anything, is stored as scan.pdf", async () => {
    const user = await prisma.user.create({
      data: { email: email(), badge: upload(new File([PDF], "scan.png", { type: "image/png" })) },
    });
    expect(user.badge.name).toBe("badges/scan.pdf");
    expect(await storedType(user.badge.name, `${location}-private`)).toBe("application/pdf");
  });

  it("names that agree with the content, and text, keep the client's name and type", async () => {
    const png = await prisma.user.create({
      data: {
        email: email(),
        avatar: upload(new File([PNG], "Photo.PNG")),
        badge: upload(Buffer.from("a,b\n1,2\n"), { filename: "data.csv" }),
      },
    });
    expect(png.avatar?.name).toBe(`avatars/${month}Photo.PNG`);
    expect(await storedType(png.avatar!.name)).toBe("image/png");
    expect(png.badge.name).toBe("badges/data.csv");
    expect(await storedType(png.badge.name, `${location}-private`)).toBe("text/csv");
  });
});

describe("nameForContent", () => {
  const docx = "application/vnd.openxmlformats-officedocument.wordprocessingml.document";
  it.each([
    // [name, declared type, detected type, stored name, stored type]
    ["x.exe", "application/octet-stream", "image/png", "x.png", "image/png"],
    ["file.bin", "application/octet-stream", "image/png", "file.png", "image/png"],
    ["photo", "", "image/jpeg", "photo.jpg", "image/jpeg"],
    ["a.b.jpg", "image/jpeg", "image/png", "a.b.png", "image/png"],
    [".profile", "", "application/pdf", ".profile.pdf", "application/pdf"],
    ["x.png", "application/octet-stream", "image/png", "x.png", "image/png"],
    ["photo.jpeg", "image/jpeg", "image/jpeg", "photo.jpeg", "image/jpeg"],
    ["report.docx", docx, "application/zip", "report.docx", docx],
    ["report.bin", docx, "application/zip", "report.docx", docx],
    ["data.csv", "text/csv", "text/plain", "data.csv", "text/csv"],
    ["page.txt", "text/plain", "text/html", "page.txt", "text/plain"],
    ["logo.png", "image/png", "image/svg+xml", "logo.png", "image/png"],
    ["blob.dat", "application/octet-stream", undefined, "blob.dat", "application/octet-stream"],
  ] as const)("%s (%s, sniffed %s) → %s, %s", (name, declared, detected, storedName, storedType) => {
    expect(nameForContent(name, declared, detected)).toEqual({ filename: storedName, contentType: storedType });
  });
});
