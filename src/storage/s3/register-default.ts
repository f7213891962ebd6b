/**
 * Registers `S3Storage` as the Prisma binding's default storage (see `default-storage.ts`).
 * Imported for this side effect by the session module.
 */
import { registerDefaultS3Storage } from "./default-storage.js";
import { S3Storage } from "./s3-storage.js";

registerDefaultS3Storage((options) => new S3Storage(options));
