/**
 * `prisma-s3-files/browser` (src/browser) in Debian's Chromium, driven by playwright-core, against
 * the harness's S3 server with a bucket CORS rule for the test page's origin. The module is bundled
 * for the page with esbuild. Grants are built by hand here from S3Storage's presigning methods,
 * as the server's `uploadGrant` builds them, so that faults can be aimed at single requests.
 */
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type CORSRule, GetObjectCommand, PutBucketCorsCommand } from "@aws-sdk/client-s3";
import { build } from "esbuild";
import { type BrowserContext, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from "vitest";
import type { UploadGrant } from "../../src/browser/index.js";
import { createSession, type S3Session, S3Storage } from "../../src/index.js";
import {
  createBucket,
  emptyAndDeleteBucket,
  harnessClient,
  keyExists,
  sessionOptionsFor,
  uniqueBucketName,
} from "../harness/s3.js";
import { testBytes } from "./bytes.js";
import { startFaultProxy } from "./fault-proxy.js";

const CHROMIUM = "/usr/bin/chromium";
const ROOT = join(import.meta.dirname, "..", "..");
const MiB = 1024 * 1024;
const s3 = inject("s3");

/** What `page-entry.ts` puts on the page's global object. */
interface PageGlobals {
  psf: typeof import("../../src/browser/index.js");
  testBytes: typeof testBytes;
}

interface UploadArgs {
  grant: UploadGrant;
  size: number;
  seed: number;
  type?: string;
  progress?: boolean;
  concurrency?: number;
  /** `before`: the signal is aborted before the call; `first-progress`: once some bytes were sent. */
  abort?: "before" | "first-progress";
}

interface Outcome {
  token?: string;
  progress: [number, number][];
  error?: {
    name: string;
    message: string;
    isDirectUploadError: boolean;
    code?: string;
    status?: number;
    s3Message?: string;
    requestId?: string;
    partNumber?: number;
  };
}

function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

async function objectBytes(key: string, bucket = s3.bucket): Promise<Uint8Array> {
  const client = harnessClient(s3);
  try {
    const out = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    return await out.Body!.transformToByteArray();
  } finally {
    client.destroy();
  }
}

const objectExists = (key: string) => keyExists(s3, key);

async function putCors(bucket: string, rule: CORSRule): Promise<void> {
  const client = harnessClient(s3);
  try {
    await client.send(new PutBucketCorsCommand({ Bucket: bucket, CORSConfiguration: { CORSRules: [rule] } }));
  } finally {
    client.destroy();
  }
}

let keySeq = 0;
function pendingKey(name: string): string {
  return `browser-direct/${Date.now().toString(36)}-${++keySeq}/${name}`;
}

/** Storages reaching the harness's server directly or through the fault proxy, on the run's bucket or another. */
const storages = new Map<string, { storage: S3Storage; session: S3Session }>();
function storageFor(endpoint = s3.endpoint, bucket = s3.bucket): S3Storage {
  const id = `${endpoint} ${bucket}`;
  let entry = storages.get(id);
  if (!entry) {
    const session = createSession({ ...sessionOptionsFor({ ...s3, endpoint }), bucket });
    entry = { session, storage: new S3Storage({ session }) };
    storages.set(id, entry);
  }
  return entry.storage;
}

/** A form-POST grant as `uploadGrant` makes one, from the storage's `presignedPost`: key, content type and size pinned. */
async function postGrant(
  key: string,
  opts: { endpoint?: string; bucket?: string; contentType: string; maxSize: number },
): Promise<UploadGrant> {
  const post = await storageFor(opts.endpoint, opts.bucket).presignedPost(key, {
    contentType: opts.contentType,
    maxSize: opts.maxSize,
    expiresIn: 900,
  });
  return {
    token: `token:${key}`,
    key,
    expiresAt: post.expiresAt.toISOString(),
    post: { url: post.url, fields: post.fields },
  };
}

/** Posts the grant's form from here, as the browser would, and returns the server's own error document. */
async function serverError(
  grant: UploadGrant,
  size: number,
): Promise<{ status: number; code?: string; message?: string }> {
  const form = new FormData();
  for (const [name, value] of Object.entries(grant.post!.fields)) form.append(name, value);
  form.append("file", new Blob([Buffer.from(testBytes(size, 0))], { type: "image/png" }));
  const res = await fetch(grant.post!.url, { method: "POST", body: form });
  const xml = await res.text();
  const entities: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };
  const tag = (name: string) =>
    new RegExp(`<${name}>([^<]*)</${name}>`)
      .exec(xml)?.[1]
      ?.replace(/&(amp|lt|gt|quot|apos);/g, (_, e: string) => entities[e] as string);
  return { status: res.status, code: tag("Code"), message: tag("Message") };
}

