import { createHash, generateKeyPairSync, randomBytes, verify } from "node:crypto";
import { Readable } from "node:stream";
import {
  CompleteMultipartUploadCommand,
  GetObjectCommand,
  HeadObjectCommand,
  PutBucketPolicyCommand,
  PutObjectCommand,
  UploadPartCommand,
} from "@aws-sdk/client-s3";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import { afterAll, afterEach, beforeAll, describe, expect, inject, it, vi } from "vitest";
import {
  createSession,
  getDefaultSession,
  LeftBehindError,
  type S3Session,
  S3Storage,
  StorageError,
  SuspiciousFileOperationError,
} from "../../src/index.js";
import { readAll } from "../../src/storage/content.js";
import { copyPartSize } from "../../src/storage/s3/multipart-copy.js";
import { PROBE_PREFIX } from "../../src/storage/s3/s3-storage.js";
import { MetadataFixture } from "../harness/metadata-fixture.js";
import { harnessClient, listKeys, sessionOptionsFor } from "../harness/s3.js";
import { type ProxiedRequest, type S3Proxy, startS3Proxy } from "../harness/s3-proxy.js";
import { describeStorageConformance, testBytes } from "./conformance.js";

const s3 = inject("s3");
let session: S3Session;

beforeAll(() => {
  session = createSession(sessionOptionsFor(s3));
});
afterAll(() => session.destroy());

describeStorageConformance("S3Storage", async ({ fileOverwrite, limitSegments }) => {
  const location = `conformance/${randomBytes(6).toString("hex")}`;
  // The server's own limit (s3rver 233, MinIO 255); AWS S3 has none, so the name-length tests set 255.
  const maxSegmentBytes = s3.maxSegmentBytes ?? (limitSegments ? 255 : undefined);
  const storage = new S3Storage({ session, location, fileOverwrite, partSize: 5 * 1024 * 1024, maxSegmentBytes });
  return { storage, listAll: () => listKeys(s3, location), maxSegmentBytes };
});

describe("S3Storage specifics", () => {
  it("needs a bucket and refuses a location starting with /", () => {
    const noBucket = createSession({ region: "us-east-1", credentials: { accessKeyId: "a", secretAccessKey: "b" } });
    expect(() => new S3Storage({ session: noBucket })).toThrow(/needs a bucket/);
    expect(() => new S3Storage({ session, location: "/abs" })).toThrow(/must not begin with/);
    void noBucket.destroy();
  });
});

describe("S3Storage name limits: 1024-byte keys, location included; the server's segment limit", () => {
  const bytes = (s: string) => Buffer.byteLength(s, "utf8");
  const location = `limits/${randomBytes(6).toString("hex")}`; // 19 bytes, 20 with its "/"
  const storage = () => new S3Storage({ session, location, maxSegmentBytes: s3.maxSegmentBytes });
  /** Four directory segments of 200 bytes: 804 bytes with their slashes, leaving 200 for a file name. */
  const dir = Array.from({ length: 4 }, (_, i) => `${i}${"d".repeat(199)}`).join("/");

  it("cuts a file name to what the key limit leaves after location and directory; the object round-trips", async () => {
    const name = await storage().save(`${dir}/${"é".repeat(300)}.txt`, Buffer.from("deep"));
    expect(name).toBe(`${dir}/${"é".repeat(98)}.txt`); // 196 + 4 bytes
    const key = `${location}/${name}`;
    expect(bytes(key)).toBe(1024);
    expect(await listKeys(s3, location)).toEqual([name]);
    const client = harnessClient(s3);
    try {
      const head = await client.send(new HeadObjectCommand({ Bucket: s3.bucket, Key: key }));
      expect(head.ContentLength).toBe(4);
    } finally {
      client.destroy();
    }
    expect(Buffer.from(await storage().read(name)).toString()).toBe("deep");
  });

  it("refuses a directory that leaves no room for a file name, and presigned uploads over the limit, before any I/O", async () => {
    const deeper = `${dir}/${"e".repeat(200)}`;
    const error = await storage()
      .save(`${deeper}/x.txt`, Buffer.from("x"))
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StorageError);
    expect(error).toMatchObject({ code: "NAME_TOO_LONG" });
    expect((error as Error).message).toContain("its directory is 1005 bytes");
    expect((error as Error).message).toContain("limit of 1004 bytes per name");
    // Names used as given: no shortening possible, so refused.
    const tooLong = `${dir}/${"f".repeat(201)}`;
    await expect(
      storage().presignedPost(tooLong, { contentType: "text/plain", maxSize: 10, expiresIn: 60 }),
    ).rejects.toMatchObject({ code: "NAME_TOO_LONG" });
    await expect(storage().createMultipartUpload(tooLong, { contentType: "text/plain" })).rejects.toMatchObject({
      code: "NAME_TOO_LONG",
    });
    expect(await listKeys(s3, location)).not.toContain(tooLong);
    // A location that leaves no room for any name is refused when the storage is made.
    expect(() => new S3Storage({ session, location: `${"l/".repeat(511)}l` })).toThrow(/too long/);
  });

  // The harness's limit is the server's own: s3rver keeps objects as files (233-byte segments),
  // MinIO refuses segments over 255 bytes, Ceph RGW and AWS S3 limit only the whole key.
  it("the harness's segment limit is exact: at the limit stored, one byte more fails in the server (or, without one, any segment fits)", async () => {
    const unlimited = new S3Storage({ session, location, maxSegmentBytes: Number.POSITIVE_INFINITY });
    const limit = s3.maxSegmentBytes;
    if (limit === undefined) {
      // A 1000-byte single segment (with location, still under 1024 bytes) is stored as given.
      const long = `${"u".repeat(1000 - location.length - 5)}.txt`;
      expect(await unlimited.save(long, Buffer.from("long"))).toBe(long);
      expect(Buffer.from(await unlimited.read(long)).toString()).toBe("long");
      return;
    }
    const atLimit = `${"a".repeat(limit - 4)}.txt`;
    const over = `${"b".repeat(limit - 3)}.txt`;
    expect(await unlimited.save(atLimit, Buffer.from("at"))).toBe(atLimit);
    const failed = await unlimited.save(over, Buffer.from("over")).catch((e: unknown) => e);
    expect(failed).toBeInstanceOf(StorageError);
    expect(failed).not.toMatchObject({ code: "NAME_TOO_LONG" });
    // With the limit, the same name is cut to fit and stored.
    const cut = await storage().save(over, Buffer.from("over"));
    expect(cut).toBe(`${"b".repeat(limit - 4)}.txt`);
    expect(Buffer.from(await storage().read(cut)).toString()).toBe("over");
  });
});

