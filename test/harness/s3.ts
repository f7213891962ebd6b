import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectsCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  S3Client,
} from "@aws-sdk/client-s3";
import { cephAvailable, startCephRgw } from "./ceph-rgw.js";
import { dockerDaemonAnswers } from "./docker.js";
import { makeS3rverDurable } from "./s3rver-durable.js";

/** Everything a test needs to reach the S3 server of this run. Serializable (crosses workers). */
export interface S3Target {
  endpoint: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  bucket: string;
  forcePathStyle: boolean;
  /**
   * Which server this is: `rgw` (Ceph RADOS Gateway, started by the harness) and `minio` are real
   * S3 implementations; `s3rver` verifies no signature, enforces no POST policy, ignores
   * conditional writes and lacks batch deletes, multipart copies and multipart listings; `env`
   * is whatever the `S3_*` variables name. Tests use this to know what the server can show.
   */
  server: "env" | "minio" | "rgw" | "s3rver";
  /**
   * The longest key segment the server stores, in UTF-8 bytes, for `S3Storage`'s
   * `maxSegmentBytes`: s3rver {@link S3RVER_MAX_SEGMENT_BYTES}, MinIO 255; unset for a server
   * from the environment (AWS S3 has no such limit).
   */
  maxSegmentBytes?: number;
}

/**
 * s3rver keeps an object as files named `<last key segment>._S3rver_<resource>` (resources
 * `object`, `object.md5`, `metadata.json`, `tagging.xml`; `lib/stores/filesystem.js`) on a file
 * system allowing 255-byte names, so the longest, `._S3rver_metadata.json` (22 bytes), leaves 233.
 * Longer segments fail there with ENAMETOOLONG, which s3rver answers as a 500 UnknownError.
 */
export const S3RVER_MAX_SEGMENT_BYTES = 255 - Buffer.byteLength("._S3rver_metadata.json");

/** MinIO refuses key segments over 255 bytes (its documented limit per `/`-separated segment). */
export const MINIO_MAX_SEGMENT_BYTES = 255;

export interface TestS3 extends S3Target {
  stop(): Promise<void>;
}

/** A plain SDK client for the target, with checksums only where required (s3rver needs that). */
export function harnessClient(t: S3Target): S3Client {
  return new S3Client({
    endpoint: t.endpoint,
    region: t.region,
    forcePathStyle: t.forcePathStyle,
    credentials: { accessKeyId: t.accessKeyId, secretAccessKey: t.secretAccessKey },
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
  });
}

/**
 * Options for `createSession()` reaching the target with its own keys; checksums only where
 * required (s3rver rejects the SDK's default CRC32).
 */
export function sessionOptionsFor(t: S3Target) {
  return {
    region: t.region,
    endpoint: t.endpoint,
    forcePathStyle: t.forcePathStyle,
    bucket: t.bucket,
    credentials: { accessKeyId: t.accessKeyId, secretAccessKey: t.secretAccessKey },
    checksums: "when_required" as const,
  };
}

export async function createBucket(t: S3Target, bucket: string): Promise<void> {
  const client = harnessClient(t);
  try {
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
  } finally {
    client.destroy();
  }
}

/** Deletes every object of the bucket, then the bucket. */
export async function emptyAndDeleteBucket(t: S3Target, bucket: string): Promise<void> {
  const client = harnessClient(t);
  try {
    for (;;) {
      const page = await client.send(new ListObjectsV2Command({ Bucket: bucket }));
      const keys = (page.Contents ?? []).map((o) => ({ Key: o.Key as string }));
      if (keys.length === 0) break;
      await client.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: keys } }));
    }
    await client.send(new DeleteBucketCommand({ Bucket: bucket }));
  } finally {
    client.destroy();
  }
}

/** Every key under `prefix/`, relative to it: what the bucket really holds, not what a storage's listdir shows. */
export async function listKeys(t: S3Target, prefix: string): Promise<string[]> {
  const client = harnessClient(t);
  try {
    return (await listUnder(client, t.bucket, prefix)).sort();
  } finally {
    client.destroy();
  }
}

/** {@link listKeys} on a client of the caller's (for checks repeated many times), in listing order. */
export async function listUnder(client: S3Client, bucket: string, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const page = await client.send(
      new ListObjectsV2Command({ Bucket: bucket, Prefix: `${prefix}/`, ContinuationToken: token }),
    );
    for (const o of page.Contents ?? []) keys.push((o.Key as string).slice(prefix.length + 1));
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return keys;
}

