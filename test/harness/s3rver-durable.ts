import { createHash } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdir, readdir, rmdir, unlink } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";

/**
 * s3rver answers a PUT before the object is on disk (it resolves on its hashing transform's
 * `finish`, not the file's), so a HEAD or GET right after may miss or truncate the object. Real S3
 * and MinIO are read-after-write consistent; this makes s3rver's store wait for the file, once
 * per process, so tests see the protocol's guarantees rather than the fake's race. Likewise for
 * deletes racing on the directories they empty.
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
      getBucketPath(bucket: string): string;
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
  // s3rver deletes the keys of a DeleteObjects request all at once, each then removing its
  // directories while empty: two keys of one directory race there (ENOENT, ENOTEMPTY), and the
  // request fails with a 500 though every object went. Real servers have no directories to race on.
  Store.prototype.deleteObject = async function deleteObject(
    this: typeof Store.prototype,
    bucket: string,
    key: string,
  ) {
    const gone = (error: NodeJS.ErrnoException) => {
      if (error.code !== "ENOENT") throw error;
    };
    await Promise.all(
      ["object", "object.md5", "metadata.json"].map((kind) =>
        unlink(this.getResourcePath(bucket, key, kind)).catch(gone),
      ),
    );
    const parts = key.split("/").slice(0, -1); // the last part is in the files' names
    while (parts.length > 0) {
      const dir = join(this.getBucketPath(bucket), ...parts);
      try {
        if ((await readdir(dir)).length > 0) return;
        await rmdir(dir);
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === "ENOTEMPTY") return; // something was written there meanwhile
        if (code !== "ENOENT") throw error; // another deletion removed it first
      }
      parts.pop();
    }
  };
}