describe("S3Storage against a recording proxy", () => {
  let proxy: S3Proxy;
  let proxied: S3Session;
  beforeAll(async () => {
    // s3rver ignores If-None-Match and lacks AbortMultipartUpload: the proxy emulates both,
    // so the client side of those protocols can be checked here (MinIO and AWS do them natively).
    const emulate = s3.server === "s3rver";
    proxy = await startS3Proxy(s3, { emulateConditionalWrites: emulate, emulateAbortMultipart: emulate });
    proxied = createSession({
      region: s3.region,
      endpoint: proxy.endpoint,
      forcePathStyle: true,
      bucket: s3.bucket,
      credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
      checksums: "when_required",
    });
  });
  afterAll(async () => {
    await proxied.destroy();
    await proxy.close();
  });
  afterEach(() => proxy.clearFaults());

  const MiB = 1024 * 1024;
  const since = (n: number) => proxy.log.slice(n);
  /** A one-shot stream of `size` bytes in 256 KiB chunks. */
  const streamOf = (bytes: Uint8Array) =>
    Readable.from(
      (function* () {
        for (let i = 0; i < bytes.byteLength; i += 256 * 1024) yield Buffer.from(bytes.subarray(i, i + 256 * 1024));
      })(),
    );

  it("detects conditional writes once and uses If-None-Match: * for exclusive saves", async () => {
    const location = `cond/${randomBytes(4).toString("hex")}`;
    const storage = new S3Storage({ session: proxied, location });
    const mark = proxy.log.length;
    await storage.save("a.txt", Buffer.from("one"));
    const puts = since(mark).filter((r) => r.method === "PUT");
    expect(puts.at(-1)?.headers["if-none-match"]).toBe("*");
    expect(await listKeys(s3, location)).toEqual(["a.txt"]);
  });

  it("two processes saving one name 50 times each: 100 distinct objects (conditional writes, not in-process locks)", async () => {
    const location = `race/${randomBytes(4).toString("hex")}`;
    // A distinct reservation scope per instance: what two separate processes would have.
    class OtherProcess extends S3Storage {
      readonly #scope = randomBytes(8).toString("hex");
      protected override reservationScope(): string {
        return this.#scope;
      }
    }
    const a = new OtherProcess({ session: proxied, location });
    const b = new OtherProcess({ session: proxied, location });
    const names = await Promise.all(
      Array.from({ length: 100 }, (_, i) => (i % 2 ? a : b).save("same.txt", Buffer.from(`content ${i}`))),
    );
    expect(new Set(names).size).toBe(100);
    expect(await listKeys(s3, location)).toHaveLength(100);
    const bodies = await Promise.all(names.map(async (n) => Buffer.from(await a.read(n)).toString()));
    expect(new Set(bodies).size).toBe(100);
  });

  it("two processes moving 50 objects each to one name: 100 distinct objects, none overwritten", async () => {
    const location = `move-race-100/${randomBytes(4).toString("hex")}`;
    class OtherProcess extends S3Storage {
      readonly #scope = randomBytes(8).toString("hex");
      protected override reservationScope(): string {
        return this.#scope;
      }
    }
    const a = new OtherProcess({ session: proxied, location });
    const b = new OtherProcess({ session: proxied, location });
    await Promise.all(
      Array.from({ length: 100 }, (_, i) => a.save(`pending/${i}.txt`, Buffer.from(`content ${i}`), {})),
    );
    const names = await Promise.all(
      Array.from({ length: 100 }, (_, i) => (i % 2 ? a : b).move(`pending/${i}.txt`, "final/same.txt")),
    );
    expect(new Set(names).size).toBe(100);
    expect(await listKeys(s3, location)).toEqual([...names].sort());
    const bodies = await Promise.all(names.map(async (n) => Buffer.from(await a.read(n)).toString()));
    expect(new Set(bodies)).toEqual(new Set(Array.from({ length: 100 }, (_, i) => `content ${i}`)));
  });

  it("probes PutObject, CopyObject and CompleteMultipartUpload separately, once per session and bucket", async () => {
    const location = `cond-ops/${randomBytes(4).toString("hex")}`;
    const fresh = createSession({ ...sessionOptionsFor(s3), endpoint: proxy.endpoint });
    try {
      const storage = new S3Storage({ session: fresh, location });
      const mark = proxy.log.length;
      const support = await storage.conditionalWriteSupport("dir/x.txt");
      // What each server does (s3rver: through the proxy's emulation of all three).
      const expected = {
        rgw: { put: true, copy: false, completeMultipart: false },
        s3rver: { put: true, copy: true, completeMultipart: true },
      }[s3.server as string];
      if (expected) expect(support).toEqual(expected);
      const probing = since(mark).length;
      expect(probing).toBeGreaterThan(0);
      // Asked again, by this or another storage of the session: no request.
      const again = await new S3Storage({ session: fresh, location }).conditionalWriteSupport("other/y.txt");
      expect(again).toEqual(support);
      expect(since(mark).length).toBe(probing);
      // Probe objects are gone.
      expect(await listKeys(s3, location)).toEqual([]);
      // An explicit setting is used as given, without probing.
      const set = new S3Storage({ session: fresh, location, conditionalWrites: { copy: true, put: false } });
      expect(await set.conditionalWriteSupport()).toEqual({ ...support, put: false, copy: true });
      expect(since(mark).length).toBe(probing);
    } finally {
      await fresh.destroy();
    }
  });

  it("once PutObject is known to refuse a taken key, a save is one PutObject (no HeadObject first); a taken name still gets Django's suffix", async () => {
    const location = `optimistic/${randomBytes(4).toString("hex")}`;
    const fresh = createSession({ ...sessionOptionsFor(s3), endpoint: proxy.endpoint });
    try {
      const storage = new S3Storage({ session: fresh, location });
      await storage.save("warm.txt", Buffer.from("w")); // learns what PutObject does
      const mark = proxy.log.length;
      expect(await storage.save("a.txt", Buffer.from("a"))).toBe("a.txt");
      expect(since(mark).map((r) => r.method)).toEqual(["PUT"]);
      const second = await storage.save("a.txt", Buffer.from("b"));
      expect(second).toMatch(/^a_[A-Za-z0-9]{7}\.txt$/);
      expect(Buffer.from(await storage.read("a.txt")).toString()).toBe("a");
      expect(Buffer.from(await storage.read(second)).toString()).toBe("b");
    } finally {
      await fresh.destroy();
    }
  });

  it("without conditional writes: a save replaced by another writer before its check is written again elsewhere", async () => {
    const location = `cond-verify/${randomBytes(4).toString("hex")}`;
    const storage = new S3Storage({ session: proxied, location, conditionalWrites: false });
    const client = harnessClient(s3);
    try {
      // Another process writes the same name (with the same bytes) right after our PutObject.
      proxy.addFault({
        match: (r) => r.method === "HEAD" && r.path === `/${s3.bucket}/${location}/same.txt`,
        times: 1,
        action: {
          before: async () => {
            await client.send(
              new PutObjectCommand({ Bucket: s3.bucket, Key: `${location}/same.txt`, Body: Buffer.from("same") }),
            );
          },
        },
      });
      const name = await storage.save("same.txt", Buffer.from("same"));
      expect(name).toMatch(/^same_[A-Za-z0-9]{7}\.txt$/);
      expect(Buffer.from(await storage.read(name)).toString()).toBe("same");
      expect(await listKeys(s3, location)).toEqual([name, "same.txt"].sort());
      // The same for a move.
      await storage.save("pending/m.txt", Buffer.from("mine"));
      proxy.addFault({
        match: (r) => r.method === "HEAD" && r.path === `/${s3.bucket}/${location}/final/m.txt`,
        times: 2, // the look before the copy finds nothing; the one after, the other writer's
        action: {
          before: async () => {
            await client.send(
              new PutObjectCommand({ Bucket: s3.bucket, Key: `${location}/final/m.txt`, Body: Buffer.from("mine") }),
            );
          },
        },
      });
      const moved = await storage.move("pending/m.txt", "final/m.txt");
      expect(moved).toMatch(/^final\/m_[A-Za-z0-9]{7}\.txt$/);
      expect(Buffer.from(await storage.read(moved)).toString()).toBe("mine");
      const head = await client.send(new HeadObjectCommand({ Bucket: s3.bucket, Key: `${location}/${moved}` }));
      expect(head.ContentType).toBe("text/plain");
    } finally {
      client.destroy();
    }
  });

  it("streams a large body as a multipart upload and reads it back", async () => {
    const location = `mpu/${randomBytes(4).toString("hex")}`;
    const storage = new S3Storage({ session: proxied, location, partSize: 5 * MiB, fileOverwrite: true });
    const data = testBytes(12 * MiB + 123, 5);
    const mark = proxy.log.length;
    const name = await storage.save("big.bin", streamOf(data));
    const requests = since(mark);
    expect(requests.filter((r) => r.method === "POST" && r.query.has("uploads"))).toHaveLength(1);
    expect(requests.filter((r) => r.method === "PUT" && r.query.has("partNumber"))).toHaveLength(3);
    expect(requests.filter((r) => r.method === "POST" && r.query.has("uploadId"))).toHaveLength(1);
    expect(await storage.size(name)).toBe(data.byteLength);
    expect(Buffer.compare(Buffer.from(await storage.read(name)), Buffer.from(data))).toBe(0);
    const tail = Buffer.from(await readAll(await storage.open(name, { start: data.byteLength - 10 })));
    expect(Buffer.compare(tail, Buffer.from(data.subarray(data.byteLength - 10)))).toBe(0);
  });

  it("a part failing mid-upload: the save fails, the multipart upload is aborted, nothing is left", async () => {
    const location = `mpu-fail/${randomBytes(4).toString("hex")}`;
    const storage = new S3Storage({ session: proxied, location, partSize: 5 * MiB });
    proxy.addFault({
      match: (r) => r.method === "PUT" && r.query.get("partNumber") === "2",
      action: { status: 500 },
    });
    const mark = proxy.log.length;
    const error = await storage.save("big.bin", streamOf(testBytes(16 * MiB, 6))).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StorageError);
    const requests = since(mark);
    const uploadId = requests.find((r) => r.method === "PUT" && r.query.has("uploadId"))?.query.get("uploadId");
    expect(uploadId).toBeTruthy();
    expect(requests.filter((r) => r.method === "DELETE" && r.query.get("uploadId") === uploadId)).toHaveLength(1);
    expect(requests.some((r) => r.method === "POST" && r.query.get("uploadId") === uploadId)).toBe(false);
    expect(await listKeys(s3, location)).toEqual([]); // the claim placeholder is gone too
  });

  it("an abort mid-upload: rejects with the reason, aborts the multipart upload, leaves nothing", async () => {
    const location = `mpu-abort/${randomBytes(4).toString("hex")}`;
    const storage = new S3Storage({ session: proxied, location, partSize: 5 * MiB });
    const controller = new AbortController();
    const mark = proxy.log.length;
    const saving = storage.save("big.bin", streamOf(testBytes(40 * MiB, 7)), {
      signal: controller.signal,
      onProgress: ({ loaded }) => {
        if (loaded > 12 * MiB) controller.abort(new Error("user cancelled"));
      },
    });
    await expect(saving).rejects.toThrow("user cancelled");
    const requests = since(mark);
    const created = requests.filter((r) => r.method === "POST" && r.query.has("uploads"));
    expect(created.length).toBe(1);
    expect(requests.filter((r) => r.method === "DELETE" && r.query.has("uploadId"))).toHaveLength(1);
    expect(await listKeys(s3, location)).toEqual([]);
  });

  it("upload and placeholder delete both failing: a LeftBehindError names the placeholder (issue #8)", async () => {
    const location = `mpu-leak/${randomBytes(4).toString("hex")}`;
    const storage = new S3Storage({ session: proxied, location, partSize: 5 * MiB, conditionalWrites: true });
    proxy.addFault({ match: (r) => r.method === "PUT" && r.query.get("partNumber") === "2", action: { status: 500 } });
    const placeholderDelete = (r: { method: string; path: string; query: URLSearchParams }) =>
      r.method === "DELETE" && !r.query.has("uploadId") && r.path === `/${s3.bucket}/${location}/big.bin`;
    proxy.addFault({ match: placeholderDelete, action: { status: 503 } });
    const mark = proxy.log.length;
    const error = await storage.save("big.bin", streamOf(testBytes(16 * MiB, 9))).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LeftBehindError);
    const left = error as LeftBehindError;
    expect(left.code).toBe("LEFT_BEHIND");
    expect(left.leftBehind).toEqual([{ name: "big.bin", key: `${location}/big.bin`, cause: expect.anything() }]);
    // Why the save failed (the part's 500) is the cause; why the cleanup failed is on the item.
    expect((left.cause as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode).toBe(500);
    expect((left.leftBehind[0]!.cause as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode).toBe(
      503,
    );
    expect(since(mark).filter(placeholderDelete).length).toBeGreaterThanOrEqual(2); // tried again before giving up
    // It really is there, and a sweep of the storage lists it.
    expect(await listKeys(s3, location)).toEqual(["big.bin"]);
    const listed: string[] = [];
    for await (const o of storage.listAll()) listed.push(o.name);
    expect(listed).toEqual(["big.bin"]);
    proxy.clearFaults();
    await storage.delete("big.bin");
  });

  it("an aborted upload whose placeholder cannot be removed: LeftBehindError caused by the abort's reason", async () => {
    const location = `mpu-leak-abort/${randomBytes(4).toString("hex")}`;
    const storage = new S3Storage({ session: proxied, location, partSize: 5 * MiB, conditionalWrites: true });
    proxy.addFault({
      match: (r) =>
        r.method === "DELETE" && !r.query.has("uploadId") && r.path.startsWith(`/${s3.bucket}/${location}/`),
      action: { status: 403 },
    });
    const controller = new AbortController();
    const reason = new Error("user cancelled");
    const error = await storage
      .save("big.bin", streamOf(testBytes(40 * MiB, 10)), {
        signal: controller.signal,
        onProgress: ({ loaded }) => {
          if (loaded > 12 * MiB) controller.abort(reason);
        },
      })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LeftBehindError);
    expect((error as LeftBehindError).cause).toBe(reason);
    expect((error as LeftBehindError).leftBehind.map((l) => l.name)).toEqual(["big.bin"]);
    expect(await listKeys(s3, location)).toEqual(["big.bin"]);
    proxy.clearFaults();
    await storage.delete("big.bin");
  });

  it("a probe object whose delete fails lies in the saved name's directory and is reported (issue #8)", async () => {
    // A proxy of its own: a new endpoint, so this storage runs the once-per-endpoint probe.
    const emulate = s3.server === "s3rver";
    const own = await startS3Proxy(s3, { emulateConditionalWrites: emulate });
    const ownSession = createSession({ ...sessionOptionsFor(s3), endpoint: own.endpoint });
    try {
      const location = `probe/${randomBytes(4).toString("hex")}`;
      const reported: LeftBehindError[] = [];
      const storage = new S3Storage({ session: ownSession, location, onLeftBehind: (e) => reported.push(e) });
      const probeDelete = (r: { method: string; path: string }) =>
        r.method === "DELETE" && r.path.includes(PROBE_PREFIX);
      // 403: not retried by the SDK, so the requests counted are ours.
      own.addFault({ match: probeDelete, action: { status: 403 } });
      expect(await storage.save("avatars/2026/a.png", Buffer.from("png"))).toBe("avatars/2026/a.png");
      expect(own.log.filter(probeDelete)).toHaveLength(2); // tried again once
      expect(reported).toHaveLength(1);
      expect(reported[0]).toBeInstanceOf(LeftBehindError);
      const [left] = reported[0]!.leftBehind;
      expect(left?.name).toMatch(/^avatars\/2026\/\.prisma-s3-files-probe-[0-9a-f]{16}$/);
      expect(left?.key).toBe(`${location}/${left?.name}`);
      // The directory the application writes to (what a sweep of that file column lists) holds it.
      const listed: string[] = [];
      for await (const o of storage.listAll("avatars")) listed.push(o.name);
      expect(listed.sort()).toEqual([left?.name, "avatars/2026/a.png"].sort());
    } finally {
      await ownSession.destroy();
      await own.close();
    }
  });

  it("a large stream whose name is taken claims another name before streaming (no data lost)", async () => {
    const location = `claim/${randomBytes(4).toString("hex")}`;
    const setupStorage = new S3Storage({ session: proxied, location });
    await setupStorage.save("movie.bin", Buffer.from("already here"));
    class OtherProcess extends S3Storage {
      protected override reservationScope(): string {
        return "elsewhere";
      }
      // Another process cannot see the object yet: its exists() check is stale.
      protected override async objectExists(): Promise<boolean> {
        return false;
      }
    }
    const storage = new OtherProcess({ session: proxied, location, partSize: 5 * MiB, conditionalWrites: true });
    const data = testBytes(11 * MiB, 8);
    const name = await storage.save("movie.bin", streamOf(data));
    expect(name).toMatch(/^movie_[A-Za-z0-9]{7}\.bin$/);
    expect(Buffer.from(await storage.read("movie.bin")).toString()).toBe("already here");
    expect(Buffer.compare(Buffer.from(await storage.read(name)), Buffer.from(data))).toBe(0);
  });

  const head = async (key: string) => {
    const client = harnessClient(s3);
    try {
      return await client.send(new HeadObjectCommand({ Bucket: s3.bucket, Key: key }));
    } finally {
      client.destroy();
    }
  };

  it("move: an exclusive CopyObject (or a claim, then the copy), then DeleteObject; content type and metadata move along", async () => {
    const location = `move/${randomBytes(4).toString("hex")}`;
    const storage = new S3Storage({ session: proxied, location });
    await storage.save("pending/a b.txt", Buffer.from("hello"), {
      contentType: "text/x-test",
      metadata: { owner: "7" },
    });
    const mark = proxy.log.length;
    expect(await storage.move("pending/a b.txt", "final/a b.txt")).toBe("final/a b.txt");
    const requests = since(mark);
    const copies = requests.filter((r) => r.method === "PUT" && r.headers["x-amz-copy-source"] !== undefined);
    expect(copies).toHaveLength(1);
    expect(copies[0]?.path).toBe(`/${s3.bucket}/${location}/final/a b.txt`);
    expect(copies[0]?.headers["x-amz-copy-source"]).toBe(`${s3.bucket}/${location}/pending/a%20b.txt`);
    const target = `/${s3.bucket}/${location}/final/a b.txt`;
    const claims = requests.filter(
      (r) => r.method === "PUT" && r.path === target && r.headers["x-amz-copy-source"] === undefined,
    );
    if ((await storage.conditionalWriteSupport()).copy) {
      expect(copies[0]?.headers["if-none-match"]).toBe("*");
      expect(claims).toEqual([]);
    } else {
      // The server would let the copy replace an object: an exclusive empty PutObject claims the
      // name first, and the copy lands on that claim.
      expect(claims).toHaveLength(1);
      expect(claims[0]?.headers["if-none-match"]).toBe("*");
      expect(requests.indexOf(claims[0] as (typeof requests)[number])).toBeLessThan(
        requests.indexOf(copies[0] as (typeof requests)[number]),
      );
    }
    expect(requests.filter((r) => r.method === "DELETE").map((r) => r.path)).toEqual([
      `/${s3.bucket}/${location}/pending/a b.txt`,
    ]);
    const moved = await head(`${location}/final/a b.txt`);
    expect(moved.ContentType).toBe("text/x-test");
    expect(moved.Metadata).toMatchObject({ owner: "7" });
    expect(await listKeys(s3, location)).toEqual(["final/a b.txt"]);
  });

  it("move whose source delete fails: returns the new name, keeps the copy, reports the source as left behind", async () => {
    const location = `move-left/${randomBytes(4).toString("hex")}`;
    const storageLevel: LeftBehindError[] = [];
    const storage = new S3Storage({ session: proxied, location, onLeftBehind: (e) => storageLevel.push(e) });
    const data = testBytes(100_000, 13);
    await storage.save("pending/b.bin", Buffer.from(data));
    await storage.save("pending/c.bin", Buffer.from("c"));
    proxy.addFault({
      match: (r) => r.method === "DELETE" && r.path.startsWith(`/${s3.bucket}/${location}/pending/`),
      action: { status: 403 },
    });
    const perCall: LeftBehindError[] = [];
    expect(await storage.move("pending/b.bin", "final/b.bin", { onLeftBehind: (e) => perCall.push(e) })).toBe(
      "final/b.bin",
    );
    expect(Buffer.compare(Buffer.from(await storage.read("final/b.bin")), Buffer.from(data))).toBe(0);
    expect(perCall).toHaveLength(1);
    expect(perCall[0]).toBeInstanceOf(LeftBehindError);
    expect(perCall[0]?.leftBehind).toEqual([
      { name: "pending/b.bin", key: `${location}/pending/b.bin`, cause: expect.anything() },
    ]);
    expect((perCall[0]!.cause as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode).toBe(403);
    expect(storageLevel).toEqual([]); // the call's own callback took it
    // Without a callback of its own, the storage's onLeftBehind is told.
    expect(await storage.move("pending/c.bin", "final/c.bin")).toBe("final/c.bin");
    expect(storageLevel.map((e) => e.leftBehind.map((l) => l.name))).toEqual([["pending/c.bin"]]);
    expect(await listKeys(s3, location)).toEqual(["final/b.bin", "final/c.bin", "pending/b.bin", "pending/c.bin"]);
  });

  it("move of an object over S3's 5 TiB fails with MOVE_TOO_LARGE before any write", async () => {
    const location = `move-huge/${randomBytes(4).toString("hex")}`;
    const storage = new S3Storage({ session: proxied, location });
    await storage.save("pending/huge.bin", Buffer.from("stands in for 5 TiB + 1 byte"));
    // The proxy answers the source's HeadObject as S3 would for an object one byte over 5 TiB
    // (no such object can exist: the check is what stands between a bad size and a doomed copy).
    proxy.addFault({
      match: (r) => r.method === "HEAD" && r.path === `/${s3.bucket}/${location}/pending/huge.bin`,
      action: {
        status: 200,
        headers: {
          "content-length": String(5 * 1024 ** 4 + 1),
          "last-modified": new Date().toUTCString(),
          etag: '"0123456789abcdef0123456789abcdef-1229"',
        },
      },
    });
    const mark = proxy.log.length;
    const error = await storage.move("pending/huge.bin", "final/huge.bin").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StorageError);
    expect((error as StorageError).code).toBe("MOVE_TOO_LARGE");
    expect((error as StorageError).fileName).toBe("pending/huge.bin");
    expect(since(mark).filter((r) => r.method !== "HEAD" && r.method !== "GET")).toEqual([]);
    expect(await listKeys(s3, location)).toEqual(["pending/huge.bin"]);
  });

  it("move to a name another process took since it looked: the copy is refused, another name is used", async () => {
    const location = `move-race/${randomBytes(4).toString("hex")}`;
    const setupStorage = new S3Storage({ session: proxied, location });
    await setupStorage.save("final/taken.txt", Buffer.from("theirs"));
    await setupStorage.save("pending/mine.txt", Buffer.from("mine"));
    class OtherProcess extends S3Storage {
      protected override reservationScope(): string {
        return "elsewhere";
      }
      // Another process cannot see the object yet: its exists() check is stale.
      protected override async objectExists(): Promise<boolean> {
        return false;
      }
    }
    const storage = new OtherProcess({ session: proxied, location });
    const moved = await storage.move("pending/mine.txt", "final/taken.txt");
    expect(moved).toMatch(/^final\/taken_[A-Za-z0-9]{7}\.txt$/);
    expect(Buffer.from(await storage.read("final/taken.txt")).toString()).toBe("theirs");
    expect(Buffer.from(await storage.read(moved)).toString()).toBe("mine");
    expect(await listKeys(s3, location)).toEqual(["final/taken.txt", moved].sort());
  });

  const partCopies = (requests: ProxiedRequest[]) =>
    requests.filter((r) => r.method === "PUT" && r.query.has("partNumber") && r.headers["x-amz-copy-source"]);

  // Runs where the server has UploadPartCopy (RGW, MinIO, AWS S3): s3rver answers it with 501
  // NotImplemented. The failure paths below run on every server (the proxy fails the part copies).
  it.skipIf(s3.server === "s3rver")(
    "move past copyThreshold: a multipart copy of UploadPartCopy ranges pinned to the source's ETag; type and metadata kept",
    async () => {
      const location = `move-parts/${randomBytes(4).toString("hex")}`;
      const storage = new S3Storage({ session: proxied, location, copyThreshold: 5 * MiB, copyPartSize: 5 * MiB });
      const data = testBytes(12 * MiB + 7, 21);
      await storage.save("pending/big.bin", Buffer.from(data), {
        contentType: "application/x-test",
        metadata: { owner: "9" },
      });
      const mark = proxy.log.length;
      expect(await storage.move("pending/big.bin", "final/big.bin")).toBe("final/big.bin");
      const requests = since(mark);
      const parts = partCopies(requests).sort(
        (a, b) => Number(a.query.get("partNumber")) - Number(b.query.get("partNumber")),
      );
      expect(parts.map((r) => [r.query.get("partNumber"), r.headers["x-amz-copy-source-range"]])).toEqual([
        ["1", `bytes=0-${5 * MiB - 1}`],
        ["2", `bytes=${5 * MiB}-${10 * MiB - 1}`],
        ["3", `bytes=${10 * MiB}-${12 * MiB + 6}`],
      ]);
      for (const r of parts) {
        expect(r.headers["x-amz-copy-source"]).toBe(`${s3.bucket}/${location}/pending/big.bin`);
        expect(r.headers["x-amz-copy-source-if-match"]).toMatch(/^"?[0-9a-f]{32}(-\d+)?"?$/);
        expect(r.status).toBe(200);
      }
      // No CopyObject: it stops at 5 GiB, and this object is over the lowered threshold.
      expect(requests.filter((r) => r.headers["x-amz-copy-source"] && !r.query.has("partNumber"))).toEqual([]);
      expect(requests.filter((r) => r.method === "POST" && r.query.has("uploads"))).toHaveLength(1);
      expect(requests.filter((r) => r.method === "POST" && r.query.has("uploadId"))).toHaveLength(1);
      expect(Buffer.compare(Buffer.from(await storage.read("final/big.bin")), Buffer.from(data))).toBe(0);
      const moved = await head(`${location}/final/big.bin`);
      expect(moved.ContentType).toBe("application/x-test");
      expect(moved.Metadata).toMatchObject({ owner: "9" });
      expect(await listKeys(s3, location)).toEqual(["final/big.bin"]);
    },
  );

  it("a part copy failing: the multipart copy is aborted, its target claim removed, the source kept", async () => {
    const location = `move-parts-fail/${randomBytes(4).toString("hex")}`;
    const storage = new S3Storage({ session: proxied, location, copyThreshold: 5 * MiB, copyPartSize: 5 * MiB });
    await storage.save("pending/big.bin", Buffer.from(testBytes(11 * MiB, 22)));
    // 403: not retried by the SDK, so the requests counted are ours.
    proxy.addFault({
      match: (r) => r.method === "PUT" && r.query.has("partNumber") && r.query.has("uploadId"),
      action: { status: 403, code: "AccessDenied" },
    });
    const mark = proxy.log.length;
    const error = await storage.move("pending/big.bin", "final/big.bin").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StorageError);
    expect(error).not.toBeInstanceOf(LeftBehindError);
    expect((error as StorageError).fileName).toBe("pending/big.bin");
    const requests = since(mark);
    expect(requests.filter((r) => r.method === "POST" && r.query.has("uploads"))).toHaveLength(1);
    const id = partCopies(requests)[0]?.query.get("uploadId");
    expect(id).toBeTruthy();
    expect(requests.filter((r) => r.method === "DELETE" && r.query.get("uploadId") === id)).toHaveLength(1);
    expect(requests.some((r) => r.method === "POST" && r.query.get("uploadId") === id)).toBe(false);
    expect(await listKeys(s3, location)).toEqual(["pending/big.bin"]);
  });

  it("a part copy failing and its abort too: LeftBehindError names the upload left, caused by the part's failure", async () => {
    const location = `move-parts-left/${randomBytes(4).toString("hex")}`;
    const storage = new S3Storage({ session: proxied, location, copyThreshold: 5 * MiB, copyPartSize: 5 * MiB });
    await storage.save("pending/big.bin", Buffer.from(testBytes(11 * MiB, 23)));
    proxy.addFault({
      match: (r) => r.method === "PUT" && r.query.has("partNumber") && r.query.has("uploadId"),
      action: { status: 403, code: "AccessDenied" },
    });
    proxy.addFault({
      match: (r) => r.method === "DELETE" && r.query.has("uploadId"),
      action: { status: 403, code: "AccessDenied" },
      times: 1,
    });
    const error = await storage.move("pending/big.bin", "final/big.bin").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LeftBehindError);
    const left = error as LeftBehindError;
    expect(left.leftBehind).toEqual([
      {
        name: "final/big.bin",
        key: `${location}/final/big.bin`,
        cause: expect.anything(),
        uploadId: expect.any(String),
      },
    ]);
    expect(left.message).toContain(left.leftBehind[0]!.uploadId);
    expect((left.cause as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode).toBe(403);
    expect(left.fileName).toBe("pending/big.bin");
    // The source is untouched, and no object was made at the target.
    expect(await listKeys(s3, location)).toEqual(["pending/big.bin"]);
    proxy.clearFaults();
    await storage.abortMultipartUpload("final/big.bin", left.leftBehind[0]!.uploadId!);
  });

  it("copy part sizes stay within S3's limits: at most 10,000 parts of 5 MiB..5 GiB", () => {
    const GiB = 1024 * MiB;
    expect(copyPartSize(6 * GiB, 64 * MiB)).toBe(64 * MiB);
    const huge = 5 * 1024 * GiB;
    const part = copyPartSize(huge, 64 * MiB);
    expect(Math.ceil(huge / part)).toBeLessThanOrEqual(10_000);
    expect(part).toBeLessThanOrEqual(5 * GiB);
    expect(copyPartSize(10 * MiB, 1)).toBe(5 * MiB);
    expect(() => new S3Storage({ session, copyThreshold: 5 * GiB + 1 })).toThrow(RangeError);
    expect(() => new S3Storage({ session, copyPartSize: 4 * MiB })).toThrow(RangeError);
  });

  // Runs where the server has ListMultipartUploads (RGW, MinIO, AWS S3); s3rver answers 501, the
  // next test shows what the storage makes of that on every server.
  it.skipIf(s3.server === "s3rver")(
    "listMultipartUploads lists incomplete uploads under a prefix with when they started; an aborted one goes",
    async () => {
      const location = `mpu-list/${randomBytes(4).toString("hex")}`;
      const storage = new S3Storage({ session: proxied, location });
      const type = { contentType: "application/octet-stream" };
      const a = await storage.createMultipartUpload("p/a.bin", type);
      const b = await storage.createMultipartUpload("p/deep/b.bin", type);
      const c = await storage.createMultipartUpload("q/c.bin", type);
      const list = async (prefix: string) => {
        const found: { name: string; uploadId: string; initiated: Date | undefined }[] = [];
        for await (const u of storage.listMultipartUploads(prefix)) found.push(u);
        return found.sort((x, y) => x.name.localeCompare(y.name));
      };
      const underP = await list("p");
      expect(underP.map((u) => [u.name, u.uploadId])).toEqual([
        ["p/a.bin", a],
        ["p/deep/b.bin", b],
      ]);
      for (const u of underP) {
        expect(u.initiated).toBeInstanceOf(Date);
        expect(Math.abs(u.initiated!.getTime() - Date.now())).toBeLessThan(15 * 60_000);
      }
      expect((await list("")).map((u) => u.name)).toEqual(["p/a.bin", "p/deep/b.bin", "q/c.bin"]);
      await storage.abortMultipartUpload("p/a.bin", a);
      expect((await list("p")).map((u) => u.name)).toEqual(["p/deep/b.bin"]);
      await storage.abortMultipartUpload("p/deep/b.bin", b);
      await storage.abortMultipartUpload("q/c.bin", c);
      expect(await list("")).toEqual([]);
    },
  );

  it("listMultipartUploads on a server without it (s3rver's 501 NotImplemented): UNSUPPORTED_BY_SERVER", async () => {
    const storage = new S3Storage({ session: proxied, location: `mpu-none/${randomBytes(4).toString("hex")}` });
    proxy.addFault({
      match: (r) => r.method === "GET" && r.query.has("uploads"),
      action: { status: 501, code: "NotImplemented" },
    });
    const listing = (async () => {
      for await (const _ of storage.listMultipartUploads("p")) void _;
    })();
    await expect(listing).rejects.toMatchObject({ name: "StorageError", code: "UNSUPPORTED_BY_SERVER" });
  });

  it("presignedPost and the multipart presigners make no request once warm", async () => {
    const storage = new S3Storage({ session: proxied, location: "direct-quiet" });
    await storage.url("warm.png");
    const mark = proxy.log.length;
    await storage.presignedPost("p/a.png", { contentType: "image/png", maxSize: 1000, expiresIn: 60 });
    for (let i = 1; i <= 100; i++) await storage.presignUploadPart("p/b.bin", "upload-1", i, { expiresIn: 60 });
    await storage.presignCompleteMultipartUpload("p/b.bin", "upload-1", { expiresIn: 60 });
    expect(proxy.log.length - mark).toBe(0);
  });

  it("abortMultipartUpload aborts; an upload that is already gone is not an error; other failures are", async () => {
    const location = `direct-abort/${randomBytes(4).toString("hex")}`;
    const storage = new S3Storage({ session: proxied, location });
    const uploadId = await storage.createMultipartUpload("p/x.bin", { contentType: "application/octet-stream" });
    const mark = proxy.log.length;
    await storage.abortMultipartUpload("p/x.bin", uploadId);
    const aborts = since(mark).filter((r) => r.method === "DELETE" && r.query.get("uploadId") === uploadId);
    expect(aborts.map((r) => r.path)).toEqual([`/${s3.bucket}/${location}/p/x.bin`]);
    proxy.addFault({
      match: (r) => r.method === "DELETE" && r.query.has("uploadId"),
      action: { status: 404 },
      times: 1,
    });
    await storage.abortMultipartUpload("p/x.bin", uploadId);
    proxy.addFault({
      match: (r) => r.method === "DELETE" && r.query.has("uploadId"),
      action: { status: 403 },
      times: 1,
    });
    const error = await storage.abortMultipartUpload("p/x.bin", uploadId).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StorageError);
    expect((error as StorageError).fileName).toBe("p/x.bin");
  });

  it("url() makes no request: 10,000 signed URLs, zero requests to S3, one credential resolution", async () => {
    const storage = new S3Storage({ session: proxied, location: "urls" });
    await storage.url("warm.png");
    const mark = proxy.log.length;
    const fetchesBefore = proxied.stats().credentialFetches;
    const urls = await Promise.all(Array.from({ length: 10_000 }, (_, i) => storage.url(`a/${i}.png`)));
    expect(new Set(urls).size).toBe(10_000);
    expect(proxy.log.length - mark).toBe(0);
    expect(proxied.stats().credentialFetches).toBe(fetchesBefore);
  });
});

