/**
 * The SQL the binding runs itself, per database: row locks, key locks, checks and time. The
 * journal's statements (journal.ts) are built from these pieces; everything else goes through
 * Prisma's query API.
 *
 * - PostgreSQL (and PGlite, CockroachDB): row locks `FOR UPDATE`, key locks
 *   `pg_advisory_xact_lock`, one statement per phase (data-modifying CTEs, `LATERAL`).
 * - MySQL/MariaDB (MariaDB 10.6+: `SKIP LOCKED`, `RETURNING`): row locks `FOR UPDATE` (a locking
 *   read sees the latest committed row, not a REPEATABLE READ snapshot), key locks as rows of the
 *   journal itself (`GET_LOCK` is held by the session, not the transaction).
 * - SQLite: one writer at a time for the whole database. Every transaction of ours starts with a
 *   write, so it holds that lock before it reads; nothing finer exists or is needed.
 */
import { createHash } from "node:crypto";
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
export type JournalField =
  | "id"
  | "kind"
  | "storage"
  | "objectKey"
  | "owner"
  | "notBefore"
  | "attempts"
  | "lastError"
  | "createdAt";

/** One SQL statement with its parameters. */
export interface Statement {
  sql: string;
  values: unknown[];
  /** Returns no rows: run with `$executeRawUnsafe` (MySQL and SQLite refuse a query that returns none). */
  execute?: true;
}

/** A statement as Prisma's raw query on `client` (lazy: it can go into a batch `$transaction`). */
export function raw(client: SqlClient, st: Statement): Promise<unknown> {
  return st.execute ? client.$executeRawUnsafe(st.sql, ...st.values) : client.$queryRawUnsafe(st.sql, ...st.values);
}

/** Collects a statement's parameters in order, each use a placeholder of its own. */
export class Params {
  readonly values: unknown[] = [];
  constructor(private readonly dialect: Dialect) {}
  /** The placeholder for `value`. */
  p(value: unknown): string {
    return this.dialect.param(this.values.push(value));
  }
  /** `p, p, ...` for each of `values`, or `NULL` for none (so `IN (...)` stays valid SQL). */
  list(values: readonly unknown[]): string {
    return values.length > 0 ? values.map((v) => this.p(v)).join(", ") : "NULL";
  }
  statement(sql: string, execute?: "execute"): Statement {
    return execute ? { sql, values: this.values, execute: true } : { sql, values: this.values };
  }
}

/** A (storage, key) pair a transaction locks. */
export interface KeyLock {
  storage: string;
  key: string;
}

/** The SQL of one database. */
export interface Dialect {
  readonly kind: "postgresql" | "mysql" | "sqlite";
  quote(identifier: string): string;
  /** The placeholder of the n-th (1-based) parameter. */
  param(n: number): string;
  table(fields: FileFieldsMetadataShape, model: string): Table;
  /** ` FOR UPDATE`, or nothing where the database locks as a whole (SQLite). */
  readonly forUpdate: string;
  /**
   * What makes a read in a transaction see the latest committed rows: MySQL's REPEATABLE READ
   * reads a snapshot taken at the transaction's first read unless the read locks.
   */
  readonly readLatest: string;
  /** A statement that takes the database's write lock (SQLite), or none. */
  writeLock(journal: Table): Statement | undefined;
  /**
   * The isolation level of our own transactions, where the default does not suit: MySQL's
   * REPEATABLE READ makes a locking read lock the gaps between index entries too, so that writes
   * recording other keys of the journal would wait for ours.
   */
  readonly isolationLevel?: "ReadCommitted";
  /** ` FOR UPDATE SKIP LOCKED` or the database's equivalent. */
  readonly skipLocked: string;
  /** The current time as Prisma keeps `DateTime` columns (UTC), read when evaluated (not at the transaction's start). */
  readonly now: string;
  /** The current time plus `seconds` (an SQL expression). */
  nowPlus(seconds: string): string;
  /**
   * A statement that fails (with {@link Dialect.isCheckFailure}) unless `condition`, an SQL
   * boolean over the rows of `from` without parameters (it may come first in the text), holds:
   * how a check aborts a batch transaction. `journal` is
   * the journal table (SQLite's check is a write into it, which also takes the write lock).
   */
  check(journal: Table, from: string, condition: string, values: unknown[]): Statement;
  /** Whether `error` is the failure of a {@link Dialect.check}. */
  isCheckFailure(error: unknown): boolean;
  /** Whether `error` is a deadlock, serialization failure or busy database worth retrying the transaction for. */
  isRetryable(error: unknown): boolean;
  /** Transaction-scoped locks on (storage, key) pairs, in one order for every caller. */
  lockKeys(journal: Table, keys: readonly KeyLock[]): Statement[];
  /** What a transaction runs once it is done with its key locks (before its commit, which releases them). */
  unlockKeys(journal: Table, keys: readonly KeyLock[]): Statement[];
  /**
   * Whether every query of a client runs on one connection, an open interactive transaction's
   * included (SQLite's driver adapters): a statement of ours outside a transaction then runs
   * inside whichever transaction is open, and goes with its rollback.
   */
  readonly sharedConnection: boolean;
}

