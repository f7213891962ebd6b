/**
 * What the multi-process torture tests (multiprocess.torture.test.ts) and their worker processes
 * (multiprocess-worker.ts) share: the configuration passed through the environment, the
 * storages (S3 storages that report every object they store and every deletion they send, with
 * timestamps, and may wait after a store to widen the upload-to-commit window), the metadata
 * (optionally with `deleteAfterSeconds` on `User.avatar`) and the clients.
 *
 * Everything here goes through public behaviour: the storages are what `s3Files({ storages })`
 * takes, the metadata is plain data.
 */
import { createSession, MemoryStorage, S3Storage } from "../../src/index.js";
import { s3Files } from "../../src/prisma/extension.js";
import type { FileContent } from "../../src/storage/storage.js";
import type { fileFields } from "../generated/files/index.js";
import type { PrismaClient } from "../generated/prisma/client.js";
import { type S3Target, sessionOptionsFor } from "../harness/s3.js";
import { clientFor, loadGenerated, type Provider } from "../prisma/providers.js";

/** A worker's configuration (JSON in `MP_CONFIG`). */
export interface MpConfig {
  /** The database's provider: the generated client and metadata the process loads. */
  provider: Provider;
  databaseUrl: string;
  s3: S3Target;
  bucket: string;
  /** `default` storage's location (avatars); `private` gets `${location}-private` (badges). */
  location: string;
  /** `User.avatar`'s `deleteAfterSeconds` (0: the schema's). */
  graceSeconds: number;
  uploadExpirySeconds: number;
  /** The background drain's interval; 0 turns it off. */
  drainIntervalSeconds: number;
  /** After each stored object, wait a random 0..this many ms (the window between upload and commit). */
  saveDelayMs: number;
  /** After announcing a deletion, wait a random 0..this many ms before sending it (commit → delete window). */
  deleteDelayMs: number;
}

/** What the storages report. */
export type StorageEvent =
  | { e: "stored"; store: string; key: string; ts: number }
  | { e: "del-start"; store: string; keys: string[]; ts: number }
  | { e: "del-end"; store: string; keys: string[]; failed: string[]; ts: number };

export const privateLocation = (location: string) => `${location}-private`;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** An S3 storage that reports what it stores and deletes (the test's deletion log). */
export class ObservedS3Storage extends S3Storage {
  constructor(
    options: ConstructorParameters<typeof S3Storage>[0],
    private readonly store: string,
    private readonly emit: (event: StorageEvent) => void,
    private readonly delays: { save: number; delete: number },
  ) {
    super(options);
  }

  override async save(...args: Parameters<S3Storage["save"]>): Promise<string> {
    const key = await super.save(...args);
    this.emit({ e: "stored", store: this.store, key, ts: Date.now() });
    if (this.delays.save > 0) await sleep(Math.random() * this.delays.save);
    return key;
  }

  override async delete(name: string): Promise<void> {
    await this.#announce([name]);
    try {
      await super.delete(name);
      this.emit({ e: "del-end", store: this.store, keys: [name], failed: [], ts: Date.now() });
    } catch (error) {
      this.emit({ e: "del-end", store: this.store, keys: [name], failed: [name], ts: Date.now() });
      throw error;
    }
  }

  override async deleteMany(names: readonly string[]) {
    if (names.length === 0) return super.deleteMany(names);
    await this.#announce([...names]);
    const result = await super.deleteMany(names);
    this.emit({
      e: "del-end",
      store: this.store,
      keys: [...names],
      failed: result.failed.map((f) => f.name),
      ts: Date.now(),
    });
    return result;
  }

  async #announce(keys: string[]) {
    this.emit({ e: "del-start", store: this.store, keys, ts: Date.now() });
    if (this.delays.delete > 0) await sleep(Math.random() * this.delays.delete);
  }
}

/** The test schema's metadata `base` (the provider's), `User.avatar` kept `graceSeconds` after release when given. */
export function fieldsFor(base: typeof fileFields, graceSeconds: number): typeof fileFields {
  if (graceSeconds <= 0) return base;
  const avatar = base.User.fileFields.avatar;
  return {
    ...base,
    User: {
      ...base.User,
      fileFields: { ...base.User.fileFields, avatar: { ...avatar, deleteAfterSeconds: graceSeconds } },
    },
  } as unknown as typeof fileFields;
}

/** Storages of one process: `default` and `private` on the run's bucket; `public` (unused here) in memory. */
export function storagesFor(config: MpConfig, emit: (event: StorageEvent) => void) {
  const session = createSession({ ...sessionOptionsFor(config.s3), bucket: config.bucket });
  const delays = { save: config.saveDelayMs, delete: config.deleteDelayMs };
  return {
    session,
    storages: {
      default: new ObservedS3Storage(
        { session, bucket: config.bucket, location: config.location },
        "default",
        emit,
        delays,
      ),
      private: new ObservedS3Storage(
        { session, bucket: config.bucket, location: privateLocation(config.location) },
        "private",
        emit,
        delays,
      ),
      public: new MemoryStorage({ baseUrl: "https://public.example.com/" }),
    },
  };
}

/** Everything a process needs: storages, the plain and the extended client, the options for `drainFiles`/`sweepOrphans`. */
export async function processEnv(config: MpConfig, emit: (event: StorageEvent) => void) {
  const generated = await loadGenerated(config.provider);
  const { session, storages } = storagesFor(config, emit);
  const fields = fieldsFor(generated.fileFields, config.graceSeconds);
  const plain: PrismaClient = clientFor(generated, config.provider, config.databaseUrl);
  const files = plain.$extends(
    s3Files(session, {
      fields,
      storages,
      uploadExpirySeconds: config.uploadExpirySeconds,
      drain: config.drainIntervalSeconds > 0 ? { intervalSeconds: config.drainIntervalSeconds } : false,
      onCleanupError: () => undefined,
    }),
  );
  return { session, storages, fields, plain, files, options: { fields, storages } };
}

/** A tiny valid PNG, made distinct by `variant` (bytes after IEND). */
export function pngBytes(variant: string): FileContent {
  const head = Buffer.from(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000" +
      "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082",
    "hex",
  );
  return Buffer.concat([head, Buffer.from(`#${variant}`)]);
}

export function pdfBytes(variant: string): FileContent {
  return Buffer.from(`%PDF-1.7\n% mp ${variant}\n%%EOF\n`);
}