/** Whether the bucket holds `key` (a HeadObject with the harness's own keys). */
export async function keyExists(t: S3Target, key: string, bucket = t.bucket): Promise<boolean> {
  const client = harnessClient(t);
  try {
    return await headExists(client, bucket, key);
  } finally {
    client.destroy();
  }
}

/** {@link keyExists} on a client of the caller's (for checks repeated many times). */
export async function headExists(client: S3Client, bucket: string, key: string): Promise<boolean> {
  try {
    await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
    return true;
  } catch (error) {
    if ((error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404) return false;
    throw error;
  }
}

export function uniqueBucketName(prefix = "psf"): string {
  return `${prefix}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
}

/**
 * Resolves an S3 server and creates this run's bucket, in this order: the `S3_*` variables;
 * MinIO through testcontainers when a Docker daemon answers; Ceph RGW started for this run
 * (installed with apt-get when missing and we are root); s3rver in this process where none of
 * these can run. `PSF_S3=s3rver` (or `rgw`, `minio`) picks one.
 */
export async function createTestS3(): Promise<TestS3> {
  const bucket = process.env.S3_BUCKET ?? uniqueBucketName();
  let target: S3Target;
  let stopServer: () => Promise<unknown> = async () => {};
  const only = process.env.PSF_S3;
  if (only && !["s3rver", "rgw", "minio"].includes(only)) {
    throw new Error(`PSF_S3 must be s3rver, rgw or minio, got ${JSON.stringify(only)}`);
  }

  if (process.env.S3_ENDPOINT && !only) {
    target = {
      endpoint: process.env.S3_ENDPOINT,
      region: process.env.S3_REGION ?? "us-east-1",
      accessKeyId: process.env.S3_ACCESS_KEY_ID ?? "",
      secretAccessKey: process.env.S3_SECRET_ACCESS_KEY ?? "",
      bucket,
      forcePathStyle: process.env.S3_FORCE_PATH_STYLE !== "false",
      server: "env",
    };
  } else if ((!only || only === "minio") && (await dockerDaemonAnswers())) {
    const { MinioContainer } = await import("@testcontainers/minio");
    const container = await new MinioContainer("minio/minio:RELEASE.2025-04-22T22-12-26Z").start();
    target = {
      endpoint: container.getConnectionUrl(),
      region: "us-east-1",
      accessKeyId: container.getUsername(),
      secretAccessKey: container.getPassword(),
      bucket,
      forcePathStyle: true,
      server: "minio",
      maxSegmentBytes: MINIO_MAX_SEGMENT_BYTES,
    };
    stopServer = () => container.stop();
  } else if (only === "minio") {
    throw new Error("PSF_S3=minio needs a Docker daemon, and none answers");
  } else if ((!only && cephAvailable()) || only === "rgw") {
    // Once more on a failure (a port taken between picking and binding it, say), then fail:
    // a run that falls back silently would not be the RGW run it claims to be.
    const rgw = await startCephRgw().catch((error: unknown) => {
      process.stderr.write(`harness: Ceph RGW did not start, trying once more: ${(error as Error).message}\n`);
      return startCephRgw();
    });
    target = {
      endpoint: rgw.endpoint,
      region: "us-east-1", // RGW's buckets want it
      accessKeyId: rgw.accessKeyId,
      secretAccessKey: rgw.secretAccessKey,
      bucket,
      forcePathStyle: true,
      server: "rgw",
    };
    stopServer = () => rgw.stop();
  } else {
    const { default: S3rver } = await import("s3rver");
    makeS3rverDurable();
    const directory = mkdtempSync(join(tmpdir(), "psf-s3rver-"));
    const server = new S3rver({ address: "127.0.0.1", port: 0, silent: true, directory });
    const { port } = (await server.run()) as { port: number };
    target = {
      endpoint: `http://127.0.0.1:${port}`,
      region: "us-east-1",
      // s3rver's built-in account.
      accessKeyId: "S3RVER",
      secretAccessKey: "S3RVER",
      bucket,
      forcePathStyle: true,
      server: "s3rver",
      maxSegmentBytes: S3RVER_MAX_SEGMENT_BYTES,
    };
    stopServer = async () => {
      await server.close();
      rmSync(directory, { recursive: true, force: true });
    };
  }

  if (!process.env.S3_BUCKET) await createBucket(target, bucket);
  return {
    ...target,
    async stop() {
      if (!process.env.S3_BUCKET) await emptyAndDeleteBucket(target, bucket).catch(() => {});
      await stopServer();
    },
  };
}
