/**
 * The file journal: a table in the application's database (the `FileJournal` model users add)
 * holding every object the binding may have to delete later. An `upload` record is written
 * before an upload's first byte and goes in the transaction that commits its row; a `delete`
 * record is written in the transaction that releases a key, due `deleteAfterSeconds` later. A
 * crash at any point leaves a record some process's drain finishes (see drain.ts). Once the drain
 * has deleted an object, its record stays for a while as a `gone` tombstone: a write copying that
 * key (read from a row before the deletion) is refused instead of pointing a row at nothing.
 */
import { FileExistsError } from "../../errors.js";
import type { FileFieldsMetadataShape } from "../metadata-types.js";
import {
  type Dialect,
  explainUnsupported,
  type JournalField,
  type KeyLock,
  Params,
  raw,
  type SqlClient,
  type Statement,
  type Table,
  transactionOptions,
} from "./sql.js";

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

/** Where a statement runs: in a transaction the caller holds (`tx`), or on a client outside any. */
export type Where = "tx" | "standalone";

/** Longest backoff between failed deletions of one record. */
const MAX_BACKOFF_SECONDS = 3600;

/**
 * The journal's statements on one database. PostgreSQL gets one statement per phase
 * (data-modifying CTEs, `LATERAL`); MySQL and SQLite, which have neither, a few.
 */
export class Journal {
  readonly table: Table;
  readonly #dialect: Dialect;

  constructor(fields: FileFieldsMetadataShape, model: string, dialect: Dialect) {
    this.table = dialect.table(fields, model);
    this.#dialect = dialect;
  }

