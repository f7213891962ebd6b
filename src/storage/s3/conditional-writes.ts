import { randomBytes } from "node:crypto";
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  PutObjectCommand,
  type S3Client,
  UploadPartCommand,
} from "@aws-sdk/client-s3";
import type { S3Session } from "../../session/session.js";
import { uriEncode } from "./presigner.js";
import { isConditionalConflict, isPreconditionFailed } from "./s3-errors.js";

/**
 * The writes that can carry `If-None-Match: *`. Servers differ per operation: AWS S3 honours it
 * on all three; Ceph RGW 16 on PutObject only (a CopyObject onto an existing key replaces it);
 * s3rver on none.
 */
export type ConditionalOperation = "put" | "copy" | "completeMultipart";

/**
 * Which writes honour `If-None-Match: *`: `true` for each (AWS S3), `false` for none, `"auto"`
 * to probe each operation once, the first time it is needed, or per operation.
 */
export type ConditionalWritesSetting = boolean | "auto" | Partial<Record<ConditionalOperation, boolean | "auto">>;

/**
 * Base name prefix of the objects probing for conditional writes (`<dir>/.prisma-s3-files-probe-<hex>`);
 * the same prefix as `FileSystemStorage`'s temporary files.
 */
export const PROBE_PREFIX = ".prisma-s3-files-probe-";

/** What a probe needs from its storage. */
export interface ProbeContext {
  client: S3Client;
  bucket: string;
  /** The object key of a storage name. */
  key(name: string): string;
  /**
   * Removes a probe object (the storage's own two-attempt delete, reporting what stays): a
   * failure does not fail the probe, whose answer is valid.
   */
  remove(name: string): Promise<void>;
}

/** True when the server refused a conditional write because the key exists (or a concurrent one won). */
export function isClash(error: unknown): boolean {
  return isPreconditionFailed(error) || isConditionalConflict(error);
}

/**
 * Probe answers per session, endpoint, bucket and operation. Held per session object (whose
 * life bounds the connections they were learnt over), not per storage: every storage of a
 * bucket shares them.
 */
const answers = new WeakMap<S3Session, Map<string, Promise<boolean>>>();

/**
 * Whether `operation` honours `If-None-Match: *` on this bucket: the setting when it says so,
 * else a probe run once per session and bucket (a failed probe is retried next time). `near` is
 * the name about to be written: the probe's objects go in its directory, one the application
 * writes files to, so the sweep of that file column finds one whose delete failed.
 */
export function conditionalWrites(
  session: S3Session,
  setting: ConditionalWritesSetting,
  operation: ConditionalOperation,
  near: string,
  context: ProbeContext,
): Promise<boolean> {
  const chosen = typeof setting === "object" ? (setting[operation] ?? "auto") : setting;
  if (chosen !== "auto") return Promise.resolve(chosen);
  let bySession = answers.get(session);
  if (!bySession) {
    bySession = new Map();
    answers.set(session, bySession);
  }
  const scope = `${session.endpoint ?? "aws"}|${context.bucket}|${operation}`;
  let answer = bySession.get(scope);
  if (!answer) {
    answer = PROBES[operation](context, probeName(near));
    bySession.set(scope, answer);
    answer.catch(() => bySession.delete(scope));
  }
  return answer;
}

function probeName(near: string): string {
  const slash = near.lastIndexOf("/");
  return `${slash === -1 ? "" : near.slice(0, slash + 1)}${PROBE_PREFIX}${randomBytes(8).toString("hex")}`;
}

/** Runs `write` against an existing key: true when it is refused as a clash, false when it succeeds. */
async function refusedOnExisting(write: () => Promise<unknown>): Promise<boolean> {
  try {
    await write();
    return false; // a second exclusive create succeeded: the header is ignored
  } catch (error) {
    if (isClash(error)) return true;
    throw error;
  }
}

const empty = () => new Uint8Array(0);

const PROBES: Record<ConditionalOperation, (c: ProbeContext, name: string) => Promise<boolean>> = {
  /** Two exclusive PutObjects of one new key. */
  async put(c, name) {
    const put = () =>
      c.client.send(new PutObjectCommand({ Bucket: c.bucket, Key: c.key(name), Body: empty(), IfNoneMatch: "*" }));
    try {
      await put();
      return await refusedOnExisting(put);
    } finally {
      await c.remove(name);
    }
  },

  /** An object, then two exclusive CopyObjects of it onto one new key. */
  async copy(c, name) {
    const target = `${name}-copy`;
    const copy = () =>
      c.client.send(
        new CopyObjectCommand({
          Bucket: c.bucket,
          Key: c.key(target),
          CopySource: uriEncode(`${c.bucket}/${c.key(name)}`, true),
          IfNoneMatch: "*",
        }),
      );
    try {
      await c.client.send(new PutObjectCommand({ Bucket: c.bucket, Key: c.key(name), Body: empty() }));
      await copy();
      return await refusedOnExisting(copy);
    } finally {
      await c.remove(target);
      await c.remove(name);
    }
  },

  /** An object, then a one-part multipart upload onto its key completed with `If-None-Match: *`. */
  async completeMultipart(c, name) {
    const Key = c.key(name);
    await c.client.send(new PutObjectCommand({ Bucket: c.bucket, Key, Body: empty() }));
    let uploadId: string | undefined;
    try {
      ({ UploadId: uploadId } = await c.client.send(new CreateMultipartUploadCommand({ Bucket: c.bucket, Key })));
      const UploadId = uploadId as string;
      const { ETag } = await c.client.send(
        new UploadPartCommand({ Bucket: c.bucket, Key, UploadId, PartNumber: 1, Body: new Uint8Array(1) }),
      );
      const refused = await refusedOnExisting(() =>
        c.client.send(
          new CompleteMultipartUploadCommand({
            Bucket: c.bucket,
            Key,
            UploadId,
            MultipartUpload: { Parts: [{ PartNumber: 1, ETag }] },
            IfNoneMatch: "*",
          }),
        ),
      );
      if (!refused) uploadId = undefined; // completed: nothing to abort
      return refused;
    } finally {
      if (uploadId) {
        await c.client
          .send(new AbortMultipartUploadCommand({ Bucket: c.bucket, Key, UploadId: uploadId }))
          .catch(() => {}); // an open upload holds no object; the multipart sweep aborts it
      }
      await c.remove(name);
    }
  },
};
