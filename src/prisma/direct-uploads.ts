import { createHash, randomBytes } from "node:crypto";
import mime from "mime";
import type { UploadGrant, UploadGrantMultipart } from "../browser/upload-grant.js";
import { PrismaS3FilesError } from "../errors.js";
import { SNIFF_BYTES } from "../files/sniff.js";
import { uploadedFileName } from "../files/uploaded-name.js";
import { checkDeclaredSize, checkType, FileValidationError } from "../files/validation.js";
import type { Storage } from "../storage/storage.js";
import { type GrantClaims, grantKey, signGrantToken, verifyGrantToken } from "./grant-token.js";
import type { FileFieldMetadata } from "./metadata-types.js";

/** Options of browser direct uploads (`s3Files(session, { directUploads })`). */
export interface DirectUploadOptions {
  /**
   * Signs grant tokens, so that a browser can change nothing in them: at least 32 characters,
   * the same in every process of the app. Default: the `PRISMA_S3_FILES_SECRET` environment
   * variable. Without one, creating a grant or attaching one is a configuration error.
   */
  secret?: string;
  /** Lifetime of a grant in seconds (its presigned requests and its token). Default 900 (15 minutes). */
  expiresIn?: number;
  /** Files larger than this many bytes get a multipart plan instead of a POST form. Default 100 MiB. */
  multipartThreshold?: number;
  /** Part size of multipart plans in bytes (at least 5 MiB; raised to stay within 10,000 parts). Default 10 MiB. */
  partSize?: number;
  /**
   * Where pending uploads go in the field's storage, until a write attaches them. Default
   * `"_pending/"`. `sweepOrphans` removes what was never attached once its grant has expired.
   */
  pendingPrefix?: string;
}

/** Options of `prisma.user.uploadGrant(field, options)`. */
export interface UploadGrantOptions {
  /** The file's name on the client; only a safe base name of it is kept. */
  filename: string;
  /** The file's type as the browser declares it; checked against `accept` now and against the bytes on attach. */
  contentType: string;
  /** Exact size in bytes; checked against `maxSize` now and against the object on attach. */
  size: number;
  /** Base64 SHA-256 of the file: S3 verifies it on a POST where it supports checksums, and the attach verifies it always. */
  checksumSha256?: string;
  /** Lifetime in seconds; default the `directUploads.expiresIn` option. */
  expiresIn?: number;
}

export interface ResolvedDirectUploads {
  key: Buffer | undefined;
  expiresIn: number;
  multipartThreshold: number;
  partSize: number;
  pendingPrefix: string;
}

const MiB = 1024 * 1024;
const MIN_PART_SIZE = 5 * MiB;
const MAX_PARTS = 10_000;
/** S3's limit for a POST upload, and for one CopyObject when the grant is attached. */
const MAX_POST_SIZE = 5 * 1024 * MiB;

export function resolveDirectUploads(options: DirectUploadOptions | undefined): ResolvedDirectUploads {
  const secret = options?.secret ?? process.env.PRISMA_S3_FILES_SECRET;
  if (secret !== undefined && secret.length < 32) {
    throw new PrismaS3FilesError("CONFIGURATION", "directUploads.secret must be at least 32 characters");
  }
  const partSize = options?.partSize ?? 10 * MiB;
  if (!Number.isSafeInteger(partSize) || partSize < MIN_PART_SIZE) {
    throw new PrismaS3FilesError("CONFIGURATION", `directUploads.partSize must be at least 5 MiB, got ${partSize}`);
  }
  let pendingPrefix = options?.pendingPrefix ?? "_pending/";
  if (!pendingPrefix.endsWith("/")) pendingPrefix += "/";
  return {
    key: secret === undefined ? undefined : grantKey(secret),
    expiresIn: options?.expiresIn ?? 900,
    multipartThreshold: options?.multipartThreshold ?? 100 * MiB,
    partSize,
    pendingPrefix,
  };
}

/** The S3-only methods grants need; checked structurally, so this layer imports nothing from AWS. */
interface DirectUploadStorage extends Storage {
  presignedPost(
    name: string,
    opts: {
      contentType: string;
      minSize?: number;
      maxSize: number;
      expiresIn: number;
      checksumSha256?: string;
    },
  ): Promise<{ url: string; fields: Record<string, string> }>;
  createMultipartUpload(name: string, opts: { contentType: string }): Promise<string>;
  presignUploadPart(name: string, uploadId: string, partNumber: number, opts: { expiresIn: number }): Promise<string>;
  presignCompleteMultipartUpload(name: string, uploadId: string, opts: { expiresIn: number }): Promise<string>;
}

