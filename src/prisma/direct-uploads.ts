import { createHash, randomBytes } from "node:crypto";
import type { UploadGrant, UploadGrantMultipart } from "../browser/upload-grant.js";
import { PrismaS3FilesError } from "../errors.js";
import { IMAGE_HEAD_BYTES, readImageDimensions } from "../files/image-size.js";
import { defaultFileName, uploadedFileName } from "../files/uploaded-name.js";
import {
  checkDeclaredSize,
  checkPixels,
  checkType,
  DEFAULT_MAX_PIXELS,
  FileValidationError,
} from "../files/validation.js";
import { type DirectUploadCapable, isDirectUploadCapable, type Storage } from "../storage/storage.js";
import type { FileMetadata } from "./file-metadata.js";
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
  /**
   * How long after a grant's expiry its pending object and `.used` marker are removed, in
   * seconds: by a timer in the process that attached it, else by `sweepOrphans`. Default 60
   * (clocks differ).
   */
  pendingGraceSeconds?: number;
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
  pendingGraceMs: number;
}

const MiB = 1024 * 1024;
const MIN_PART_SIZE = 5 * MiB;
const MAX_PARTS = 10_000;
/** S3's limit for a POST upload: larger grants are multipart plans. */
const MAX_POST_SIZE = 5 * 1024 * MiB;
/** S3's largest object (5 TiB): what a multipart plan can upload and the attach can move (by a multipart copy past 5 GiB). */
const MAX_OBJECT_SIZE = 5 * 1024 * 1024 * MiB;

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
    pendingGraceMs: (options?.pendingGraceSeconds ?? 60) * 1000,
  };
}

