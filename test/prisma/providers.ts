/**
 * The generated client and file-field metadata of each provider the Prisma suites run on
 * (scripts/prisma-generate.mjs), and the driver adapter that reaches it. No vitest here: the
 * multi-process torture's workers load it too (test/torture/multiprocess-env.ts).
 *
 * Everything is typed as the PostgreSQL client and metadata: the schemas differ only in the
 * datasource and column types, so the clients' APIs are the same.
 */
import { PrismaBetterSqlite3 } from "@prisma/adapter-better-sqlite3";
import { PrismaMariaDb } from "@prisma/adapter-mariadb";
import { PrismaPg } from "@prisma/adapter-pg";
import type * as PgFiles from "../generated/files/index.js";
import type { PrismaClient } from "../generated/prisma/client.js";
import type { Provider } from "../harness/databases.js";

export type { Provider };

/** A provider's generated modules. */
export interface Generated {
  PrismaClient: typeof PrismaClient;
  fileFields: typeof PgFiles.fileFields;
  /** The generated `s3Files`, bound to this provider's metadata. */
  s3Files: typeof PgFiles.s3Files;
}

/**
 * Where `provider`'s generated modules are, from the repository's root: `<dir>/prisma/client.ts`
 * and `<dir>/files/index.ts` (for code written out by tests, as the CLI's config files).
 */
export function generatedDir(provider: Provider): string {
  return provider === "postgresql" ? "test/generated" : `test/generated/${provider}`;
}

/** Loads `provider`'s generated client and metadata. */
export async function loadGenerated(provider: Provider): Promise<Generated> {
  const [client, files] = await (provider === "mysql"
    ? Promise.all([import("../generated/mysql/prisma/client.js"), import("../generated/mysql/files/index.js")])
    : provider === "sqlite"
      ? Promise.all([import("../generated/sqlite/prisma/client.js"), import("../generated/sqlite/files/index.js")])
      : Promise.all([import("../generated/prisma/client.js"), import("../generated/files/index.js")]));
  return {
    PrismaClient: client.PrismaClient as unknown as typeof PrismaClient,
    fileFields: files.fileFields as unknown as typeof PgFiles.fileFields,
    s3Files: files.s3Files as unknown as typeof PgFiles.s3Files,
  };
}

/** The driver adapter for `provider`'s database at `url`. */
export function adapterFor(provider: Provider, url: string) {
  switch (provider) {
    case "postgresql":
      return new PrismaPg({ connectionString: url });
    case "mysql":
      return new PrismaMariaDb(url);
    case "sqlite":
      // Several processes write the file in the multi-process torture: wait for a lock up to 10 s
      // (better-sqlite3's busy timeout) rather than fail at once with SQLITE_BUSY.
      return new PrismaBetterSqlite3({ url, timeout: 10_000 });
  }
}

/** A plain client of `generated` on `url`. */
export function clientFor(generated: Generated, provider: Provider, url: string): PrismaClient {
  return new generated.PrismaClient({ adapter: adapterFor(provider, url) as PrismaPg });
}