/** Options of our own transactions on `dialect`: `base` plus its isolation level, if it sets one. */
export function transactionOptions<T extends object>(dialect: Dialect, base: T): T & { isolationLevel?: string } {
  return dialect.isolationLevel ? { ...base, isolationLevel: dialect.isolationLevel } : base;
}

/** Storage names have no ":" (the generator checks them), so "storage:key" is unambiguous. */
const lockName = (k: KeyLock) => `${k.storage}:${k.key}`;

const postgres: Dialect = {
  kind: "postgresql",
  quote: (identifier) => `"${identifier.replaceAll('"', '""')}"`,
  param: (n) => `$${n}`,
  table: (fields, model) => tableOf(postgres, fields, model),
  forUpdate: " FOR UPDATE",
  readLatest: "",
  writeLock: () => undefined,
  skipLocked: " FOR UPDATE SKIP LOCKED",
  // `timestamp(3)` columns hold UTC, as Prisma writes them, whatever the session's TimeZone. The
  // clock, not the transaction's start (now()): a write that waited for a lock keeps its grace.
  now: "(clock_timestamp() AT TIME ZONE 'UTC')",
  nowPlus: (seconds) => `((clock_timestamp() AT TIME ZONE 'UTC') + make_interval(secs => ${seconds}))`,
  check(_journal, from, condition, values) {
    // Division by zero at run time (the CASE is not constant, so the planner cannot fold it).
    return { sql: `SELECT 1 / (CASE WHEN ${condition} THEN 1 ELSE 0 END) AS ok FROM ${from}`, values };
  },
  isCheckFailure: (error) => databaseError(error).code === "22012",
  isRetryable(error) {
    const { code } = databaseError(error);
    return prismaCode(error) === "P2034" || code === "40P01" || code === "40001";
  },
  lockKeys(_journal, keys) {
    if (keys.length === 0) return [];
    const ids = [...new Set(keys.map(lockName))].sort();
    // Sorted in a subquery, locked in that order by the aggregate: no two callers deadlock.
    return [
      {
        sql: `SELECT count(pg_advisory_xact_lock(hashtextextended(k, 7315))) AS n FROM (SELECT k FROM unnest($1::text[]) AS k ORDER BY k) AS s`,
        values: [ids],
      },
    ];
  },
  unlockKeys: () => [],
  sharedConnection: false,
};

/**
 * Journal ids below zero are key locks (MySQL): autoincrement ids are positive. 31 bits, so that
 * an `Int` id column holds them too; two keys sharing one only wait for each other.
 */
function lockId(k: KeyLock): bigint {
  const digest = createHash("sha256").update(lockName(k)).digest();
  return -BigInt(digest.readUInt32BE(0) >>> 1) - 1n;
}

