/**
 * The file journal: a table in the application's database (the `FileJournal` model users add)
 * holding every object the binding may have to delete later. An `upload` record is written
 * before an upload's first byte and goes in the transaction that commits its row; a `delete`
 * record is written in the transaction that releases a key, due `deleteAfterSeconds` later. A
 * crash at any point leaves a record some process's drain finishes (see drain.ts). Once the drain
 * has deleted an object, its record stays for a while as a `gone` tombstone: a write copying that
 * key (read from a row before the deletion) is refused instead of pointing a row at nothing.
 */
import type { FileFieldsMetadataShape } from "../metadata-types.js";
import type { Dialect, JournalField, SqlClient, Statement, Table } from "./sql.js";

/** A claimed record, as the drain sees it. */
export interface JournalRecord {
  id: bigint;
  kind: "upload" | "delete" | "deleting" | "gone";
  storage: string;
  key: string;
  attempts: number;
}

/** An object a record is about. */
export interface JournalEntry {
  storage: string;
  key: string;
  /** `Model.field`. */
  owner: string;
}

/** A file column whose old keys a write records for deletion. */
export interface JournaledColumn {
  field: string;
  storage: string;
  owner: string;
  delaySeconds: number;
}

/** Longest backoff between failed deletions of one record. */
const MAX_BACKOFF_SECONDS = 3600;

/** The journal's statements on one database. */
export class Journal {
  readonly #table: Table;
  readonly #dialect: Dialect;

  constructor(fields: FileFieldsMetadataShape, model: string, dialect: Dialect) {
    this.#table = dialect.table(fields, model);
    this.#dialect = dialect;
  }