  #c(field: JournalField): string {
    return this.table.column(field);
  }

  #params(): Params {
    return new Params(this.#dialect);
  }

  get #pg(): boolean {
    return this.#dialect.kind === "postgresql";
  }

  /**
   * Runs statements on `client`: in `tx` (a transaction), one by one; on a client outside any
   * transaction (`standalone`), where every query shares one connection (SQLite), in a
   * transaction of their own: outside one they would run inside whichever interactive
   * transaction is open, and go with its rollback. `together`: standalone statements that must
   * be one unit on every database run in a transaction of their own too (with room to wait for
   * the key lock a deciding drain holds, 60 s at most).
   */
  async #run(
    client: SqlClient,
    statements: readonly Statement[],
    where: Where = "standalone",
    together = false,
  ): Promise<unknown[]> {
    if (where === "standalone" && (together || this.#dialect.sharedConnection)) {
      const batch = (client as { $transaction?: (queries: unknown[], options?: unknown) => Promise<unknown[]> })
        .$transaction;
      if (typeof batch !== "function")
        throw new TypeError("a standalone journal statement needs a client with $transaction");
      const queries = statements.map((st) => raw(client, st));
      return together
        ? batch.call(client, queries, transactionOptions(this.#dialect, { maxWait: 30_000, timeout: 70_000 }))
        : batch.call(client, queries);
    }
    return this.runIn(client, statements);
  }

  /** `INSERT INTO journal (kind, storage, objectKey, owner, notBefore, createdAt)`. */
  get #insertInto(): string {
    const c = (f: JournalField) => this.#c(f);
    return `INSERT INTO ${this.table.sql} (${c("kind")}, ${c("storage")}, ${c("objectKey")}, ${c("owner")}, ${c("notBefore")}, ${c("createdAt")})`;
  }

  /**
   * Records an upload before its bytes are sent, committed on its own; due for the drain after
   * `expirySeconds`. A tombstone of the name (an object deleted before) goes: the name means new
   * bytes now. Under the name's key lock, and refused with `FileExistsError` (the storage then
   * picks another name) while a drain is deleting that name: a record of a save that failed
   * before its bytes leaves a name free in the storage that its drain still deletes, and an
   * upload taking it then would be what that deletion removes. In a caller's transaction on
   * MySQL the question is a plain read of the transaction's view (see below).
   */
  async recordUpload(client: SqlClient, entry: JournalEntry, expirySeconds: number, where: Where): Promise<bigint> {
    const c = (f: JournalField) => this.#c(f);
    const d = this.#dialect;
    const lock = [{ storage: entry.storage, key: entry.key }];
    // No row when a drain is deleting the name: a failing check would abort the caller's
    // transaction on PostgreSQL, and the storage must be able to go on with another name.
    // In a caller's transaction on MySQL the question is a plain read, and the insert is plain:
    // an INSERT … SELECT or a locking read of the journal takes next-key locks under REPEATABLE
    // READ, which deadlock concurrent uploads of one name; a second connection could starve the
    // pool. Under READ COMMITTED (the README's advice there) the plain read sees the latest.
    const guarded = !(where === "tx" && d.kind === "mysql");
    const dual = d.kind === "mysql" ? " FROM DUAL" : "";
    const insert = (q: Params) =>
      guarded
        ? `${this.#insertInto} SELECT 'upload', ${q.p(entry.storage)}, ${q.p(entry.key)}, ${q.p(entry.owner)}, ${d.nowPlus(q.p(expirySeconds))}, ${d.now}${dual} WHERE NOT EXISTS (SELECT 1 FROM (SELECT ${c("id")} FROM ${this.table.sql} WHERE ${c("kind")} = 'deleting' AND ${c("storage")} = ${q.p(entry.storage)} AND ${c("objectKey")} = ${q.p(entry.key)}${d.readLatest}) AS deleting) RETURNING ${c("id")} AS id`
        : `${this.#insertInto} VALUES ('upload', ${q.p(entry.storage)}, ${q.p(entry.key)}, ${q.p(entry.owner)}, ${d.nowPlus(q.p(expirySeconds))}, ${d.now}) RETURNING ${c("id")} AS id`;
    const clear = (q: Params) =>
      `DELETE FROM ${this.table.sql} WHERE ${c("kind")} = 'gone' AND ${c("storage")} = ${q.p(entry.storage)} AND ${c("objectKey")} = ${q.p(entry.key)}`;
    let record: Statement[];
    if (this.#pg) {
      const q = this.#params();
      record = [q.statement(`WITH cleared AS (${clear(q)}) ${insert(q)}`)];
    } else if (this.#dialect.kind === "mysql") {
      // Tombstones found first, then deleted by id: a DELETE by (storage, key) locks the index
      // gap under REPEATABLE READ, and two uploads in callers' transactions inserting into that
      // gap deadlock. (Read without a lock: a tombstone newer than the caller's snapshot stays.)
      const q = this.#params();
      const found = await client.$queryRawUnsafe<{ id: bigint }[]>(
        `SELECT ${c("id")} AS id FROM ${this.table.sql} WHERE ${c("kind")} = 'gone' AND ${c("storage")} = ${q.p(entry.storage)} AND ${c("objectKey")} = ${q.p(entry.key)}`,
        ...q.values,
      );
      const b = this.#params();
      record = [b.statement(insert(b))];
      if (found.length > 0) {
        const a = this.#params();
        const ids = a.list(found.map((r) => r.id));
        record.unshift(
          a.statement(
            `DELETE FROM ${this.table.sql} WHERE ${c("id")} IN (${ids}) AND ${c("kind")} = 'gone'`,
            "execute",
          ),
        );
      }
    } else {
      const a = this.#params();
      const b = this.#params();
      record = [a.statement(clear(a), "execute"), b.statement(insert(b))];
    }
    // The drain decides under the same key lock: it sees this record, or this sees its decision.
    let results: unknown[];
    try {
      if (!guarded) {
        // Locked in the caller's transaction (a drain deciding the name waits for its end).
        await this.runIn(client, this.lockKeys(lock));
        const deleting = await this.#keysOfKind(client, entry.storage, [entry.key], "= 'deleting'");
        results = deleting.size > 0 ? [[]] : await this.runIn(client, record);
        await this.runIn(client, this.unlockKeys(lock));
      } else {
        const statements = [...this.lockKeys(lock), ...record, ...this.unlockKeys(lock)];
        results = await this.#run(client, statements, where, true);
        results = results.slice(0, statements.indexOf(record.at(-1)!) + 1);
      }
    } catch (error) {
      throw explainUnsupported(this.#dialect, error);
    }
    const rows = results.at(-1) as { id: bigint }[];
    if (rows.length === 0) throw new FileExistsError(entry.key);
    return BigInt(rows[0]!.id);
  }

  /**
   * Locks rows of `table` by primary key (in key order) and records the deletion of every key
   * they hold in `columns`: the write that follows in the same transaction replaces or deletes
   * them (a key it keeps is dropped by the drain, which finds it held). The statements' rows are
   * `id` and `owner` per record. Without columns, only locks.
   */
  lockAndRecordRows(
    table: Table,
    primaryKey: readonly string[],
    keys: readonly unknown[][],
    columns: readonly JournaledColumn[],
  ): Statement[] {
    const d = this.#dialect;
    const pk = primaryKey.map((f) => `t.${table.column(f)}`);
    const where = (q: Params) =>
      pk.length === 1
        ? `${pk[0]} IN (${keys.map((k) => q.p(k[0])).join(", ")})`
        : `(${pk.join(", ")}) IN (${keys.map((k) => `(${k.map((v) => q.p(v)).join(", ")})`).join(", ")})`;
    const c = (f: JournalField) => this.#c(f);
    const returning = ` RETURNING ${c("id")} AS id, ${c("owner")} AS owner`;
    if (columns.length === 0) {
      const q = this.#params();
      const lock = d.writeLock(this.table);
      return [
        lock ?? q.statement(`SELECT 1 FROM ${table.sql} t WHERE ${where(q)} ORDER BY ${pk.join(", ")}${d.forUpdate}`),
      ];
    }
    const selected = columns.map((col, i) => `t.${table.column(col.field)} AS c${i}`).join(", ");
    const q = this.#params();
    if (this.#pg) {
      // Locked in a subquery: the clock is read once the lock is ours (a grace period counts from
      // then, not from before a wait for the lock). `OFFSET 0` keeps the planner from pushing
      // `v.k IS NOT NULL` below the lock: a row whose column was NULL when the statement began
      // would be skipped unlocked, and the key another writer committed meanwhile never recorded.
      const lockedSql = `SELECT ${selected} FROM ${table.sql} t WHERE ${where(q)} ORDER BY ${pk.join(", ")} OFFSET 0 FOR UPDATE`;
      const rows = columns.map(
        (col, i) => `(${q.p(col.storage)}::text, r.c${i}, ${q.p(col.owner)}::text, ${q.p(col.delaySeconds)}::float8)`,
      );
      return [
        q.statement(
          `${this.#insertInto} SELECT 'delete', v.s, v.k, v.o, ${d.nowPlus("v.d")}, ${d.now} FROM (${lockedSql}) AS r CROSS JOIN LATERAL (VALUES ${rows.join(", ")}) AS v(s, k, o, d) WHERE v.k IS NOT NULL${returning}`,
        ),
      ];
    }
    // No LATERAL: a branch per column over the same rows, read after a statement of their own
    // locked them (MySQL; SQLite's write lock is taken by the INSERT itself), so that no filter
    // can skip a row before its lock. MySQL reads the latest committed rows here either way: a
    // consistent read at READ COMMITTED begins after the lock, INSERT … SELECT locks at REPEATABLE READ.
    // (`?` placeholders: parameters are taken in the order the text names them.)
    const lock = d.forUpdate
      ? [this.#params()].map((l) =>
          l.statement(`SELECT 1 FROM ${table.sql} t WHERE ${where(l)} ORDER BY ${pk.join(", ")}${d.forUpdate}`),
        )
      : [];
    const branches = columns.map(
      (col, i) =>
        `SELECT 'delete', ${q.p(col.storage)}, r.c${i}, ${q.p(col.owner)}, ${d.nowPlus(q.p(col.delaySeconds))}, ${d.now} FROM (SELECT ${selected} FROM ${table.sql} t WHERE ${where(q)}) AS r WHERE r.c${i} IS NOT NULL`,
    );
    return [...lock, q.statement(`${this.#insertInto} ${branches.join(" UNION ALL ")}${returning}`)];
  }

  /**
   * Takes a write's upload records in its transaction: `definite` ones go (the row holds their
   * keys now), `conditional` ones stay locked for the drain to decide after the commit. Fails
   * the transaction (a {@link Dialect.check}) if any is gone: a drain took it as abandoned.
   */
  takeUploads(definite: readonly bigint[], conditional: readonly bigint[]): Statement[] {
    const c = (f: JournalField) => this.#c(f);
    const d = this.#dialect;
    const expected = definite.length + conditional.length;
    if (this.#pg) {
      const q = this.#params();
      const taken = `DELETE FROM ${this.table.sql} WHERE ${c("id")} IN (${q.list(definite)}) AND ${c("kind")} = 'upload' RETURNING 1`;
      const held = `SELECT 1 FROM ${this.table.sql} WHERE ${c("id")} IN (${q.list(conditional)}) AND ${c("kind")} = 'upload' FOR UPDATE`;
      const check = d.check(
        this.table,
        "(SELECT count(*) AS n FROM taken) AS a, (SELECT count(*) AS n FROM held) AS b",
        `a.n + b.n = ${q.p(expected)}`,
        q.values,
      );
      return [{ sql: `WITH taken AS (${taken}), held AS (${held}) ${check.sql}`, values: q.values }];
    }
    // All of them locked and counted first, then the definite ones deleted.
    const q = this.#params();
    const mine = `SELECT ${c("id")} FROM ${this.table.sql} WHERE ${c("id")} IN (${q.list([...definite, ...conditional])}) AND ${c("kind")} = 'upload'${d.forUpdate}`;
    const statements = [
      // The count inline: a check's condition may come before its FROM in the text.
      d.check(this.table, `(SELECT count(*) AS n FROM (${mine}) AS x) AS a`, `a.n = ${expected}`, q.values),
    ];
    if (definite.length > 0) {
      const r = this.#params();
      statements.push(
        r.statement(
          `DELETE FROM ${this.table.sql} WHERE ${c("id")} IN (${r.list(definite)}) AND ${c("kind")} = 'upload'`,
          "execute",
        ),
      );
    }
    return statements;
  }

  /** Fails the transaction (a {@link Dialect.check}) if any of `keys` has a tombstone. */
  refuseGone(storage: string, keys: readonly string[]): Statement {
    const c = (f: JournalField) => this.#c(f);
    const q = this.#params();
    const inner = `SELECT count(*) AS n FROM (SELECT ${c("id")} FROM ${this.table.sql} WHERE ${c("kind")} IN ('gone', 'deleting') AND ${c("storage")} = ${q.p(storage)} AND ${c("objectKey")} IN (${q.list(keys)})${this.#dialect.readLatest}) AS x`;
    return this.#dialect.check(this.table, `(${inner}) AS g`, "g.n = 0", q.values);
  }

  /** Takes transaction-scoped locks on (storage, key) pairs (see {@link Dialect.lockKeys}). */
  lockKeys(keys: readonly KeyLock[]): Statement[] {
    return this.#dialect.lockKeys(this.table, keys);
  }

  /** What a transaction runs once done with its key locks (see {@link Dialect.unlockKeys}). */
  unlockKeys(keys: readonly KeyLock[]): Statement[] {
    return this.#dialect.unlockKeys(this.table, keys);
  }

  /** Runs `statements` one by one in the transaction `tx`. */
  async runIn(tx: SqlClient, statements: readonly Statement[]): Promise<unknown[]> {
    const results: unknown[] = [];
    for (const st of statements) results.push(await raw(tx, st));
    return results;
  }

  /** Records deletions of keys read outside the transaction (a model without a primary key). */
  recordDeletions(entries: readonly (JournalEntry & { delaySeconds: number })[]): Statement {
    const c = (f: JournalField) => this.#c(f);
    const d = this.#dialect;
    const q = this.#params();
    const rows = entries.map(
      (e) =>
        `('delete', ${q.p(e.storage)}, ${q.p(e.key)}, ${q.p(e.owner)}, ${d.nowPlus(q.p(e.delaySeconds))}, ${d.now})`,
    );
    return q.statement(
      `${this.#insertInto} VALUES ${rows.join(", ")} RETURNING ${c("id")} AS id, ${c("owner")} AS owner`,
    );
  }

  /** Runs a {@link Journal.recordDeletions} statement outside a transaction; its rows. */
  async recordDeletionsNow(client: SqlClient, entries: readonly (JournalEntry & { delaySeconds: number })[]) {
    if (entries.length === 0) return [];
    return (await this.#run(client, [this.recordDeletions(entries)]))[0];
  }

  /** Removes records (a failed write's uploads, once their objects are deleted). */
  async forget(client: SqlClient, ids: readonly bigint[], where: Where): Promise<void> {
    if (ids.length === 0) return;
    const q = this.#params();
    const sql = `DELETE FROM ${this.table.sql} WHERE ${this.#c("id")} IN (${q.list(ids)})`;
    await this.#run(client, [q.statement(sql, "execute")], where);
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
    const d = this.#dialect;
    const ids = options.ids ?? [];
    // SQLite: the write lock first, so the claim reads what no other drain is deciding.
    const lock = d.writeLock(this.table);
    if (lock) await raw(tx, lock);
    const q = this.#params();
    const where =
      ids.length > 0
        ? `${c("id")} IN (${q.list(ids)}) AND ${c("kind")} IN ('upload', 'delete')`
        : `${c("notBefore")} <= ${d.now} AND ${c("kind")} <> 'lock'`;
    // Only records of storages this process has: another configuration's are not ours to act on.
    const own = `${c("storage")} IN (${q.list(options.storages)})`;
    const locking = ids.length > 0 ? d.forUpdate : d.skipLocked;
    // Given ids are locked in id order, through the primary key, as writes lock records. Ordered
    // by notBefore, MySQL read them through that index and held its entries, which a drain
    // deciding one of them (an UPDATE of notBefore) needs while it holds the row: a deadlock.
    const order = ids.length > 0 ? c("id") : `${c("notBefore")}, ${c("id")}`;
    const limit = Math.max(1, Math.floor(options.limit));
    const rows = await tx.$queryRawUnsafe<
      { id: bigint; kind: string; storage: string; key: string; attempts: number }[]
    >(
      `SELECT ${c("id")} AS id, ${c("kind")} AS kind, ${c("storage")} AS storage, ${c("objectKey")} AS ${d.quote("key")}, ${c("attempts")} AS attempts FROM ${this.table.sql} WHERE ${where} AND ${own} ORDER BY ${order} LIMIT ${limit}${locking}`,
      ...q.values,
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
    const q = this.#params();
    const base = `${c("storage")} = ${q.p(storage)} AND ${c("objectKey")} IN (${q.list(keys)})`;
    const notClaimed = claimed.length > 0 ? ` AND ${c("id")} NOT IN (${q.list(claimed)})` : "";
    const rows = await tx.$queryRawUnsafe<{ k: string }[]>(
      `SELECT DISTINCT ${c("objectKey")} AS k FROM ${this.table.sql} WHERE ${base}${notClaimed} AND (${c("kind")} = 'upload' OR (${c("kind")} = 'delete' AND ${c("notBefore")} > ${this.#dialect.now}))${this.#dialect.readLatest}`,
      ...q.values,
    );
    return new Set(rows.map((r) => r.k));
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
    const q = this.#params();
    const rows = await client.$queryRawUnsafe<{ k: string }[]>(
      `SELECT DISTINCT ${c("objectKey")} AS k FROM ${this.table.sql} WHERE ${c("storage")} = ${q.p(storage)} AND ${c("objectKey")} IN (${q.list(keys)}) AND ${c("kind")} ${kind}`,
      ...q.values,
    );
    return new Set(rows.map((r) => r.k));
  }

  /**
   * The drain decided to delete these records' objects: `deleting` (copies of the keys are
   * refused from the commit on), due again after `leaseSeconds` in case the drain dies.
   */
  async decide(tx: SqlClient, ids: readonly bigint[], leaseSeconds: number): Promise<void> {
    if (ids.length === 0) return;
    const c = (f: JournalField) => this.#c(f);
    const q = this.#params();
    await tx.$executeRawUnsafe(
      `UPDATE ${this.table.sql} SET ${c("kind")} = 'deleting', ${c("notBefore")} = ${this.#dialect.nowPlus(q.p(leaseSeconds))} WHERE ${c("id")} IN (${q.list(ids)})`,
      ...q.values,
    );
  }

  /** Tombstones for keys the sweep deletes (written before the request: it may delete even if it fails). */
  async buryKeys(tx: SqlClient, storage: string, keys: readonly string[], seconds: number): Promise<void> {
    if (keys.length === 0) return;
    const c = (f: JournalField) => this.#c(f);
    const d = this.#dialect;
    const q = this.#params();
    const rows = keys.map((k) => `('gone', ${q.p(storage)}, ${q.p(k)}, ${d.nowPlus(q.p(seconds))}, ${d.now})`);
    await tx.$executeRawUnsafe(
      `INSERT INTO ${this.table.sql} (${c("kind")}, ${c("storage")}, ${c("objectKey")}, ${c("notBefore")}, ${c("createdAt")}) VALUES ${rows.join(", ")}`,
      ...q.values,
    );
  }

  /** The drain deleted these records' objects: each record stays as a tombstone for `seconds`. */
  async bury(client: SqlClient, ids: readonly bigint[], seconds: number): Promise<void> {
    if (ids.length === 0) return;
    const c = (f: JournalField) => this.#c(f);
    const q = this.#params();
    const sql = `UPDATE ${this.table.sql} SET ${c("kind")} = 'gone', ${c("attempts")} = 0, ${c("lastError")} = NULL, ${c("notBefore")} = ${this.#dialect.nowPlus(q.p(seconds))} WHERE ${c("id")} IN (${q.list(ids)})`;
    await this.#run(client, [q.statement(sql, "execute")]);
  }

  /**
   * A deletion failed: try again later (exponential backoff), keeping the error. The record is
   * `deleting` from now on: the request may have deleted the object all the same, so copies of
   * the key are refused as for a tombstone (a retry checks the rows and records again first).
   */
  async failed(client: SqlClient, record: JournalRecord, error: string): Promise<void> {
    const c = (f: JournalField) => this.#c(f);
    const delay = Math.min(MAX_BACKOFF_SECONDS, 10 * 2 ** Math.min(record.attempts, 12));
    const q = this.#params();
    const sql = `UPDATE ${this.table.sql} SET ${c("kind")} = 'deleting', ${c("attempts")} = ${c("attempts")} + 1, ${c("lastError")} = ${q.p(error.slice(0, 1000))}, ${c("notBefore")} = ${this.#dialect.nowPlus(q.p(delay))} WHERE ${c("id")} = ${q.p(record.id)}`;
    await this.#run(client, [q.statement(sql, "execute")]);
  }
}