describe("S3Storage batch deletes (DeleteObjects)", () => {
  let proxy: S3Proxy;
  let proxied: S3Session;
  beforeAll(async () => {
    proxy = await startS3Proxy(s3, { emulateConditionalWrites: s3.server === "s3rver" });
    proxied = createSession({ ...sessionOptionsFor(s3), endpoint: proxy.endpoint });
  });
  afterAll(async () => {
    await proxied.destroy();
    await proxy.close();
  });
  afterEach(() => proxy.clearFaults());
  const batches = (requests: ProxiedRequest[]) => requests.filter((r) => r.method === "POST" && r.query.has("delete"));
  const singles = (requests: ProxiedRequest[]) =>
    requests.filter((r) => r.method === "DELETE" && !r.query.has("uploadId"));

  /** Puts objects straight into the bucket (not through the proxy), 16 at a time. */
  async function putAll(keys: string[]): Promise<void> {
    const client = harnessClient(s3);
    try {
      let next = 0;
      const worker = async () => {
        while (next < keys.length) {
          const key = keys[next++]!;
          await client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: key, Body: key }));
        }
      };
      await Promise.all(Array.from({ length: 16 }, worker));
    } finally {
      client.destroy();
    }
  }

  it("2,500 deletions take 3 DeleteObjects requests (at most 1,000 keys each) and no single delete", async () => {
    const location = `batch/${randomBytes(4).toString("hex")}`;
    const storage = new S3Storage({ session: proxied, location });
    // Three directories under 1,000 objects each: one listing page each, on every server.
    const names = Array.from({ length: 2500 }, (_, i) => `${"abc"[i % 3]}/${i}.txt`);
    await putAll(names.map((n) => `${location}/${n}`));
    expect((await listKeys(s3, `${location}/a`)).length).toBe(834);
    const mark = proxy.log.length;
    const result = await storage.deleteMany([...names, "c/never-stored.txt"]);
    expect(result.failed).toEqual([]);
    expect(result.deleted).toHaveLength(2501);
    const requests = proxy.log.slice(mark);
    expect(batches(requests)).toHaveLength(3);
    expect(batches(requests).every((r) => r.status === 200)).toBe(true);
    expect(singles(requests)).toEqual([]);
    expect(requests).toHaveLength(3);
    for (const dir of ["a", "b", "c"]) expect(await listKeys(s3, `${location}/${dir}`)).toEqual([]);
  }, 120_000);

  it("validates every name before any request: one bad name deletes nothing", async () => {
    const location = `batch-bad/${randomBytes(4).toString("hex")}`;
    const storage = new S3Storage({ session: proxied, location });
    await storage.save("keep.txt", Buffer.from("k"));
    const mark = proxy.log.length;
    await expect(storage.deleteMany(["keep.txt", "../escape.txt"])).rejects.toBeInstanceOf(
      SuspiciousFileOperationError,
    );
    expect(proxy.log.length).toBe(mark);
    expect(await listKeys(s3, location)).toEqual(["keep.txt"]);
    expect(await storage.deleteMany([])).toEqual({ deleted: [], failed: [] });
  });

  it("per-key errors come back per name, as delete() would throw them; a missing key is no error", async () => {
    const location = `batch-errors/${randomBytes(4).toString("hex")}`;
    const storage = new S3Storage({ session: proxied, location });
    // The server's answer to a batch where one key could not be deleted (what a bucket policy
    // denying s3:DeleteObject on it, or object lock, produces) and one was already gone.
    proxy.addFault({
      match: (r) => r.method === "POST" && r.query.has("delete"),
      times: 1,
      action: {
        status: 200,
        body:
          `<?xml version="1.0" encoding="UTF-8"?><DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">` +
          `<Error><Key>${location}/b &amp; c.txt</Key><Code>AccessDenied</Code><Message>Access Denied</Message></Error>` +
          `<Error><Key>${location}/d.txt</Key><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>` +
          `</DeleteResult>`,
      },
    });
    const result = await storage.deleteMany(["a.txt", "b & c.txt", "d.txt"]);
    expect(result.deleted).toEqual(["a.txt", "d.txt"]);
    expect(result.failed.map((f) => f.name)).toEqual(["b & c.txt"]);
    const { error } = result.failed[0]!;
    expect(error).toBeInstanceOf(StorageError);
    expect(error).toMatchObject({ code: "STORAGE_ERROR", fileName: "b & c.txt" });
    expect(error.message).toBe('Could not delete "b & c.txt"');
    expect((error.cause as { name?: string }).name).toBe("AccessDenied");

    // A batch request that fails as a whole fails each of its names.
    proxy.addFault({
      match: (r) => r.method === "POST" && r.query.has("delete"),
      times: 1,
      action: { status: 403, code: "AccessDenied" },
    });
    const refused = await storage.deleteMany(["x.txt", "y.txt"]);
    expect(refused.deleted).toEqual([]);
    expect(
      refused.failed.map((f) => [
        f.name,
        (f.error.cause as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode,
      ]),
    ).toEqual([
      ["x.txt", 403],
      ["y.txt", 403],
    ]);
  });

  it("a server without DeleteObjects (501 NotImplemented): single deletes, and no batch is tried again", async () => {
    // A proxy of its own: support is learnt once per endpoint and bucket.
    const own = await startS3Proxy(s3);
    const ownSession = createSession({ ...sessionOptionsFor(s3), endpoint: own.endpoint });
    try {
      own.addFault({
        match: (r) => r.method === "POST" && r.query.has("delete"),
        action: { status: 501, code: "NotImplemented" },
      });
      const location = `batch-none/${randomBytes(4).toString("hex")}`;
      const storage = new S3Storage({ session: ownSession, location, conditionalWrites: false });
      for (const n of ["1.txt", "2.txt", "3.txt", "4.txt"]) await storage.save(n, Buffer.from(n));
      let mark = own.log.length;
      expect(await storage.deleteMany(["1.txt", "2.txt"])).toEqual({ deleted: ["1.txt", "2.txt"], failed: [] });
      expect(batches(own.log.slice(mark))).toHaveLength(1);
      expect(singles(own.log.slice(mark))).toHaveLength(2);
      mark = own.log.length;
      expect(await storage.deleteMany(["3.txt", "4.txt"])).toEqual({ deleted: ["3.txt", "4.txt"], failed: [] });
      expect(batches(own.log.slice(mark))).toHaveLength(0);
      expect(singles(own.log.slice(mark))).toHaveLength(2);
      expect(await listKeys(s3, location)).toEqual([]);
    } finally {
      await ownSession.destroy();
      await own.close();
    }
  });
});

