/**
 * `prisma-s3-files/browser`: what a web page needs to upload a file straight to S3 with a grant
 * from the app's server. No Node APIs and no dependencies; bundle it with the page.
 */
export {
  type DirectUploadClientErrorCode,
  DirectUploadError,
  parseS3Error,
  type S3ErrorDocument,
  type UploadWithGrantOptions,
  uploadWithGrant,
} from "./direct-upload.js";
export type { UploadGrant, UploadGrantMultipart, UploadGrantPart, UploadGrantPost } from "./upload-grant.js";
