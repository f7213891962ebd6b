export {
  CredentialsError,
  FileExistsError,
  FileNotFoundError,
  PrismaS3FilesError,
  StorageError,
  SuspiciousFileOperationError,
} from "./errors.js";
export type { CredentialStats, RefreshOptions } from "./session/credential-cache.js";
export { RedactedCredentials } from "./session/redacted-credentials.js";
export { createSession, S3Session, type SessionOptions, type SessionStats } from "./session/session.js";
