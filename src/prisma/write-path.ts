/**
 * A write that touches file columns, in named phases:
 *
 * 1. **store** — each upload's name is recorded in the journal (committed on its own) before its
 *    first byte goes to the storage; no transaction is open while bytes move.
 * 2. **lock** — in the row's transaction (ours, or the caller's): the rows the write changes,
 *    by primary key, then the related rows it reaches.
 * 3. **read old keys** — under those locks, so no other writer's key is missed.
 * 4. **take uploads** — the upload records go in this transaction (checked: an upload a drain
 *    took as abandoned fails the write); keys copied from other rows are locked and checked
 *    against the tombstones of deleted objects.
 * 5. **write** — the row itself.
 * 6. **journal** — deletion records for the old keys, due after `deleteAfterSeconds`.
 * 7. **settle** — after the commit, deletions due now and uploads the write may not have used
 *    go through the drain at once; after a failure or rollback, the write's uploads do.
 *
 * Three strategies share the phases: our own transaction, the caller's interactive
 * transaction, and a batch `$transaction([...])` (which no statement of ours can join).
 */
import { PrismaS3FilesError } from "../errors.js";
import type { Storage } from "../storage/storage.js";
import {
  delegate,
  deleteObjects,
  type LifecycleContext,
  readOldKeys,
  readWrittenRows,
  type StoredObject,
  storeUploads,
} from "./file-lifecycle.js";
import type { Coordination } from "./journal/coordination.js";
import { type DrainClient, drain, retrying } from "./journal/drain.js";
import type { JournalEntry } from "./journal/journal.js";
import type { SqlClient } from "./journal/sql.js";
import { modelDelegate } from "./prisma-internals.js";
import type { TransactionScope } from "./transactions.js";
import {
  collectKeys,
  collectRelatedRows,
  type KeyAssignment,
  type OldKeySelect,
  relatedRowsSelect,
  type WritePlan,
} from "./write-plan.js";

/** What the write path needs from its `s3Files()` instance. */
export interface WriteEnv {
  ctx: LifecycleContext;
  coordination: Coordination;
  /** The client below ours: raw SQL, transactions, and model delegates our hook does not see. */
  base: DrainClient;
  /** After this long an upload's record is due: its row never committed (a crash). */
  uploadExpirySeconds: number;
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
  /** Deletion records due at once (`deleteAfterSeconds: 0`). */
  due: bigint[];
}

/** Interactive transactions of ours: the locks may wait for other writers. */
const TRANSACTION = { maxWait: 10_000, timeout: 30_000 };

/** Runs a write with file columns; returns the operation's raw result. */
export async function coordinatedWrite(
  env: WriteEnv,
  req: WriteRequest,
  scope: TransactionScope | undefined,
): Promise<unknown> {
  const uploads = await storePhase(env, req, scope);
  if (scope?.tx) return inCallersTransaction(env, req, scope, uploads);
  if (scope) return inBatch(env, req, scope, uploads);
  return inOwnTransaction(env, req, uploads);
}

// ------------------------------------------------------------------------------ strategies

async function inOwnTransaction(env: WriteEnv, req: WriteRequest, uploads: Upload[]): Promise<unknown> {
  let outcome: RowOutcome;
  try {
    outcome = await retrying(env.coordination, () =>
      env.base.$transaction(
        (tx) => rowPhases(env, tx, { ...req, args: { ...req.args } }, uploads, (args) => runOn(tx, req, args)),
        TRANSACTION,
      ),
    );
  } catch (error) {
    await settleFailed(env, uploads);
    throw error;
  }
  await settle(env, outcome.due, conditionalRecords(uploads));
  return outcome.result;
}

async function inCallersTransaction(
  env: WriteEnv,
  req: WriteRequest,
  scope: TransactionScope,
  uploads: Upload[],
): Promise<unknown> {
  let outcome: RowOutcome;
  try {
    outcome = await rowPhases(env, scope.tx as SqlClient, req, uploads, (args) => req.query(args));
  } catch (error) {
    // The caller may catch this and commit the rest; the records may be gone with the commit.
    scope.afterCommit.push(() => settleFailed(env, uploads, { deleteFirst: true }));
    throw error;
  }
  scope.afterCommit.push(() => settle(env, outcome.due, conditionalRecords(uploads)));
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
    const due = await coordination.journal.recordDeletions(base, deletions(ctx, oldKeys));
    await settle(
      env,
      due,
      uploads.map((u) => u.record),
    );
  });
  return result;
}

// ------------------------------------------------------------------------------ phases

