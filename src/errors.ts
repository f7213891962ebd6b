/**
 * Typed errors of every layer. Messages are written by us and never include a credential;
 * the underlying error is attached as `cause` (ES2022), where tools can walk to it.
 */

/** Base class of every error this package throws. */
export class PrismaS3FilesError extends Error {
  /** A stable, machine-readable code, e.g. `FILE_NOT_FOUND`. */
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
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
  constructor(message: string, options?: { cause?: unknown; fileName?: string; code?: string }) {
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