function directUploadStorage(storage: Storage, where: string): DirectUploadStorage {
  const s = storage as Partial<DirectUploadStorage>;
  if (typeof s.presignedPost !== "function" || typeof s.createMultipartUpload !== "function") {
    throw new PrismaS3FilesError(
      "CONFIGURATION",
      `${where}: its storage (${storage.constructor.name}) takes no direct uploads from browsers; use an S3Storage`,
    );
  }
  return storage as DirectUploadStorage;
}

function signingKey(config: ResolvedDirectUploads): Buffer {
  if (!config.key) {
    throw new PrismaS3FilesError(
      "CONFIGURATION",
      "Direct uploads need a secret to sign grants: set directUploads.secret in s3Files() or PRISMA_S3_FILES_SECRET",
    );
  }
  return config.key;
}

/**
 * A grant for one file: checks what the browser declares against the field's rules, picks a
 * pending key, and presigns a POST form (or, over the threshold, creates a multipart upload
 * and presigns its parts). Presigning uses the session's cached credentials; only the
 * multipart plan makes a request (CreateMultipartUpload).
 */
export async function createUploadGrant(
  storage: Storage,
  model: string,
  field: string,
  meta: FileFieldMetadata,
  config: ResolvedDirectUploads,
  options: UploadGrantOptions,
): Promise<UploadGrant> {
  const where = `${model}.${field}`;
  const key = signingKey(config);
  const direct = directUploadStorage(storage, where);
  const { size, contentType } = options;
  if (!Number.isSafeInteger(size) || size < 0) {
    throw new RangeError(`${where}: uploadGrant needs the file's size in bytes, got ${size}`);
  }
  if (typeof contentType !== "string" || contentType === "") {
    throw new TypeError(`${where}: uploadGrant needs the file's content type`);
  }
  const rules = { maxSize: meta.maxSize, accept: meta.accept };
  checkDeclaredSize(size, rules, { model, field });
  // The declared type alone, now: the bytes are judged again when the grant is attached.
  checkType(new Uint8Array(0), contentType, rules, { model, field });
  const multipart = size > config.multipartThreshold;
  if (!multipart && size > MAX_POST_SIZE) {
    throw new RangeError(`${where}: a POST upload takes at most 5 GiB; lower directUploads.multipartThreshold`);
  }
  const expiresIn = options.expiresIn ?? config.expiresIn;
  if (!Number.isInteger(expiresIn) || expiresIn < 1 || expiresIn > 604_800) {
    throw new RangeError(`${where}: a grant's lifetime must be 1..604800 whole seconds, got ${expiresIn}`);
  }
  const expires = Math.floor(Date.now() / 1000) + expiresIn;
  const filename = uploadedFileName(options.filename) ?? defaultName(contentType);
  const id = randomBytes(12).toString("base64url");
  // The expiry in the key lets the sweeper see when a pending object may go, without the secret.
  const pendingKey = `${config.pendingPrefix}${expires.toString(36)}-${id}/${storage.getValidName(filename)}`;
  const claims: GrantClaims = {
    id,
    m: model,
    f: field,
    k: pendingKey,
    e: expires,
    z: size,
    t: contentType,
    n: filename,
    ...(options.checksumSha256 === undefined ? {} : { s: options.checksumSha256 }),
  };
  const grant = { key: pendingKey, expiresAt: new Date(expires * 1000).toISOString() };
  if (!multipart) {
    const post = await direct.presignedPost(pendingKey, {
      contentType,
      minSize: size,
      maxSize: size,
      expiresIn,
      ...(options.checksumSha256 === undefined ? {} : { checksumSha256: options.checksumSha256 }),
    });
    return { token: signGrantToken(claims, key), ...grant, post };
  }
  const partSize = Math.max(config.partSize, Math.ceil(size / MAX_PARTS));
  const uploadId = await direct.createMultipartUpload(pendingKey, { contentType });
  const count = Math.max(1, Math.ceil(size / partSize));
  const parts: UploadGrantMultipart["parts"] = [];
  for (let n = 1; n <= count; n++) {
    parts.push({ partNumber: n, url: await direct.presignUploadPart(pendingKey, uploadId, n, { expiresIn }) });
  }
  const completeUrl = await direct.presignCompleteMultipartUpload(pendingKey, uploadId, { expiresIn });
  return {
    token: signGrantToken({ ...claims, u: uploadId }, key),
    ...grant,
    multipart: { uploadId, partSize, parts, completeUrl },
  };
}

