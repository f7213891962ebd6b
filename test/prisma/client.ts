import { PrismaPg } from "@prisma/adapter-pg";
import { inject } from "vitest";
import { createSession, MemoryStorage, type S3Session, S3Storage } from "../../src/index.js";
import { s3Files } from "../../src/prisma/extension.js";
import { fileFields } from "../generated/files/index.js";
import { PrismaClient } from "../generated/prisma/client.js";
import { sessionOptionsFor } from "../harness/s3.js";

/** A plain client on the run's database. */
export function plainClient(): PrismaClient {
  return new PrismaClient({ adapter: new PrismaPg({ connectionString: inject("databaseUrl") }) });
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
