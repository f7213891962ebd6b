import { readdirSync, readFileSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { CreateBucketCommand, HeadBucketCommand, PutBucketCorsCommand } from "@aws-sdk/client-s3";
import { PGlite } from "@electric-sql/pglite";
import { PrismaBetterSqlite3 } from "@prisma/adapter-better-sqlite3";
import { PrismaMariaDb } from "@prisma/adapter-mariadb";
import { PrismaPg } from "@prisma/adapter-pg";
import SqliteDatabase from "better-sqlite3";
import mariadb from "mariadb";
import pg from "pg";
import { PrismaPGlite } from "pglite-prisma-adapter";
import S3rver from "s3rver";
import { createSession, type S3Session } from "../../src/index.js";
// s3rver is not read-after-write consistent; the test harness's fix applies to the demo's too.
import { makeS3rverDurable } from "../../test/harness/s3rver-durable.js";
import type { s3Files } from "./generated/files/index.js";
import { PrismaClient } from "./generated/prisma/client.js";

/** The databases the demo runs on; each has its generated client (`npm run demo:generate`) and its migrations. */
export type Provider = "postgresql" | "mysql" | "sqlite";

export interface Database {
  /**
   * The provider's generated client. Typed as the PostgreSQL one: the schemas differ only in
   * the datasource and column types, so the clients' APIs are the same.
   */
  prisma: PrismaClient;
  /** The provider's generated `s3Files` (its file-field metadata names the provider's journal SQL). */
  s3Files: typeof s3Files;
  provider: Provider;
  /** What the page's footer says about it. */
  label: string;
  close(): Promise<void>;
}

export interface Storage {
  session: S3Session;
  label: string;
  /**
   * Lets pages from `origins` upload straight to the bucket: the embedded s3rver gets the CORS
   * rule; a real bucket is left alone (its owner sets the rule, see README) and a reminder printed.
   */
  allowBrowserUploads(origins: string[]): Promise<void>;
  close(): Promise<void>;
}

/** The CORS rule direct uploads need: form POSTs and part PUTs from the page, and the parts' ETags readable. */
export function directUploadCorsRule(origins: string[]) {
  return {
    AllowedOrigins: origins,
    AllowedMethods: ["PUT", "POST", "GET"],
    AllowedHeaders: ["*"],
    ExposeHeaders: ["ETag"],
    MaxAgeSeconds: 3000,
  };
}

/** The two SQL calls the migration step needs, on every provider. */
interface SqlRunner {
  /** Runs a script of several statements. */
  exec(sql: string): Promise<unknown>;
  /** Runs one statement with `?` placeholders (numbered `$1`, `$2` for PostgreSQL by the runner). */
  query(sql: string, params?: unknown[]): Promise<{ rows: unknown[] }>;
}

/**
 * Each provider's migrations (hand-written for MySQL and SQLite, as `prisma migrate dev` would
 * write them for the same schema) and the table that remembers which ones ran.
 */
const MIGRATIONS: Record<Provider, { dir: string; table: string }> = {
  postgresql: {
    dir: join(import.meta.dirname, "prisma", "migrations"),
    table: `CREATE TABLE IF NOT EXISTS "_demo_migrations" ("name" TEXT PRIMARY KEY, "appliedAt" TIMESTAMPTZ NOT NULL DEFAULT now())`,
  },
  mysql: {
    dir: join(import.meta.dirname, "prisma", "mysql", "migrations"),
    table:
      "CREATE TABLE IF NOT EXISTS `_demo_migrations` (`name` VARCHAR(191) PRIMARY KEY, `appliedAt` DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci",
  },
  sqlite: {
    dir: join(import.meta.dirname, "prisma", "sqlite", "migrations"),
    table: `CREATE TABLE IF NOT EXISTS "_demo_migrations" ("name" TEXT NOT NULL PRIMARY KEY, "appliedAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP)`,
  },
};

/**
 * Applies `provider`'s migrations that this database has not seen yet, each in its own
 * transaction, remembering them in `_demo_migrations`. (`prisma migrate deploy` does the same on
 * a machine with Prisma's schema engine; the demo must start without it.) MySQL commits each
 * DDL statement on its own, so there a failed migration can leave part of itself behind.
 */
export async function applyMigrations(db: SqlRunner, provider: Provider = "postgresql"): Promise<string[]> {
  const { dir, table } = MIGRATIONS[provider];
  await db.exec(table);
  const { rows } = await db.query(`SELECT name FROM _demo_migrations`);
  const done = new Set(rows.map((r) => (r as { name: string }).name));
  const names = readdirSync(dir, { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .map((d) => d.name)
    .sort();
  const applied: string[] = [];
  for (const name of names) {
    if (done.has(name)) continue;
    const sql = readFileSync(join(dir, name, "migration.sql"), "utf8");
    await db.exec("BEGIN");
    try {
      await db.exec(sql);
      await db.query(`INSERT INTO _demo_migrations (name) VALUES (?)`, [name]);
      await db.exec("COMMIT");
    } catch (error) {
      await db.exec("ROLLBACK");
      throw new Error(`migration ${name} failed: ${(error as Error).message}`, { cause: error });
    }
    applied.push(name);
  }
  return applied;
}

/** The database `DATABASE_URL` names, by its scheme; none: the embedded PGlite. */
export function providerOf(url: string | undefined): Provider | "pglite" {
  if (!url) return "pglite";
  if (/^postgres(ql)?:\/\//i.test(url)) return "postgresql";
  if (/^(mysql|mariadb):\/\//i.test(url)) return "mysql";
  if (/^file:/i.test(url)) return "sqlite";
  throw new Error(
    `DATABASE_URL must start with postgresql://, postgres://, mysql://, mariadb:// or file: (SQLite), not ${JSON.stringify(url.split(":")[0])}`,
  );
}

/**
 * `DATABASE_URL` → that database, migrated on start: `postgres(ql)://` PostgreSQL, `mysql://` or
 * `mariadb://` MySQL or MariaDB 10.6+ (the database is created if it is missing), `file:` a
 * SQLite file (created if missing, with its folder, in WAL mode; a relative path is from the
 * working directory).
 * Otherwise PGlite (PostgreSQL compiled to WebAssembly) in `dataDir/pglite`.
 */
export async function openDatabase(dataDir: string): Promise<Database> {
  const url = process.env.DATABASE_URL;
  const provider = providerOf(url);
  if (provider === "postgresql" && url) return openPostgres(url);
  if (provider === "mysql" && url) return openMysql(url);
  if (provider === "sqlite" && url) return openSqlite(url);

  const directory = join(dataDir, "pglite");
  const db = new PGlite(directory);
  await applyMigrations({ exec: (sql) => db.exec(sql), query: (sql, params) => db.query(numbered(sql), params) });
  const prisma = new PrismaClient({ adapter: new PrismaPGlite(db) });
  return {
    prisma,
    s3Files: (await import("./generated/files/index.js")).s3Files,
    provider: "postgresql",
    label: `PGlite in ${directory}`,
    async close() {
      await prisma.$disconnect();
      await db.close();
    },
  };
}

/** `?` placeholders numbered `$1`, `$2`, ... (PostgreSQL's form); the migration step's SQL has no `?` in literals. */
function numbered(sql: string): string {
  let n = 0;
  return sql.replace(/\?/g, () => `$${++n}`);
}

async function openPostgres(url: string): Promise<Database> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await applyMigrations({
      exec: (sql) => client.query(sql),
      query: (sql, params) => client.query(numbered(sql), params),
    });
  } finally {
    await client.end();
  }
  const prisma = new PrismaClient({ adapter: new PrismaPg({ connectionString: url }) });
  const where = new URL(url);
  return {
    prisma,
    s3Files: (await import("./generated/files/index.js")).s3Files,
    provider: "postgresql",
    label: `PostgreSQL at ${where.host}${where.pathname}`,
    close: () => prisma.$disconnect(),
  };
}

async function openMysql(url: string): Promise<Database> {
  const where = new URL(url);
  const database = decodeURIComponent(where.pathname.slice(1));
  if (!database) throw new Error(`DATABASE_URL names no database (mysql://user@host:port/DATABASE): ${url}`);
  const connect = (withDatabase: boolean) =>
    mariadb.createConnection({
      host: where.hostname,
      port: Number(where.port || 3306),
      user: decodeURIComponent(where.username || "root"),
      password: decodeURIComponent(where.password),
      ...(withDatabase ? { database } : {}),
      multipleStatements: true,
    });
  // The first start on a server: make the database (utf8mb4, as `prisma migrate` would).
  const admin = await connect(false);
  try {
    await admin.query(
      `CREATE DATABASE IF NOT EXISTS \`${database.replaceAll("`", "``")}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`,
    );
  } finally {
    await admin.end();
  }
  const conn = await connect(true);
  try {
    await applyMigrations(
      {
        exec: (sql) => conn.query(sql),
        query: async (sql, params) => ({ rows: await conn.query(sql, params) }),
      },
      "mysql",
    );
  } finally {
    await conn.end();
  }
  const [client, files] = await Promise.all([
    import("./generated/mysql/prisma/client.js"),
    import("./generated/mysql/files/index.js"),
  ]);
  const prisma = new client.PrismaClient({ adapter: new PrismaMariaDb(url) }) as unknown as PrismaClient;
  return {
    prisma,
    s3Files: files.s3Files as unknown as typeof s3Files,
    provider: "mysql",
    label: `MySQL/MariaDB at ${where.host}${where.pathname}`,
    close: () => prisma.$disconnect(),
  };
}

async function openSqlite(url: string): Promise<Database> {
  const path = url.replace(/^file:/i, "");
  await mkdir(dirname(resolve(path)), { recursive: true });
  const db = new SqliteDatabase(path);
  try {
    // WAL: readers and the one writer proceed together (the demo's page reads while an upload
    // writes). The mode is kept in the file, so the adapter's connection uses it too.
    db.pragma("journal_mode = WAL");
    await applyMigrations(
      {
        exec: async (sql) => db.exec(sql),
        query: async (sql, params = []) => {
          const statement = db.prepare(sql);
          if (statement.reader) return { rows: statement.all(...params) };
          statement.run(...params);
          return { rows: [] };
        },
      },
      "sqlite",
    );
  } finally {
    db.close();
  }
  const [client, files] = await Promise.all([
    import("./generated/sqlite/prisma/client.js"),
    import("./generated/sqlite/files/index.js"),
  ]);
  // Wait up to 10 s for the file's write lock rather than fail at once with SQLITE_BUSY.
  const prisma = new client.PrismaClient({
    adapter: new PrismaBetterSqlite3({ url, timeout: 10_000 }),
  }) as unknown as PrismaClient;
  return {
    prisma,
    s3Files: files.s3Files as unknown as typeof s3Files,
    provider: "sqlite",
    label: `SQLite in ${resolve(path)}`,
    close: () => prisma.$disconnect(),
  };
}

/**
 * `S3_ENDPOINT` or `S3_BUCKET` → that S3 service (credentials from `S3_ACCESS_KEY_ID` /
 * `S3_SECRET_ACCESS_KEY`, else the AWS SDK's default chain: environment, profile, instance or
 * container metadata); otherwise s3rver on 127.0.0.1 with its files in `dataDir/s3`.
 */
export async function openStorage(dataDir: string): Promise<Storage> {
  const endpoint = process.env.S3_ENDPOINT;
  if (endpoint || process.env.S3_BUCKET) {
    const bucket = process.env.S3_BUCKET ?? "prisma-s3-files-demo";
    const accessKeyId = process.env.S3_ACCESS_KEY_ID;
    const secretAccessKey = process.env.S3_SECRET_ACCESS_KEY ?? "";
    const session = createSession({
      bucket,
      region: process.env.S3_REGION ?? (endpoint ? "us-east-1" : undefined),
      ...(endpoint
        ? { endpoint, forcePathStyle: process.env.S3_FORCE_PATH_STYLE !== "false", checksums: "when_required" }
        : {}),
      ...(accessKeyId ? { credentials: { accessKeyId, secretAccessKey } } : {}),
    });
    // An S3-compatible server without S3_BUCKET: make the demo's bucket the first time.
    if (endpoint && !process.env.S3_BUCKET) await ensureBucket(session, bucket);
    return {
      session,
      label: `S3 bucket ${bucket}${endpoint ? ` at ${endpoint}` : ""}`,
      async allowBrowserUploads(origins) {
        console.log(
          `direct uploads: bucket ${bucket} needs this CORS rule (not set by the demo):\n  ${JSON.stringify([directUploadCorsRule(origins)])}`,
        );
      },
      close: () => session.destroy(),
    };
  }

  makeS3rverDurable();
  const directory = join(dataDir, "s3");
  await mkdir(directory, { recursive: true });
  const bucket = "demo";
  const server = new S3rver({
    address: "127.0.0.1",
    port: Number(process.env.S3RVER_PORT ?? 0),
    silent: true,
    directory,
    configureBuckets: [{ name: bucket }],
  });
  const { port } = await server.run();
  const s3rverEndpoint = `http://127.0.0.1:${port}`;
  const session = createSession({
    bucket,
    region: "us-east-1",
    endpoint: s3rverEndpoint,
    forcePathStyle: true,
    // s3rver's built-in account, handed out as if it were temporary credentials (as instance or
    // container metadata hands them out), so that the footer shows what the session does with
    // them: one fetch for every request and signed URL, a refresh ahead of expiry.
    credentials: async () => ({
      accessKeyId: "S3RVER",
      secretAccessKey: "S3RVER",
      expiration: new Date(Date.now() + 3600_000),
    }),
    credentialSource: "s3rver account (as 1-hour temporary credentials)",
    checksums: "when_required",
  });
  return {
    session,
    label: `s3rver at ${s3rverEndpoint}, bucket ${bucket}, files in ${directory}`,
    async allowBrowserUploads(origins) {
      await session.client.send(
        new PutBucketCorsCommand({
          Bucket: bucket,
          CORSConfiguration: { CORSRules: [directUploadCorsRule(origins)] },
        }),
      );
    },
    async close() {
      await session.destroy();
      await server.close();
    },
  };
}

async function ensureBucket(session: S3Session, bucket: string): Promise<void> {
  try {
    await session.client.send(new HeadBucketCommand({ Bucket: bucket }));
  } catch (error) {
    if ((error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode !== 404) throw error;
    await session.client.send(new CreateBucketCommand({ Bucket: bucket }));
  }
}
