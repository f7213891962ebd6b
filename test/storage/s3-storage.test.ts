import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { createSession, type S3Session } from "../../src/index.js";
import { S3Storage } from "../../src/storage/s3/s3-storage.js";
import { listKeys } from "../harness/s3.js";
import { describeStorageConformance } from "./conformance.js";

const s3 = inject("s3");
let session: S3Session;

beforeAll(() => {
  session = createSession({
    region: s3.region,
    endpoint: s3.endpoint,
    forcePathStyle: s3.forcePathStyle,
    bucket: s3.bucket,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    checksums: "when_required",
  });
});
afterAll(() => session.destroy());

describeStorageConformance("S3Storage", async ({ fileOverwrite }) => {
  const location = `conformance/${randomBytes(6).toString("hex")}`;
  const storage = new S3Storage({ session, location, fileOverwrite, partSize: 5 * 1024 * 1024 });
  return { storage, listAll: () => listKeys(s3, location) };
});

describe("S3Storage specifics", () => {
  it("needs a bucket and refuses a location starting with /", () => {
    const noBucket = createSession({ region: "us-east-1", credentials: { accessKeyId: "a", secretAccessKey: "b" } });
    expect(() => new S3Storage({ session: noBucket })).toThrow(/needs a bucket/);
    expect(() => new S3Storage({ session, location: "/abs" })).toThrow(/must not begin with/);
    void noBucket.destroy();
  });
});
