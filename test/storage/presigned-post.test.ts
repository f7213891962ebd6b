import { createHash } from "node:crypto";
import { Sha256 } from "@aws-crypto/sha256-js";
import { HeadObjectCommand } from "@aws-sdk/client-s3";
import { SignatureV4 } from "@smithy/signature-v4";
import { describe, expect, inject, it } from "vitest";
import { QueryPresigner, s3BaseUrl } from "../../src/storage/s3/presigner.js";
import { harnessClient, keyExists } from "../harness/s3.js";

const s3 = inject("s3");
const target = {
  baseUrl: s3BaseUrl({ endpoint: s3.endpoint, region: s3.region, bucket: s3.bucket, forcePathStyle: true }),
  region: s3.region,
};
const credentials = { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey };

describe("presigned POST (browser form upload grant)", () => {
  it("signs the policy exactly as the SDK's SigV4 string signer does, and pins key, type and size", async () => {
    const now = Date.UTC(2026, 10, 25, 12, 30, 15);
    const post = new QueryPresigner().presignPost(
      { baseUrl: "https://b.s3.eu-west-1.amazonaws.com", region: "eu-west-1" },
      "pending/abc/photo.png",
      { accessKeyId: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", sessionToken: "tok" },
      { bucket: "b", expiresIn: 900, contentType: "image/png", maxSize: 5_000_000, now },
    );
    const signer = new SignatureV4({
      credentials: { accessKeyId: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY" },
      region: "eu-west-1",
      service: "s3",
      sha256: Sha256,
    });
    expect(post.fields["X-Amz-Signature"]).toBe(await signer.sign(post.fields.Policy!, { signingDate: new Date(now) }));
    expect(post.fields["x-amz-credential"]).toBe("AKIDEXAMPLE/20261125/eu-west-1/s3/aws4_request");
    expect(post.fields["x-amz-date"]).toBe("20261125T123015Z");
    const policy = JSON.parse(Buffer.from(post.fields.Policy!, "base64").toString("utf8"));
    expect(policy.expiration).toBe("2026-11-25T12:45:15.000Z");
    expect(policy.conditions).toEqual([
      { bucket: "b" },
      ["eq", "$key", "pending/abc/photo.png"],
      ["eq", "$Content-Type", "image/png"],
      ["content-length-range", 0, 5_000_000],
      { "x-amz-algorithm": "AWS4-HMAC-SHA256" },
      { "x-amz-credential": "AKIDEXAMPLE/20261125/eu-west-1/s3/aws4_request" },
      { "x-amz-date": "20261125T123015Z" },
      { "x-amz-security-token": "tok" },
    ]);
    expect(post.url).toBe("https://b.s3.eu-west-1.amazonaws.com");
  });

  it("a browser-style multipart POST with the fields stores the object on the S3 server", async () => {
    const key = `post/${Date.now()}/hello.txt`;
    const post = new QueryPresigner().presignPost(target, key, credentials, {
      bucket: s3.bucket,
      expiresIn: 60,
      contentType: "text/plain",
      maxSize: 1024,
    });
    const form = new FormData();
    for (const [name, value] of Object.entries(post.fields)) form.append(name, value);
    form.append("file", new Blob(["hello from the browser"], { type: "text/plain" }), "hello.txt");
    const response = await fetch(post.url, { method: "POST", body: form });
    expect(response.status).toBeLessThan(300);
    const client = harnessClient(s3);
    try {
      const head = await client.send(new HeadObjectCommand({ Bucket: s3.bucket, Key: key }));
      expect(head.ContentLength).toBe(22);
      expect(head.ContentType).toBe("text/plain");
    } finally {
      client.destroy();
    }
  });

  it("metadata and a SHA-256 checksum become form fields the policy pins", async () => {
    const now = Date.UTC(2026, 10, 25, 12, 30, 15);
    const checksum = createHash("sha256").update("the bytes").digest("base64");
    const creds = { accessKeyId: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY" };
    const post = new QueryPresigner().presignPost(
      { baseUrl: "https://b.s3.eu-west-1.amazonaws.com", region: "eu-west-1" },
      "pending/abc/doc.pdf",
      creds,
      {
        bucket: "b",
        expiresIn: 600,
        contentType: "application/pdf",
        minSize: 1,
        maxSize: 10_000,
        metadata: { Owner: "42", "upload-id": "u-1" },
        checksumSha256: checksum,
        now,
      },
    );
    expect(Object.keys(post.fields)).toEqual([
      "key",
      "Content-Type",
      "x-amz-meta-owner",
      "x-amz-meta-upload-id",
      "x-amz-checksum-algorithm",
      "x-amz-checksum-sha256",
      "x-amz-algorithm",
      "x-amz-credential",
      "x-amz-date",
      "Policy",
      "X-Amz-Signature",
    ]);
    expect(post.fields["x-amz-checksum-algorithm"]).toBe("SHA256");
    expect(post.fields["x-amz-checksum-sha256"]).toBe(checksum);
    const policy = JSON.parse(Buffer.from(post.fields.Policy!, "base64").toString("utf8"));
    expect(policy.conditions).toEqual([
      { bucket: "b" },
      ["eq", "$key", "pending/abc/doc.pdf"],
      ["eq", "$Content-Type", "application/pdf"],
      ["content-length-range", 1, 10_000],
      { "x-amz-meta-owner": "42" },
      { "x-amz-meta-upload-id": "u-1" },
      { "x-amz-checksum-algorithm": "SHA256" },
      { "x-amz-checksum-sha256": checksum },
      { "x-amz-algorithm": "AWS4-HMAC-SHA256" },
      { "x-amz-credential": "AKIDEXAMPLE/20261125/eu-west-1/s3/aws4_request" },
      { "x-amz-date": "20261125T123015Z" },
    ]);
    const signer = new SignatureV4({ credentials: creds, region: "eu-west-1", service: "s3", sha256: Sha256 });
    expect(post.fields["X-Amz-Signature"]).toBe(await signer.sign(post.fields.Policy!, { signingDate: new Date(now) }));
  });

  it("refuses metadata names that are not HTTP tokens or repeat, and checksums that are not 32 bytes", () => {
    const p = new QueryPresigner();
    const base = { bucket: "b", expiresIn: 60 };
    expect(() => p.presignPost(target, "k", credentials, { ...base, metadata: { "a b": "x" } })).toThrow(TypeError);
    expect(() => p.presignPost(target, "k", credentials, { ...base, metadata: { A: "1", a: "2" } })).toThrow(TypeError);
    expect(() => p.presignPost(target, "k", credentials, { ...base, checksumSha256: "abc" })).toThrow(TypeError);
    const hex = createHash("sha256").update("x").digest("hex");
    expect(() => p.presignPost(target, "k", credentials, { ...base, checksumSha256: hex })).toThrow(TypeError);
  });

  it("refuses lifetimes outside 1 s .. 7 days", () => {
    const p = new QueryPresigner();
    expect(() => p.presignPost(target, "k", credentials, { bucket: "b", expiresIn: 0 })).toThrow(RangeError);
    expect(() => p.presignPost(target, "k", credentials, { bucket: "b", expiresIn: 604_801 })).toThrow(RangeError);
  });
});

/** S3's error code from an error document (never its message, which servers word differently). */
async function s3ErrorCode(response: Response): Promise<string | undefined> {
  return /<Code>([^<]*)<\/Code>/.exec(await response.text())?.[1];
}

// Runs where the server enforces POST policies (RGW, MinIO, AWS S3): s3rver ignores them and
// stores whatever the form sends, which is why the attach checks size, type and bytes itself.
describe.skipIf(s3.server === "s3rver")("a POST the policy does not allow is refused by the server", () => {
  const prefix = `post-refused/${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
  const bytes = Buffer.from("exactly twenty bytes");

  /** A form for `key` pinned to text/plain and `min`..`max` bytes, as the browser sends it. */
  function form(
    key: string,
    options: { min?: number; max?: number; now?: number; expiresIn?: number } = {},
    overrides: { key?: string; contentType?: string; body?: Buffer } = {},
  ) {
    const post = new QueryPresigner().presignPost(target, key, credentials, {
      bucket: s3.bucket,
      expiresIn: options.expiresIn ?? 60,
      contentType: "text/plain",
      minSize: options.min ?? bytes.length,
      maxSize: options.max ?? bytes.length,
      ...(options.now === undefined ? {} : { now: options.now }),
    });
    const body = new FormData();
    const fields = { ...post.fields };
    if (overrides.key !== undefined) fields.key = overrides.key;
    if (overrides.contentType !== undefined) fields["Content-Type"] = overrides.contentType;
    for (const [name, value] of Object.entries(fields)) body.append(name, value);
    body.append("file", new Blob([new Uint8Array(overrides.body ?? bytes)], { type: "text/plain" }), "f.txt");
    return fetch(post.url, { method: "POST", body });
  }

  const stored = (key: string) => keyExists(s3, key);

  it("the form as signed is taken (the refusals below are the policy's, not the form's)", async () => {
    const key = `${prefix}/ok.txt`;
    expect((await form(key)).status).toBeLessThan(300);
    expect(await stored(key)).toBe(true);
  });

  it("a body over content-length-range: 400 EntityTooLarge, nothing stored", async () => {
    const key = `${prefix}/large.txt`;
    const res = await form(key, {}, { body: Buffer.concat([bytes, Buffer.from("!")]) });
    expect(res.status).toBe(400);
    expect(await s3ErrorCode(res)).toBe("EntityTooLarge");
    expect(await stored(key)).toBe(false);
  });

  it("a body under content-length-range: 400 EntityTooSmall, nothing stored", async () => {
    const key = `${prefix}/small.txt`;
    const res = await form(key, {}, { body: bytes.subarray(1) });
    expect(res.status).toBe(400);
    expect(await s3ErrorCode(res)).toBe("EntityTooSmall");
    expect(await stored(key)).toBe(false);
  });

  it("another Content-Type than the policy pins: 403 AccessDenied, nothing stored", async () => {
    const key = `${prefix}/type.txt`;
    const res = await form(key, {}, { contentType: "text/html" });
    expect(res.status).toBe(403);
    expect(await s3ErrorCode(res)).toBe("AccessDenied");
    expect(await stored(key)).toBe(false);
  });

  it("another key than the policy pins: 403 AccessDenied, nothing stored under either", async () => {
    const key = `${prefix}/pinned.txt`;
    const other = `${prefix}/elsewhere.txt`;
    const res = await form(key, {}, { key: other });
    expect(res.status).toBe(403);
    expect(await s3ErrorCode(res)).toBe("AccessDenied");
    expect(await stored(key)).toBe(false);
    expect(await stored(other)).toBe(false);
  });

  it("after the policy's expiration: 403 AccessDenied, nothing stored", async () => {
    const key = `${prefix}/expired.txt`;
    const res = await form(key, { now: Date.now() - 120_000, expiresIn: 60 });
    expect(res.status).toBe(403);
    expect(await s3ErrorCode(res)).toBe("AccessDenied");
    expect(await stored(key)).toBe(false);
  });

  it("signed with a wrong secret: 403, nothing stored", async () => {
    const key = `${prefix}/forged.txt`;
    const post = new QueryPresigner().presignPost(
      target,
      key,
      { ...credentials, secretAccessKey: "wrong-secret-wrong-secret-wrong-secret00" },
      { bucket: s3.bucket, expiresIn: 60, contentType: "text/plain", maxSize: bytes.length },
    );
    const body = new FormData();
    for (const [name, value] of Object.entries(post.fields)) body.append(name, value);
    body.append("file", new Blob([new Uint8Array(bytes)], { type: "text/plain" }), "f.txt");
    const res = await fetch(post.url, { method: "POST", body });
    expect(res.status).toBe(403);
    // AWS S3 answers SignatureDoesNotMatch; RGW answers AccessDenied to a bad form signature.
    expect(["SignatureDoesNotMatch", "AccessDenied"]).toContain(await s3ErrorCode(res));
    expect(await stored(key)).toBe(false);
  });
});
