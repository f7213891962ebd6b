import { readFileSync } from "node:fs";
import { join } from "node:path";
import mariadb from "mariadb";
import { dockerDaemonAnswers } from "./docker.js";
import { migrationFiles, type TestDatabase } from "./postgres.js";

/** The MySQL migrations: hand-written equivalents of prisma/migrations, as `prisma migrate` writes them for MySQL. */
export const MYSQL_MIGRATIONS_DIR = join(import.meta.dirname, "..", "..", "prisma", "mysql", "migrations");

/** The local server `.ci/run` starts: MariaDB, root without a password. */
export const LOCAL_MYSQL_URL = "mysql://root@127.0.0.1:3306/test";

/** A connection on `url` (mysql:// or mariadb://) that accepts several statements per query (the migration files). */
export function mysqlConnection(url: string): Promise<mariadb.Connection> {
  const u = new URL(url);
  return mariadb.createConnection({
    host: u.hostname,
    port: Number(u.port || 3306),
    user: decodeURIComponent(u.username || "root"),
    password: decodeURIComponent(u.password),
    database: u.pathname.slice(1) || undefined,
    multipleStatements: true,
  });
}

/**
 * Resolves a MySQL-compatible server (DATABASE_URL_MYSQL, else a MariaDB container when Docker
 * answers, else 127.0.0.1:3306), creates a uniquely named database on it, applies the committed
 * MySQL migrations and returns its URL (`mysql://`, which @prisma/adapter-mariadb takes).
 */
export async function createMysqlDatabase(prefix = "psf"): Promise<TestDatabase> {
  let serverUrl: string;
  let source: TestDatabase["source"];
  let stopContainer: (() => Promise<unknown>) | undefined;
  if (process.env.DATABASE_URL_MYSQL) {
    serverUrl = process.env.DATABASE_URL_MYSQL;
    source = "env";
  } else if (await dockerDaemonAnswers()) {
    // testcontainers' generic container (its MariaDB module would be one more dependency for the same thing).
    const { GenericContainer, Wait } = await import("testcontainers");
    const container = await new GenericContainer("mariadb:11")
      .withEnvironment({ MARIADB_ALLOW_EMPTY_ROOT_PASSWORD: "1", MARIADB_DATABASE: "test" })
      .withExposedPorts(3306)
      .withWaitStrategy(Wait.forLogMessage(/ready for connections/, 2))
      .start();
    serverUrl = `mysql://root@${container.getHost()}:${container.getMappedPort(3306)}/test`;
    stopContainer = () => container.stop();
    source = "testcontainers";
  } else {
    serverUrl = LOCAL_MYSQL_URL;
    source = "local";
  }

  const name = `${prefix}_${Date.now().toString(36)}_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
  const admin = await mysqlConnection(serverUrl);
  try {
    await admin.query(`CREATE DATABASE \`${name}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`);
  } finally {
    await admin.end();
  }
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  const dbUrl = url.toString();

  const client = await mysqlConnection(dbUrl);
  try {
    for (const file of migrationFiles(MYSQL_MIGRATIONS_DIR)) await client.query(readFileSync(file, "utf8"));
  } finally {
    await client.end();
  }

  return {
    url: dbUrl,
    source,
    async drop() {
      const admin = await mysqlConnection(serverUrl);
      try {
        await admin.query(`DROP DATABASE IF EXISTS \`${name}\``);
      } finally {
        await admin.end();
      }
      await stopContainer?.();
    },
  };
}