/** A bucket policy letting anyone GET the objects under `pattern` (e.g. `public/*`), as a site's media bucket has. */
async function allowAnonymousReads(pattern: string): Promise<void> {
  const client = harnessClient(s3);
  try {
    const policy = {
      Version: "2012-10-17",
      Statement: [
        {
          Effect: "Allow",
          Principal: "*",
          Action: ["s3:GetObject"],
          Resource: [`arn:aws:s3:::${s3.bucket}/${pattern}`],
        },
      ],
    };
    await client.send(new PutBucketPolicyCommand({ Bucket: s3.bucket, Policy: JSON.stringify(policy) }));
  } finally {
    client.destroy();
  }
}

describe("S3Storage URLs", () => {
  const location = `url/${randomBytes(4).toString("hex")}`;
  let storage: S3Storage;
  beforeAll(async () => {
    storage = new S3Storage({ session, location });
    await storage.save("photo of me.png", Buffer.from("png bytes"), { contentType: "image/png" });
  });

  it("a presigned URL is byte-identical to the SDK's and the server serves it", async () => {
    vi.useFakeTimers({ now: Date.now(), toFake: ["Date"] });
    try {
      const ours = await storage.url("photo of me.png", { expiresIn: 300 });
      const sdk = await getSignedUrl(
        session.client,
        new GetObjectCommand({ Bucket: s3.bucket, Key: `${location}/photo of me.png` }),
        { expiresIn: 300 },
      );
      expect(ours).toBe(sdk);
    } finally {
      vi.useRealTimers();
    }
    const response = await fetch(await storage.url("photo of me.png"));
    expect(response.status).toBe(200);
    expect(await response.text()).toBe("png bytes");
  });

  it("download and contentType options come back as response headers", async () => {
    const response = await fetch(
      await storage.url("photo of me.png", { download: "Résumé 2026.png", contentType: "application/x-test" }),
    );
    expect(response.status).toBe(200);
    expect(response.headers.get("content-disposition")).toBe(
      `attachment; filename="R_sum_ 2026.png"; filename*=UTF-8''R%C3%A9sum%C3%A9%202026.png`,
    );
    expect(response.headers.get("content-type")).toBe("application/x-test");
    const plain = await fetch(await storage.url("photo of me.png", { download: true }));
    expect(plain.headers.get("content-disposition")).toBe(`attachment; filename="photo of me.png"`);
  });

  it("an expired URL is refused by the server", async () => {
    const url = await storage.url("photo of me.png", { expiresIn: 1 });
    await new Promise((r) => setTimeout(r, 2100));
    expect((await fetch(url)).status).toBe(403);
  });

  it("unsigned and custom-domain URLs are string work", async () => {
    const pub = new S3Storage({ session, location: `${location}/public`, querystringAuth: false });
    await pub.save("photo of me.png", Buffer.from("public bytes"), { contentType: "image/png" });
    const url = await pub.url("photo of me.png");
    expect(url).toBe(`${s3.endpoint}/${s3.bucket}/${location}/public/photo%20of%20me.png`);
    // s3rver serves anything to anyone; a real server only what the bucket's policy makes public.
    if (s3.server !== "s3rver") {
      expect((await fetch(url)).status).toBe(403);
      await allowAnonymousReads(`${location}/public/*`);
    }
    const response = await fetch(url);
    expect(response.status).toBe(200);
    expect(await response.text()).toBe("public bytes");
    // Only that prefix: the rest of the bucket stays private.
    const unsigned = new S3Storage({ session, location, querystringAuth: false });
    if (s3.server !== "s3rver") expect((await fetch(await unsigned.url("photo of me.png"))).status).toBe(403);
    const cdn = new S3Storage({ session, location: "media", customDomain: "cdn.example.com/", urlProtocol: "http:" });
    expect(await cdn.url("a b/ü.png")).toBe("http://cdn.example.com/media/a%20b/%C3%BC.png");
  });

  it("CloudFront-signed URLs carry a canned policy signed with the private key", async () => {
    const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const cf = new S3Storage({
      session,
      location: "media",
      customDomain: "d111111abcdef8.cloudfront.net",
      cloudfront: {
        keyPairId: "K2JCJMDEHXQW5F",
        privateKey: privateKey.export({ type: "pkcs1", format: "pem" }).toString(),
      },
      querystringExpire: 600,
    });
    const url = new URL(await cf.url("doc.pdf"));
    expect(url.origin + url.pathname).toBe("https://d111111abcdef8.cloudfront.net/media/doc.pdf");
    expect(url.searchParams.get("Key-Pair-Id")).toBe("K2JCJMDEHXQW5F");
    const expires = Number(url.searchParams.get("Expires"));
    expect(expires * 1000).toBeGreaterThan(Date.now() + 590_000);
    expect(expires * 1000).toBeLessThanOrEqual(Date.now() + 601_000);
    // CloudFront's canned policy, signed with RSA-SHA1; the URL-safe base64 uses - _ ~ for + = /.
    const policy = JSON.stringify({
      Statement: [{ Resource: url.origin + url.pathname, Condition: { DateLessThan: { "AWS:EpochTime": expires } } }],
    });
    const signature = Buffer.from(
      (url.searchParams.get("Signature") as string).replace(/-/g, "+").replace(/_/g, "=").replace(/~/g, "/"),
      "base64",
    );
    expect(verify("RSA-SHA1", Buffer.from(policy), publicKey, signature)).toBe(true);
  });
});

