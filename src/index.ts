/**
 * The repository's own barrel (not shipped; the package's entry points are `src/entries/*.ts`):
 * everything the entry points export, plus the few types tests name that only the browser entry
 * or an error's fields carry.
 */

export type { UploadGrantMultipart, UploadGrantPart, UploadGrantPost } from "./browser/upload-grant.js";
export * from "./entries/generator.js";
export * from "./entries/index.js";
export * from "./entries/naming.js";
export * from "./entries/s3.js";
// The root entry exports it as a type only: the class, as `/s3` exports it.
export { S3Session } from "./entries/s3.js";
export * from "./entries/storage.js";
export type { FileValidationReason } from "./files/validation.js";
