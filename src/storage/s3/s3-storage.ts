import { randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import {
  AbortMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  type HeadObjectCommandOutput,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  type ObjectCannedACL,
  PutObjectCommand,
  type S3Client,
} from "@aws-sdk/client-s3";
import { getSignedUrl as getCloudFrontSignedUrl } from "@aws-sdk/cloudfront-signer";
import {
  FileExistsError,
  FileNotFoundError,
  LeftBehindError,
  type LeftBehindObject,
  StorageError,
  SuspiciousFileOperationError,
} from "../../errors.js";
import { getDefaultSession } from "../../session/default-session.js";
import type { S3Session } from "../../session/session.js";
import {
  BaseStorage,
  type BaseStorageOptions,
  type ByteRange,
  filepathToUri,
  type MoveObjectRequest,
  type ObjectStat,
  type WriteObjectRequest,
} from "../base-storage.js";
import { abortReason } from "../content.js";
import { assertNameFits, type NameByteLimits, utf8Length } from "../naming.js";
import type { DirectUploadCapable, ListResult, ObjectInfo, UrlOptions } from "../storage.js";
import {
  type ConditionalOperation,
  type ConditionalWritesSetting,
  conditionalWrites,
  isClash,
  PROBE_PREFIX,
} from "./conditional-writes.js";
import { registerDefaultS3Storage } from "./default-storage.js";
import { type ObjectWriteParams, uploadMultipart } from "./multipart.js";
import {
  type CopyTargetParams,
  copyMultipart,
  copyPartSize,
  MAX_COPY_PART_SIZE,
  MIN_COPY_PART_SIZE,
  type MultipartCopyFailure,
} from "./multipart-copy.js";
import {
  contentDispositionFor,
  type PresignCredentials,
  type PresignedPost,
  type PresignTarget,
  QueryPresigner,
  s3BaseUrl,
  uriEncode,
} from "./presigner.js";
import { isNotFound, isNotImplemented } from "./s3-errors.js";

/** Per-object write parameters (django-storages' `object_parameters`). */
export type ObjectParameters = Pick<
  ObjectWriteParams,
  | "CacheControl"
  | "ContentDisposition"
  | "ContentEncoding"
  | "ContentLanguage"
  | "ContentType"
  | "Expires"
  | "StorageClass"
  | "ServerSideEncryption"
  | "SSEKMSKeyId"
  | "Tagging"
  | "Metadata"
  | "ACL"
>;

/** Options of {@link S3Storage}; django-storages' names in camelCase. */
export interface S3StorageOptions extends BaseStorageOptions {
  /** The session whose credentials and client this storage uses; default: one shared lazy session. */
  session?: S3Session;
  /** Bucket; default: the session's. */
  bucket?: string;
  /** The bucket's region when it differs from the session's (a client sharing the session's credentials serves it). */
  region?: string;
  /** Key prefix every name lives under (django-storages `location`); no leading `/`. */
  location?: string;
  /** Canned ACL for new objects (`default_acl`), e.g. `"public-read"`. Default: none (the bucket's policy). */
  defaultAcl?: ObjectCannedACL;
  /** Signed URLs (`querystring_auth`). Default `true`. */
  querystringAuth?: boolean;
  /** Lifetime of signed URLs in seconds (`querystring_expire`). Default 3600. */
  querystringExpire?: number;
  /** Host (and optional path) serving the bucket, e.g. a CDN: `cdn.example.com` (`custom_domain`). */
  customDomain?: string;
  /** Scheme for `customDomain` URLs (`url_protocol`). Default `"https:"`. */
  urlProtocol?: "https:" | "http:";
  /** Extra parameters for every write, or per name (`object_parameters`). */
  objectParameters?: ObjectParameters | ((name: string) => ObjectParameters);
  /**
   * Bodies up to this size go in one PutObject; larger ones stream as parts of this size. Default
   * 5 MiB (S3's minimum; with `queueSize` 4 a save holds about 20 MiB), raised for bodies of known
   * length that would need more than 10,000 parts.
   */
  partSize?: number;
  /** Parts uploaded at once. Default 4; memory per save stays under (queueSize + 1) × partSize. */
  queueSize?: number;
  /** CloudFront-signed URLs on `customDomain` (`cloudfront_key_id` / `cloudfront_key`). */
  cloudfront?: { keyPairId: string; privateKey: string };
  /**
   * `If-None-Match: *` writes, so `fileOverwrite: false` holds across processes. Servers honour
   * it per operation (PutObject, CopyObject, CompleteMultipartUpload): `"auto"` (default) probes
   * each one the first time it is needed, once per session and bucket; `true` trusts all three
   * (AWS S3); an object sets them one by one. Where CopyObject ignores it (Ceph RGW), a move
   * first claims the target with an exclusive empty PutObject; where nothing honours it
   * (s3rver), writes fall back to in-process name claims plus a check after the write that the
   * object is still ours, which is race-free within one process only.
   */
  conditionalWrites?: ConditionalWritesSetting;
  /**
   * `move()` copies objects larger than this many bytes as a multipart copy (UploadPartCopy
   * ranges, `queueSize` at a time) instead of one CopyObject. Default and most: 5 GiB, S3's
   * CopyObject limit; objects up to S3's 5 TiB move either way.
   */
  copyThreshold?: number;
  /**
   * Part size of multipart copies, in bytes (5 MiB..5 GiB). Default 64 MiB, raised to stay within
   * 10,000 parts (about 525 MiB for a 5 TiB object).
   */
  copyPartSize?: number;
  /**
   * The longest path segment of a key (between `/`) the server stores, in UTF-8 bytes (see
   * {@link BaseStorageOptions.maxSegmentBytes}). Default: none, as on AWS S3, which limits only
   * the whole key: 1024 bytes with `location/`, always enforced here (a longer file name is cut,
   * a longer directory refused with code `NAME_TOO_LONG`). MinIO: 255. Servers that keep objects
   * as files need less: s3rver names them `<segment>._S3rver_metadata.json`, so 255 − 22 = 233.
   */
  maxSegmentBytes?: number | undefined;
}

/** Options of {@link S3Storage.presignedPost}. */
export interface PresignedPostOptions {
  /** The object's Content-Type; the form must send exactly this. */
  contentType: string;
  /** Smallest accepted size in bytes. Default 0. */
  minSize?: number;
  /** Largest accepted size in bytes (at most 5 GiB, S3's limit for a POST); S3 refuses larger files. */
  maxSize: number;
  /** Lifetime of the grant in whole seconds, 1..604800. */
  expiresIn: number;
  /** User metadata (`x-amz-meta-*` fields, names lowercased), pinned by the policy. */
  metadata?: Record<string, string>;
  /** Base64 SHA-256 of the exact bytes: S3 refuses a file with another digest. */
  checksumSha256?: string;
  /**
   * The signing time (default: now). A caller that states the expiry itself (an upload grant)
   * passes the clock reading it computed it from, so the two cannot fall a second apart.
   */
  now?: Date | number;
}

/** Options of {@link S3Storage.createMultipartUpload}. */
export interface CreateMultipartUploadOptions {
  /** The object's Content-Type. */
  contentType: string;
  /** User metadata stored with the object (`x-amz-meta-*`). */
  metadata?: Record<string, string>;
}

/** Options of the multipart presigning methods of {@link S3Storage}. */
export interface PresignMultipartOptions {
  /** Lifetime of the URL in whole seconds, 1..604800. */
  expiresIn: number;
  /**
   * The signing time (default: now). A caller that states the expiry itself (an upload grant)
   * passes the clock reading it computed it from, so the two cannot fall a second apart.
   */
  now?: Date | number;
}

const MIN_PART_SIZE = 5 * 1024 * 1024;
/** S3's limit on a key (`location/` included), in UTF-8 bytes; MinIO and other servers share it. */
export const MAX_KEY_BYTES = 1024;
/** The largest object CopyObject copies (5 GiB); beyond it S3 needs a multipart copy. */
export const MAX_COPY_SIZE = 5 * 1024 ** 3;
export { PROBE_PREFIX };
/** The largest object S3 stores (5 TiB): the most a move copies, by parts. */
export const MAX_OBJECT_SIZE = 5 * 1024 ** 4;
/** S3's most keys in one DeleteObjects request. */
export const MAX_DELETE_KEYS = 1000;
/**
 * User metadata naming the write that stored an object, on servers without conditional writes
 * only: a look after the write tells our object from another process's (see `conditionalWrites`).
 */
const WRITE_TOKEN = "psf-write";
/**
 * DeleteObjects support per endpoint and bucket: learnt from the first batch sent (`false` once a
 * server answered NotImplemented/405, and single deletes are used from then on).
 */
const batchDeleteSupport = new Map<string, boolean>();

/** One incomplete multipart upload, as {@link S3Storage.listMultipartUploads} lists it. */
export interface MultipartUploadInfo {
  /** Storage-relative name of the object the upload would make. */
  name: string;
  /** Its S3 key (`location/name`). */
  key: string;
  uploadId: string;
  /** When it was started, as the server says. */
  initiated: Date | undefined;
}

/**
 * Objects in an S3 bucket (or any S3-compatible server), with Django's naming rules, streaming
 * reads and writes, and URLs computed from the session's cached credentials without I/O.
 */
export class S3Storage extends BaseStorage implements DirectUploadCapable {
  readonly bucket: string;
  readonly location: string;
  readonly querystringAuth: boolean;
  readonly querystringExpire: number;
  readonly #session: S3Session;
  readonly #region: string | undefined;
  readonly #options: S3StorageOptions;
  readonly #partSize: number;
  readonly #queueSize: number;
  readonly #copyThreshold: number;
  readonly #copyPartSize: number;
  readonly #presigner: QueryPresigner;
  #target: PresignTarget | undefined;
  #client: S3Client | undefined;

  constructor(options: S3StorageOptions = {}) {
    super(options);
    this.#options = options;
    this.#session = options.session ?? getDefaultSession();
    const bucket = options.bucket ?? this.#session.bucket;
    if (!bucket) throw new StorageError("S3Storage needs a bucket: pass `bucket` or create the session with one");
    this.bucket = bucket;
    const location = options.location ?? "";
    if (location.startsWith("/")) {
      throw new SuspiciousFileOperationError(`S3Storage location must not begin with "/": ${JSON.stringify(location)}`);
    }
    this.location = location.replace(/\/+$/, "");
    if (this.location !== "") {
      this.validateName(this.location);
      // Room for "/" and at least one byte of name.
      assertNameFits(this.location, { maxSegmentBytes: this.maxSegmentBytes, maxNameBytes: MAX_KEY_BYTES - 2 });
    }
    this.querystringAuth = options.querystringAuth ?? true;
    this.querystringExpire = options.querystringExpire ?? 3600;
    this.#region = options.region;
    this.#partSize = Math.max(MIN_PART_SIZE, options.partSize ?? MIN_PART_SIZE);
    this.#queueSize = Math.max(1, options.queueSize ?? 4);
    const copyThreshold = options.copyThreshold ?? MAX_COPY_SIZE;
    if (!Number.isSafeInteger(copyThreshold) || copyThreshold < 0 || copyThreshold > MAX_COPY_SIZE) {
      throw new RangeError(`copyThreshold must be a whole number of bytes from 0 to 5 GiB, got ${copyThreshold}`);
    }
    this.#copyThreshold = copyThreshold;
    const partSize = options.copyPartSize ?? 64 * 1024 * 1024;
    if (!Number.isSafeInteger(partSize) || partSize < MIN_COPY_PART_SIZE || partSize > MAX_COPY_PART_SIZE) {
      throw new RangeError(`copyPartSize must be a whole number of bytes from 5 MiB to 5 GiB, got ${partSize}`);
    }
    this.#copyPartSize = partSize;
    this.#presigner = new QueryPresigner({ checksumMode: this.#session.checksums === "when_supported" });
  }

  /** The session this storage draws credentials and connections from. */
  get session(): S3Session {
    return this.#session;
  }

  /** The object key of a storage name: `location/name`. */
  key(name: string): string {
    return this.location === "" ? name : `${this.location}/${name}`;
  }

  /** The segment limit, and S3's 1024 bytes per key minus `location/`. */
  protected override nameByteLimits(): NameByteLimits {
    const prefix = this.location === "" ? 0 : utf8Length(this.location) + 1;
    return { ...super.nameByteLimits(), maxNameBytes: MAX_KEY_BYTES - prefix };
  }

  protected override reservationScope(): string {
    return `s3:${this.#session.endpoint ?? "aws"}|${this.bucket}|${this.location}`;
  }

  async #s3(): Promise<S3Client> {
    if (this.#client) return this.#client;
    this.#client =
      this.#region === undefined ? this.#session.client : await this.#session.clientForRegion(this.#region);
    return this.#client;
  }

  // ---------------------------------------------------------------- writes

  /** Set once a PutObject of this storage went out with `If-None-Match: *` honoured (see clashesOnWrite). */
  #putRefusesTaken = false;

  /** Once PutObject is known to refuse a taken key, saves skip the HeadObject before it (one request less). */
  protected override clashesOnWrite(): boolean {
    return this.#putRefusesTaken;
  }

  protected async writeObject(request: WriteObjectRequest): Promise<string> {
    const client = await this.#s3();
    const mode = await this.#exclusivity(client, "put", request);
    if (mode === "precondition") this.#putRefusesTaken = true;
    const params = this.#writeParams(request);
    // Where the server cannot refuse a taken key, each write carries a token of its own that a
    // look after the write compares: identical bytes from another writer must not pass as ours.
    const token = mode === "verify" ? randomBytes(12).toString("hex") : undefined;
    if (token) params.Metadata = { ...params.Metadata, [WRITE_TOKEN]: token };
    const iterator = request.body[Symbol.asyncIterator]();
    // Read up to one part: small bodies (most uploads) go in a single PutObject we can repeat.
    const prefix: Uint8Array[] = [];
    let buffered = 0;
    let ended = false;
    while (buffered <= this.#partSize) {
      const next = await iterator.next();
      if (next.done) {
        ended = true;
        break;
      }
      prefix.push(next.value);
      buffered += next.value.byteLength;
    }

    let name = request.name;
    if (ended) {
      // One chunk (bytes given whole: most uploads) is sent as it is; several are joined once.
      const only = prefix.length === 1 ? prefix[0]! : undefined;
      const body = only ? Buffer.from(only.buffer, only.byteOffset, only.byteLength) : Buffer.concat(prefix, buffered);
      for (;;) {
        try {
          await client.send(
            new PutObjectCommand({
              ...params,
              Bucket: this.bucket,
              Key: this.key(name),
              Body: body,
              ContentLength: body.byteLength,
              ...(mode === "precondition" ? { IfNoneMatch: "*" } : {}),
            }),
            { abortSignal: request.signal },
          );
          if (token && !(await this.#stillOurs(client, name, token))) {
            name = await request.nextName(); // replaced by another writer since: write ours again elsewhere
            continue;
          }
          return name;
        } catch (error) {
          if (!(mode === "precondition" && isClash(error))) throw error;
          name = await request.nextName(); // taken by another writer since we picked it
        }
      }
    }

    // Large body: claim the key first with an empty conditional write (the content cannot be
    // replayed under another name once streamed), then stream the parts over our own claim.
    const claimed = mode === "precondition";
    if (claimed) name = await this.#claimKey(client, name, request);
    try {
      await uploadMultipart({
        client,
        bucket: this.bucket,
        key: this.key(name),
        params,
        prefix,
        rest: iterator,
        // S3 allows 10,000 parts: a known length that needs more gets larger parts.
        partSize: Math.max(this.#partSize, Math.ceil((request.length ?? 0) / 10_000)),
        queueSize: this.#queueSize,
        ifNoneMatch: false,
        checksums: this.#session.checksums === "when_supported",
        signal: request.signal,
      });
    } catch (error) {
      if (!claimed) throw error;
      throw await this.#releaseClaim(client, name, error, request.signal);
    }
    // Another writer replaced it: the stream cannot be written again, so the save fails (or, for
    // content that can be read again, is retried by the caller under another name).
    if (token && !(await this.#stillOurs(client, name, token))) throw new FileExistsError(name);
    return name;
  }

  /**
   * How an exclusive write of `operation` keeps another process's object: `precondition` (the
   * server refuses a taken key), `claim` (an exclusive empty PutObject takes the key first, where
   * only PutObject honours the precondition), `verify` (in-process claims plus a look after the
   * write), or `overwrite` for non-exclusive writes.
   */
  async #exclusivity(
    client: S3Client,
    operation: ConditionalOperation,
    request: { exclusive: boolean; name: string },
  ): Promise<"overwrite" | "precondition" | "claim" | "verify"> {
    if (!request.exclusive) return "overwrite";
    if (await this.#honours(client, operation, request.name)) return "precondition";
    if (operation !== "put" && (await this.#honours(client, "put", request.name))) return "claim";
    return "verify";
  }

  /**
   * Which writes of this bucket's server honour `If-None-Match: *`, as exclusive writes use them
   * (the `conditionalWrites` setting, else probed once per session and bucket). Probe objects go
   * under `near`'s directory and are removed. For diagnostics: writes ask this themselves.
   */
  async conditionalWriteSupport(near = "probe"): Promise<Record<ConditionalOperation, boolean>> {
    const client = await this.#s3();
    const name = this.cleanName(near);
    const [put, copy, completeMultipart] = await Promise.all(
      (["put", "copy", "completeMultipart"] as const).map((op) => this.#honours(client, op, name)),
    );
    return { put: put as boolean, copy: copy as boolean, completeMultipart: completeMultipart as boolean };
  }

  #honours(client: S3Client, operation: ConditionalOperation, near: string): Promise<boolean> {
    return conditionalWrites(this.#session, this.#options.conditionalWrites ?? "auto", operation, near, {
      client,
      bucket: this.bucket,
      key: (n) => this.key(n),
      remove: async (n) => {
        const left = await this.#remove(client, n);
        if (left) {
          this.reportLeftBehind(
            new LeftBehindError(
              `A conditional-write probe object could not be removed: ${describeLeft(left)}`,
              [left],
              {
                cause: left.cause,
                fileName: n,
              },
            ),
          );
        }
      },
    });
  }

  /** Whether the object under `name` still carries the write token this process gave it. */
  async #stillOurs(client: S3Client, name: string, token: string): Promise<boolean> {
    try {
      const head = await client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.key(name) }));
      return head.Metadata?.[WRITE_TOKEN] === token;
    } catch (error) {
      if (isNotFound(error)) return false;
      throw error;
    }
  }

  async #claimKey(
    client: S3Client,
    first: string,
    request: Partial<Pick<WriteObjectRequest, "signal">> & Pick<WriteObjectRequest, "nextName">,
  ): Promise<string> {
    let name = first;
    for (;;) {
      try {
        await client.send(
          new PutObjectCommand({ Bucket: this.bucket, Key: this.key(name), Body: new Uint8Array(0), IfNoneMatch: "*" }),
          { abortSignal: request.signal },
        );
        return name;
      } catch (error) {
        if (!isClash(error)) throw error;
        name = await request.nextName();
      }
    }
  }

  /**
   * After a write over our own empty claim failed: removes the claim and returns the error to
   * throw, a {@link LeftBehindError} when the claim stays.
   */
  async #releaseClaim(client: S3Client, name: string, error: unknown, signal?: AbortSignal): Promise<unknown> {
    const left = await this.#remove(client, name);
    if (!left) return error;
    return new LeftBehindError(
      `Could not write ${JSON.stringify(name)}, and its empty placeholder could not be removed: ${describeLeft(left)}`,
      [left],
      { cause: signal?.aborted ? abortReason(signal) : error, fileName: name },
    );
  }

  /**
   * Deletes an object this storage created for its own bookkeeping (a claim, a probe), trying
   * twice: a transient failure should not leave it. Returns what is left when both fail.
   */
  async #remove(client: S3Client, name: string): Promise<LeftBehindObject | undefined> {
    const key = this.key(name);
    let cause: unknown;
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        // No abort signal: the cleanup of an aborted save must still run.
        await client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
        return undefined;
      } catch (error) {
        if (isNotFound(error)) return undefined;
        cause = error;
      }
    }
    return { name, key, cause };
  }

  #writeParams(request: Pick<WriteObjectRequest, "name" | "contentType" | "metadata">): ObjectWriteParams {
    const custom = this.#options.objectParameters;
    const perName = typeof custom === "function" ? custom(request.name) : (custom ?? {});
    return {
      ContentType: request.contentType,
      ...(this.#options.defaultAcl ? { ACL: this.#options.defaultAcl } : {}),
      ...perName,
      Metadata: { ...perName.Metadata, ...request.metadata },
    };
  }

  // ---------------------------------------------------------------- move

  /**
   * CopyObject, then DeleteObject of the source. The copy keeps content type and metadata;
   * `defaultAcl` is applied again, as ACLs are not copied. Exclusive moves never replace another
   * process's object: `If-None-Match: *` on the copy where the server honours it there, else an
   * exclusive empty PutObject claims the target first and the copy lands on our own claim, else
   * (no conditional writes at all) the copy carries a write token checked afterwards. One
   * HeadObject first: a missing source fails before any write, and so does one over S3's 5 TiB
   * (`MOVE_TOO_LARGE`); one over `copyThreshold` (5 GiB, CopyObject's limit) is copied by parts
   * ({@link S3Storage.#moveByParts}).
   */
  protected async moveObject(request: MoveObjectRequest): Promise<string> {
    const client = await this.#s3();
    const source = await this.statObject(request.from);
    if (source.size > MAX_OBJECT_SIZE) {
      throw new StorageError(
        `Cannot move ${JSON.stringify(request.from)}: it is ${source.size} bytes, more than the ${MAX_OBJECT_SIZE} bytes (5 TiB) an S3 object can hold`,
        { fileName: request.from, code: "MOVE_TOO_LARGE" },
      );
    }
    if (source.size > this.#copyThreshold) return this.#moveByParts(client, request);
    const mode = await this.#exclusivity(client, "copy", request);
    const token = mode === "verify" ? randomBytes(12).toString("hex") : undefined;
    const copySource = uriEncode(`${this.bucket}/${this.key(request.from)}`, true);
    let name = request.name;
    for (;;) {
      if (mode === "claim") name = await this.#claimKey(client, name, request);
      try {
        await client.send(
          new CopyObjectCommand({
            Bucket: this.bucket,
            Key: this.key(name),
            CopySource: copySource,
            ...(this.#options.defaultAcl ? { ACL: this.#options.defaultAcl } : {}),
            ...(mode === "precondition" ? { IfNoneMatch: "*" } : {}),
            // The token is new metadata: the source's type and metadata are carried over with it.
            ...(token
              ? {
                  MetadataDirective: "REPLACE",
                  ContentType: source.contentType,
                  Metadata: { ...source.metadata, [WRITE_TOKEN]: token },
                }
              : {}),
          }),
        );
      } catch (error) {
        const failure = isNotFound(error) ? new FileNotFoundError(request.from, { cause: error }) : error;
        if (mode === "claim") throw await this.#releaseClaim(client, name, failure);
        // Deleted since the HeadObject: still nothing written.
        if (failure !== error) throw failure;
        if (!(mode === "precondition" && isClash(error))) throw error;
        name = await request.nextName(); // taken by another writer since we picked it
        continue;
      }
      if (token && !(await this.#stillOurs(client, name, token))) {
        name = await request.nextName(); // replaced by another writer since: copy again elsewhere
        continue;
      }
      break;
    }
    // The copy is complete: from here on the move succeeds, whatever happens to the source.
    const left = await this.#remove(client, request.from);
    if (left) request.leftBehind(left);
    return name;
  }

  /**
   * A move past `copyThreshold`: one HeadObject for the source's headers and ETag (every part
   * copy is conditional on it, so a source replaced meanwhile fails the move instead of mixing
   * versions), an empty exclusive claim of the target where conditional writes work (as for a
   * large save: the completion then replaces only our own claim), the multipart copy, then
   * DeleteObject of the source. A failed copy is aborted and the claim removed; what cannot be
   * removed (the claim, an upload whose abort failed) is thrown as a {@link LeftBehindError}.
   */
  async #moveByParts(client: S3Client, request: MoveObjectRequest): Promise<string> {
    let head: HeadObjectCommandOutput;
    try {
      head = await client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.key(request.from) }));
    } catch (error) {
      if (isNotFound(error)) throw new FileNotFoundError(request.from, { cause: error });
      throw error;
    }
    const size = head.ContentLength ?? 0;
    // The parts cannot be written again under another name: claim the target first wherever
    // PutObject is exclusive (RGW honours If-None-Match on neither copies nor completions).
    const conditional = request.exclusive && (await this.#honours(client, "put", request.name));
    let name = request.name;
    if (conditional) name = await this.#claimKey(client, name, { signal: undefined, nextName: request.nextName });
    try {
      await copyMultipart({
        client,
        bucket: this.bucket,
        copySource: uriEncode(`${this.bucket}/${this.key(request.from)}`, true),
        sourceETag: head.ETag,
        size,
        key: this.key(name),
        params: this.#copyParams(head),
        partSize: copyPartSize(size, this.#copyPartSize),
        concurrency: this.#queueSize,
      });
    } catch (failure) {
      const { cause: copyError, uploadId, abortError } = failure as MultipartCopyFailure;
      const cause = isNotFound(copyError) ? new FileNotFoundError(request.from, { cause: copyError }) : copyError;
      const left: LeftBehindObject[] = [];
      if (abortError !== undefined && uploadId !== undefined) {
        left.push({ name, key: this.key(name), cause: abortError, uploadId });
      }
      if (conditional) {
        const claim = await this.#remove(client, name);
        if (claim) left.push(claim);
      }
      if (left.length === 0) throw cause;
      throw new LeftBehindError(
        `Could not move ${JSON.stringify(request.from)} by parts, and could not remove ${left.map(describeLeft).join(", ")}`,
        left,
        { cause, fileName: request.from },
      );
    }
    const left = await this.#remove(client, request.from);
    if (left) request.leftBehind(left);
    return name;
  }

  /** The source's headers a multipart copy must set itself (CopyObject would copy them); ACLs are not copied. */
  #copyParams(head: HeadObjectCommandOutput): CopyTargetParams {
    return {
      ...(head.ContentType ? { ContentType: head.ContentType } : {}),
      ...(head.CacheControl ? { CacheControl: head.CacheControl } : {}),
      ...(head.ContentDisposition ? { ContentDisposition: head.ContentDisposition } : {}),
      ...(head.ContentEncoding ? { ContentEncoding: head.ContentEncoding } : {}),
      ...(head.ContentLanguage ? { ContentLanguage: head.ContentLanguage } : {}),
      ...(head.Expires ? { Expires: head.Expires } : {}),
      ...(head.ServerSideEncryption ? { ServerSideEncryption: head.ServerSideEncryption } : {}),
      ...(head.SSEKMSKeyId ? { SSEKMSKeyId: head.SSEKMSKeyId } : {}),
      ...(head.Metadata && Object.keys(head.Metadata).length > 0 ? { Metadata: head.Metadata } : {}),
      ...(this.#options.defaultAcl ? { ACL: this.#options.defaultAcl } : {}),
    };
  }

  // ---------------------------------------------------------------- direct uploads (browsers)

  /**
   * A form POST grant for a browser to upload one object under `name` without the application in
   * the path: POST `fields` (in order) and then the file (field `file`) as `multipart/form-data`
   * to `url`. The signed policy pins the exact key (`name` under this storage's `location`; no
   * other name is picked, so choose a unique one), the content type, the size range, and the
   * metadata and checksum when given. Computed from the session's cached credentials: no request
   * to S3. `defaultAcl` and `objectParameters` are not applied to such uploads.
   * @throws RangeError on a lifetime outside 1..604800 s or a bad size range.
   * @throws TypeError on a bad metadata name or checksum.
   * @throws StorageError (code `NAME_TOO_LONG`) when the key is too long for this storage.
   */
  async presignedPost(requested: string, options: PresignedPostOptions): Promise<PresignedPost> {
    const name = this.cleanName(requested);
    this.assertNameFits(name);
    const { maxSize, minSize = 0 } = options;
    if (!Number.isSafeInteger(maxSize) || maxSize < 0 || maxSize > MAX_COPY_SIZE) {
      throw new RangeError(`presignedPost: maxSize must be a whole number of bytes from 0 to 5 GiB, got ${maxSize}`);
    }
    if (!Number.isSafeInteger(minSize) || minSize < 0 || minSize > maxSize) {
      throw new RangeError(`presignedPost: minSize must be a whole number of bytes from 0 to maxSize, got ${minSize}`);
    }
    const { target, credentials } = await this.#signing();
    return this.#presigner.presignPost(target, this.key(name), credentials, {
      bucket: this.bucket,
      expiresIn: options.expiresIn,
      contentType: options.contentType,
      minSize,
      maxSize,
      ...(options.metadata ? { metadata: options.metadata } : {}),
      ...(options.checksumSha256 === undefined ? {} : { checksumSha256: options.checksumSha256 }),
      ...(options.now === undefined ? {} : { now: options.now }),
    });
  }

  /**
   * Starts a multipart upload of `name` (under `location`; no other name is picked) for a
   * browser to send parts to with {@link S3Storage.presignUploadPart}, and returns its upload ID.
   * The object gets the same write parameters as a `save()` (content type, metadata,
   * `defaultAcl`, `objectParameters`). One request to S3; a key too long for this storage is
   * refused before it with `StorageError` code `NAME_TOO_LONG`.
   */
  async createMultipartUpload(requested: string, options: CreateMultipartUploadOptions): Promise<string> {
    const name = this.cleanName(requested);
    this.assertNameFits(name);
    try {
      const client = await this.#s3();
      const params = this.#writeParams({ name, contentType: options.contentType, metadata: { ...options.metadata } });
      const created = await client.send(
        new CreateMultipartUploadCommand({ ...params, Bucket: this.bucket, Key: this.key(name) }),
      );
      if (!created.UploadId) throw new Error("CreateMultipartUpload returned no UploadId");
      return created.UploadId;
    } catch (error) {
      throw new StorageError(`Could not start a multipart upload of ${JSON.stringify(name)}`, {
        cause: error,
        fileName: name,
      });
    }
  }

  /**
   * A presigned URL to PUT part `partNumber` (1..10000) of an upload made by
   * {@link S3Storage.createMultipartUpload}; S3 answers with the part's `ETag` header, which the
   * completion lists. Every part but the last must be at least 5 MiB. Byte-identical to the
   * SDK's `getSignedUrl` of an `UploadPartCommand` on a client with `requestChecksumCalculation:
   * "WHEN_REQUIRED"` (the SDK's default adds a CRC32 of an empty body that no real part matches).
   * No request to S3.
   */
  async presignUploadPart(
    requested: string,
    uploadId: string,
    partNumber: number,
    options: PresignMultipartOptions,
  ): Promise<string> {
    const name = this.cleanName(requested);
    if (!Number.isInteger(partNumber) || partNumber < 1 || partNumber > 10_000) {
      throw new RangeError(`presignUploadPart: partNumber must be a whole number from 1 to 10000, got ${partNumber}`);
    }
    assertUploadId(uploadId);
    const { target, credentials } = await this.#signing();
    return this.#presigner.presign("PUT", target, this.key(name), credentials, {
      expiresIn: options.expiresIn,
      now: options.now,
      query: { partNumber: String(partNumber), uploadId, "x-id": "UploadPart" },
    });
  }

  /**
   * A presigned URL to POST the `CompleteMultipartUpload` XML (every part's number and ETag, in
   * order) to, which makes the object. Byte-identical to the SDK's `getSignedUrl` of a
   * `CompleteMultipartUploadCommand`. No request to S3.
   */
  async presignCompleteMultipartUpload(
    requested: string,
    uploadId: string,
    options: PresignMultipartOptions,
  ): Promise<string> {
    const name = this.cleanName(requested);
    assertUploadId(uploadId);
    const { target, credentials } = await this.#signing();
    return this.#presigner.presign("POST", target, this.key(name), credentials, {
      expiresIn: options.expiresIn,
      now: options.now,
      query: { uploadId },
    });
  }

  /**
   * Aborts a multipart upload, freeing its parts. An upload that is already gone (completed or
   * aborted) is not an error. One request to S3.
   */
  async abortMultipartUpload(requested: string, uploadId: string): Promise<void> {
    const name = this.cleanName(requested);
    assertUploadId(uploadId);
    try {
      const client = await this.#s3();
      await client.send(
        new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: this.key(name), UploadId: uploadId }),
      );
    } catch (error) {
      if (isNotFound(error)) return;
      throw new StorageError(`Could not abort the multipart upload of ${JSON.stringify(name)}`, {
        cause: error,
        fileName: name,
      });
    }
  }

  /**
   * When the credentials that presign this storage's URLs and forms expire (`undefined` for
   * long-term keys): a grant or URL signed now stops working then, whatever its own lifetime.
   */
  async signingExpiresAt(): Promise<Date | undefined> {
    const { credentials } = await this.#signing();
    return (credentials as { expiration?: Date }).expiration;
  }

  /** The signing target and current credentials: cached, so no I/O once warm. */
  async #signing(): Promise<{ target: PresignTarget; credentials: PresignCredentials }> {
    const target = this.#target ?? (await this.#resolveTarget());
    const credentials = this.#session.peekCredentials() ?? (await this.#session.credentials());
    return { target, credentials };
  }

  // ---------------------------------------------------------------- reads

  protected async openObject(name: string, range: ByteRange): Promise<Readable> {
    const client = await this.#s3();
    const whole = range.start === 0 && range.end === undefined;
    try {
      const response = await client.send(
        new GetObjectCommand({
          Bucket: this.bucket,
          Key: this.key(name),
          ...(whole ? {} : { Range: `bytes=${range.start}-${range.end ?? ""}` }),
        }),
      );
      const body = response.Body;
      let stream: Readable;
      if (body instanceof Readable) stream = body;
      else if (body && typeof (body as { transformToWebStream?: unknown }).transformToWebStream === "function") {
        stream = Readable.fromWeb((body as { transformToWebStream(): ReadableStream }).transformToWebStream() as never);
      } else stream = Readable.from([]);
      if (whole) return stream;
      // Some servers answer a range with more than was asked (s3rver reads `bytes=0-0` as the
      // whole object) or ignore it (200 without Content-Range): cut the stream to the request.
      const served = parseContentRange(response.ContentRange);
      const skip = served ? range.start - served.start : range.start;
      const wanted = range.end === undefined ? undefined : range.end - range.start + 1;
      const length = response.ContentLength;
      if (skip === 0 && (wanted === undefined || (length !== undefined && length <= wanted))) return stream;
      return sliceStream(stream, skip, wanted);
    } catch (error) {
      if (isNotFound(error)) throw new FileNotFoundError(name, { cause: error });
      // A range starting at or past the end of the object: an empty read, as from a file.
      if ((error as { name?: string }).name === "InvalidRange") return Readable.from([]);
      throw error;
    }
  }

  protected async statObject(name: string): Promise<ObjectStat> {
    const client = await this.#s3();
    try {
      const head = await client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.key(name) }));
      return {
        size: head.ContentLength ?? 0,
        modifiedTime: head.LastModified ?? new Date(0),
        ...(head.ContentType ? { contentType: head.ContentType } : {}),
        ...(head.Metadata ? { metadata: head.Metadata } : {}),
      };
    } catch (error) {
      if (isNotFound(error)) throw new FileNotFoundError(name, { cause: error });
      throw error;
    }
  }

  protected async deleteObject(name: string): Promise<void> {
    const client = await this.#s3();
    try {
      await client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.key(name) }));
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
  }

  /**
   * DeleteObjects, {@link MAX_DELETE_KEYS} keys a request, with per-key errors (a missing key is
   * not one); a lone name goes by DeleteObject. The first batch tells whether the server has
   * DeleteObjects: one answered NotImplemented/405 (s3rver) gets single deletes, from then on
   * for that endpoint and bucket.
   */
  protected override async deleteObjects(names: string[]): Promise<Map<string, unknown>> {
    const client = await this.#s3();
    const scope = `${this.#session.endpoint ?? "aws"}|${this.bucket}`;
    const failed = new Map<string, unknown>();
    for (let i = 0; i < names.length; i += MAX_DELETE_KEYS) {
      const chunk = names.slice(i, i + MAX_DELETE_KEYS);
      if (chunk.length === 1 || batchDeleteSupport.get(scope) === false) {
        for (const [name, error] of await super.deleteObjects(chunk)) failed.set(name, error);
        continue;
      }
      const byKey = new Map(chunk.map((n) => [this.key(n), n]));
      let errors: { Key?: string; Code?: string; Message?: string }[];
      try {
        const out = await client.send(
          new DeleteObjectsCommand({
            Bucket: this.bucket,
            Delete: { Objects: chunk.map((n) => ({ Key: this.key(n) })), Quiet: true },
          }),
        );
        batchDeleteSupport.set(scope, true);
        errors = out.Errors ?? [];
      } catch (error) {
        if (batchDeleteSupport.get(scope) !== true && isNotImplemented(error)) {
          batchDeleteSupport.set(scope, false);
          for (const [name, e] of await super.deleteObjects(chunk)) failed.set(name, e);
        } else {
          for (const name of chunk) failed.set(name, error);
        }
        continue;
      }
      for (const e of errors) {
        if (e.Code === "NoSuchKey") continue;
        const name = e.Key === undefined ? undefined : byKey.get(e.Key);
        if (name !== undefined) {
          failed.set(name, deleteObjectsError(e));
          continue;
        }
        // An error we cannot place: none of this batch is known to be deleted.
        for (const n of chunk) if (!failed.has(n)) failed.set(n, deleteObjectsError(e));
      }
    }
    return failed;
  }

  /**
   * Incomplete multipart uploads under `prefix` (a directory name as {@link S3Storage.listAll}
   * takes it; `""` for the whole storage), paged: uploads never completed nor aborted, whose
   * parts are stored (and billed) but are no object. For sweeps; abort one with
   * {@link S3Storage.abortMultipartUpload}.
   * @throws StorageError code `UNSUPPORTED_BY_SERVER` when the server has no
   * ListMultipartUploads (s3rver); other failures as `StorageError`.
   */
  async *listMultipartUploads(prefix = ""): AsyncGenerator<MultipartUploadInfo> {
    const dir = this.normalizeDirectory(prefix);
    const client = await this.#s3();
    const base = dir === "" ? this.location : this.key(dir);
    const keyPrefix = base === "" ? "" : `${base}/`;
    const strip = this.location === "" ? 0 : this.location.length + 1;
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    for (;;) {
      let page: Awaited<ReturnType<typeof listUploadsPage>>;
      try {
        page = await listUploadsPage(client, this.bucket, keyPrefix, keyMarker, uploadIdMarker);
      } catch (error) {
        if (isNotImplemented(error)) {
          throw new StorageError(`The S3 server cannot list multipart uploads (ListMultipartUploads)`, {
            cause: error,
            fileName: prefix,
            code: "UNSUPPORTED_BY_SERVER",
          });
        }
        throw new StorageError(`Could not list the multipart uploads under ${JSON.stringify(prefix)}`, {
          cause: error,
          fileName: prefix,
        });
      }
      for (const u of page.Uploads ?? []) {
        if (!u.Key || !u.UploadId || !u.Key.startsWith(keyPrefix)) continue;
        yield { name: u.Key.slice(strip), key: u.Key, uploadId: u.UploadId, initiated: u.Initiated };
      }
      if (!page.IsTruncated) return;
      // Both markers, or the listing would not move on (a server that omits them ends here).
      if (page.NextKeyMarker === undefined && page.NextUploadIdMarker === undefined) return;
      keyMarker = page.NextKeyMarker;
      uploadIdMarker = page.NextUploadIdMarker;
    }
  }

  protected async listObjects(path: string): Promise<ListResult> {
    const client = await this.#s3();
    const base = path === "" ? this.location : this.key(path);
    const prefix = base === "" ? "" : `${base}/`;
    const directories: string[] = [];
    const files: string[] = [];
    let token: string | undefined;
    do {
      const page = await client.send(
        new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, Delimiter: "/", ContinuationToken: token }),
      );
      for (const p of page.CommonPrefixes ?? []) {
        if (p.Prefix) directories.push(p.Prefix.slice(prefix.length, -1));
      }
      for (const o of page.Contents ?? []) {
        const rest = o.Key?.slice(prefix.length);
        if (rest) files.push(rest); // "" is a directory marker object
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return { directories: directories.sort(), files: files.sort() };
  }

  /** One flat, paged listing: sizes and times come with it, no request per object. */
  protected override async *listObjectsDeep(dir: string): AsyncGenerator<ObjectInfo> {
    const client = await this.#s3();
    const base = dir === "" ? this.location : this.key(dir);
    const prefix = base === "" ? "" : `${base}/`;
    const strip = this.location === "" ? 0 : this.location.length + 1;
    let token: string | undefined;
    do {
      const page = await client.send(
        new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken: token }),
      );
      for (const o of page.Contents ?? []) {
        const name = o.Key?.slice(strip);
        if (!name || name.endsWith("/")) continue; // directory markers
        yield { name, size: o.Size ?? 0, modifiedTime: o.LastModified ?? new Date(0) };
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  // ---------------------------------------------------------------- URLs

  /**
   * Signed (default): a presigned GET computed from the session's cached credentials, no I/O.
   * Unsigned: the public URL (on `customDomain` if set). CloudFront: a CloudFront-signed URL.
   * `download` and `contentType` need a signed S3 URL; on unsigned URLs they are ignored.
   */
  protected objectUrl(name: string, options: UrlOptions): string | Promise<string> {
    const key = this.key(name);
    const { customDomain, cloudfront } = this.#options;
    if (customDomain) {
      const url = `${this.#options.urlProtocol ?? "https:"}//${customDomain.replace(/\/+$/, "")}/${filepathToUri(key)}`;
      if (!cloudfront) return url;
      const expires = options.expiresIn ?? this.querystringExpire;
      return getCloudFrontSignedUrl({
        url,
        keyPairId: cloudfront.keyPairId,
        privateKey: cloudfront.privateKey,
        dateLessThan: new Date(Date.now() + expires * 1000).toISOString(),
      });
    }
    const target = this.#target;
    const credentials = this.#session.peekCredentials();
    if (target && credentials && this.querystringAuth) return this.#presign(target, key, credentials, options, name);
    return this.#slowUrl(key, options, name);
  }

  /** The first call (or one after credentials lapsed): resolve the region and credentials, then sign. */
  async #slowUrl(key: string, options: UrlOptions, name: string): Promise<string> {
    const target = this.#target ?? (await this.#resolveTarget());
    if (!this.querystringAuth) return `${target.baseUrl}/${filepathToUri(key)}`;
    const credentials = await this.#session.credentials();
    return this.#presign(target, key, credentials, options, name);
  }

  #presign(
    target: PresignTarget,
    key: string,
    credentials: { accessKeyId: string; secretAccessKey: string; sessionToken?: string },
    options: UrlOptions,
    name: string,
  ): string {
    const download = options.download;
    return this.#presigner.presignGet(target, key, credentials, {
      expiresIn: options.expiresIn ?? this.querystringExpire,
      ...(download
        ? { responseContentDisposition: contentDispositionFor(download === true ? baseName(name) : download) }
        : {}),
      ...(options.contentType ? { responseContentType: options.contentType } : {}),
    });
  }

  async #resolveTarget(): Promise<PresignTarget> {
    const region = this.#region ?? (await this.#session.region());
    const target: PresignTarget = {
      region,
      baseUrl: s3BaseUrl({
        region,
        bucket: this.bucket,
        forcePathStyle: this.#session.forcePathStyle,
        ...(this.#session.endpoint === undefined ? {} : { endpoint: this.#session.endpoint }),
      }),
    };
    this.#target = target;
    return target;
  }
}

