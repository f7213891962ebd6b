/**
 * How the Prisma binding builds its `default` storage (an `S3Storage` on the session) without
 * importing `S3Storage`, so that `s3Files` and `sweepOrphans` load no AWS SDK module in an app
 * that stores files elsewhere. `s3-storage.ts` registers the factory when it loads, and the
 * `prisma-s3-files/s3` entry point, the only way to a session, exports `S3Storage` beside
 * `createSession`: whoever holds a session has it.
 */
import { PrismaS3FilesError } from "../../errors.js";
import type { S3Session } from "../../session/session.js";
import type { Storage } from "../storage.js";

/** The options the binding passes to the default storage. */
export interface DefaultS3StorageOptions {
  session: S3Session;
  onLeftBehind?: (error: unknown) => void;
}

let factory: ((options: DefaultS3StorageOptions) => Storage) | undefined;

/** Called once, by the S3 storage's side. */
export function registerDefaultS3Storage(create: (options: DefaultS3StorageOptions) => Storage): void {
  factory = create;
}

/** An `S3Storage` on the session's bucket. */
export function defaultS3Storage(options: DefaultS3StorageOptions): Storage {
  if (!factory) {
    // Unreachable through the public API (prisma-s3-files/s3 loads it); a clear message if a
    // bundler dropped the registration anyway.
    throw new PrismaS3FilesError(
      "CONFIGURATION",
      'the default S3 storage is not available: import S3Storage from "prisma-s3-files/s3", or pass storages.default',
    );
  }
  return factory(options);
}
