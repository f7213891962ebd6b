import { inject } from "vitest";
import { createSession, MemoryStorage, type S3Session, S3Storage } from "../../src/index.js";
import { s3Files } from "../../src/prisma/extension.js";
import type { PrismaClient } from "../generated/prisma/client.js";
import { sessionOptionsFor } from "../harness/s3.js";
import { clientFor, loadGenerated } from "./providers.js";

/** The project's database provider (vitest.config.ts): `postgresql`, `mysql` or `sqlite`. */
export const provider = inject("provider");

const generated = await loadGenerated(provider);

/**
 * The provider's file-field metadata (they differ: the journal's provider; on MySQL a file
 * column holds 191 characters). Typed as PostgreSQL's.
 */
export const fileFields = generated.fileFields;

/** The generated `s3Files` bound to the provider's metadata. */
export const generatedS3Files = generated.s3Files;

/** `name` quoted as an SQL identifier on the provider (PostgreSQL and SQLite "x", MySQL `x`), for raw queries. */
export function sqlId(name: string): string {
  return provider === "mysql" ? `\`${name.replaceAll("`", "``")}\`` : `"${name.replaceAll('"', '""')}"`;
}

/** A plain client of the provider's generated client on the run's database (typed as PostgreSQL's). */
export function plainClient(): PrismaClient {
  return clientFor(generated, provider, inject("databaseUrl"));
}

/** A session on the harness's S3 server. */
export function harnessSession(): S3Session {
  return createSession(sessionOptionsFor(inject("s3")));
}

/** The test schema's storages: default (S3, signed), private (S3 under its own prefix), public (memory, counting calls). */
export function testStorages(session: S3Session) {
  return {
    private: new S3Storage({ session, location: "private" }),
    public: new CountingMemoryStorage({ baseUrl: "https://public.example.com/" }),
  };
}

/** A memory storage that counts calls: proves file objects stay lazy. */
export class CountingMemoryStorage extends MemoryStorage {
  calls = 0;
  override async url(...args: Parameters<MemoryStorage["url"]>) {
    this.calls++;
    return super.url(...args);
  }
  override async exists(name: string) {
    this.calls++;
    return super.exists(name);
  }
  override async open(...args: Parameters<MemoryStorage["open"]>) {
    this.calls++;
    return super.open(...args);
  }
}

/** The extended client, as users build it. */
export function filesClient(session: S3Session, storages = testStorages(session)) {
  return plainClient().$extends(s3Files(session, { fields: fileFields, storages }));
}

let dummies = 0;
/**
 * A key for a required file column a test does not care about. Unique: once the last row
 * holding a key is deleted, the key is deleted too, and writing it again is refused.
 */
export function dummyKey(): string {
  dummies++;
  return `dummy/${process.pid}-${Date.now().toString(36)}-${dummies}`;
}
