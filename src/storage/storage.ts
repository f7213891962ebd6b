import type { Readable } from "node:stream";
import type { LeftBehindError, StorageError } from "../errors.js";
import type { PresignedPost } from "./s3/presigner.js";
import type { CreateMultipartUploadOptions, PresignedPostOptions, PresignMultipartOptions } from "./s3/s3-storage.js";

/**
 * What `save()` accepts. A `Blob` (and so a `File` from `request.formData()`) also gives a
 * content type and, for `File`, a name. Streams are consumed once.
 */
export type FileContent =
  | Buffer
  | Uint8Array
  | ArrayBuffer
  | Blob
  | Readable
  | ReadableStream<Uint8Array>
  | AsyncIterable<Uint8Array>;

export interface SaveProgress {
  /** Bytes consumed from the content so far. */
  loaded: number;
  /** Total bytes, when the content's length is known up front. */
  total?: number;
}

export interface SaveOptions {
  /** Explicit content type; else `Blob.type`, else guessed from the extension, else `application/octet-stream`. */
  contentType?: string;
  /** User metadata stored with the object (S3 `x-amz-meta-*`). */
  metadata?: Record<string, string>;
  /** The longest name the caller can store (Django's `max_length`); names are shortened to fit. */
  maxLength?: number;
  /**
   * Largest accepted content in bytes, counted while streaming: past it the save fails with
   * `ContentTooLargeError` and nothing is left behind.
   */
  maxSize?: number;
  /** Aborts the save; nothing is left behind. */
  signal?: AbortSignal;
  onProgress?: (progress: SaveProgress) => void;
  /**
   * Called with each name the save picks, before any byte is written under it (a clash picks
   * another name and calls it again). A failure ends the save before it writes. The Prisma
   * binding records the name in its journal here, so a crash after the write leaves a record.
   */
  beforeWrite?: (name: string) => Promise<void> | void;
  /**
   * Store under exactly `name` (validated, never renamed or shortened), replacing an object
   * stored there: for files whose name is derived from another's, such as image variants, where
   * writing the same name again must give the same object. Default: the storage's
   * `fileOverwrite` (off: an available name is picked).
   */
  overwrite?: boolean;
}

export interface MoveOptions {
  /** The longest name the caller can store (Django's `max_length`); names are shortened to fit. */
  maxLength?: number;
  /**
   * Told when the object was moved but its source could not be removed (S3: the delete after the
   * copy failed): the move still returns the new name, and the source is still stored. Default:
   * the storage's `onLeftBehind` option, else `console.warn`.
   */
  onLeftBehind?: (error: LeftBehindError) => void;
  /** As {@link SaveOptions.beforeWrite}: each target name, before the move writes under it. */
  beforeWrite?: (name: string) => Promise<void> | void;
}

export interface OpenOptions {
  /** First byte to read (inclusive). */
  start?: number;
  /** Last byte to read (inclusive), as in HTTP ranges and `fs.createReadStream`. */
  end?: number;
}

export interface UrlOptions {
  /** Lifetime of a signed URL in seconds; the storage's default otherwise. */
  expiresIn?: number;
  /** Serve as an attachment: `true` uses the object's base name, a string sets the download name. */
  download?: boolean | string;
  /** Override the response's Content-Type (signed URLs only). */
  contentType?: string;
}

/** One object found by {@link Storage.listAll}. */
export interface ObjectInfo {
  name: string;
  size: number;
  modifiedTime: Date;
}

/** What {@link Storage.stat} returns for an existing object. */
export interface ObjectStat {
  size: number;
  modifiedTime: Date;
  /** Stored content type, when the backend keeps one. */
  contentType?: string;
  /** Stored user metadata, when the backend keeps it. */
  metadata?: Record<string, string>;
}

/** What {@link Storage.deleteMany} did, name by name. */
export interface DeleteManyResult {
  /** Names deleted, or found already absent. */
  deleted: string[];
  /**
   * Names whose deletion failed, each with the error `delete(name)` would have thrown (a
   * {@link StorageError} naming it, with the backend's error as `cause`). They are still stored.
   */
  failed: { name: string; error: StorageError }[];
}

export interface ListResult {
  directories: string[];
  files: string[];
}

/**
 * The one contract every backend implements (Django's `Storage`). Names are storage-relative,
 * `/`-separated keys; no name ever resolves outside the storage's root.
 */