/** Phase 1: stores the uploads, each recorded in the journal before its first byte. */
async function storePhase(env: WriteEnv, req: WriteRequest, scope: TransactionScope | undefined): Promise<Upload[]> {
  if (req.plan.uploads.length === 0) return [];
  const { ctx, coordination, base } = env;
  const records: { id: bigint; storage: Storage; key: string }[] = [];
  const storing = storeUploads(req.plan.uploads, ctx, async (a, name) => {
    const entry = { storage: ctx.storageName(a.model, a.field), key: name, owner: `${a.model}.${a.field}` };
    const id = await coordination.journal.recordUpload(base, entry, env.uploadExpirySeconds);
    records.push({ id, storage: ctx.storageOf(a.model, a.field), key: name });
  });
  // A batch may fail while this upload runs (its query then never does): the rollback waits.
  scope?.uploads.push(storing.catch(() => undefined));
  let stored: StoredObject[];
  try {
    stored = await storing;
  } catch (error) {
    // storeUploads deleted what it stored; the drain finishes what it could not.
    await settleRecords(
      env,
      records.map((r) => r.id),
    );
    throw error;
  }
  // Each object's record is the last one made under its name (a clash recorded others first).
  const uploads = stored.map((o) => ({
    ...o,
    record: records.findLast((r) => r.storage === o.storage && r.key === o.key)!.id,
  }));
  const unused = records.filter((r) => !uploads.some((u) => u.record === r.id)).map((r) => r.id);
  await coordination.journal.forget(base, unused).catch(ctx.report);
  scope?.onRollback.push(() => settleFailed(env, uploads));
  return uploads;
}

/** Phases 2–6 in the transaction `tx`; `run` performs the write itself. */
async function rowPhases(
  env: WriteEnv,
  tx: SqlClient,
  req: WriteRequest,
  uploads: Upload[],
  run: (args: unknown) => Promise<unknown>,
): Promise<RowOutcome> {
  const oldKeys = req.plan.oldKeys ? await lockAndReadOldKeys(env, tx, req, req.plan.oldKeys) : [];
  await takeUploads(env, tx, uploads);
  await lockCopiedKeys(env, tx, req.plan.keys);
  const result = await run(req.args);
  const due = await env.coordination.journal.recordDeletions(tx, deletions(env.ctx, oldKeys));
  if (process.env.PSF_DEBUG) console.log("ROW", req.model, req.operation, oldKeys, due);
  return { result, due };
}

/** Writes that replace or delete the files of exactly one row (selected by a unique `where`). */
const SINGLE_ROW: ReadonlySet<string> = new Set(["update", "upsert", "delete"]);

/**
 * Phases 2 and 3: locks the written rows by primary key (a `where` naming another unique field
 * is resolved first; an `updateMany`/`deleteMany` is narrowed to the rows locked), then the
 * related rows the write reaches, and reads the keys they hold. A model without a primary key
 * cannot be locked: its old keys are read as they are.
 */
async function lockAndReadOldKeys(env: WriteEnv, tx: SqlClient, req: WriteRequest, select: OldKeySelect) {
  const { ctx } = env;
  const { model, operation, args } = req;
  const pk = ctx.fields[model]?.primaryKey ?? [];
  if (pk.length === 0) return readOldKeys(tx, model, operation, args, select, ctx);
  const single = SINGLE_ROW.has(operation);
  const rows = single ? await uniqueRow(tx, model, args.where, pk) : await matchedRows(tx, model, args, pk);
  const plain = select.relations.size === 0;
  const locked = await lockInChunks(env, tx, model, rows, plain ? [...select.fields] : []);
  if (plain) return collectKeys(ctx.fields, model, select, single ? (locked[0] ?? null) : locked);
  // Our rows are locked: no row can join or leave them now (a foreign key needs the parent).
  const related = relatedRowsSelect(ctx.fields, select);
  if (related) {
    const found = collectRelatedRows(ctx.fields, select, await readWrittenRows(tx, model, operation, args, related));
    const byModel = new Map<string, unknown[][]>();
    for (const r of found) {
      const pkOf = ctx.fields[r.model]!.primaryKey;
      byModel.set(r.model, [...(byModel.get(r.model) ?? []), pkOf.map((k) => r.key[k])]);
    }
    for (const [m, keys] of [...byModel].sort(([a], [b]) => (a < b ? -1 : 1))) {
      await lockInChunks(env, tx, m, keys, []);
    }
  }
  return readOldKeys(tx, model, operation, args, select, ctx);
}

/** The primary key of the row a unique `where` selects (none if it does not exist). */
async function uniqueRow(tx: SqlClient, model: string, where: unknown, pk: readonly string[]): Promise<unknown[][]> {
  const given = (where ?? {}) as Record<string, unknown>;
  if (pk.every((k) => isScalar(given[k]))) return [pk.map((k) => given[k])];
  const row = (await delegate(tx, model).findUnique({ where, select: pkSelect(pk) })) as Record<string, unknown> | null;
  return row ? [pk.map((k) => row[k])] : [];
}

/** Rows locked per statement. */
const LOCK_CHUNK = 1000;