  #c(field: JournalField): string {
    return this.#table.column(field);
  }

  /** `$1, $2, ...` for `count` parameters after the first `offset`. */
  #params(count: number, offset = 0): string {
    return Array.from({ length: count }, (_, i) => this.#dialect.param(offset + i + 1)).join(", ");
  }

  /**
   * Records an upload before its bytes are sent, committed on its own; due for the drain after
   * `expirySeconds`. A tombstone of the name (an object deleted before) goes: the name means new bytes now.
   */
  async recordUpload(client: SqlClient, entry: JournalEntry, expirySeconds: number): Promise<bigint> {
    const c = (f: JournalField) => this.#c(f);
    const rows = await client.$queryRawUnsafe<{ id: bigint }[]>(
      `WITH cleared AS (DELETE FROM ${this.#table.sql} WHERE ${c("kind")} = 'gone' AND ${c("storage")} = $1 AND ${c("objectKey")} = $2) INSERT INTO ${this.#table.sql} (${c("kind")}, ${c("storage")}, ${c("objectKey")}, ${c("owner")}, ${c("notBefore")}, ${c("createdAt")}) VALUES ('upload', $1, $2, $3, ${this.#dialect.nowPlus("$4")}, ${this.#dialect.now}) RETURNING ${c("id")} AS id`,
      entry.storage,
      entry.key,
      entry.owner,
      expirySeconds,
    );
    return BigInt(rows[0]!.id);
  }

  /**
   * Locks rows of `table` by primary key (in key order) and records the deletion of every key
   * they hold in `columns`: the write that follows in the same transaction replaces or deletes
   * them (a key it keeps is dropped by the drain, which finds it held). Returns `id` and `owner`
   * per record. Without columns, only locks.
   */
  lockAndRecordRows(
    table: Table,
    primaryKey: readonly string[],
    keys: readonly unknown[][],
    columns: readonly JournaledColumn[],
  ): Statement {
    const values: unknown[] = [];
    const p = (v: unknown) => this.#dialect.param(values.push(v));
    const pk = primaryKey.map((f) => `t.${table.column(f)}`);
    const where =
      pk.length === 1
        ? `${pk[0]} IN (${keys.map((k) => p(k[0])).join(", ")})`
        : `(${pk.join(", ")}) IN (${keys.map((k) => `(${k.map(p).join(", ")})`).join(", ")})`;
    if (columns.length === 0) {
      return { sql: `SELECT 1 FROM ${table.sql} t WHERE ${where} ORDER BY ${pk.join(", ")} FOR UPDATE`, values };
    }
    const c = (f: JournalField) => this.#c(f);
    // Locked in a subquery: the outer query's clock is read once the lock is ours (a grace period
    // counts from then, not from before a wait for the lock).
    const locked = `SELECT ${columns.map((col, i) => `t.${table.column(col.field)} AS c${i}`).join(", ")} FROM ${table.sql} t WHERE ${where} ORDER BY ${pk.join(", ")} FOR UPDATE`;
    const rows = columns.map(
      (col, i) => `(${p(col.storage)}::text, r.c${i}, ${p(col.owner)}::text, ${p(col.delaySeconds)}::float8)`,
    );
    const now = this.#dialect.now;
    return {
      sql: `INSERT INTO ${this.#table.sql} (${c("kind")}, ${c("storage")}, ${c("objectKey")}, ${c("owner")}, ${c("notBefore")}, ${c("createdAt")}) SELECT 'delete', v.s, v.k, v.o, ${this.#dialect.nowPlus("v.d")}, ${now} FROM (${locked}) AS r CROSS JOIN LATERAL (VALUES ${rows.join(", ")}) AS v(s, k, o, d) WHERE v.k IS NOT NULL RETURNING ${c("id")} AS id, ${c("owner")} AS owner`,
      values,
    };
  }

  /**
   * Takes a write's upload records in its transaction: `definite` ones go (the row holds their
   * keys now), `conditional` ones stay locked for the drain to decide after the commit. Fails
   * the transaction (a {@link Dialect.check}) if any is gone: a drain took it as abandoned.
   */
  takeUploadsStatement(definite: readonly bigint[], conditional: readonly bigint[]): Statement {
    const c = (f: JournalField) => this.#c(f);
    const values: unknown[] = [];
    const p = (v: unknown) => this.#dialect.param(values.push(v));
    const list = (ids: readonly bigint[]) => (ids.length > 0 ? ids.map(p).join(", ") : "NULL");
    const taken = `DELETE FROM ${this.#table.sql} WHERE ${c("id")} IN (${list(definite)}) AND ${c("kind")} = 'upload' RETURNING 1`;
    const held = `SELECT 1 FROM ${this.#table.sql} WHERE ${c("id")} IN (${list(conditional)}) AND ${c("kind")} = 'upload' FOR UPDATE`;
    const expected = p(definite.length + conditional.length);
    const check = this.#dialect.check(
      "(SELECT count(*) AS n FROM taken) AS a, (SELECT count(*) AS n FROM held) AS b",
      `a.n + b.n = ${expected}`,
      values,
    );
    return { sql: `WITH taken AS (${taken}), held AS (${held}) ${check.sql}`, values };
  }

  /** Fails the transaction (a {@link Dialect.check}) if any of `keys` has a tombstone. */
  refuseGoneStatement(storage: string, keys: readonly string[]): Statement {
    const c = (f: JournalField) => this.#c(f);
    const values: unknown[] = [storage];
    const p = (v: unknown) => this.#dialect.param(values.push(v));
    const inner = `SELECT count(*) AS n FROM ${this.#table.sql} WHERE ${c("kind")} IN ('gone', 'deleting') AND ${c("storage")} = ${this.#dialect.param(1)} AND ${c("objectKey")} IN (${keys.map(p).join(", ")})`;
    return this.#dialect.check(`(${inner}) AS g`, "g.n = 0", values);
  }

  /** Records deletions of keys read outside the transaction (a model without a primary key). */
  recordDeletionsStatement(entries: readonly (JournalEntry & { delaySeconds: number })[]): Statement {
    const c = (f: JournalField) => this.#c(f);
    const values: unknown[] = [];
    const p = (v: unknown) => this.#dialect.param(values.push(v));
    const rows = entries.map(
      (e) =>
        `('delete', ${p(e.storage)}, ${p(e.key)}, ${p(e.owner)}, ${this.#dialect.nowPlus(p(e.delaySeconds))}, ${this.#dialect.now})`,
    );
    return {
      sql: `INSERT INTO ${this.#table.sql} (${c("kind")}, ${c("storage")}, ${c("objectKey")}, ${c("owner")}, ${c("notBefore")}, ${c("createdAt")}) VALUES ${rows.join(", ")} RETURNING ${c("id")} AS id, ${c("owner")} AS owner`,
      values,
    };
  }

  /** Removes records (a failed write's uploads, once their objects are deleted). */
  async forget(client: SqlClient, ids: readonly bigint[]): Promise<void> {
    if (ids.length === 0) return;
    await client.$executeRawUnsafe(
      `DELETE FROM ${this.#table.sql} WHERE ${this.#c("id")} IN (${this.#params(ids.length)})`,
      ...ids,
    );
  }

  /**
   * Claims due records, locked until the transaction ends; records another drain holds are
   * skipped. With `ids` (a write settling its own records), those records whatever their time,
   * waiting for a drain that holds one: when the write returns, its deletions are done.
   */
  async claim(
    tx: SqlClient,
    options: { ids?: readonly bigint[]; limit: number; storages: readonly string[] },
  ): Promise<JournalRecord[]> {
    const c = (f: JournalField) => this.#c(f);
    const ids = options.ids ?? [];
    // Only records of storages this process has: another configuration's are not ours to act on.
    const values: unknown[] = [options.limit];
    const p = (v: unknown) => this.#dialect.param(values.push(v));
    const own = `${c("storage")} IN (${options.storages.map(p).join(", ") || "NULL"})`;
    const where =
      ids.length > 0
        ? `${c("id")} IN (${ids.map(p).join(", ")}) AND ${c("kind")} IN ('upload', 'delete')`
        : `${c("notBefore")} <= ${this.#dialect.now}`;
    const lock = ids.length > 0 ? " FOR UPDATE" : this.#dialect.skipLocked;
    const rows = await tx.$queryRawUnsafe<
      { id: bigint; kind: string; storage: string; key: string; attempts: number }[]
    >(
      `SELECT ${c("id")} AS id, ${c("kind")} AS kind, ${c("storage")} AS storage, ${c("objectKey")} AS key, ${c("attempts")} AS attempts FROM ${this.#table.sql} WHERE ${where} AND ${own} ORDER BY ${c("notBefore")}, ${c("id")} LIMIT $1${lock}`,
      ...values,
    );
    return rows.map((r) => ({
      id: BigInt(r.id),
      kind: r.kind === "upload" || r.kind === "gone" || r.kind === "deleting" ? r.kind : "delete",
      storage: r.storage,
      key: r.key,
      attempts: Number(r.attempts),
    }));
  }

  /**
   * Keys among `keys` (of one storage) that records other than `claimed` keep alive: an upload
   * not expired (a write storing it, or its row not committed yet), a deletion not due yet (a
   * grace period). Read before the rows are: a write commits its row and drops its record at
   * once, and reading in this order never misses both.
   */
  async liveKeys(
    tx: SqlClient,
    storage: string,
    keys: readonly string[],
    claimed: readonly bigint[],
  ): Promise<Set<string>> {
    if (keys.length === 0) return new Set();
    const c = (f: JournalField) => this.#c(f);
    const notClaimed =
      claimed.length > 0 ? ` AND ${c("id")} NOT IN (${this.#params(claimed.length, keys.length + 1)})` : "";
    const rows = await tx.$queryRawUnsafe<{ key: string }[]>(
      `SELECT DISTINCT ${c("objectKey")} AS key FROM ${this.#table.sql} WHERE ${c("storage")} = $1 AND ${c("objectKey")} IN (${this.#params(keys.length, 1)})${notClaimed} AND (${c("kind")} = 'upload' OR (${c("kind")} = 'delete' AND ${c("notBefore")} > ${this.#dialect.now}))`,
      storage,
      ...keys,
      ...claimed,
    );
    return new Set(rows.map((r) => r.key));
  }

  /** Keys among `keys` (of one storage) with an upload or deletion record: the sweep leaves them to the drain. */
  async recordedKeys(client: SqlClient, storage: string, keys: readonly string[]): Promise<Set<string>> {
    return this.#keysOfKind(client, storage, keys, "IN ('upload', 'delete', 'deleting')");
  }

  /** Keys among `keys` (of one storage) the drain deleted lately, or may have (tombstones, failed deletions). */
  async goneKeys(client: SqlClient, storage: string, keys: readonly string[]): Promise<Set<string>> {
    return this.#keysOfKind(client, storage, keys, "IN ('gone', 'deleting')");
  }

  async #keysOfKind(client: SqlClient, storage: string, keys: readonly string[], kind: string): Promise<Set<string>> {
    if (keys.length === 0) return new Set();
    const c = (f: JournalField) => this.#c(f);
    const rows = await client.$queryRawUnsafe<{ key: string }[]>(
      `SELECT DISTINCT ${c("objectKey")} AS key FROM ${this.#table.sql} WHERE ${c("storage")} = $1 AND ${c("objectKey")} IN (${this.#params(keys.length, 1)}) AND ${c("kind")} ${kind}`,
      storage,
      ...keys,
    );
    return new Set(rows.map((r) => r.key));
  }

  /**
   * The drain decided to delete these records' objects: `deleting` (copies of the keys are
   * refused from the commit on), due again after `leaseSeconds` in case the drain dies.
   */
  async decide(tx: SqlClient, ids: readonly bigint[], leaseSeconds: number): Promise<void> {
    if (ids.length === 0) return;
    const c = (f: JournalField) => this.#c(f);
    await tx.$executeRawUnsafe(
      `UPDATE ${this.#table.sql} SET ${c("kind")} = 'deleting', ${c("notBefore")} = ${this.#dialect.nowPlus("$1")} WHERE ${c("id")} IN (${this.#params(ids.length, 1)})`,
      leaseSeconds,
      ...ids,
    );
  }

  /** Tombstones for keys the sweep deletes (written before the request: it may delete even if it fails). */
  async buryKeys(tx: SqlClient, storage: string, keys: readonly string[], seconds: number): Promise<void> {
    if (keys.length === 0) return;
    const c = (f: JournalField) => this.#c(f);
    const values: unknown[] = [storage, seconds];
    const p = (v: unknown) => this.#dialect.param(values.push(v));
    const rows = keys.map((k) => `('gone', $1, ${p(k)}, ${this.#dialect.nowPlus("$2")}, ${this.#dialect.now})`);
    await tx.$executeRawUnsafe(
      `INSERT INTO ${this.#table.sql} (${c("kind")}, ${c("storage")}, ${c("objectKey")}, ${c("notBefore")}, ${c("createdAt")}) VALUES ${rows.join(", ")}`,
      ...values,
    );
  }

  /** The drain deleted these records' objects: each record stays as a tombstone for `seconds`. */
  async bury(tx: SqlClient, ids: readonly bigint[], seconds: number): Promise<void> {
    if (ids.length === 0) return;
    const c = (f: JournalField) => this.#c(f);
    await tx.$executeRawUnsafe(
      `UPDATE ${this.#table.sql} SET ${c("kind")} = 'gone', ${c("attempts")} = 0, ${c("lastError")} = NULL, ${c("notBefore")} = ${this.#dialect.nowPlus("$1")} WHERE ${c("id")} IN (${this.#params(ids.length, 1)})`,
      seconds,
      ...ids,
    );
  }

  /**
   * A deletion failed: try again later (exponential backoff), keeping the error. The record is
   * `deleting` from now on: the request may have deleted the object all the same, so copies of
   * the key are refused as for a tombstone (a retry checks the rows and records again first).
   */
  async failed(tx: SqlClient, record: JournalRecord, error: string): Promise<void> {
    const c = (f: JournalField) => this.#c(f);
    const delay = Math.min(MAX_BACKOFF_SECONDS, 10 * 2 ** Math.min(record.attempts, 12));
    await tx.$executeRawUnsafe(
      `UPDATE ${this.#table.sql} SET ${c("kind")} = 'deleting', ${c("attempts")} = ${c("attempts")} + 1, ${c("lastError")} = $1, ${c("notBefore")} = ${this.#dialect.nowPlus("$2")} WHERE ${c("id")} = $3`,
      error.slice(0, 1000),
      delay,
      record.id,
    );
  }
}