const mysql: Dialect = {
  kind: "mysql",
  quote: (identifier) => `\`${identifier.replaceAll("`", "``")}\``,
  param: () => "?",
  table: (fields, model) => tableOf(mysql, fields, model),
  forUpdate: " FOR UPDATE",
  readLatest: " LOCK IN SHARE MODE",
  isolationLevel: "ReadCommitted",
  writeLock: () => undefined,
  skipLocked: " FOR UPDATE SKIP LOCKED",
  // UTC_TIMESTAMP() is the statement's start; SYSDATE() moves. Their sum is the clock in UTC
  // whatever the session's time zone (DATETIME(3) columns hold UTC, as Prisma writes them).
  now: "DATE_ADD(UTC_TIMESTAMP(6), INTERVAL TIMESTAMPDIFF(MICROSECOND, NOW(6), SYSDATE(6)) MICROSECOND)",
  nowPlus: (seconds) =>
    `DATE_ADD(UTC_TIMESTAMP(6), INTERVAL TIMESTAMPDIFF(MICROSECOND, NOW(6), SYSDATE(6)) + ROUND(${seconds} * 1000000) MICROSECOND)`,
  check(_journal, from, condition, values) {
    // "Subquery returns more than 1 row" whatever the sql_mode (a division by zero or a NULL in
    // a NOT NULL column only warns outside strict mode).
    return {
      sql: `SELECT CASE WHEN ${condition} THEN 1 ELSE (SELECT 1 UNION ALL SELECT 2) END AS ok FROM ${from}`,
      values,
    };
  },
  isCheckFailure: (error) => databaseError(error).code === "1242",
  isRetryable(error) {
    const { code } = databaseError(error);
    // 1213 deadlock (P2034), 1205 lock wait timeout, 1020 record changed (snapshot isolation).
    return prismaCode(error) === "P2034" || code === "1213" || code === "1205" || code === "1020";
  },
  lockKeys(journal, keys) {
    if (keys.length === 0) return [];
    // A row of the journal per key, inserted (or updated) under an exclusive lock that the
    // transaction holds until it ends; ids below zero, sorted so no two callers deadlock.
    const locks = uniqueLocks(keys);
    const params = new Params(mysql);
    const c = journal.column;
    const rows = locks.map(
      ({ id, key }) =>
        `(${params.p(id)}, 'lock', ${params.p(key.storage)}, ${params.p(key.key)}, '9999-12-31', ${mysql.now})`,
    );
    return [
      params.statement(
        `INSERT INTO ${journal.sql} (${c("id")}, ${c("kind")}, ${c("storage")}, ${c("objectKey")}, ${c("notBefore")}, ${c("createdAt")}) VALUES ${rows.join(", ")} ON DUPLICATE KEY UPDATE ${c("attempts")} = ${c("attempts")} + 1`,
        "execute",
      ),
    ];
  },
  unlockKeys(journal, keys) {
    if (keys.length === 0) return [];
    // Deleted in the same transaction: the lock is held until the commit all the same.
    const params = new Params(mysql);
    const ids = params.list(uniqueLocks(keys).map((l) => l.id));
    return [
      params.statement(
        `DELETE FROM ${journal.sql} WHERE ${journal.column("id")} IN (${ids}) AND ${journal.column("kind")} = 'lock'`,
        "execute",
      ),
    ];
  },
  sharedConnection: false,
};

function uniqueLocks(keys: readonly KeyLock[]): { id: bigint; key: KeyLock }[] {
  const byId = new Map<bigint, KeyLock>();
  for (const k of keys) byId.set(lockId(k), k);
  return [...byId].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([id, key]) => ({ id, key }));
}

/** SQLite's text form of `DateTime` (as Prisma's adapters write it by default: ISO 8601, UTC). */
const SQLITE_TIME = "'%Y-%m-%dT%H:%M:%f+00:00'";