export interface Storage {
  /**
   * Where the objects live (see `BaseStorage.namespace`): storages with one namespace hold the
   * same objects. Optional for storages of your own; without it, each instance is its own.
   */
  readonly namespace?: string;
  /** Stores `content` under `name` or, if taken, an available variant; returns the name stored. */
  save(name: string, content: FileContent, opts?: SaveOptions): Promise<string>;
  /**
   * Moves the object at `from` to an available name derived from `toName`, through the same
   * naming as `save()` (`toName` is validated, then `getAvailableName`): an existing object is
   * never replaced (unless the storage has `fileOverwrite`), and concurrent moves to one name get
   * distinct names. Content type and metadata go with the object. Returns the name stored.
   *
   * A missing source fails with `FileNotFoundError` and creates nothing. A move is a rename on a
   * file system, an entry move in memory, and CopyObject (a multipart copy past 5 GiB; objects
   * over S3's 5 TiB fail with code `MOVE_TOO_LARGE` before anything is written) then
   * DeleteObject on S3; when only the source's removal fails, the move succeeds and
   * `onLeftBehind` is told.
   */
  move(from: string, toName: string, opts?: MoveOptions): Promise<string>;
  /** A stream of the object (or of a byte range); never buffers the whole object. */
  open(name: string, opts?: OpenOptions): Promise<Readable>;
  /** The whole object in memory: for small files. */
  read(name: string): Promise<Uint8Array>;
  /** Deletes the object; a missing object is not an error. */
  delete(name: string): Promise<void>;
  /**
   * Deletes several objects: on S3 with DeleteObjects, up to 1,000 keys a request (single
   * deletes on a server without it), elsewhere one by one. Missing objects are not errors. A
   * failure deletes what it can and reports the rest per name in `failed` (it does not throw);
   * a name that fails validation throws before anything is deleted.
   */
  deleteMany(names: readonly string[]): Promise<DeleteManyResult>;
  exists(name: string): Promise<boolean>;
  /** Size in bytes. */
  size(name: string): Promise<number>;
  /** Size, modification time and, where the backend keeps them, content type and metadata: one request. */
  stat(name: string): Promise<ObjectStat>;
  modifiedTime(name: string): Promise<Date>;
  /** A URL a browser can fetch the object from. */
  url(name: string, opts?: UrlOptions): Promise<string>;
  /** Immediate children of `path`: sub-directories (prefixes) and files, as names relative to `path`. */
  listdir(path: string): Promise<ListResult>;
  /**
   * Every object under `prefix` (a directory name, `""` for the whole storage), at any depth,
   * with its size and modification time; for sweeps and audits. Order is unspecified.
   */
  listAll(prefix?: string): AsyncIterable<ObjectInfo>;
  /** Django's `get_valid_name`: a safe file name for `name`. */
  getValidName(name: string): string;
  /** Django's `generate_filename`: validates the directory part, cleans the base name. */
  generateFilename(filename: string): string;
  /**
   * Django's `get_available_name`: `name` if free, else `root_XXXXXXX.ext`, fitting `maxLength`
   * and the backend's byte limits (a file name cut to fit; a directory segment too long for the
   * backend refused with `StorageError` code `NAME_TOO_LONG`), checked before any I/O.
   */
  getAvailableName(name: string, maxLength?: number): Promise<string>;
}

/**
 * A storage that browsers can upload to directly (`uploadGrant`): it presigns POST forms and
 * multipart uploads. `S3Storage` implements it. Stated as a type here, with
 * {@link isDirectUploadCapable}, so the Prisma layer can ask for it without importing the AWS SDK.
 */
export interface DirectUploadCapable extends Storage {
  /** A form POST grant to upload one object under `name`, no other name picked. */
  presignedPost(name: string, options: PresignedPostOptions): Promise<PresignedPost>;
  /** Starts a multipart upload of `name` and returns its upload ID. */
  createMultipartUpload(name: string, options: CreateMultipartUploadOptions): Promise<string>;
  /** A presigned URL to PUT part `partNumber` (1..10000) of the upload. */
  presignUploadPart(
    name: string,
    uploadId: string,
    partNumber: number,
    options: PresignMultipartOptions,
  ): Promise<string>;
  /** A presigned URL to POST the upload's `CompleteMultipartUpload` XML to. */
  presignCompleteMultipartUpload(name: string, uploadId: string, options: PresignMultipartOptions): Promise<string>;
  /** When the credentials that presign expire (`undefined` for long-term keys). */
  signingExpiresAt(): Promise<Date | undefined>;
}

const DIRECT_UPLOAD_METHODS = [
  "presignedPost",
  "createMultipartUpload",
  "presignUploadPart",
  "presignCompleteMultipartUpload",
  "signingExpiresAt",
] as const satisfies ReadonlyArray<keyof DirectUploadCapable>;

/**
 * Whether `storage` takes direct uploads from browsers ({@link DirectUploadCapable}). Checked by
 * its methods, not its class, so that a second copy of this package (or a wrapper) still counts.
 */
export function isDirectUploadCapable(storage: Storage): storage is DirectUploadCapable {
  const methods = storage as unknown as Partial<Record<(typeof DIRECT_UPLOAD_METHODS)[number], unknown>>;
  return DIRECT_UPLOAD_METHODS.every((method) => typeof methods[method] === "function");
}
