/**
 * A write that touches file columns, in named phases:
 *
 * 1. **store** — each upload's name is recorded in the journal (committed on its own) before its
 *    first byte goes to the storage; no transaction is open while bytes move.
 * 2. **plan rows** — the primary keys of the rows the write changes and of the related rows it
 *    reaches, read before the transaction; the write is pinned to them.
 * 3. **lock and journal** — in the row's transaction: those rows locked by primary key, and the
 *    keys they hold recorded for deletion (due after `deleteAfterSeconds`) in the same statement.
 * 4. **take uploads** — the write's upload records go (checked: one a drain took as abandoned
 *    fails the write); keys copied from other rows are locked and checked against tombstones.
 * 5. **write** — the row itself, through Prisma's `query`, so later extensions see it.
 * 6. **settle** — after the commit, deletions due now, and uploads the write may not have used,
 *    go through the drain at once; after a failure or rollback, the write's uploads do.
 *
 * Three strategies share the phases: our own transaction (a batch of our statements and the
 * write), the caller's interactive transaction (the same statements, one by one), and the
 * caller's batch `$transaction([...])`, which no statement of ours can join.
 */
import { PrismaS3FilesError } from "../errors.js";
import type { Storage } from "../storage/storage.js";
import {
  delegate,
  deleteObjects,
  type LifecycleContext,
  type OldKey,
  readOldKeys,
  readWrittenRows,
  type StoredObject,
  storeUploads,
} from "./file-lifecycle.js";
import type { Coordination } from "./journal/coordination.js";
import { type DrainClient, drain, retrying } from "./journal/drain.js";
import type { JournalEntry, Where } from "./journal/journal.js";
import { explainUnsupported, raw, type SqlClient, type Statement, transactionOptions } from "./journal/sql.js";
import type { TransactionScope } from "./transactions.js";
import { type KeyAssignment, type OldKeySelect, relatedRowsSelect, type WritePlan } from "./write-plan.js";

/** What the write path needs from its `s3Files()` instance. */
export interface WriteEnv {
  ctx: LifecycleContext;
  coordination: Coordination;
  /** The client below ours: raw SQL, transactions, and model delegates our hook does not see. */
  base: DrainClient;
  /** After this long an upload's record is due: its row never committed (a crash). */
  uploadExpirySeconds: number;
  /** Drains a deletion record once due, if this process still runs then (see DrainTimer.later). */
  later(id: bigint, seconds: number): void;
  /** Queues this process's writers of one row (an optimisation; see RowQueue). */
  rowQueue: RowQueue;
}

/**
 * This process's writers of one row, one at a time: an optimisation, not a guarantee (the
 * database's row lock is that). Without it, many concurrent writes of one row each take a pooled
 * connection to wait on the lock, and starve the pool.
 */
export class RowQueue {
  readonly #tails = new Map<string, Promise<unknown>>();

