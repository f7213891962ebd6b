import { randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import { stopReadable } from "../storage/content.js";
import type { FileContent } from "../storage/storage.js";

declare const uploadBrand: unique symbol;

/**
 * What {@link upload} returns: a string token that stands for the content until the write hook
 * swaps it for the stored key. Being a string, it fits wherever Prisma types a file column
 * (nested writes too) and survives Prisma's cloning of query arguments, which strips Blobs and
 * streams of their prototype.
 */
export type Upload = string & { readonly [uploadBrand]: true };

/** Options of {@link upload}. */
export interface UploadOptions {
  /**
   * File name for the key; default: `File.name`, else `file` + an extension for the type. Treated
   * like a client-supplied name (Django's uploaded-file rules): only the base name is kept, unprintable
   * characters are dropped and it is cut to 255 characters (extension kept); directories come from
   * the column's `uploadTo`.
   */
  filename?: string;
  /** Content type; default: `Blob.type`, else from the file name's extension. */
  contentType?: string;
  /** User metadata stored with the object. */
  metadata?: Record<string, string>;
}

export interface PendingUpload extends UploadOptions {
  content: FileContent;
}

/**
 * Tokens start with NUL: no storage name or database text can contain it, so a token that ever
 * escaped the hook (a column not declared as a file field, a raw query) fails loudly in the
 * database instead of being stored as a key.
 */
const TOKEN_PREFIX = "\u0000prisma-s3-files:upload:";
/** An unconsumed upload is dropped after this long, so a token that is never written cannot pin its content in memory. */
const UPLOAD_TTL_MS = 60_000;

const pending = new Map<string, { upload: PendingUpload; timer: NodeJS.Timeout }>();

/**
 * Wraps content for a file column: `prisma.user.create({ data: { avatar: upload(file) } })`.
 * Accepts what storages accept (Buffer, Uint8Array, Blob/File, Node Readable, web
 * ReadableStream). The bytes go to the column's storage when the write runs; the column gets
 * the stored key.
 */
export function upload(content: FileContent, options: UploadOptions = {}): Upload {
  if (content === null || content === undefined || typeof content === "string") {
    throw new TypeError("upload() takes file content (Buffer, Uint8Array, Blob/File, Readable, ReadableStream)");
  }
  const token = `${TOKEN_PREFIX}${randomBytes(16).toString("hex")}`;
  const timer = setTimeout(() => discardUpload(token), UPLOAD_TTL_MS);
  timer.unref();
  pending.set(token, { upload: { ...options, content }, timer });
  return token as Upload;
}

/** Whether a value is an upload token (consumed or not). */
export function isUploadToken(value: unknown): value is Upload {
  return typeof value === "string" && value.startsWith(TOKEN_PREFIX);
}

/** Takes the upload a token stands for; each token can be taken once. */
export function takeUpload(token: string): PendingUpload | undefined {
  const entry = pending.get(token);
  if (!entry) return undefined;
  clearTimeout(entry.timer);
  pending.delete(token);
  return entry.upload;
}

/** Drops an unconsumed upload and stops its stream, if any. */
export function discardUpload(token: string): void {
  const content = takeUpload(token)?.content;
  if (content instanceof Readable) stopReadable(content);
  else if (content && typeof (content as ReadableStream).cancel === "function" && !(content as ReadableStream).locked) {
    (content as ReadableStream).cancel().catch(() => undefined);
  }
}

/** Number of uploads waiting for a write (for tests and diagnostics). */
export function pendingUploadCount(): number {
  return pending.size;
}