describe("S3Storage direct uploads, sent with fetch as a browser would", () => {
  const MiB = 1024 * 1024;
  const location = `direct/${randomBytes(4).toString("hex")}`;
  let storage: S3Storage;
  beforeAll(() => {
    storage = new S3Storage({ session, location });
  });
  const head = async (key: string) => {
    const client = harnessClient(s3);
    try {
      return await client.send(new HeadObjectCommand({ Bucket: s3.bucket, Key: key }));
    } finally {
      client.destroy();
    }
  };

  it("a form POST with the presignedPost fields stores the object under the pinned key", async () => {
    const bytes = Buffer.from("browser bytes \u2713");
    const checksumSha256 = createHash("sha256").update(bytes).digest("base64");
    const post = await storage.presignedPost("pending/u1/photo.png", {
      contentType: "image/png",
      maxSize: 1024,
      expiresIn: 300,
      metadata: { owner: "42" },
      checksumSha256,
    });
    expect(post.url).toBe(`${s3.endpoint}/${s3.bucket}`);
    expect(post.fields.key).toBe(`${location}/pending/u1/photo.png`);
    expect(post.fields["x-amz-checksum-sha256"]).toBe(checksumSha256);
    const policy = JSON.parse(Buffer.from(post.fields.Policy!, "base64").toString("utf8"));
    expect(policy.conditions).toContainEqual(["content-length-range", 0, 1024]);
    const form = new FormData();
    for (const [name, value] of Object.entries(post.fields)) form.append(name, value);
    form.append("file", new Blob([bytes], { type: "image/png" }), "photo.png");
    const response = await fetch(post.url, { method: "POST", body: form });
    expect(response.status).toBeLessThan(300);
    expect(Buffer.from(await storage.read("pending/u1/photo.png")).equals(bytes)).toBe(true);
    const object = await head(`${location}/pending/u1/photo.png`);
    expect(object.ContentType).toBe("image/png");
    expect(object.Metadata).toMatchObject({ owner: "42" });
  });

  it("presignedPost validates the name like every storage name, and the size range", async () => {
    const ok = { contentType: "image/png", maxSize: 10, expiresIn: 60 };
    await expect(storage.presignedPost("../escape.png", ok)).rejects.toBeInstanceOf(SuspiciousFileOperationError);
    expect((await storage.presignedPost("./a//b.png", ok)).fields.key).toBe(`${location}/a/b.png`);
    await expect(storage.presignedPost("a.png", { ...ok, maxSize: -1 })).rejects.toBeInstanceOf(RangeError);
    await expect(storage.presignedPost("a.png", { ...ok, minSize: 11 })).rejects.toBeInstanceOf(RangeError);
    await expect(storage.presignedPost("a.png", { ...ok, maxSize: 6 * 1024 ** 3 })).rejects.toBeInstanceOf(RangeError);
    await expect(storage.presignedPost("a.png", { ...ok, expiresIn: 0 })).rejects.toBeInstanceOf(RangeError);
  });

  it("a 20 MiB upload through presigned part PUTs and a presigned complete POST", async () => {
    const data = testBytes(20 * MiB, 12);
    const name = "pending/u2/movie.bin";
    const uploadId = await storage.createMultipartUpload(name, { contentType: "video/mp4", metadata: { owner: "7" } });
    const parts: { number: number; etag: string }[] = [];
    for (let i = 0; i < 4; i++) {
      const url = await storage.presignUploadPart(name, uploadId, i + 1, { expiresIn: 300 });
      const response = await fetch(url, { method: "PUT", body: data.subarray(i * 5 * MiB, (i + 1) * 5 * MiB) });
      expect(response.status).toBe(200);
      const etag = response.headers.get("etag");
      expect(etag).toBeTruthy();
      parts.push({ number: i + 1, etag: etag as string });
    }
    const xml = `<CompleteMultipartUpload>${parts
      .map((p) => `<Part><PartNumber>${p.number}</PartNumber><ETag>${p.etag}</ETag></Part>`)
      .join("")}</CompleteMultipartUpload>`;
    const complete = await storage.presignCompleteMultipartUpload(name, uploadId, { expiresIn: 300 });
    const response = await fetch(complete, { method: "POST", body: xml });
    expect(response.status).toBe(200);
    expect(await response.text()).toContain("CompleteMultipartUploadResult");
    expect(await storage.size(name)).toBe(20 * MiB);
    const stored = await storage.read(name);
    expect(createHash("sha256").update(stored).digest("hex")).toBe(createHash("sha256").update(data).digest("hex"));
    const object = await head(`${location}/${name}`);
    expect(object.ContentType).toBe("video/mp4");
    expect(object.Metadata).toMatchObject({ owner: "7" });
  });

  it("part and complete URLs are byte-identical to the SDK's getSignedUrl for the same clock", async () => {
    vi.useFakeTimers({ now: Date.now(), toFake: ["Date"] });
    try {
      const key = `${location}/a b/\u00fc+(1).bin`;
      const uploadId = "2~Vx+/9z=";
      expect(await storage.presignUploadPart("a b/\u00fc+(1).bin", uploadId, 7, { expiresIn: 600 })).toBe(
        await getSignedUrl(
          session.client,
          new UploadPartCommand({ Bucket: s3.bucket, Key: key, UploadId: uploadId, PartNumber: 7 }),
          { expiresIn: 600 },
        ),
      );
      expect(await storage.presignCompleteMultipartUpload("a b/\u00fc+(1).bin", uploadId, { expiresIn: 600 })).toBe(
        await getSignedUrl(
          session.client,
          new CompleteMultipartUploadCommand({ Bucket: s3.bucket, Key: key, UploadId: uploadId }),
          { expiresIn: 600 },
        ),
      );
    } finally {
      vi.useRealTimers();
    }
  });

  it("with the SDK's default checksums, part URLs still carry no CRC32 of an empty body", async () => {
    const defaults = createSession({ ...sessionOptionsFor(s3), checksums: "when_supported" });
    try {
      const st = new S3Storage({ session: defaults, location });
      vi.useFakeTimers({ now: Date.now(), toFake: ["Date"] });
      try {
        const ours = await st.presignUploadPart("p.bin", "id", 1, { expiresIn: 60 });
        const input = { Bucket: s3.bucket, Key: `${location}/p.bin`, UploadId: "id", PartNumber: 1 };
        const sdkDefault = await getSignedUrl(defaults.client, new UploadPartCommand(input), { expiresIn: 60 });
        expect(sdkDefault).toContain("x-amz-checksum-crc32=AAAAAA%3D%3D");
        expect(ours).not.toContain("checksum");
        expect(ours).toBe(await getSignedUrl(session.client, new UploadPartCommand(input), { expiresIn: 60 }));
      } finally {
        vi.useRealTimers();
      }
    } finally {
      await defaults.destroy();
    }
  });

  it("presignUploadPart refuses part numbers outside 1..10000 and an empty upload ID", async () => {
    for (const n of [0, 10_001, 1.5, Number.NaN]) {
      await expect(storage.presignUploadPart("a.bin", "id", n, { expiresIn: 60 })).rejects.toBeInstanceOf(RangeError);
    }
    await expect(storage.presignUploadPart("a.bin", "", 1, { expiresIn: 60 })).rejects.toBeInstanceOf(TypeError);
    await expect(storage.presignCompleteMultipartUpload("a.bin", "", { expiresIn: 60 })).rejects.toBeInstanceOf(
      TypeError,
    );
    await expect(storage.presignUploadPart("../a.bin", "id", 1, { expiresIn: 60 })).rejects.toBeInstanceOf(
      SuspiciousFileOperationError,
    );
  });
});