/** Grant ids used (or being used) in this process, with their expiry in ms: a grant attaches once. */
const used = new Map<string, number>();

function claimOnce(claims: GrantClaims, where: string): () => void {
  const now = Date.now();
  for (const [id, expiry] of used) if (expiry < now) used.delete(id);
  if (used.has(claims.id)) {
    throw new PrismaS3FilesError("GRANT_USED", `${where}: this upload grant was already used`);
  }
  used.set(claims.id, claims.e * 1000);
  return () => used.delete(claims.id);
}

/** A grant whose object was checked and may now be moved to its final key. */
export interface VerifiedGrant {
  claims: GrantClaims;
  /** Lets the grant be used again (the write failed before the object moved). */
  release(): void;
}

/**
 * Checks a grant token handed to `model.field` and the object the browser uploaded: signature,
 * model and field, expiry, single use, then the object itself (it exists; its size is the
 * declared one and within `maxSize`; its first bytes sniff to an accepted type; its SHA-256 is
 * the declared one). An object that breaks the rules is deleted: the grant cannot be retried.
 */
export async function verifyGrant(
  token: string,
  storage: Storage,
  model: string,
  field: string,
  meta: FileFieldMetadata,
  config: ResolvedDirectUploads,
): Promise<VerifiedGrant> {
  const where = `${model}.${field}`;
  const claims = verifyGrantToken(token, signingKey(config));
  if (claims.m !== model || claims.f !== field) {
    throw new PrismaS3FilesError(
      "GRANT_MISMATCH",
      `${where}: this upload grant was made for ${claims.m}.${claims.f}, not for this field`,
    );
  }
  if (claims.e * 1000 <= Date.now()) {
    throw new PrismaS3FilesError(
      "GRANT_EXPIRED",
      `${where}: this upload grant expired at ${new Date(claims.e * 1000).toISOString()}`,
    );
  }
  const release = claimOnce(claims, where);
  const rules = { maxSize: meta.maxSize, accept: meta.accept };
  const ref = { model, field };
  let size: number;
  try {
    size = await storage.size(claims.k);
  } catch (error) {
    release();
    // By code, not class: a second copy of this package (or a test's fresh module) has its own classes.
    if ((error as { code?: unknown })?.code === "FILE_NOT_FOUND") {
      throw new PrismaS3FilesError(
        "GRANT_NOT_UPLOADED",
        `${where}: nothing was uploaded with this grant (the upload has not finished, or the grant was already used)`,
        { cause: error },
      );
    }
    throw error;
  }
  try {
    if (size !== claims.z) {
      throw new FileValidationError(
        "size_mismatch",
        `${where}: the uploaded file has ${size} bytes, not the ${claims.z} its grant declared`,
        { ...ref },
      );
    }
    checkDeclaredSize(size, rules, ref);
    const head = size === 0 ? new Uint8Array(0) : await readRange(storage, claims.k, Math.min(size, SNIFF_BYTES));
    checkType(head, claims.t, rules, ref);
    if (claims.s !== undefined && (await sha256Of(storage, claims.k)) !== claims.s) {
      throw new FileValidationError(
        "checksum_mismatch",
        `${where}: the uploaded file's SHA-256 is not the declared one`,
        {
          ...ref,
        },
      );
    }
  } catch (error) {
    if (error instanceof FileValidationError) {
      // Rejected for what it is: it must never be attached, so it goes now.
      await storage.delete(claims.k).catch(() => undefined);
    } else {
      release();
    }
    throw error;
  }
  return { claims, release };
}

async function readRange(storage: Storage, name: string, bytes: number): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  for await (const chunk of await storage.open(name, { start: 0, end: bytes - 1 })) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).subarray(0, bytes);
}

async function sha256Of(storage: Storage, name: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of await storage.open(name)) hash.update(chunk as Buffer);
  return hash.digest("base64");
}

/** The expiry (epoch ms) a pending key carries, or `undefined` if it is not a pending key. */
export function pendingKeyExpiry(name: string, pendingPrefix: string): number | undefined {
  if (!name.startsWith(pendingPrefix)) return undefined;
  const match = /^([0-9a-z]+)-/.exec(name.slice(pendingPrefix.length));
  if (!match) return undefined;
  const seconds = Number.parseInt(match[1]!, 36);
  return Number.isSafeInteger(seconds) ? seconds * 1000 : undefined;
}

function defaultName(contentType: string): string {
  const ext = mime.getExtension(contentType);
  return ext ? `file.${ext}` : "file";
}