function directUploadStorage(storage: Storage, where: string): DirectUploadCapable {
  if (!isDirectUploadCapable(storage)) {
    throw new PrismaS3FilesError(
      "CONFIGURATION",
      `${where}: its storage (${storage.constructor.name}) takes no direct uploads from browsers; use an S3Storage`,
    );
  }
  return storage;
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
  if (size > MAX_OBJECT_SIZE) {
    throw new PrismaS3FilesError(
      "GRANT_TOO_LARGE",
      `${where}: direct uploads take at most 5 TiB (S3's largest object)`,
    );
  }
  // A POST takes at most 5 GiB: larger files get a plan whatever the threshold.
  const multipart = size > Math.min(config.multipartThreshold, MAX_POST_SIZE);
  let expiresIn = options.expiresIn ?? config.expiresIn;
  if (!Number.isInteger(expiresIn) || expiresIn < 1 || expiresIn > 604_800) {
    throw new RangeError(`${where}: a grant's lifetime must be 1..604800 whole seconds, got ${expiresIn}`);
  }
  // Presigned requests die with the temporary credentials that signed them: the grant says so.
  const signingExpiry = await direct.signingExpiresAt();
  // One clock reading for the grant's expiry and every signature it carries: read twice, a
  // second's boundary between the two made the POST policy outlive the grant by a second.
  const now = Date.now();
  if (signingExpiry) {
    const left = Math.floor((signingExpiry.getTime() - now) / 1000) - 5;
    if (left < 1) {
      throw new PrismaS3FilesError("CREDENTIALS_EXPIRING", `${where}: the signing credentials expire now; try again`);
    }
    expiresIn = Math.min(expiresIn, left);
  }
  const expires = Math.floor(now / 1000) + expiresIn;
  const expiresAt = new Date(expires * 1000);
  const filename = uploadedFileName(options.filename) ?? defaultFileName(contentType);
  const id = randomBytes(12).toString("base64url");
  // The expiry in the key lets the sweeper see when a pending object may go, without the secret.
  const pendingKey = `${config.pendingPrefix}${expires.toString(36)}-${id}/${storage.getValidName(filename)}`;
  const claims: GrantClaims = {
    id,
    model,
    field,
    key: pendingKey,
    expiresAt,
    size,
    contentType,
    filename,
    ...(options.checksumSha256 === undefined ? {} : { checksumSha256: options.checksumSha256 }),
  };
  const grant = { key: pendingKey, expiresAt: expiresAt.toISOString() };
  if (!multipart) {
    const post = await direct.presignedPost(pendingKey, {
      contentType,
      minSize: size,
      maxSize: size,
      expiresIn,
      now,
      ...(options.checksumSha256 === undefined ? {} : { checksumSha256: options.checksumSha256 }),
    });
    return { token: signGrantToken(claims, key), ...grant, post };
  }
  const partSize = Math.max(config.partSize, Math.ceil(size / MAX_PARTS));
  const uploadId = await direct.createMultipartUpload(pendingKey, { contentType });
  const count = Math.max(1, Math.ceil(size / partSize));
  const parts: UploadGrantMultipart["parts"] = [];
  for (let n = 1; n <= count; n++) {
    parts.push({ partNumber: n, url: await direct.presignUploadPart(pendingKey, uploadId, n, { expiresIn, now }) });
  }
  const completeUrl = await direct.presignCompleteMultipartUpload(pendingKey, uploadId, { expiresIn, now });
  return {
    token: signGrantToken({ ...claims, uploadId }, key),
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
  used.set(claims.id, claims.expiresAt.getTime());
  return () => used.delete(claims.id);
}

/** A grant claimed for one write: its object may now be moved to its final key. */
export interface ClaimedGrant {
  claims: GrantClaims;
  /** Lets the grant be used again (the write failed before the object moved). */
  release(): Promise<void>;
}

/** The marker that makes a grant single-use across processes; the browser's form cannot write it (the policy pins the upload's exact key). */
function usedMarker(claims: GrantClaims): string {
  return `${claims.key.slice(0, claims.key.lastIndexOf("/"))}.used`;
}

/**
 * Checks a grant token handed to `model.field` (signature, model and field, expiry), that the
 * browser's object is there with the declared size, and claims the grant: once in this process,
 * and across processes by creating its `.used` marker next to the pending object (a create that
 * only one writer wins where the server has conditional writes). The object's content is checked
 * after the move, on the copy no browser can write to ({@link verifyAttached}).
 */
export async function claimGrant(
  token: string,
  storage: Storage,
  model: string,
  field: string,
  meta: FileFieldMetadata,
  config: ResolvedDirectUploads,
): Promise<ClaimedGrant> {
  const where = `${model}.${field}`;
  const claims = verifyGrantToken(token, signingKey(config));
  if (claims.model !== model || claims.field !== field) {
    throw new PrismaS3FilesError(
      "GRANT_MISMATCH",
      `${where}: this upload grant was made for ${claims.model}.${claims.field}, not for this field`,
    );
  }
  if (claims.expiresAt.getTime() <= Date.now()) {
    throw new PrismaS3FilesError(
      "GRANT_EXPIRED",
      `${where}: this upload grant expired at ${claims.expiresAt.toISOString()}`,
    );
  }
  const releaseHere = claimOnce(claims, where);
  let size: number;
  try {
    size = await storage.size(claims.key);
  } catch (error) {
    releaseHere();
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
  if (size !== claims.size || (meta.maxSize !== null && size > meta.maxSize)) {
    // Rejected for what it is: it must never be attached, so it goes now (the grant stays claimed here).
    await storage.delete(claims.key).catch(() => undefined);
    checkDeclaredSize(size, { maxSize: meta.maxSize, accept: meta.accept }, { model, field });
    throw sizeMismatch(where, size, claims.size, { model, field });
  }
  const marker = usedMarker(claims);
  let claimedAs: string;
  try {
    claimedAs = await storage.save(marker, new Uint8Array(0), { contentType: "application/octet-stream" });
  } catch (error) {
    releaseHere();
    throw error;
  }
  if (claimedAs !== marker) {
    // Another writer (another process) holds the marker: this grant is used.
    await storage.delete(claimedAs).catch(() => undefined);
    throw new PrismaS3FilesError("GRANT_USED", `${where}: this upload grant was already used`);
  }
  // Once the grant has expired its form is dead: the marker (and anything re-sent to the pending
  // key meanwhile) can go. A process that exits first leaves them to sweepOrphans.
  const retire = setTimeout(
    () => {
      storage.deleteMany([marker, claims.key]).catch(() => undefined);
    },
    Math.max(0, claims.expiresAt.getTime() + config.pendingGraceMs - Date.now()),
  );
  retire.unref();
  return {
    claims,
    async release() {
      clearTimeout(retire);
      releaseHere();
      await storage.delete(marker);
    },
  };
}

const sizeMismatch = (where: string, size: number, declared: number, ref: { model: string; field: string }) =>
  new FileValidationError(
    "size_mismatch",
    `${where}: the uploaded file has ${size} bytes, not the ${declared} its grant declared`,
    ref,
  );

/**
 * Checks the object a grant attached, at its final key (a copy the browser cannot change, unlike
 * the pending object its form may still overwrite until the grant expires): size, type sniffed
 * from the first bytes, an image's pixels against `maxPixels`, declared SHA-256. Throws a
 * {@link FileValidationError}; the caller then removes the object.
 *
 * Returns the facts for the field's metadata columns, from what the checks read: size and type
 * from the object's HEAD, dimensions from its first 64 KiB (read for the type anyway), the
 * grant's file name, and the SHA-256 only when the grant declared one (then the whole object was
 * read and hashed to verify it; without one the attach reads no more than the first bytes).
 */
export async function verifyAttached(
  storage: Storage,
  key: string,
  claims: GrantClaims,
  meta: FileFieldMetadata,
): Promise<FileMetadata> {
  const ref = { model: claims.model, field: claims.field };
  const where = `${claims.model}.${claims.field}`;
  const rules = { maxSize: meta.maxSize, accept: meta.accept };
  const { size, contentType } = await storage.stat(key);
  checkDeclaredSize(size, rules, ref);
  if (size !== claims.size) throw sizeMismatch(where, size, claims.size, ref);
  // The form pins the type on servers that enforce POST policies; one that does not (s3rver), or
  // a writer other than the form, may have stored another, which the object would be served with.
  if (contentType !== undefined && normalType(contentType) !== normalType(claims.contentType)) {
    throw new FileValidationError(
      "content_type_mismatch",
      `${where}: the uploaded file was stored as ${JSON.stringify(contentType)}, not the ${JSON.stringify(claims.contentType)} its grant declared`,
      { ...ref, declaredType: claims.contentType, storedType: contentType },
    );
  }
  const head = size === 0 ? new Uint8Array(0) : await readRange(storage, key, Math.min(size, IMAGE_HEAD_BYTES));
  const { detectedType } = checkType(head, claims.contentType, rules, ref);
  const dimensions = readImageDimensions(head, detectedType);
  checkPixels(dimensions, meta.maxPixels ?? DEFAULT_MAX_PIXELS, ref);
  let sha256: string | undefined;
  if (claims.checksumSha256 !== undefined) {
    const digest = await sha256Of(storage, key);
    if (digest.toString("base64") !== claims.checksumSha256) {
      throw new FileValidationError(
        "checksum_mismatch",
        `${where}: the uploaded file's SHA-256 is not the declared one`,
        ref,
      );
    }
    sha256 = digest.toString("hex");
  }
  return {
    size,
    contentType: contentType ?? claims.contentType,
    ...(sha256 === undefined ? {} : { sha256 }),
    originalName: claims.filename,
    ...(dimensions ?? {}),
  };
}

/** A Content-Type compared as HTTP does: case-insensitive, whitespace around parameters ignored. */
function normalType(type: string): string {
  return type
    .split(";")
    .map((p) => p.trim().toLowerCase())
    .join(";");
}

async function readRange(storage: Storage, name: string, bytes: number): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  for await (const chunk of await storage.open(name, { start: 0, end: bytes - 1 })) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).subarray(0, bytes);
}

async function sha256Of(storage: Storage, name: string): Promise<Buffer> {
  const hash = createHash("sha256");
  for await (const chunk of await storage.open(name)) hash.update(chunk as Buffer);
  return hash.digest();
}

/** The expiry (epoch ms) a pending key carries, or `undefined` if it is not a pending key. */
export function pendingKeyExpiry(name: string, pendingPrefix: string): number | undefined {
  if (!name.startsWith(pendingPrefix)) return undefined;
  const match = /^([0-9a-z]+)-/.exec(name.slice(pendingPrefix.length));
  if (!match) return undefined;
  const seconds = Number.parseInt(match[1]!, 36);
  return Number.isSafeInteger(seconds) ? seconds * 1000 : undefined;
}
