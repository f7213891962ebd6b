/**
 * The typed direct-upload capability: `S3Storage` has it, the other backends do not, and a
 * storage with only some of the presigning methods does not count (a grant would fail half-way).
 */
import { describe, expect, it } from "vitest";
import { createSession, FileSystemStorage, MemoryStorage, S3Storage } from "../../src/index.js";
import { isDirectUploadCapable, type Storage } from "../../src/storage/storage.js";

describe("isDirectUploadCapable", () => {
  it("S3Storage is; memory and filesystem storages are not", async () => {
    const session = createSession({
      region: "us-east-1",
      bucket: "b",
      credentials: { accessKeyId: "a", secretAccessKey: "b" },
    });
    try {
      expect(isDirectUploadCapable(new S3Storage({ session }))).toBe(true);
    } finally {
      await session.destroy();
    }
    expect(isDirectUploadCapable(new MemoryStorage())).toBe(false);
    expect(isDirectUploadCapable(new FileSystemStorage({ location: "/tmp/psf-capable" }))).toBe(false);
  });

  it("needs every presigning method, not just the two the old duck typing looked at", () => {
    const partial = Object.assign(new MemoryStorage(), {
      presignedPost: async () => ({ url: "", fields: {}, expiresAt: new Date() }),
      createMultipartUpload: async () => "id",
    }) as Storage;
    expect(isDirectUploadCapable(partial)).toBe(false);
    const full = Object.assign(partial, {
      presignUploadPart: async () => "",
      presignCompleteMultipartUpload: async () => "",
      signingExpiresAt: async () => undefined,
    });
    expect(isDirectUploadCapable(full)).toBe(true);
  });
});
