import {
  AbortMultipartUploadCommand,
  type CompletedPart,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  type CreateMultipartUploadCommandInput,
  type S3Client,
  UploadPartCopyCommand,
} from "@aws-sdk/client-s3";
import { isNotFound } from "./s3-errors.js";

/** S3's most parts in one multipart upload. */
export const MAX_PARTS = 10_000;
/** S3's smallest part (all but the last). */
export const MIN_COPY_PART_SIZE = 5 * 1024 ** 2;
/** S3's largest part, copied or uploaded. */
export const MAX_COPY_PART_SIZE = 5 * 1024 ** 3;

/** What the multipart upload is created with (the source's headers, the target's ACL). */
export type CopyTargetParams = Omit<CreateMultipartUploadCommandInput, "Bucket" | "Key">;

export interface MultipartCopyInput {
  client: S3Client;
  bucket: string;
  /** `bucket/key` of the source, URI-encoded as `x-amz-copy-source` takes it. */
  copySource: string;
  /** The source's ETag: every part copy is conditional on it, so parts of two versions never mix. */
  sourceETag: string | undefined;
  /** The source's size in bytes. */
  size: number;
  key: string;
  params: CopyTargetParams;
  /** Bytes per part; the caller keeps it within S3's limits ({@link copyPartSize}). */
  partSize: number;
  /** Part copies in flight at once. */
  concurrency: number;
  /** Called when the upload is created and when it is completed or aborted, for bookkeeping and tests. */
  onUploadId?: (uploadId: string, state: "created" | "completed" | "aborted") => void;
}

/** Thrown when a multipart copy failed: `cause` is why; `abortError` is set when its abort failed too (the parts remain). */
export class MultipartCopyFailure extends Error {
  readonly uploadId: string | undefined;
  readonly abortError: unknown;
  constructor(cause: unknown, uploadId: string | undefined, abortError?: unknown) {
    super("multipart copy failed", { cause });
    this.uploadId = uploadId;
    this.abortError = abortError;
  }
}

/**
 * The part size for copying `size` bytes: `preferred`, raised so the copy needs at most 10,000
 * parts (a 5 TiB object gets parts of about 525 MiB), within S3's 5 MiB..5 GiB per part.
 */
export function copyPartSize(size: number, preferred: number): number {
  return Math.min(MAX_COPY_PART_SIZE, Math.max(MIN_COPY_PART_SIZE, preferred, Math.ceil(size / MAX_PARTS)));
}

/**
 * Copies an object server-side as a multipart upload of UploadPartCopy ranges (what S3 needs
 * past CopyObject's 5 GiB), `concurrency` parts at a time. On any failure the upload is aborted;
 * a {@link MultipartCopyFailure} carries the error, and the abort's error when its parts could
 * not be freed. The completion's ETag is not used (RGW answers an empty one).
 */
export async function copyMultipart(input: MultipartCopyInput): Promise<void> {
  const { client, bucket, key, size, partSize } = input;
  let uploadId: string | undefined;
  try {
    const created = await client.send(new CreateMultipartUploadCommand({ ...input.params, Bucket: bucket, Key: key }));
    uploadId = created.UploadId;
    if (!uploadId) throw new Error("CreateMultipartUpload returned no UploadId");
  } catch (error) {
    throw new MultipartCopyFailure(error, undefined);
  }
  input.onUploadId?.(uploadId, "created");
  const id = uploadId;
  try {
    const count = Math.max(1, Math.ceil(size / partSize));
    const parts: CompletedPart[] = new Array(count);
    let next = 0;
    let failure: { error: unknown } | undefined;
    const worker = async () => {
      while (next < count && !failure) {
        const index = next++;
        const start = index * partSize;
        const end = Math.min(size, start + partSize) - 1;
        try {
          const copied = await client.send(
            new UploadPartCopyCommand({
              Bucket: bucket,
              Key: key,
              UploadId: id,
              PartNumber: index + 1,
              CopySource: input.copySource,
              // An empty object has no byte range to name: its one part is the whole (empty) source.
              ...(size === 0 ? {} : { CopySourceRange: `bytes=${start}-${end}` }),
              ...(input.sourceETag ? { CopySourceIfMatch: input.sourceETag } : {}),
            }),
          );
          const etag = copied.CopyPartResult?.ETag;
          if (!etag) throw new Error(`UploadPartCopy of part ${index + 1} returned no ETag`);
          parts[index] = { PartNumber: index + 1, ETag: etag };
        } catch (error) {
          failure ??= { error };
        }
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, Math.min(input.concurrency, count)) }, worker));
    if (failure) throw failure.error;
    await client.send(
      new CompleteMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: id, MultipartUpload: { Parts: parts } }),
    );
    input.onUploadId?.(id, "completed");
  } catch (error) {
    try {
      await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: id }));
      input.onUploadId?.(id, "aborted");
    } catch (abortError) {
      // Not found: the upload is gone already (completed or aborted elsewhere); nothing is left.
      if (!isNotFound(abortError)) throw new MultipartCopyFailure(error, id, abortError);
    }
    throw new MultipartCopyFailure(error, id);
  }
}
