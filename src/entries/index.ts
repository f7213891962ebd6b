/**
 * `prisma-s3-files`: what an application needs to give Prisma models file fields. Loads no
 * `@aws-sdk/*` module: S3 lives in `prisma-s3-files/s3`, which an app on the filesystem or in
 * memory never imports.
 *
 * Other entry points: `prisma-s3-files/s3` (session, `S3Storage`), `prisma-s3-files/storage`
 * (the storage contract, `BaseStorage` for other backends, the conformance suite),
 * `prisma-s3-files/naming` (Django's naming rules), `prisma-s3-files/generator` (the metadata
 * and its types), `prisma-s3-files/browser` (the page's half of direct uploads).
 */

export type { UploadGrant } from "../browser/upload-grant.js";
export {
  CredentialsError,
  ERROR_CODES,
  type ErrorCode,
  FileExistsError,
  FileNotFoundError,
  LeftBehindError,
  PrismaS3FilesError,
  StorageError,
  SuspiciousFileOperationError,
  TimeoutError,
} from "../errors.js";
export {
  ImageProcessor,
  type ImageProcessorOptions,
  type MadeVariant,
  type MakeVariantsOptions,
  type VariantRequest,
} from "../files/image-processor.js";
export { type ImageDimensions, readImageDimensions } from "../files/image-size.js";
export { DEFAULT_MAX_PIXELS, FileValidationError } from "../files/validation.js";
export {
  formatVariantSpec,
  parseVariantSpec,
  type VariantSpec,
  variantKey,
  variantSpecDigest,
} from "../files/variants.js";
export type { DirectUploadOptions, UploadGrantOptions } from "../prisma/direct-uploads.js";
export { type S3FilesOptions, s3Files } from "../prisma/extension.js";
export { FieldFile, LazyVariantFile } from "../prisma/field-file.js";
export type { FileMetadata } from "../prisma/file-metadata.js";
export { isGrantToken } from "../prisma/grant-token.js";
export { type DrainOptions, type DrainReport, drainFiles } from "../prisma/journal/drain.js";
export { type MultipartSweepReport, type SweepOptions, type SweepReport, sweepOrphans } from "../prisma/sweep.js";
export type { FilesExtension } from "../prisma/types.js";
export { type Upload, type UploadOptions, upload } from "../prisma/upload.js";
export {
  createVariantHandler,
  type LazyVariantOptions,
  type VariantClaims,
  type VariantHandlerOptions,
} from "../prisma/variant-urls.js";
export {
  type RebuildOptions,
  type RebuildProgress,
  type RebuildReport,
  rebuildVariants,
} from "../prisma/variants-rebuild.js";
// Type only: the generated module names it; the class comes from `prisma-s3-files/s3`.
export type { S3Session } from "../session/session.js";
export { ContentTooLargeError } from "../storage/content.js";
export { FileSystemStorage } from "../storage/filesystem-storage.js";
export { MemoryStorage } from "../storage/memory-storage.js";
export type { FileContent, Storage } from "../storage/storage.js";