const sqlite: Dialect = {
  kind: "sqlite",
  quote: postgres.quote,
  param: () => "?",
  table: (fields, model) => tableOf(sqlite, fields, model),
  forUpdate: "",
  readLatest: "",
  writeLock: (journal) => ({
    // Any write takes the database's one write lock, whatever it changes (here: nothing).
    sql: `UPDATE ${journal.sql} SET ${journal.column("attempts")} = ${journal.column("attempts")} WHERE 0`,
    values: [],
    execute: true,
  }),
  // One writer at a time: a claim's transaction holds the database's write lock before it reads.
  skipLocked: "",
  now: `strftime(${SQLITE_TIME}, 'now')`,
  nowPlus: (seconds) => `strftime(${SQLITE_TIME}, 'now', printf('%+.3f seconds', ${seconds}))`,
  check(journal, from, condition, values) {
    // A NULL into the journal's NOT NULL `kind` (SQLite enforces it always, and has no other
    // way for a plain statement to fail on demand). A write: it takes the write lock first.
    const c = journal.column;
    return {
      sql: `INSERT INTO ${journal.sql} (${c("kind")}, ${c("storage")}, ${c("objectKey")}, ${c("notBefore")}, ${c("createdAt")}) SELECT NULL, '', '', '', '' FROM ${from} WHERE NOT (${condition})`,
      values,
      execute: true,
    };
  },
  isCheckFailure(error) {
    const { code, message } = databaseError(error);
    return code === "SQLITE_CONSTRAINT_NOTNULL" && /\.\W?kind\W?$/.test(message ?? "");
  },
  isRetryable(error) {
    const { code } = databaseError(error);
    return code?.startsWith("SQLITE_BUSY") === true || code?.startsWith("SQLITE_LOCKED") === true;
  },
  lockKeys(journal, keys) {
    return keys.length === 0 ? [] : [sqlite.writeLock(journal)!];
  },
  unlockKeys: () => [],
  sharedConnection: true,
};

function tableOf(dialect: Dialect, fields: FileFieldsMetadataShape, model: string): Table {
  const meta = names(fields[model]);
  const table = dialect.quote(meta.dbName ?? model);
  return {
    model,
    sql: meta.schema && dialect.kind === "postgresql" ? `${dialect.quote(meta.schema)}.${table}` : table,
    column: (field) => dialect.quote(meta.columns?.[field] ?? field),
  };
}

function prismaCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown })?.code;
  return typeof code === "string" ? code : undefined;
}

/** The database's own error code and message under a Prisma error (driver adapters put them in `meta`). */
function databaseError(error: unknown): { code?: string; message?: string } {
  const meta = (error as { meta?: { driverAdapterError?: { cause?: Record<string, unknown> } } })?.meta;
  const cause = meta?.driverAdapterError?.cause;
  const code = cause?.originalCode ?? cause?.code;
  const message = cause?.originalMessage ?? cause?.message;
  return {
    code: typeof code === "string" || typeof code === "number" ? String(code) : undefined,
    message: typeof message === "string" ? message : undefined,
  };
}

/**
 * A syntax error from a MySQL server without what the journal's statements need (MySQL itself
 * has no `INSERT … RETURNING`; MariaDB before 10.6 no `SKIP LOCKED`), as a configuration error
 * that says so; otherwise `error` itself.
 */
export function explainUnsupported(dialect: Dialect, error: unknown): unknown {
  if (dialect.kind !== "mysql") return error;
  const { code, message } = databaseError(error);
  if (code !== "1064" || !/RETURNING|SKIP LOCKED/i.test(message ?? "")) return error;
  return new PrismaS3FilesError(
    "CONFIGURATION",
    "prisma-s3-files needs MariaDB 10.6 or later on the mysql provider (INSERT … RETURNING and SKIP LOCKED); this server refused them",
    { cause: error },
  );
}

/** The journal model's metadata: its name and the dialect of its database. */
export function findJournal(fields: FileFieldsMetadataShape): { model: string; dialect: Dialect } | undefined {
  for (const [model, meta] of Object.entries(fields)) {
    const journal = names(meta).journal;
    if (!journal) continue;
    const dialect = DIALECTS[journal.provider];
    if (dialect) return { model, dialect };
    throw new PrismaS3FilesError(
      "CONFIGURATION",
      `prisma-s3-files coordinates writes through the database, and supports PostgreSQL, MySQL/MariaDB and SQLite; this schema's provider is "${journal.provider}"`,
    );
  }
  return undefined;
}

const DIALECTS: Readonly<Record<string, Dialect>> = {
  postgresql: postgres,
  postgres,
  cockroachdb: postgres,
  mysql,
  sqlite,
};
