/**
 * `prisma-s3-files/s3`: the credential session and the S3 storage (the only entry point that
 * loads the AWS SDK).
 */

export type { CredentialStats, RefreshOptions } from "../session/credential-cache.js";
export { getDefaultSession } from "../session/default-session.js";
export { RedactedCredentials } from "../session/redacted-credentials.js";
export { createSession, S3Session, type SessionOptions, type SessionStats } from "../session/session.js";
export type { ConditionalOperation, ConditionalWritesSetting } from "../storage/s3/conditional-writes.js";
export type { PresignedPost } from "../storage/s3/presigner.js";
export {
  type CreateMultipartUploadOptions,
  type MultipartUploadInfo,
  type ObjectParameters,
  type PresignedPostOptions,
  type PresignMultipartOptions,
  S3Storage,
  type S3StorageOptions,
} from "../storage/s3/s3-storage.js";
