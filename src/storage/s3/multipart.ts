import {
  AbortMultipartUploadCommand,
  type CompletedPart,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  type PutObjectCommandInput,
  type S3Client,
  UploadPartCommand,
} from "@aws-sdk/client-s3";

/** The write parameters a multipart upload shares with a single PutObject. */
export type ObjectWriteParams = Omit<PutObjectCommandInput, "Bucket" | "Key" | "Body" | "ContentLength">;

export interface MultipartUploadInput {
  client: S3Client;
  bucket: string;
  key: string;
  params: ObjectWriteParams;
  /** Bytes already read from the content (the first part's worth), then the rest. */
  prefix: Uint8Array[];
  rest: AsyncIterator<Uint8Array> | undefined;
  partSize: number;
  /** Parts uploading at once; memory stays under (queueSize + 1) × partSize. */
  queueSize: number;
  /** Ask S3 to refuse the completion if the key exists (`If-None-Match: *`). */
  ifNoneMatch: boolean;
  /** Add CRC32 checksums as the SDK's default configuration expects. */
  checksums: boolean;
  signal: AbortSignal | undefined;
  /** Called when an upload is created and when it is finished or aborted, for bookkeeping and tests. */
  onUploadId?: (uploadId: string, state: "created" | "completed" | "aborted") => void;
}

/**
 * Streams content into a multipart upload with bounded memory and concurrency. On any failure
 * (the content's, S3's, an abort) the upload is aborted before the error is rethrown, so no
 * parts are left billed and invisible; the original error is what the caller sees.
 */
export async function uploadMultipart(input: MultipartUploadInput): Promise<void> {
  const { client, bucket, key, signal } = input;
  const created = await client.send(
    new CreateMultipartUploadCommand({
      ...input.params,
      Bucket: bucket,
      Key: key,
      ...(input.checksums ? { ChecksumAlgorithm: "CRC32" } : {}),
    }),
    { abortSignal: signal },
  );
  const uploadId = created.UploadId;
  if (!uploadId) throw new Error("CreateMultipartUpload returned no UploadId");
  input.onUploadId?.(uploadId, "created");

  try {
    const parts: CompletedPart[] = [];
    const running = new Set<Promise<void>>();
    const buffers = new PartBuffers(input.partSize);
    let failure: { error: unknown } | undefined;
    let partNumber = 0;
    for await (const part of chunks(input.prefix, input.rest, buffers)) {
      if (failure) break;
      const number = ++partNumber;
      const upload = client
        .send(
          new UploadPartCommand({
            Bucket: bucket,
            Key: key,
            UploadId: uploadId,
            PartNumber: number,
            Body: part.body,
            ContentLength: part.body.byteLength,
            ...(input.checksums ? { ChecksumAlgorithm: "CRC32" } : {}),
          }),
          { abortSignal: signal },
        )
        .then((r) => {
          parts[number - 1] = {
            PartNumber: number,
            ETag: r.ETag,
            ...(r.ChecksumCRC32 ? { ChecksumCRC32: r.ChecksumCRC32 } : {}),
          };
          // S3 acknowledged the whole part, so the request is done with its bytes: refill the
          // buffer with a later part. A failed part's buffer is not reused (nor needed).
          buffers.release(part.buffer);
        })
        .catch((error: unknown) => {
          failure ??= { error };
        })
        .finally(() => running.delete(upload));
      running.add(upload);
      while (running.size >= input.queueSize) await Promise.race(running);
    }
    await Promise.all(running);
    if (failure) throw failure.error;
    await client.send(
      new CompleteMultipartUploadCommand({
        Bucket: bucket,
        Key: key,
        UploadId: uploadId,
        MultipartUpload: { Parts: parts },
        ...(input.ifNoneMatch ? { IfNoneMatch: "*" } : {}),
      }),
      { abortSignal: signal },
    );
    input.onUploadId?.(uploadId, "completed");
  } catch (error) {
    // Never abandon parts; the abort's own failure must not hide why the upload failed.
    try {
      await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: uploadId }));
      input.onUploadId?.(uploadId, "aborted");
    } catch (abortError) {
      if (error instanceof Error && error.cause === undefined) {
        Object.defineProperty(error, "cause", { value: abortError, configurable: true, writable: true });
      }
    }
    throw error;
  }
}

/**
 * Part-sized buffers, reused once S3 has acknowledged the part they held (the SDK may resend a
 * part's bytes until then, on a retry). A part buffer lives for a whole UploadPart request, long
 * enough for V8 to move it to the old generation, where dead ones wait for a full GC: with a new
 * buffer per part, ~40-60 MiB of dead parts piled up on top of the parts in flight (1 GiB upload,
 * 8 MiB × 4). Reused, an upload allocates at most queueSize buffers, whatever its length.
 */
class PartBuffers {
  readonly size: number;
  readonly #free: Buffer[] = [];

  constructor(size: number) {
    this.size = size;
  }

  take(): Buffer {
    return this.#free.pop() ?? Buffer.allocUnsafe(this.size);
  }

  release(buffer: Buffer): void {
    this.#free.push(buffer);
  }
}

/** One part: its bytes, and the pooled buffer they live in (to release once uploaded). */
interface Part {
  body: Uint8Array;
  buffer: Buffer;
}

/**
 * Regroups byte chunks into parts of exactly `buffers.size` bytes (the last may be shorter),
 * copying into one pooled buffer per part so S3 gets parts of the size it requires whatever the
 * source's chunking. A buffer is taken only when the next part starts to fill, i.e. after the
 * caller asked for it.
 */
async function* chunks(
  prefix: Uint8Array[],
  rest: AsyncIterator<Uint8Array> | undefined,
  buffers: PartBuffers,
): AsyncGenerator<Part> {
  const partSize = buffers.size;
  let part: Buffer | undefined;
  let filled = 0;
  const take = function* (chunk: Uint8Array): Generator<Part> {
    let offset = 0;
    while (offset < chunk.byteLength) {
      part ??= buffers.take();
      const n = Math.min(partSize - filled, chunk.byteLength - offset);
      part.set(chunk.subarray(offset, offset + n), filled);
      filled += n;
      offset += n;
      if (filled === partSize) {
        const full = part;
        part = undefined;
        filled = 0;
        yield { body: full, buffer: full };
      }
    }
  };
  // Drop each prefix chunk once copied: the array must not pin a part's worth of memory for the whole upload.
  while (prefix.length > 0) yield* take(prefix.shift() as Uint8Array);
  if (rest) {
    for (;;) {
      const next = await rest.next();
      if (next.done) break;
      yield* take(next.value);
    }
  }
  if (part && filled > 0) yield { body: part.subarray(0, filled), buffer: part };
}