async function lockInChunks(env: WriteEnv, tx: SqlClient, model: string, keys: unknown[][], select: string[]) {
  const { coordination, ctx } = env;
  const locked: Record<string, unknown>[] = [];
  for (let i = 0; i < keys.length; i += LOCK_CHUNK) {
    const chunk = keys.slice(i, i + LOCK_CHUNK);
    locked.push(
      ...(await coordination.dialect.lockRows(
        tx,
        coordination.table(model),
        ctx.fields[model]!.primaryKey,
        chunk,
        select,
      )),
    );
  }
  return locked;
}

/** The rows an `updateMany`/`deleteMany` matches; the write is narrowed to exactly those. */
async function matchedRows(
  tx: SqlClient,
  model: string,
  args: Record<string, unknown>,
  pk: readonly string[],
): Promise<unknown[][]> {
  const rows = (await delegate(tx, model).findMany({ where: args.where, select: pkSelect(pk) })) as Record<
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

/** Phase 4a: the write's upload records go with its row; one a drain took fails the write. */
async function takeUploads(env: WriteEnv, tx: SqlClient, uploads: Upload[]): Promise<void> {
  if (uploads.length === 0) return;
  const { journal } = env.coordination;
  const definite = uploads.filter((u) => !u.conditional).map((u) => u.record);
  const taken =
    (await journal.takeUploads(tx, definite)) + (await journal.holdUploads(tx, conditionalRecords(uploads)));
  if (taken < uploads.length) {
    const u = uploads[0]!;
    throw new PrismaS3FilesError(
      "FILE_NOT_FOUND",
      `${u.model}.${u.field}: an upload of this write was removed as abandoned (its journal record passed uploadExpirySeconds) before its row was written; write it again`,
    );
  }
}

/**
 * Phase 4b: keys copied from other rows are locked, so their deletion waits for this write (and
 * then sees its row), and refused if their object was deleted already.
 */
async function lockCopiedKeys(env: WriteEnv, tx: SqlClient, keys: KeyAssignment[]): Promise<void> {
  if (keys.length === 0) return;
  const entries = keys.map((k) => ({ storage: env.ctx.storageName(k.model, k.field), key: k.key }));
  await env.coordination.dialect.lockKeys(tx, entries);
  await refuseGoneKeys(env, tx, keys);
}

async function refuseGoneKeys(env: WriteEnv, client: SqlClient, keys: KeyAssignment[]): Promise<void> {
  const byStorage = new Map<string, KeyAssignment[]>();
  for (const k of keys) {
    const name = env.ctx.storageName(k.model, k.field);
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
function deletions(
  ctx: LifecycleContext,
  oldKeys: { model: string; field: string; key: string }[],
): (JournalEntry & { delaySeconds: number })[] {
  const seen = new Set<string>();
  const out: (JournalEntry & { delaySeconds: number })[] = [];
  for (const k of oldKeys) {
    const meta = ctx.fields[k.model]!.fileFields[k.field]!;
    if (meta.keepFiles) continue;
    const storage = ctx.storageName(k.model, k.field);
    const id = `${storage}:${k.key}`;
    if (seen.has(id)) continue;
    seen.add(id);
    out.push({ storage, key: k.key, owner: `${k.model}.${k.field}`, delaySeconds: meta.deleteAfterSeconds });
  }
  return out;
}

/** Phase 7 after a commit: deletions due now, and uploads the write may not have used. */
async function settle(env: WriteEnv, due: bigint[], conditional: bigint[]): Promise<void> {
  const ids = [...due, ...conditional];
  if (ids.length === 0) return;
  try {
    await drain(env.base, env.coordination, env.ctx, { ids }); // reports each failed deletion itself
  } catch (error) {
    if (process.env.PSF_DEBUG) console.log("SETTLE ERROR", error);
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
    [],
    uploads.map((u) => u.record),
  );
}

/** After a failed store: the records made so far (storeUploads deleted its objects; the drain makes sure). */
async function settleRecords(env: WriteEnv, ids: bigint[]): Promise<void> {
  await settle(env, [], ids);
}

function conditionalRecords(uploads: Upload[]): bigint[] {
  return uploads.filter((u) => u.conditional).map((u) => u.record);
}

/** Runs the operation on our transaction client, unpacking a fluent call's rows as Prisma's `query` does. */
async function runOn(tx: SqlClient, req: WriteRequest, args: unknown): Promise<unknown> {
  const method = modelDelegate<Record<string, (a: unknown) => Promise<unknown>>>(tx, req.model)[req.operation];
  let result = await method!(args);
  if (req.dataPath) {
    for (let i = 1; i < req.dataPath.length; i += 2) {
      result = (result as Record<string, unknown> | null)?.[req.dataPath[i]!] ?? null;
    }
  }
  return result;
}

function pkSelect(pk: readonly string[]): Record<string, true> {
  return Object.fromEntries(pk.map((k) => [k, true]));
}

function isScalar(value: unknown): boolean {
  return ["string", "number", "bigint", "boolean"].includes(typeof value);
}
