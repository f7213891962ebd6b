/**
 * prisma-s3-files: Django-style file fields for Prisma 7.
 *
 * Layers, each usable without the ones above it: session → storage → file object → Prisma binding.
 */

// Prisma binding.
export type { UploadGrant, UploadGrantMultipart, UploadGrantPart, UploadGrantPost } from "./browser/upload-grant.js";
// Errors of every layer.
export {
  CredentialsError,
  FileExistsError,
  FileNotFoundError,
  LeftBehindError,
  type LeftBehindObject,
  PrismaS3FilesError,
  StorageError,
  SuspiciousFileOperationError,
  TimeoutError,
} from "./errors.js";
// File objects: a lazy handle on one stored object.
export { StoredFile } from "./files/stored-file.js";
export { FileValidationError, type FileValidationReason } from "./files/validation.js";
export type { DirectUploadOptions, UploadGrantOptions } from "./prisma/direct-uploads.js";
export { type S3FilesOptions, s3Files } from "./prisma/extension.js";
export { FieldFile } from "./prisma/field-file.js";
export { FileAnnotationError } from "./prisma/generator/annotation.js";
export { FileAnnotationErrors } from "./prisma/generator/metadata.js";
export { isGrantToken } from "./prisma/grant-token.js";
export type {
  FileFieldMetadata,
  FileFieldsMetadataShape,
  ModelFileMetadata,
  RelationMetadata,
} from "./prisma/metadata-types.js";
export { type MultipartSweepReport, type SweepOptions, type SweepReport, sweepOrphans } from "./prisma/sweep.js";
export type { FileResultArgs, FilesExtension, FilesExtensionArgs, FileValue } from "./prisma/types.js";
export { type Upload, type UploadOptions, upload } from "./prisma/upload.js";
export type { CredentialStats, RefreshOptions } from "./session/credential-cache.js";
export { getDefaultSession } from "./session/default-session.js";
export { RedactedCredentials } from "./session/redacted-credentials.js";
// Session: one credential cache and one pooled S3 client per process.
export { createSession, S3Session, type SessionOptions, type SessionStats } from "./session/session.js";
// Storage: one contract, three backends, Django's naming rules.
export {
  BaseStorage,
  type BaseStorageOptions,
  type ByteRange,
  type MoveObjectRequest,
  type ObjectStat,
  type WriteObjectRequest,
} from "./storage/base-storage.js";
export { ContentTooLargeError } from "./storage/content.js";
export { FileSystemStorage, type FileSystemStorageOptions } from "./storage/filesystem-storage.js";
export { MemoryStorage, type MemoryStorageOptions } from "./storage/memory-storage.js";
export {
  generateFilename,
  getAvailableName,
  getValidFilename,
  strftime,
  type UploadTo,
  validateFileName,
} from "./storage/naming.js";
export type { PresignedPost } from "./storage/s3/presigner.js";
export {
  type CreateMultipartUploadOptions,
  type MultipartUploadInfo,
  type ObjectParameters,
  type PresignedPostOptions,
  type PresignMultipartOptions,
  S3Storage,
  type S3StorageOptions,
} from "./storage/s3/s3-storage.js";
export type {
  DeleteManyResult,
  FileContent,
  ListResult,
  MoveOptions,
  OpenOptions,
  SaveOptions,
  SaveProgress,
  Storage,
  UrlOptions,
} from "./storage/storage.js";
