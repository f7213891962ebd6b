import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { migrationFiles, type TestDatabase } from "./postgres.js";

/** The SQLite migrations: hand-written equivalents of prisma/migrations, as `prisma migrate` writes them for SQLite. */
export const SQLITE_MIGRATIONS_DIR = join(import.meta.dirname, "..", "..", "prisma", "sqlite", "migrations");

/** The database file a `file:` URL names. */
export function sqlitePath(url: string): string {
  return url.replace(/^file:/, "");
}

/**
 * Creates a fresh SQLite database file for the run in a folder of its own under the OS's
 * temporary directory, applies the committed SQLite migrations and returns its `file:` URL;
 * `drop()` removes the folder (the file and its WAL files).
 */
export async function createSqliteDatabase(prefix = "psf"): Promise<TestDatabase> {
  const dir = mkdtempSync(join(tmpdir(), `${prefix}-sqlite-`));
  const path = join(dir, "test.db");
  const db = new Database(path);
  try {
    // WAL: the multi-process torture has several processes write this file at once. In the
    // default rollback journal a writer locks readers out for its whole commit and readers
    // block the writer, so the workers' reads fail with SQLITE_BUSY under load; in WAL readers
    // and the one writer proceed together and only writers wait on each other (busy timeout).
    // The mode is stored in the file, so every connection opened later uses it.
    db.pragma("journal_mode = WAL");
    for (const file of migrationFiles(SQLITE_MIGRATIONS_DIR)) db.exec(readFileSync(file, "utf8"));
  } finally {
    db.close();
  }
  return {
    url: `file:${path}`,
    source: "local",
    async drop() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