/** A multipart plan as `uploadGrant` makes one: the upload created, every part and the completion presigned. */
async function multipartGrant(
  key: string,
  size: number,
  partSize: number,
  opts: { endpoint?: string; bucket?: string } = {},
): Promise<UploadGrant> {
  const storage = storageFor(opts.endpoint, opts.bucket);
  const uploadId = await storage.createMultipartUpload(key, { contentType: "application/octet-stream" });
  const count = Math.max(1, Math.ceil(size / partSize));
  const parts = await Promise.all(
    Array.from({ length: count }, async (_, i) => ({
      partNumber: i + 1,
      url: await storage.presignUploadPart(key, uploadId, i + 1, { expiresIn: 900 }),
    })),
  );
  return {
    token: `token:${key}`,
    key,
    expiresAt: new Date(Date.now() + 900_000).toISOString(),
    multipart: {
      uploadId,
      partSize,
      parts,
      completeUrl: await storage.presignCompleteMultipartUpload(key, uploadId, { expiresIn: 900 }),
    },
  };
}

// Skipped only without Chromium: there is no browser to drive. `.ci/run` installs Debian's
// `chromium` when it is missing, so this skips only where that install could not happen.
describe.skipIf(!existsSync(CHROMIUM))(`uploadWithGrant in Chromium (skipped when ${CHROMIUM} is absent)`, () => {
  let pageServer: Server;
  let origin: string;
  let profileDir: string;
  let context: BrowserContext;
  let page: Page;
  let proxy: Awaited<ReturnType<typeof startFaultProxy>>;
  const extraBuckets: string[] = [];
  const corsRule = (o: string): CORSRule => ({
    AllowedOrigins: [o],
    AllowedMethods: ["GET", "PUT", "POST"],
    AllowedHeaders: ["*"],
    ExposeHeaders: ["ETag"],
    MaxAgeSeconds: 600,
  });

  /** Runs `uploadWithGrant` in the page with a file of `size` test bytes. */
  function upload(args: UploadArgs): Promise<Outcome> {
    return page.evaluate(async ({ grant, size, seed, type, progress, concurrency, abort }) => {
      const g = globalThis as unknown as PageGlobals;
      const file = new File([g.testBytes(size, seed) as Uint8Array<ArrayBuffer>], "upload.bin", {
        type: type ?? "application/octet-stream",
      });
      const seen: [number, number][] = [];
      const controller = new AbortController();
      if (abort === "before") controller.abort();
      try {
        const token = await g.psf.uploadWithGrant(grant, file, {
          signal: controller.signal,
          concurrency,
          onProgress: progress
            ? (loaded, total) => {
                seen.push([loaded, total]);
                if (abort === "first-progress" && loaded > 0) controller.abort();
              }
            : undefined,
        });
        return { token, progress: seen };
      } catch (e) {
        const err = e as InstanceType<typeof g.psf.DirectUploadError>;
        return {
          progress: seen,
          error: {
            name: err.name,
            message: err.message,
            isDirectUploadError: e instanceof g.psf.DirectUploadError,
            code: err.code,
            status: err.status,
            s3Message: err.s3Message,
            requestId: err.requestId,
            partNumber: err.partNumber,
          },
        };
      }
    }, args);
  }

  /** The browser's S3 requests (no preflights, not the grant's CreateMultipartUpload) the proxy saw for `key`. */
  const requestsFor = (key: string) =>
    proxy.seen.filter((r) => r.method !== "OPTIONS" && !r.query.has("uploads") && r.path.endsWith(`/${key}`));

  beforeAll(async () => {
    const bundle = await build({
      entryPoints: [join(import.meta.dirname, "page-entry.ts")],
      bundle: true,
      format: "esm",
      platform: "browser",
      target: "chrome120",
      write: false,
    });
    const script = bundle.outputFiles[0]!.text;
    pageServer = createServer((req, res) => {
      if (req.url === "/page.js") {
        res.writeHead(200, { "content-type": "text/javascript" }).end(script);
      } else {
        res
          .writeHead(200, { "content-type": "text/html" })
          .end(
            `<!doctype html><meta charset="utf-8"><title>direct upload</title><script type="module" src="/page.js"></script>`,
          );
      }
    });
    await new Promise<void>((resolve) => pageServer.listen(0, "127.0.0.1", resolve));
    origin = `http://127.0.0.1:${(pageServer.address() as { port: number }).port}`;
    // A bucket given through S3_BUCKET is not ours to reconfigure: it must already allow this origin.
    if (!process.env.S3_BUCKET) await putCors(s3.bucket, corsRule("http://127.0.0.1:*"));
    proxy = await startFaultProxy(s3.endpoint);

    profileDir = mkdtempSync(join(tmpdir(), "psf-chromium-"));
    context = await chromium.launchPersistentContext(profileDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
    });
    context.setDefaultTimeout(30_000);
    page = context.pages()[0] ?? (await context.newPage());
    await page.goto(`${origin}/`);
    await page.waitForFunction(() => "psf" in globalThis);
  });

  afterAll(async () => {
    await context?.close();
    await proxy?.close();
    await new Promise((resolve) => pageServer?.close(resolve));
    for (const { session } of storages.values()) await session.destroy();
    for (const bucket of extraBuckets) await emptyAndDeleteBucket(s3, bucket).catch(() => {});
    if (profileDir) rmSync(profileDir, { recursive: true, force: true });
  });

  beforeEach(() => proxy.reset());

  it("bundles for the browser with no Node built-ins", async () => {
    const out = await build({
      entryPoints: [join(ROOT, "src", "browser", "index.ts")],
      bundle: true,
      format: "esm",
      platform: "browser",
      write: false,
      logLevel: "silent",
    });
    const text = out.outputFiles[0]!.text;
    expect(text).toContain("uploadWithGrant");
    expect(text).not.toMatch(/\bnode:|\brequire\(/);
  });

  it("uploads a small file with the form POST (fetch) and resolves with the token", async () => {
    const key = pendingKey("photo.png");
    const grant = await postGrant(key, { contentType: "image/png", maxSize: 5 * MiB });
    const outcome = await upload({ grant, size: 200_000, seed: 1, type: "image/png" });
    expect(outcome.error).toBeUndefined();
    expect(outcome.token).toBe(grant.token);
    expect(sha256(await objectBytes(key))).toBe(sha256(testBytes(200_000, 1)));
  });

  it("reports progress of a form POST (XMLHttpRequest) up to the file's size", async () => {
    const key = pendingKey("progress.png");
    const size = 3 * MiB + 17;
    const grant = await postGrant(key, { contentType: "image/png", maxSize: 5 * MiB });
    const outcome = await upload({ grant, size, seed: 2, type: "image/png", progress: true });
    expect(outcome.error).toBeUndefined();
    expect(outcome.token).toBe(grant.token);
    expect(outcome.progress.length).toBeGreaterThan(0);
    expect(outcome.progress.every(([, total]) => total === size)).toBe(true);
    expect(outcome.progress.every(([loaded]) => loaded >= 0 && loaded <= size)).toBe(true);
    expect(outcome.progress.at(-1)).toEqual([size, size]);
    expect(sha256(await objectBytes(key))).toBe(sha256(testBytes(size, 2)));
  });

  it("uploads 12 MiB as three 5 MiB-part multipart upload with progress reaching the total", async () => {
    const key = pendingKey("big.bin");
    const size = 12 * MiB;
    const grant = await multipartGrant(key, size, 5 * MiB);
    expect(grant.multipart!.parts).toHaveLength(3);
    const outcome = await upload({ grant, size, seed: 3, progress: true });
    expect(outcome.error).toBeUndefined();
    expect(outcome.token).toBe(grant.token);
    expect(outcome.progress.every(([loaded, total]) => total === size && loaded <= size)).toBe(true);
    expect(outcome.progress.at(-1)).toEqual([size, size]);
    const stored = await objectBytes(key);
    expect(stored.length).toBe(size);
    expect(sha256(stored)).toBe(sha256(testBytes(size, 3)));
  });

  it("uploads multipart with fetch (no progress), at most `concurrency` parts at once", async () => {
    const key = pendingKey("fetch.bin");
    // Parts of 5 MiB, S3's minimum for all but the last (real servers refuse the completion otherwise).
    const size = 15 * MiB + 5;
    const grant = await multipartGrant(key, size, 5 * MiB, { endpoint: proxy.endpoint });
    expect(grant.multipart!.parts).toHaveLength(4);
    const outcome = await upload({ grant, size, seed: 4, concurrency: 2 });
    expect(outcome.error).toBeUndefined();
    expect(sha256(await objectBytes(key))).toBe(sha256(testBytes(size, 4)));
    const puts = requestsFor(key).filter((r) => r.method === "PUT");
    expect(puts.map((r) => Number(r.query.get("partNumber"))).sort()).toEqual([1, 2, 3, 4]);
    expect(proxy.maxInFlight("PUT")).toBeLessThanOrEqual(2);
    expect(requestsFor(key).filter((r) => r.method === "POST")).toHaveLength(1);
  });

  it("aborts a multipart upload through the signal: AbortError, no further parts, no complete, no object", async () => {
    const key = pendingKey("aborted.bin");
    const size = 12 * MiB;
    const grant = await multipartGrant(key, size, 5 * MiB, { endpoint: proxy.endpoint });
    const outcome = await upload({ grant, size, seed: 5, progress: true, concurrency: 1, abort: "first-progress" });
    expect(outcome.error).toMatchObject({ name: "AbortError", isDirectUploadError: false });
    expect(outcome.token).toBeUndefined();
    const seen = requestsFor(key);
    expect(seen.filter((r) => r.method === "PUT").map((r) => r.query.get("partNumber"))).toEqual(["1"]);
    expect(seen.filter((r) => r.method === "POST")).toHaveLength(0);
    expect(await objectExists(key)).toBe(false);
  });

  it("rejects at once, sending nothing, when the signal is already aborted", async () => {
    const key = pendingKey("never.png");
    const grant = await postGrant(key, { endpoint: proxy.endpoint, contentType: "image/png", maxSize: MiB });
    const outcome = await upload({ grant, size: 1000, seed: 6, abort: "before", progress: true });
    expect(outcome.error).toMatchObject({ name: "AbortError" });
    expect(proxy.seen).toHaveLength(0);
  });

  it("retries a part once after a 5xx and completes", async () => {
    const key = pendingKey("retried.bin");
    const size = 11 * MiB;
    const grant = await multipartGrant(key, size, 5 * MiB, { endpoint: proxy.endpoint });
    proxy.addFault({
      match: (r) => r.method === "PUT" && r.path.endsWith(key) && r.query.get("partNumber") === "2",
      status: 503,
      code: "SlowDown",
    });
    const outcome = await upload({ grant, size, seed: 7, progress: true });
    expect(outcome.error).toBeUndefined();
    expect(outcome.progress.at(-1)).toEqual([size, size]);
    const part2 = requestsFor(key).filter((r) => r.method === "PUT" && r.query.get("partNumber") === "2");
    expect(part2.map((r) => r.status)).toEqual([503, 200]);
    expect(sha256(await objectBytes(key))).toBe(sha256(testBytes(size, 7)));
  });

  it("fails with S3's code and message when a part fails twice, and does not complete", async () => {
    const key = pendingKey("failed.bin");
    const size = 11 * MiB;
    const grant = await multipartGrant(key, size, 5 * MiB, { endpoint: proxy.endpoint });
    proxy.addFault({
      match: (r) => r.method === "PUT" && r.path.endsWith(key) && r.query.get("partNumber") === "2",
      status: 503,
      code: "SlowDown",
      times: 2,
    });
    const outcome = await upload({ grant, size, seed: 8 });
    expect(outcome.error).toMatchObject({
      name: "DirectUploadError",
      isDirectUploadError: true,
      code: "SlowDown",
      status: 503,
      s3Message: "injected by the test & its proxy",
      requestId: "TEST123",
      partNumber: 2,
    });
    expect(requestsFor(key).filter((r) => r.method === "POST")).toHaveLength(0);
    expect(await objectExists(key)).toBe(false);
  });

  it("does not retry a 4xx", async () => {
    const key = pendingKey("denied.bin");
    const grant = await multipartGrant(key, 6 * MiB, 5 * MiB, { endpoint: proxy.endpoint });
    proxy.addFault({
      match: (r) => r.method === "PUT" && r.path.endsWith(key) && r.query.get("partNumber") === "1",
      status: 403,
      code: "AccessDenied",
    });
    const outcome = await upload({ grant, size: 6 * MiB, seed: 9, concurrency: 1 });
    expect(outcome.error).toMatchObject({ code: "AccessDenied", status: 403, partNumber: 1 });
    expect(requestsFor(key).filter((r) => r.method === "PUT")).toHaveLength(1);
  });

  it("retries a complete request answered 200 with an error document", async () => {
    const key = pendingKey("complete-retry.bin");
    const grant = await multipartGrant(key, 6 * MiB, 5 * MiB, { endpoint: proxy.endpoint });
    proxy.addFault({
      match: (r) => r.method === "POST" && r.path.endsWith(key),
      status: 200,
      code: "InternalError",
    });
    const outcome = await upload({ grant, size: 6 * MiB, seed: 10 });
    expect(outcome.error).toBeUndefined();
    expect(requestsFor(key).filter((r) => r.method === "POST")).toHaveLength(2);
    expect(sha256(await objectBytes(key))).toBe(sha256(testBytes(6 * MiB, 10)));
  });

  it("parses the S3 server's own error document (a form without its key field)", async () => {
    const key = pendingKey("no-key.png");
    const grant = await postGrant(key, { contentType: "image/png", maxSize: MiB });
    delete grant.post!.fields.key;
    const outcome = await upload({ grant, size: 1000, seed: 11, type: "image/png" });
    // What this server says, read from its own answer to the same form (servers word it differently).
    const said = await serverError(grant, 1000);
    expect(said.status).toBe(400);
    expect(outcome.error).toMatchObject({ isDirectUploadError: true, code: said.code, status: 400 });
    expect(outcome.error?.s3Message).toBe(said.message);
    expect(outcome.error?.message).toBe(`S3 refused the form upload: ${said.code} (${said.message})`);
  });

  it("refuses a file whose size does not fit the plan before sending anything", async () => {
    const key = pendingKey("wrong-size.bin");
    const grant = await multipartGrant(key, 12 * MiB, 5 * MiB, { endpoint: proxy.endpoint });
    const outcome = await upload({ grant, size: 9 * MiB, seed: 12 });
    expect(outcome.error).toMatchObject({ code: "SizeMismatch", isDirectUploadError: true });
    expect(requestsFor(key)).toHaveLength(0);
  });

  it("says NetworkError without a CORS rule for the origin, MissingETag when ETag is not exposed", async () => {
    const bucket = uniqueBucketName("psf-cors");
    await createBucket(s3, bucket);
    extraBuckets.push(bucket);
    const key = pendingKey("cors.bin");

    const noCors = await upload({
      grant: await postGrant(key, { bucket, contentType: "image/png", maxSize: MiB }),
      size: 100,
      seed: 13,
    });
    expect(noCors.error).toMatchObject({ code: "NetworkError", isDirectUploadError: true, status: 0 });

    await putCors(bucket, { ...corsRule(origin), ExposeHeaders: [] });
    const noEtag = await upload({ grant: await multipartGrant(key, 100, 5 * MiB, { bucket }), size: 100, seed: 13 });
    expect(noEtag.error).toMatchObject({ code: "MissingETag", partNumber: 1 });
    expect(noEtag.error?.message).toMatch(/ExposeHeaders/);
  });
});
