/**
 * Typed errors of every layer. Messages are written by us and never include a credential;
 * the underlying error is attached as `cause` (ES2022), where tools can walk to it.
 */

/**
 * Every `code` a {@link PrismaS3FilesError} can carry. Codes are stable: one may be added in a
 * minor release, never renamed or removed. (A test checks this list against what the sources throw.)
 */
export const ERROR_CODES = [
  "CONFIGURATION",
  "CONTENT_CONSUMED",
  "CONTENT_TOO_LARGE",
  "CREDENTIALS_EXPIRING",
  "CREDENTIALS_UNAVAILABLE",
  "FILE_ANNOTATION",
  "FILE_EXISTS",
  "FILE_METADATA_CONFLICT",
  "FILE_NOT_FOUND",
  "FILE_VALIDATION",
  "GENERATOR_CONFIG",
  "GRANT_EXPIRED",
  "GRANT_INVALID",
  "GRANT_MISMATCH",
  "GRANT_NOT_UPLOADED",
  "GRANT_REQUIRED",
  "GRANT_TOO_LARGE",
  "GRANT_USED",
  "JOURNAL_MODEL",
  "LEFT_BEHIND",
  "MOVE_TOO_LARGE",
  "NAME_TOO_LONG",
  "NO_AVAILABLE_NAME",
  "NOT_A_DIRECTORY",
  "NOT_A_FILE_FIELD",
  "NOT_BOUND",
  "PRISMA_INCOMPATIBLE",
  "STORAGE_ERROR",
  "SUSPICIOUS_FILE_OPERATION",
  "TIMEOUT",
  "UNSUPPORTED_BY_SERVER",
  "UPLOAD_NOT_FOUND",
  "URL_UNAVAILABLE",
] as const;

/** The `code` of a {@link PrismaS3FilesError}: one of {@link ERROR_CODES}. */
export type ErrorCode = (typeof ERROR_CODES)[number];

/** Base class of every error this package throws. */
export class PrismaS3FilesError extends Error {
  /** A stable, machine-readable code, e.g. `FILE_NOT_FOUND`: one of {@link ErrorCode}. */
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.name = new.target.name;
  }
}

/**
 * Credentials could not be obtained and no valid ones remain. Names the source (e.g.
 * `instance-metadata`) and carries the provider's error as `cause`.
 */
export class CredentialsError extends PrismaS3FilesError {
  readonly source: string;
  constructor(source: string, message: string, options?: { cause?: unknown }) {
    super("CREDENTIALS_UNAVAILABLE", message, options);
    this.source = source;
  }
}

/** A storage operation failed; `cause` holds the backend's error. */
export class StorageError extends PrismaS3FilesError {
  /** The object name the operation was about, when there is one. */
  readonly fileName: string | undefined;
  constructor(message: string, options?: { cause?: unknown; fileName?: string; code?: ErrorCode }) {
    super(options?.code ?? "STORAGE_ERROR", message, options);
    this.fileName = options?.fileName;
  }
}

/** The named object does not exist in the storage. */
export class FileNotFoundError extends StorageError {
  constructor(fileName: string, options?: { cause?: unknown }) {
    super(`File not found: ${JSON.stringify(fileName)}`, { ...options, fileName, code: "FILE_NOT_FOUND" });
  }
}

/**
 * A file name tried to leave its storage's root or is otherwise unsafe (Django's
 * `SuspiciousFileOperation`): traversal, absolute paths, control characters, empty names.
 */
export class SuspiciousFileOperationError extends PrismaS3FilesError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("SUSPICIOUS_FILE_OPERATION", message, options);
  }
}

/** A write was refused because the target name is taken and overwriting is off. */
export class FileExistsError extends StorageError {
  constructor(fileName: string, options?: { cause?: unknown }) {
    super(`File already exists: ${JSON.stringify(fileName)}`, { ...options, fileName, code: "FILE_EXISTS" });
  }
}

/** One object an operation could not remove: it is still stored until deleted or swept. */
export interface LeftBehindObject {
  /** Its storage-relative name, as `delete()` takes it and `listAll()` lists it. */
  name: string;
  /** Where it is in the backend: the S3 key (with the storage's `location`) or the file's path. */
  key: string;
  /** Why removing it failed (the backend's error). */
  cause: unknown;
  /**
   * Set when what is left is an incomplete S3 multipart upload (its parts, billed but not an
   * object) whose abort failed: `S3Storage.abortMultipartUpload(name, uploadId)`, the sweep's
   * multipart pass or the bucket's `AbortIncompleteMultipartUpload` rule removes it.
   */
  uploadId?: string;
}

/**
 * Objects were left behind: `leftBehind` lists them, each with why its removal failed. They lie
 * under the name the operation was about (its directory), so a storage sweep (`listAll`,
 * `sweepOrphans`) finds them; delete them or let the sweep do it.
 *
 * - Thrown when an operation failed and its cleanup failed too: `cause` is why the operation
 *   failed (what would have been thrown had the cleanup worked, e.g. an abort's reason).
 * - Passed to an `onLeftBehind` callback when an operation succeeded but could not remove
 *   something (a moved object's source, a probe object): `cause` is the removal's error.
 */
export class LeftBehindError extends StorageError {
  /** What is still stored; never empty. */
  readonly leftBehind: readonly LeftBehindObject[];
  constructor(
    message: string,
    leftBehind: readonly LeftBehindObject[],
    options?: { cause?: unknown; fileName?: string },
  ) {
    super(message, { ...options, code: "LEFT_BEHIND" });
    this.leftBehind = leftBehind;
  }
}

/**
 * A request to the storage's server timed out: `phase` `"connect"` (no connection within
 * `connectTimeoutMs`; time queued for a pooled socket does not count) or `"idle"` (no byte moved
 * either way for `idleTimeoutMs` while the server had to send or read). Named `TimeoutError`, as
 * the AWS SDK names its own, so the SDK retries it like any transient failure.
 */
export class TimeoutError extends PrismaS3FilesError {
  readonly phase: "connect" | "idle";
  /** The limit that was reached, in ms. */
  readonly timeoutMs: number;
  constructor(phase: "connect" | "idle", timeoutMs: number, message: string, options?: { cause?: unknown }) {
    super("TIMEOUT", message, options);
    this.phase = phase;
    this.timeoutMs = timeoutMs;
  }
}
