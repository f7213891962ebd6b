import { createHash } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdir } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname } from "node:path";
import { Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";

/**
 * s3rver answers a PUT before the object is on disk (it resolves on its hashing transform's
 * `finish`, not the file's), so a HEAD or GET right after may miss or truncate the object. Real S3
 * and MinIO are read-after-write consistent; this makes s3rver's store wait for the file, once
 * per process, so tests see the protocol's guarantees rather than the fake's race.
 */
let s3rverPatched = false;
export function makeS3rverDurable(): void {
  if (s3rverPatched) return;
  s3rverPatched = true;
  const require = createRequire(import.meta.url);
  const Store = require("s3rver/lib/stores/filesystem.js") as {
    prototype: Record<string, unknown> & {
      getResourcePath(bucket: string, key: string, kind: string): string;
      putMetadata(bucket: string, key: string, metadata: unknown, md5: string): Promise<void>;
    };
  };
  Store.prototype.putObject = async function putObject(
    this: typeof Store.prototype,
    object: { bucket: string; key: string; content: Buffer | Readable; metadata: unknown },
  ) {
    const objectPath = this.getResourcePath(object.bucket, object.key, "object");
    await mkdir(dirname(objectPath), { recursive: true });
    const md5 = createHash("md5");
    let size = 0;
    const source = Buffer.isBuffer(object.content) ? Readable.from([object.content]) : object.content;
    const count = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        md5.update(chunk);
        size += chunk.length;
        callback(null, chunk);
      },
    });
    await pipeline(source, count, createWriteStream(objectPath));
    const digest = md5.digest("hex");
    await this.putMetadata(object.bucket, object.key, object.metadata, digest);
    return { size, md5: digest };
  };
}
