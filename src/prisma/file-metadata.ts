/**
 * Facts about a stored file written beside its key, in the same row write (issue #18): the
 * `Json?` column `@file(metadata: "...")` names, and the `Int?` columns `widthField` and
 * `heightField` name (Django's `ImageField.width_field` / `height_field`).
 *
 * The rule for each kind of value a write puts in the file column:
 *
 * - an upload (`upload(...)` or a direct-upload grant): the columns get the new file's facts;
 *   the write may not set them itself (`FILE_METADATA_CONFLICT`);
 * - `null` (the file is cleared): the columns are set to null, unless the write sets them itself;
 * - a key as-is (a copy of another row's file): the columns are left as the write gives them
 *   (untouched when it does not name them): copy them along with the key if you want them.
 */

import { createHash, type Hash } from "node:crypto";
import { PrismaS3FilesError } from "../errors.js";
import { isBlob, normalizeContent } from "../storage/content.js";
import type { FileContent, Storage } from "../storage/storage.js";
import type { FileFieldMetadata } from "./metadata-types.js";
import { DB_NULL } from "./prisma-internals.js";

/**
 * What the `metadata` column of a file field holds (written as JSON, read back as this).
 */
export interface FileMetadata {
  /** Size in bytes. */
  size: number;
  /**
   * The type the object is stored and served with: the one its bytes show (sniffed) for binary
   * formats, the declared one where they show only text (a CSV is sniffed as plain text).
   */
  contentType: string;
  /**
   * Lower-case hex SHA-256 of the bytes. Always there for `upload()` values; for a direct upload
   * only when its grant declared a `checksumSha256` (which the attach then verified): attaching
   * reads the object's first bytes, not all of them, unless it has a checksum to check.
   */
  sha256?: string;
  /** The file's name on the client (a safe base name of it), when it had one. */
  originalName?: string;
  /** Width in pixels as displayed (orientation applied), for images whose header gives it. */
  width?: number;
  /** Height in pixels as displayed, for images whose header gives it. */
  height?: number;
}

/** Whether the field writes metadata or dimension columns. */
export function hasMetadataColumns(meta: FileFieldMetadata): boolean {
  return meta.metadata !== undefined || meta.widthField !== undefined || meta.heightField !== undefined;
}

/** The metadata and dimension columns of a field. */
export function metadataColumns(meta: FileFieldMetadata): string[] {
  return [meta.metadata, meta.widthField, meta.heightField].filter((c): c is string => c !== undefined);
}

/** Puts a new file's facts into the data object that sets its column. */
export function writeFileMetadata(record: Record<string, unknown>, meta: FileFieldMetadata, facts: FileMetadata): void {
  if (meta.metadata !== undefined) record[meta.metadata] = { ...facts };
  if (meta.widthField !== undefined) record[meta.widthField] = facts.width ?? null;
  if (meta.heightField !== undefined) record[meta.heightField] = facts.height ?? null;
}

/** Sets the columns of a cleared file to null, except those the write sets itself. */
export function clearFileMetadata(record: Record<string, unknown>, meta: FileFieldMetadata): void {
  if (meta.metadata !== undefined && !(meta.metadata in record)) record[meta.metadata] = DB_NULL;
  if (meta.widthField !== undefined && !(meta.widthField in record)) record[meta.widthField] = null;
  if (meta.heightField !== undefined && !(meta.heightField in record)) record[meta.heightField] = null;
}

/**
 * The error for a write that uploads a file and sets its metadata columns too: the columns
 * describe the stored bytes, so only the binding writes them. `undefined` when it does not.
 */
export function metadataConflict(
  model: string,
  field: string,
  record: Record<string, unknown>,
  meta: FileFieldMetadata,
): PrismaS3FilesError | undefined {
  const given = metadataColumns(meta).filter((c) => record[c] !== undefined);
  if (given.length === 0) return undefined;
  return new PrismaS3FilesError(
    "FILE_METADATA_CONFLICT",
    `${model}.${field}: the write uploads a file and sets ${given.join(", ")} too; these columns are filled from the uploaded file, leave them out`,
  );
}

/** Size and SHA-256 of content as the storage reads it. */
export interface ContentDigest {
  /** The content to save in place of the original (same kind: length and replayability kept). */
  content: FileContent;
  /** Size and hex SHA-256 of the last complete read; `undefined` before one. */
  result(): { size: number; sha256: string } | undefined;
}

/**
 * Wraps content so that its SHA-256 and size are computed as the storage reads it, without a
 * second read: bytes are hashed at once; a `Blob` stays a `Blob` (its length known, readable
 * again to retry under another name: each read is hashed afresh); a stream is wrapped in an
 * async iterable that passes `destroy()` on to it.
 */
export function digestContent(content: FileContent): ContentDigest {
  const normalized = normalizeContent(content);
  if (normalized.bytes !== undefined) {
    const result = {
      size: normalized.bytes.byteLength,
      sha256: createHash("sha256").update(normalized.bytes).digest("hex"),
    };
    return { content, result: () => result };
  }
  let last: { size: number; sha256: string } | undefined;
  const hashing = (hash: Hash) => {
    let size = 0;
    return {
      update(chunk: Uint8Array) {
        hash.update(chunk);
        size += chunk.byteLength;
      },
      finish() {
        last = { size, sha256: hash.digest("hex") };
      },
    };
  };
  if (isBlob(content)) {
    const blob = content;
    const name = (blob as { name?: unknown }).name;
    // Duck-typed as a Blob (what normalizeContent and the storages look for).
    const wrapped = {
      size: blob.size,
      type: blob.type,
      ...(typeof name === "string" ? { name } : {}),
      slice: (start?: number, end?: number, type?: string) => blob.slice(start, end, type),
      arrayBuffer: () => blob.arrayBuffer(),
      text: () => blob.text(),
      stream: () => {
        const h = hashing(createHash("sha256"));
        return (blob.stream() as ReadableStream<Uint8Array>).pipeThrough(
          new TransformStream<Uint8Array, Uint8Array>({
            transform(chunk, controller) {
              h.update(chunk);
              controller.enqueue(chunk);
            },
            flush() {
              h.finish();
            },
          }),
        );
      },
    };
    return { content: wrapped as unknown as Blob, result: () => last };
  }
  const iterable = {
    async *[Symbol.asyncIterator](): AsyncGenerator<Uint8Array> {
      const h = hashing(createHash("sha256"));
      for await (const chunk of normalized.open()) {
        h.update(chunk);
        yield chunk;
      }
      h.finish();
    },
    destroy(reason?: unknown) {
      normalized.destroy(reason);
    },
  };
  return { content: iterable, result: () => last };
}

/** Size and hex SHA-256 of a stored object, read back from its storage. */
export async function digestStored(storage: Storage, key: string): Promise<{ size: number; sha256: string }> {
  const hash = createHash("sha256");
  let size = 0;
  for await (const chunk of await storage.open(key)) {
    hash.update(chunk as Uint8Array);
    size += (chunk as Uint8Array).byteLength;
  }
  return { size, sha256: hash.digest("hex") };
}