  async run<T>(ids: readonly string[], fn: () => Promise<T>): Promise<T> {
    if (ids.length !== 1) return fn(); // several rows: the database orders them
    const id = ids[0]!;
    const previous = this.#tails.get(id) ?? Promise.resolve();
    const mine = previous.then(fn, fn);
    const tail = mine.catch(() => undefined);
    this.#tails.set(id, tail);
    try {
      return await mine;
    } finally {
      if (this.#tails.get(id) === tail) this.#tails.delete(id);
    }
  }
}

/** One write operation as the query hook received it. */
export interface WriteRequest {
  model: string;
  operation: string;
  args: Record<string, unknown>;
  plan: WritePlan;
  /** Prisma's `query`: runs the operation where the caller runs it (their transaction or batch). */
  query(args: unknown): Promise<unknown>;
  /** A fluent call's path (`["select", "posts"]`): our own run must unpack the same rows. */
  dataPath: readonly string[] | undefined;
}

/** An upload stored for this write, with its journal record. */
interface Upload extends StoredObject {
  record: bigint;
}

interface RowOutcome {
  result: unknown;
  deletions: Deletions;
}

/** Deletion records a write made: due at once (`deleteAfterSeconds: 0`), or after their delay. */
interface Deletions {
  due: bigint[];
  later: { id: bigint; seconds: number }[];
}

/** Our batch transactions: waiting for a pooled connection and for row locks may take a while under load. */
const BATCH = { maxWait: 30_000, timeout: 30_000 };

/** The in-process ids of the rows a plan locks. */
function rowIds(plan: RowsPlan): string[] {
  const ids: string[] = [];
  for (const [model, target] of plan.targets) {
    for (const key of target.keys)
      ids.push(`${model}\u0000${JSON.stringify(key, (_k, v) => (typeof v === "bigint" ? `${v}n` : v))}`);
  }
  return ids;
}

/** Runs a write with file columns; returns the operation's raw result. */
export async function coordinatedWrite(
  env: WriteEnv,
  req: WriteRequest,
  scope: TransactionScope | undefined,
): Promise<unknown> {
  // In the caller's interactive transaction, its connection records the uploads: a connection
  // of the pool could be taken by other transactions waiting for this one.
  const uploads = await storePhase(env, req, scope, (scope?.tx as SqlClient | undefined) ?? env.base);
  if (scope?.tx) return inCallersTransaction(env, req, scope, uploads);
  if (scope) return inBatch(env, req, scope, uploads);
  return inOwnTransaction(env, req, uploads);
}

// ------------------------------------------------------------------------------ strategies

/**
 * Our own transaction: a batch of our statements and the write itself (`query(args)`, so the
 * extensions applied after ours still see it), which Prisma runs in one database transaction.
 */
async function inOwnTransaction(env: WriteEnv, req: WriteRequest, uploads: Upload[]): Promise<unknown> {
  let outcome: RowOutcome;
  // A `where` pinned to the row it resolved to finds no row if that row was replaced meanwhile:
  // planned again, it names the new one.
  let pinned = false;
  const replanned = (error: unknown) => pinned && (error as { code?: unknown })?.code === "P2025";
  try {
    outcome = await retrying(
      env.coordination,
      async () => {
        const plan = await planRows(env, env.base, { ...req, args: { ...req.args } });
        pinned = plan.pinned;
        const { before, after } = rowStatements(env, plan, uploads);
        // Writers of one row in this process queue here rather than each holding a pooled
        // connection while the database makes them wait (the database lock is what decides).
        const all = (await env.rowQueue.run(rowIds(plan), () =>
          env.base.$transaction(
            [
              ...before.map((st) => raw(env.base, st)),
              req.query(plan.req.args),
              ...after.map((st) => raw(env.base, st)),
            ] as unknown as Parameters<DrainClient["$transaction"]>[0],
            transactionOptions(env.coordination.dialect, BATCH),
          ),
        )) as unknown as unknown[];
        return { result: all[before.length], deletions: deletionRecords(env, all.slice(0, before.length)) };
      },
      replanned,
    );
  } catch (error) {
    await settleFailed(env, uploads);
    throw await explain(env, req, error);
  }
  await settle(env, outcome.deletions, conditionalRecords(uploads));
  return outcome.result;
}

/** The caller's interactive transaction: the same statements, one by one, then the write. */
async function inCallersTransaction(
  env: WriteEnv,
  req: WriteRequest,
  scope: TransactionScope,
  uploads: Upload[],
): Promise<unknown> {
  const tx = scope.tx as SqlClient;
  let outcome: RowOutcome;
  try {
    const plan = await planRows(env, tx, req);
    const { before, after } = rowStatements(env, plan, uploads);
    const results = await env.coordination.journal.runIn(tx, before);
    outcome = { result: await req.query(plan.req.args), deletions: deletionRecords(env, results) };
    await env.coordination.journal.runIn(tx, after);
  } catch (error) {
    // The caller may catch this and commit the rest; the records may be gone with the commit.
    scope.afterCommit.push(() => settleFailed(env, uploads, { deleteFirst: true }));
    throw await explain(env, req, error);
  }
  scope.afterCommit.push(() => settle(env, outcome.deletions, conditionalRecords(uploads)));
  return outcome.result;
}

/**
 * A batch runs its queries in one transaction no statement of ours can join: the rows are not
 * locked, old keys are read before, and the journal is brought up to date after the commit (the
 * uploads are checked against the rows then, like an upsert's).
 */
async function inBatch(env: WriteEnv, req: WriteRequest, scope: TransactionScope, uploads: Upload[]): Promise<unknown> {
  const { ctx, coordination, base } = env;
  const oldKeys = req.plan.oldKeys
    ? await readOldKeys(base, req.model, req.operation, req.args, req.plan.oldKeys, ctx)
    : [];
  await refuseGoneKeys(env, base, req.plan.keys);
  const result = await req.query(req.args);
  scope.afterCommit.push(async () => {
    const recorded = [await coordination.journal.recordDeletionsNow(base, deletions(ctx, oldKeys))];
    await settle(
      env,
      deletionRecords(env, recorded),
      uploads.map((u) => u.record),
    );
  });
  return result;
}

/** Phase 1: stores the uploads, each recorded in the journal before its first byte. */
async function storePhase(
  env: WriteEnv,
  req: WriteRequest,
  scope: TransactionScope | undefined,
  recorder: SqlClient,
): Promise<Upload[]> {
  if (req.plan.uploads.length === 0) return [];
  const { ctx, coordination } = env;
  const records: { id: bigint; storage: Storage; key: string }[] = [];
  const where: Where = recorder === env.base ? "standalone" : "tx";
  const storing = storeUploads(req.plan.uploads, ctx, async (a, name) => {
    const entry = { storage: ctx.storageId(a.model, a.field), key: name, owner: `${a.model}.${a.field}` };
    const id = await coordination.journal.recordUpload(recorder, entry, env.uploadExpirySeconds, where);
    records.push({ id, storage: ctx.storageOf(a.model, a.field), key: name });
  });
  // A batch may fail while this upload runs (its query then never does): the rollback waits,
  // then drains every record this write made (a clash's record names another write's object,
  // which the drain leaves to its row or record). Records made in the caller's transaction went
  // with its rollback: their objects are deleted here (only those this write stored).
  let uploads: Upload[] = [];
  scope?.uploads.push(storing.catch(() => undefined));
  scope?.onRollback.push(async () => {
    if (recorder !== env.base) await deleteObjects(uploads, ctx);
    await settleRecords(
      env,
      records.map((r) => r.id),
    );
  });
  let stored: StoredObject[];
  try {
    stored = await storing;
  } catch (error) {
    // storeUploads deleted what it stored; the drain finishes what it could not. Records made
    // in the caller's transaction are not committed: a drain now would wait for their row locks
    // (MySQL) or the connection (SQLite) while that transaction waits for us. After its commit
    // (the caller may catch this and commit); a rollback takes them (see onRollback above).
    const ids = records.map((r) => r.id);
    if (where === "tx" && scope) scope.afterCommit.push(() => settleRecords(env, ids));
    else await settleRecords(env, ids);
    throw error;
  }
  // Each object's record is the last one made under its name (a clash recorded others first).
  uploads = stored.map((o) => ({
    ...o,
    record: records.findLast((r) => r.storage === o.storage && r.key === o.key)!.id,
  }));
  // A clash's record names an object another write stored. A drain that found the key
  // unreferenced meanwhile left its deletion to this record: the drain decides it again now,
  // not a silent forget (made in the caller's transaction, it is visible to drains after commit).
  const unused = records.filter((r) => !uploads.some((u) => u.record === r.id)).map((r) => r.id);
  if (unused.length > 0) {
    if (where === "tx" && scope) scope.afterCommit.push(() => settleRecords(env, unused));
    else await settleRecords(env, unused);
  }
  return uploads;
}

/** The rows a write locks, per model, with the file columns whose keys it records for deletion. */
interface RowsPlan {
  /** The request, its `where` pinned to the rows planned (so it writes no row it did not lock). */
  req: WriteRequest;
  targets: Map<string, { keys: unknown[][]; fields: Set<string> }>;
  /** Old keys of rows that cannot be locked (a model without a primary key), read now. */
  unlocked: OldKey[];
  /** The write's `where` was pinned to a primary key it did not name. */
  pinned: boolean;
}

/**
 * Phase 2's plan, read before the transaction: the primary keys of the rows the write changes
 * (a `where` naming another unique field is resolved, and then pinned to that key; an
 * `updateMany`/`deleteMany` is narrowed to the rows read), and of the related rows it reaches
 * (nested writes, cascading deletes). The transaction locks them and reads their keys then.
 */
async function planRows(env: WriteEnv, reader: unknown, req: WriteRequest): Promise<RowsPlan> {
  const plan: RowsPlan = { req, targets: new Map(), unlocked: [], pinned: false };
  const select = req.plan.oldKeys;
  if (!select) return plan;
  const { ctx } = env;
  const { model, operation, args } = req;
  const pk = ctx.fields[model]?.primaryKey ?? [];
  if (pk.length === 0) {
    plan.unlocked = await readOldKeys(reader, model, operation, args, select, ctx);
    return plan;
  }
  plan.pinned = SINGLE_ROW.has(operation) && !pk.every((k) => isScalar((args.where as Record<string, unknown>)?.[k]));
  const rows = SINGLE_ROW.has(operation)
    ? await uniqueRow(reader, model, operation, args, pk)
    : await matchedRows(reader, model, args, pk);
  addTargets(plan, model, rows, select.fields);
  const related = select.relations.size > 0 ? relatedRowsSelect(ctx.fields, select) : undefined;
  if (related && rows.length > 0) {
    collectTargets(env, plan, select, await readWrittenRows(reader, model, operation, args, related));
  }
  return plan;
}

function addTargets(plan: RowsPlan, model: string, keys: unknown[][], fields: Set<string>): void {
  const target = plan.targets.get(model) ?? { keys: [], fields: new Set<string>() };
  target.keys.push(...keys);
  for (const f of fields) target.fields.add(f);
  plan.targets.set(model, target);
}

/** The related rows found under the written ones, by model, with the fields `select` reads there. */
function collectTargets(env: WriteEnv, plan: RowsPlan, select: OldKeySelect, rows: unknown): void {
  for (const row of Array.isArray(rows) ? rows : [rows]) {
    if (row === null || typeof row !== "object") continue;
    for (const [rel, { model, select: below }] of select.relations) {
      const pk = env.ctx.fields[model]?.primaryKey ?? [];
      const value = (row as Record<string, unknown>)[rel];
      const children = (Array.isArray(value) ? value : [value]).filter(
        (c): c is Record<string, unknown> => c !== null && typeof c === "object",
      );
      if (pk.length > 0)
        addTargets(
          plan,
          model,
          children.map((c) => pk.map((k) => c[k])),
          below.fields,
        );
      collectTargets(env, plan, below, children);
    }
  }
}

/**
 * Phases 2–4 as statements, in lock order: rows (by model, then primary key) with their old keys
 * recorded for deletion (phases 3 and 6 in one statement), the write's upload records, the keys
 * it copies from other rows. `after` runs after the write (releasing what a database keeps as rows).
 */
function rowStatements(env: WriteEnv, plan: RowsPlan, uploads: Upload[]): { before: Statement[]; after: Statement[] } {
  const { ctx, coordination } = env;
  const statements: Statement[] = [];
  const after: Statement[] = [];
  for (const [model, target] of [...plan.targets].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    if (target.keys.length === 0) continue;
    const columns = [...target.fields]
      .map((field) => ({ field, meta: ctx.fields[model]!.fileFields[field]! }))
      .filter(({ meta }) => !meta.keepFiles)
      .map(({ field, meta }) => ({
        field,
        storage: ctx.storageId(model, field),
        owner: `${model}.${field}`,
        delaySeconds: meta.deleteAfterSeconds,
      }));
    const pk = ctx.fields[model]!.primaryKey;
    for (let i = 0; i < target.keys.length; i += LOCK_CHUNK) {
      const chunk = target.keys.slice(i, i + LOCK_CHUNK);
      statements.push(...coordination.journal.lockAndRecordRows(coordination.table(model), pk, chunk, columns));
    }
  }
  const unlocked = deletions(ctx, plan.unlocked);
  if (unlocked.length > 0) statements.push(coordination.journal.recordDeletions(unlocked));
  if (uploads.length > 0) {
    const definite = uploads.filter((u) => !u.conditional).map((u) => u.record);
    statements.push(...coordination.journal.takeUploads(definite, conditionalRecords(uploads)));
  }
  const copied = plan.req.plan.keys;
  if (copied.length > 0) {
    const entries = copied.map((k) => ({ storage: ctx.storageId(k.model, k.field), key: k.key }));
    statements.push(...coordination.journal.lockKeys(entries));
    for (const storage of new Set(entries.map((e) => e.storage))) {
      const keys = entries.filter((e) => e.storage === storage).map((e) => e.key);
      statements.push(coordination.journal.refuseGone(storage, keys));
    }
    after.push(...coordination.journal.unlockKeys(entries));
  }
  return { before: statements, after };
}

/** The deletion records among the statements' results: due now, and due later (their column's delay). */
function deletionRecords(env: WriteEnv, results: unknown[]): Deletions {
  const out: Deletions = { due: [], later: [] };
  for (const rows of results) {
    if (!Array.isArray(rows)) continue;
    for (const r of rows as { id?: unknown; owner?: unknown }[]) {
      if (r.id === undefined || typeof r.owner !== "string") continue;
      const id = BigInt(r.id as bigint);
      const [model, field] = r.owner.split(".") as [string, string];
      const delay = env.ctx.fields[model]?.fileFields[field]?.deleteAfterSeconds ?? 0;
      if (delay <= 0) out.due.push(id);
      else out.later.push({ id, seconds: delay });
    }
  }
  return out;
}

/** Writes that replace or delete the files of exactly one row (selected by a unique `where`). */
const SINGLE_ROW: ReadonlySet<string> = new Set(["update", "upsert", "delete"]);

/** Rows locked per statement. */
const LOCK_CHUNK = 1000;

/**
 * The primary key of the row a unique `where` selects (none if it does not exist). A `where`
 * without the key is pinned to the row read, so the write cannot reach a row it did not lock
 * (one deleted and created again meanwhile): it then fails with P2025, and is planned again.
 */
async function uniqueRow(
  reader: unknown,
  model: string,
  operation: string,
  args: Record<string, unknown>,
  pk: readonly string[],
): Promise<unknown[][]> {
  const given = (args.where ?? {}) as Record<string, unknown>;
  if (pk.every((k) => isScalar(given[k]))) return [pk.map((k) => given[k])];
  const row = (await delegate(reader, model).findUnique({ where: args.where, select: pkSelect(pk) })) as Record<
    string,
    unknown
  > | null;
  if (!row) {
    // No row to lock: the write must not reach one created meanwhile (an upsert creates then).
    // (`OR: []` is not "nothing" to Prisma in every position; `in: []` is.)
    if (operation !== "upsert") args.where = { ...given, AND: [{ [pk[0]!]: { in: [] } }] };
    return [];
  }
  args.where = { ...given, ...Object.fromEntries(pk.map((k) => [k, row[k]])) };
  return [pk.map((k) => row[k])];
}

/** The rows an `updateMany`/`deleteMany` matches; the write is narrowed to exactly those. */
async function matchedRows(
  reader: unknown,
  model: string,
  args: Record<string, unknown>,
  pk: readonly string[],
): Promise<unknown[][]> {
  const rows = (await delegate(reader, model).findMany({ where: args.where, select: pkSelect(pk) })) as Record<
    string,
    unknown
  >[];
  const only =
    pk.length === 1
      ? { [pk[0]!]: { in: rows.map((r) => r[pk[0]!]) } }
      : { OR: rows.map((r) => Object.fromEntries(pk.map((k) => [k, r[k]]))) };
  args.where = args.where === undefined ? only : { AND: [args.where, only] };
  return rows.map((r) => pk.map((k) => r[k]));
}

/**
 * A failed check of ours aborted the transaction: say which. A copied key with a tombstone was
 * deleted; otherwise an upload's record was gone (a drain took it as abandoned).
 */
async function explain(env: WriteEnv, req: WriteRequest, error: unknown): Promise<unknown> {
  if (!env.coordination.dialect.isCheckFailure(error)) return explainUnsupported(env.coordination.dialect, error);
  try {
    await refuseGoneKeys(env, env.base, req.plan.keys);
  } catch (gone) {
    return gone;
  }
  const u = req.plan.uploads[0];
  return new PrismaS3FilesError(
    "FILE_NOT_FOUND",
    `${u ? `${u.model}.${u.field}` : req.model}: an upload of this write was removed as abandoned (its journal record passed uploadExpirySeconds) before its row was written; write it again`,
    { cause: error },
  );
}

async function refuseGoneKeys(env: WriteEnv, client: SqlClient, keys: KeyAssignment[]): Promise<void> {
  const byStorage = new Map<string, KeyAssignment[]>();
  for (const k of keys) {
    const name = env.ctx.storageId(k.model, k.field);
    byStorage.set(name, [...(byStorage.get(name) ?? []), k]);
  }
  for (const [storage, group] of byStorage) {
    const gone = await env.coordination.journal.goneKeys(
      client,
      storage,
      group.map((k) => k.key),
    );
    const k = group.find((g) => gone.has(g.key));
    if (k) {
      throw new PrismaS3FilesError(
        "FILE_NOT_FOUND",
        `${k.model}.${k.field}: the file "${k.key}" was deleted (no row referenced it any more) before this write could assign it`,
      );
    }
  }
}

/** Phase 6's records: the old keys of columns that do not keep their files. */
function deletions(ctx: LifecycleContext, oldKeys: OldKey[]): (JournalEntry & { delaySeconds: number })[] {
  const seen = new Set<string>();
  const out: (JournalEntry & { delaySeconds: number })[] = [];
  for (const k of oldKeys) {
    const meta = ctx.fields[k.model]!.fileFields[k.field]!;
    if (meta.keepFiles) continue;
    const storage = ctx.storageId(k.model, k.field);
    const id = `${storage}:${k.key}`;
    if (seen.has(id)) continue;
    seen.add(id);
    out.push({ storage, key: k.key, owner: `${k.model}.${k.field}`, delaySeconds: meta.deleteAfterSeconds });
  }
  return out;
}

/**
 * Phase 6 after a commit: deletions due now, and uploads the write may not have used, go through
 * the drain at once; deletions due later are drained when due by this process if it still runs
 * (any process's drain does it otherwise).
 */
async function settle(env: WriteEnv, deletions: Deletions, conditional: bigint[]): Promise<void> {
  for (const { id, seconds } of deletions.later) env.later(id, seconds);
  const ids = [...deletions.due, ...conditional];
  if (ids.length === 0) return;
  try {
    await drain(env.base, env.coordination, env.ctx, { ids }); // reports each failed deletion itself
  } catch (error) {
    env.ctx.report(error); // the records stay: the next drain finishes them
  }
}

/** Phase 7 after a failure or rollback: the write's uploads are nobody's. */
async function settleFailed(env: WriteEnv, uploads: Upload[], options: { deleteFirst?: boolean } = {}): Promise<void> {
  if (uploads.length === 0) return;
  // Their records may have gone with a commit of the caller's: delete the objects themselves.
  if (options.deleteFirst) await deleteObjects(uploads, env.ctx);
  await settle(
    env,
    NO_DELETIONS,
    uploads.map((u) => u.record),
  );
}

const NO_DELETIONS: Deletions = { due: [], later: [] };

/** After a failed store: the records made so far (storeUploads deleted its objects; the drain makes sure). */
async function settleRecords(env: WriteEnv, ids: bigint[]): Promise<void> {
  await settle(env, NO_DELETIONS, ids);
}

function conditionalRecords(uploads: Upload[]): bigint[] {
  return uploads.filter((u) => u.conditional).map((u) => u.record);
}

function pkSelect(pk: readonly string[]): Record<string, true> {
  return Object.fromEntries(pk.map((k) => [k, true]));
}

function isScalar(value: unknown): boolean {
  return ["string", "number", "bigint", "boolean"].includes(typeof value);
}
