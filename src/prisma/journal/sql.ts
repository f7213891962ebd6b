/**
 * The SQL the binding runs itself, per database: row locks, key locks and the file journal's
 * statements. Everything else goes through Prisma's query API. Only PostgreSQL (and PGlite) for
 * now; a dialect is the place where MySQL/MariaDB and SQLite add their own.
 */
import { PrismaS3FilesError } from "../../errors.js";
import type { FileFieldsMetadataShape, ModelFileMetadata } from "../metadata-types.js";

/** Raw SQL on a Prisma client or transaction client (`$queryRawUnsafe` / `$executeRawUnsafe`). */
export interface SqlClient {
  $queryRawUnsafe<T = unknown>(sql: string, ...values: unknown[]): Promise<T>;
  $executeRawUnsafe(sql: string, ...values: unknown[]): Promise<number>;
}

/** Where a model lives in the database, as the generator records it (`@@map`, `@map`, `@@schema`). */
interface DatabaseNames {
  dbName?: string;
  schema?: string;
  columns?: { readonly [field: string]: string };
  journal?: { readonly provider: string };
}

const names = (meta: ModelFileMetadata | undefined): DatabaseNames => (meta ?? {}) as DatabaseNames;

/** A model's table and column names in SQL. */
export interface Table {
  model: string;
  /** The quoted, schema-qualified table name. */
  sql: string;
  /** A field's quoted column name. */
  column(field: string): string;
}

/** The journal's columns, by the field names of the model users paste. */
const JOURNAL_FIELDS = [
  "id",
  "kind",
  "storage",
  "objectKey",
  "owner",
  "notBefore",
  "attempts",
  "lastError",
  "createdAt",
] as const;
export type JournalField = (typeof JOURNAL_FIELDS)[number];

/** One SQL statement with its parameters. */
export interface Statement {
  sql: string;
  values: unknown[];
}

/** The SQL of one database. */
export interface Dialect {
  readonly provider: string;
  table(fields: FileFieldsMetadataShape, model: string): Table;
  /** Takes transaction-scoped locks on (storage, key) pairs, in one order for every caller. */
  lockKeys(tx: SqlClient, keys: readonly { storage: string; key: string }[]): Promise<void>;
  /** {@link Dialect.lockKeys} as a statement. */
  lockKeysStatement(keys: readonly { storage: string; key: string }[]): Statement;
  /**
   * A statement that fails (with {@link Dialect.isCheckFailure}) unless `condition`, an SQL
   * boolean over the rows of `from`, holds: how a check aborts a batch transaction.
   */
  check(from: string, condition: string, values: unknown[]): Statement;
  /** Whether `error` is the failure of a {@link Dialect.check}. */
  isCheckFailure(error: unknown): boolean;
  /** `$1`, `$2`, ...: the placeholder of the n-th (1-based) parameter. */
  param(n: number): string;
  /** ` FOR UPDATE SKIP LOCKED` or the database's equivalent. */
  readonly skipLocked: string;
  /** The current time, as Prisma keeps `DateTime` columns (UTC). */
  readonly now: string;
  /** The current time plus `seconds` (a parameter). */
  nowPlus(param: string): string;
  /** Whether `error` is a deadlock or serialization failure worth retrying the transaction for. */
  isRetryable(error: unknown): boolean;
}

function quote(identifier: string): string {
  return `"${identifier.replaceAll('"', '""')}"`;
}

const postgres: Dialect = {
  provider: "postgresql",
  table(fields, model) {
    const meta = names(fields[model]);
    const table = quote(meta.dbName ?? model);
    return {
      model,
      sql: meta.schema ? `${quote(meta.schema)}.${table}` : table,
      column: (field) => quote(meta.columns?.[field] ?? field),
    };
  },
  async lockKeys(tx, keys) {
    if (keys.length === 0) return;
    const { sql, values } = postgres.lockKeysStatement(keys);
    await tx.$queryRawUnsafe(sql, ...values);
  },
  lockKeysStatement(keys) {
    // Storage names have no ":" (the generator checks them), so "storage:key" is unambiguous.
    const ids = [...new Set(keys.map((k) => `${k.storage}:${k.key}`))].sort();
    // Sorted in a subquery, locked in that order by the aggregate: no two callers deadlock.
    return {
      sql: `SELECT count(pg_advisory_xact_lock(hashtextextended(k, 7315))) AS n FROM (SELECT k FROM unnest($1::text[]) AS k ORDER BY k) AS s`,
      values: [ids],
    };
  },
  check(from, condition, values) {
    // Division by zero at run time (the CASE is not constant, so the planner cannot fold it).
    return { sql: `SELECT 1 / (CASE WHEN ${condition} THEN 1 ELSE 0 END) AS ok FROM ${from}`, values };
  },
  isCheckFailure(error) {
    return databaseCode(error) === "22012";
  },
  param: (n) => `$${n}`,
  skipLocked: " FOR UPDATE SKIP LOCKED",
  // `timestamp(3)` columns hold UTC, as Prisma writes them, whatever the session's TimeZone. The
  // clock, not the transaction's start (now()): a write that waited for a lock keeps its grace.
  now: "(clock_timestamp() AT TIME ZONE 'UTC')",
  nowPlus: (param) => `((clock_timestamp() AT TIME ZONE 'UTC') + make_interval(secs => ${param}))`,
  isRetryable(error) {
    const code = (error as { code?: unknown })?.code;
    if (code === "P2034") return true;
    const original = databaseCode(error);
    return original === "40P01" || original === "40001";
  },
};

/** The database's own error code under a Prisma error (driver adapters put it in `meta`). */
function databaseCode(error: unknown): string | undefined {
  const meta = (error as { meta?: { driverAdapterError?: { cause?: { originalCode?: unknown; code?: unknown } } } })
    ?.meta;
  const cause = meta?.driverAdapterError?.cause;
  const code = cause?.originalCode ?? cause?.code;
  return typeof code === "string" ? code : undefined;
}

/** The journal model's metadata: its name and the dialect of its database. */
export function findJournal(fields: FileFieldsMetadataShape): { model: string; dialect: Dialect } | undefined {
  for (const [model, meta] of Object.entries(fields)) {
    const journal = names(meta).journal;
    if (!journal) continue;
    const provider = journal.provider;
    if (provider === "postgresql" || provider === "postgres" || provider === "cockroachdb") {
      return { model, dialect: postgres };
    }
    throw new PrismaS3FilesError(
      "CONFIGURATION",
      `prisma-s3-files coordinates writes through the database, and supports PostgreSQL so far; this schema's provider is "${provider}"`,
    );
  }
  return undefined;
}
