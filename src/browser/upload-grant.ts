/**
 * What the server hands a browser so that it can upload one file straight to S3. No imports, so
 * that both the browser module and the server's Prisma layer can share it.
 */

/** A presigned S3 POST Object form: send `fields` in order, then the file last as the field `file`. */
export interface UploadGrantPost {
  /** Where the form is posted (the bucket's URL). */
  url: string;
  /** Form fields (key, policy, signature, content type, …), in the order they must be sent. */
  fields: Record<string, string>;
}

/** One presigned UploadPart URL of a multipart plan. */
export interface UploadGrantPart {
  /** 1-based part number; part `n` holds bytes `[(n - 1) * partSize, n * partSize)` of the file. */
  partNumber: number;
  /** Presigned URL to `PUT` the part's bytes to. */
  url: string;
}

/** A multipart upload that the server has already created, with every part presigned. */
export interface UploadGrantMultipart {
  uploadId: string;
  /** Bytes per part; the last part may be shorter. */
  partSize: number;
  /** One URL per part, `Math.ceil(size / partSize)` of them (at least one). */
  parts: UploadGrantPart[];
  /**
   * Presigned CompleteMultipartUpload URL: `POST` it with
   * `<CompleteMultipartUpload><Part><PartNumber>n</PartNumber><ETag>"…"</ETag></Part>…</CompleteMultipartUpload>`.
   */
  completeUrl: string;
}

/**
 * A short-lived permission to upload one file of a declared name, type and size to a pending key.
 * Exactly one of `post` (small files) and `multipart` (files over the threshold) is set.
 */
export interface UploadGrant {
  /**
   * Opaque; once the browser has uploaded, the app passes it where the column takes an upload
   * (`create`, `update`, `attach`), and the server verifies the object before the row points at it.
   */
  token: string;
  /** The pending object key the upload goes to. */
  key: string;
  /** When the presigned requests stop working (ISO 8601). */
  expiresAt: string;
  post?: UploadGrantPost;
  multipart?: UploadGrantMultipart;
}
