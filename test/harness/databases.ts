import { createMysqlDatabase } from "./mysql.js";
import { createTestDatabase, type TestDatabase } from "./postgres.js";
import { createSqliteDatabase } from "./sqlite.js";

/** The databases the Prisma suites run on; each is a vitest project of that name (vitest.config.ts). */
export const PROVIDERS = ["postgresql", "mysql", "sqlite"] as const;
export type Provider = (typeof PROVIDERS)[number];

export function isProvider(name: unknown): name is Provider {
  return typeof name === "string" && (PROVIDERS as readonly string[]).includes(name);
}

/** A fresh database with the provider's committed migrations applied, dropped by `drop()`. */
export function createDatabase(provider: Provider, prefix = "psf"): Promise<TestDatabase> {
  switch (provider) {
    case "postgresql":
      return createTestDatabase(prefix);
    case "mysql":
      return createMysqlDatabase(prefix);
    case "sqlite":
      return createSqliteDatabase(prefix);
  }
}
