import { readdirSync, readFileSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { CreateBucketCommand, HeadBucketCommand, PutBucketCorsCommand } from "@aws-sdk/client-s3";
import { PGlite } from "@electric-sql/pglite";
import { PrismaPg } from "@prisma/adapter-pg";
import pg from "pg";
import { PrismaPGlite } from "pglite-prisma-adapter";
import S3rver from "s3rver";
import { createSession, type S3Session } from "../../src/index.js";
// s3rver is not read-after-write consistent; the test harness's fix applies to the demo's too.
import { makeS3rverDurable } from "../../test/harness/s3rver-durable.js";
import { PrismaClient } from "./generated/prisma/client.js";

const MIGRATIONS_DIR = join(import.meta.dirname, "prisma", "migrations");

export interface Database {
  prisma: PrismaClient;
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

/** The two SQL calls the migration step needs; PGlite and `pg.Client` both have them. */
interface SqlRunner {
  /** Runs a script of several statements. */
  exec(sql: string): Promise<unknown>;
  query(sql: string, params?: unknown[]): Promise<{ rows: unknown[] }>;
}

/**
 * Applies the migrations under `prisma/migrations` that this database has not seen yet, each in
 * its own transaction, remembering them in `_demo_migrations`. (`prisma migrate deploy` does the
 * same on a machine with Prisma's schema engine; the demo must start without it.)
 */
export async function applyMigrations(db: SqlRunner): Promise<string[]> {
  await db.exec(
    `CREATE TABLE IF NOT EXISTS "_demo_migrations" ("name" TEXT PRIMARY KEY, "appliedAt" TIMESTAMPTZ NOT NULL DEFAULT now())`,
  );
  const { rows } = await db.query(`SELECT "name" FROM "_demo_migrations"`);
  const done = new Set(rows.map((r) => (r as { name: string }).name));
  const names = readdirSync(MIGRATIONS_DIR, { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .map((d) => d.name)
    .sort();
  const applied: string[] = [];
  for (const name of names) {
    if (done.has(name)) continue;
    const sql = readFileSync(join(MIGRATIONS_DIR, name, "migration.sql"), "utf8");
    await db.exec("BEGIN");
    try {
      await db.exec(sql);
      await db.query(`INSERT INTO "_demo_migrations" ("name") VALUES ($1)`, [name]);
      await db.exec("COMMIT");
    } catch (error) {
      await db.exec("ROLLBACK");
      throw new Error(`migration ${name} failed: ${(error as Error).message}`, { cause: error });
    }
    applied.push(name);
  }
  return applied;
}

/** `DATABASE_URL` → that PostgreSQL server; otherwise PGlite (PostgreSQL compiled to WebAssembly) in `dataDir/pglite`. */
export async function openDatabase(dataDir: string): Promise<Database> {
  const url = process.env.DATABASE_URL;
  if (url) {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      await applyMigrations({ exec: (sql) => client.query(sql), query: (sql, params) => client.query(sql, params) });
    } finally {
      await client.end();
    }
    const prisma = new PrismaClient({ adapter: new PrismaPg({ connectionString: url }) });
    const where = new URL(url);
    return { prisma, label: `PostgreSQL at ${where.host}${where.pathname}`, close: () => prisma.$disconnect() };
  }

  const directory = join(dataDir, "pglite");
  const db = new PGlite(directory);
  await applyMigrations(db);
  const prisma = new PrismaClient({ adapter: new PrismaPGlite(db) });
  return {
    prisma,
    label: `PGlite in ${directory}`,
    async close() {
      await prisma.$disconnect();
      await db.close();
    },
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
