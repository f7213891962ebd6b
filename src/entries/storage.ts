/**
 * `prisma-s3-files/storage`: the storage contract, the filesystem and memory backends,
 * {@link BaseStorage} (naming, claims and cleanup) for third-party backends, and the contract's
 * conformance suite for them to run. Loads no `@aws-sdk/*` module.
 */

export { LeftBehindError, type LeftBehindObject } from "../errors.js";
export { StoredFile } from "../files/stored-file.js";
export {
  BaseStorage,
  type BaseStorageOptions,
  type ByteRange,
  type MoveObjectRequest,
  type ObjectStat,
  type WriteObjectRequest,
} from "../storage/base-storage.js";
export {
  type ConformanceAssertion,
  type ConformanceMatchers,
  type ConformanceSetup,
  type ConformanceSetupOptions,
  type ConformanceTarget,
  type ConformanceTestApi,
  describeStorageConformance,
} from "../storage/conformance/suite.js";
export { ContentTooLargeError } from "../storage/content.js";
export { FileSystemStorage, type FileSystemStorageOptions } from "../storage/filesystem-storage.js";
export { MemoryStorage, type MemoryStorageOptions } from "../storage/memory-storage.js";
export type {
  DeleteManyResult,
  FileContent,
  ListResult,
  MoveOptions,
  ObjectInfo,
  OpenOptions,
  SaveOptions,
  SaveProgress,
  Storage,
  UrlOptions,
} from "../storage/storage.js";
