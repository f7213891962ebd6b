import { createHash } from "node:crypto";
import { Sha256 } from "@aws-crypto/sha256-js";
import { HeadObjectCommand } from "@aws-sdk/client-s3";
import { SignatureV4 } from "@smithy/signature-v4";
import { describe, expect, inject, it } from "vitest";
import { QueryPresigner, s3BaseUrl } from "../../src/storage/s3/presigner.js";
import { harnessClient } from "../harness/s3.js";

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