function listUploadsPage(
  client: S3Client,
  bucket: string,
  prefix: string,
  keyMarker: string | undefined,
  uploadIdMarker: string | undefined,
) {
  return client.send(
    new ListMultipartUploadsCommand({
      Bucket: bucket,
      Prefix: prefix,
      ...(keyMarker === undefined ? {} : { KeyMarker: keyMarker }),
      ...(uploadIdMarker === undefined ? {} : { UploadIdMarker: uploadIdMarker }),
    }),
  );
}

/** A per-key error of DeleteObjects, shaped like the SDK's errors (`name`, S3's `Code`), for `cause`. */
function deleteObjectsError(e: { Key?: string; Code?: string; Message?: string }): Error {
  const error = new Error(`DeleteObjects: ${e.Code ?? "error"}${e.Message ? `: ${e.Message}` : ""}`);
  error.name = e.Code ?? "DeleteObjectsError";
  return Object.assign(error, { Code: e.Code, Key: e.Key });
}

function parseContentRange(value: string | undefined): { start: number } | undefined {
  const m = value ? /^bytes (\d+)-\d+\/(?:\d+|\*)$/.exec(value) : null;
  return m ? { start: Number(m[1]) } : undefined;
}

/** `length` bytes (or all) of `source` after skipping `skip`; destroys the source when done early. */
function sliceStream(source: Readable, skip: number, length: number | undefined): Readable {
  async function* slice(): AsyncGenerator<Uint8Array> {
    let toSkip = skip;
    let left = length ?? Number.POSITIVE_INFINITY;
    try {
      for await (const chunk of source as AsyncIterable<Uint8Array>) {
        let part = chunk;
        if (toSkip > 0) {
          const n = Math.min(toSkip, part.byteLength);
          part = part.subarray(n);
          toSkip -= n;
        }
        if (part.byteLength === 0) continue;
        if (part.byteLength >= left) {
          yield part.subarray(0, left);
          return;
        }
        left -= part.byteLength;
        yield part;
      }
    } finally {
      source.destroy();
    }
  }
  return Readable.from(slice(), { objectMode: false });
}

function assertUploadId(uploadId: string): void {
  if (typeof uploadId !== "string" || uploadId.length === 0) throw new TypeError("uploadId must be a non-empty string");
}

/** For messages: the name and where it is; never credentials. */
function describeLeft(left: LeftBehindObject): string {
  if (left.uploadId !== undefined) {
    return `the incomplete multipart upload of ${JSON.stringify(left.name)} (key ${JSON.stringify(left.key)}, upload ID ${JSON.stringify(left.uploadId)}); abort it or let a sweep remove it`;
  }
  return `${JSON.stringify(left.name)} (key ${JSON.stringify(left.key)}); delete it or let a sweep remove it`;
}

function baseName(name: string): string {
  return name.slice(name.lastIndexOf("/") + 1);
}

// The Prisma binding builds its `default` storage through this factory, so that `s3Files` loads
// no AWS SDK module in an app storing files elsewhere: whoever has a session has loaded this module
// (`prisma-s3-files/s3` exports both).
registerDefaultS3Storage((options) => new S3Storage(options));
