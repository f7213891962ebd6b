import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";
import { dockerDaemonAnswers } from "./docker.js";

const MIGRATIONS_DIR = join(import.meta.dirname, "..", "..", "prisma", "migrations");

export interface TestDatabase {
  /** Connection string of the fresh database this run owns. */
  url: string;
  /** Where the server came from: `env`, `testcontainers` or `local`. */
  source: "env" | "testcontainers" | "local";
  /** Drops the database (and stops the container, if one was started). */
  drop(): Promise<void>;
}

/** The migrations under prisma/migrations, in the order `prisma migrate` applies them. */
export function migrationFiles(dir = MIGRATIONS_DIR): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .map((d) => d.name)
    .sort()
    .map((name) => join(dir, name, "migration.sql"));
}

/**
 * Resolves a PostgreSQL server (DATABASE_URL, else testcontainers when Docker answers, else
 * 127.0.0.1:5432), creates a uniquely named database on it, applies the committed migrations
 * and returns its URL.
 */
export async function createTestDatabase(prefix = "psf"): Promise<TestDatabase> {
  let serverUrl: string;
  let source: TestDatabase["source"];
  let stopContainer: (() => Promise<unknown>) | undefined;
  if (process.env.DATABASE_URL) {
    serverUrl = process.env.DATABASE_URL;
    source = "env";
  } else if (await dockerDaemonAnswers()) {
    const { PostgreSqlContainer } = await import("@testcontainers/postgresql");
    const container = await new PostgreSqlContainer("postgres:16-alpine").start();
    serverUrl = container.getConnectionUri();
    stopContainer = () => container.stop();
    source = "testcontainers";
  } else {
    serverUrl = "postgresql://postgres@127.0.0.1:5432/test";
    source = "local";
  }

  const name = `${prefix}_${Date.now().toString(36)}_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE "${name}"`);
  } finally {
    await admin.end();
  }
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  const dbUrl = url.toString();

  const client = new pg.Client({ connectionString: dbUrl });
  await client.connect();
  try {
    for (const file of migrationFiles()) await client.query(readFileSync(file, "utf8"));
  } finally {
    await client.end();
  }

  return {
    url: dbUrl,
    source,
    async drop() {
      const admin = new pg.Client({ connectionString: serverUrl });
      await admin.connect();
      try {
        await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      } finally {
        await admin.end();
      }
      await stopContainer?.();
    },
  };
}