describe("S3Storage write parameters and sessions", () => {
  it("objectParameters and metadata reach the object", async () => {
    const location = `params/${randomBytes(4).toString("hex")}`;
    const storage = new S3Storage({
      session,
      location,
      objectParameters: (name) => ({ CacheControl: name.endsWith(".css") ? "max-age=31536000" : "no-cache" }),
    });
    await storage.save("site.css", Buffer.from("body{}"), { metadata: { owner: "42" } });
    const client = harnessClient(s3);
    try {
      const head = await client.send(new HeadObjectCommand({ Bucket: s3.bucket, Key: `${location}/site.css` }));
      expect(head.CacheControl).toBe("max-age=31536000");
      expect(head.ContentType).toBe("text/css");
      expect(head.Metadata).toMatchObject({ owner: "42" });
    } finally {
      client.destroy();
    }
  });

  it("100 storages sharing one session: 10,000 operations, one credential fetch", async () => {
    const fixture = await MetadataFixture.start({
      accessKeyId: s3.accessKeyId,
      secretAccessKey: s3.secretAccessKey,
      sessionToken: false,
    });
    const restore = fixture.useEnv("imds");
    const shared = createSession({
      region: s3.region,
      endpoint: s3.endpoint,
      forcePathStyle: true,
      bucket: s3.bucket,
      checksums: "when_required",
    });
    try {
      const location = `shared/${randomBytes(4).toString("hex")}`;
      const storages = Array.from(
        { length: 100 },
        (_, i) => new S3Storage({ session: shared, location: `${location}/${i}` }),
      );
      await storages[0]!.save("x.txt", Buffer.from("x"));
      for (let round = 0; round < 10; round++) {
        await Promise.all(
          storages.flatMap((s, i) =>
            Array.from({ length: 10 }, (_, j) =>
              j === 0 && i % 10 === 0 ? s.exists("x.txt") : s.url(`f/${round}/${j}.png`),
            ),
          ),
        );
      }
      expect(fixture.total).toBe(3);
      expect(shared.stats().credentialFetches).toBe(1);
    } finally {
      restore();
      await shared.destroy();
      await fixture.stop();
    }
  });

  it("storages built without a session share one lazily created default session", () => {
    const a = new S3Storage({ bucket: "b1" });
    const b = new S3Storage({ bucket: "b2" });
    expect(a.session).toBe(b.session);
    expect(a.session).toBe(getDefaultSession());
    expect(a.session.stats().credentialFetches).toBe(0); // nothing resolved until used
  });
});
