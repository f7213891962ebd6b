import { PrismaS3FilesError } from "../errors.js";
import type { S3Session } from "../session/session.js";
import { normalizeName } from "../storage/naming.js";
import { defaultS3Storage } from "../storage/s3/default-storage.js";
import type { FileContent, Storage } from "../storage/storage.js";
import {
  createUploadGrant,
  type DirectUploadOptions,
  resolveDirectUploads,
  type UploadGrantOptions,
} from "./direct-uploads.js";
import {
  delegate,
  deleteObjects,
  type LifecycleContext,
  lifecycleContext,
  readOldKeys,
  readWrittenRows,
  removeUnreferenced,
  removeUntakenUploads,
  type StoredObject,
  storeUploads,
} from "./file-lifecycle.js";
import { isGrantToken } from "./grant-token.js";
import { holdUploaded, pinKeys } from "./key-guards.js";
import type { FileFieldsMetadataShape } from "./metadata-types.js";
import { checkDelegates, fluentDataPath, hasComputedFields, skipResultExtensionPass } from "./prisma-internals.js";
import { compileMappers, mapRows, ROW_OPERATIONS } from "./result-mapper.js";
import { lockRows, rowKey } from "./row-locks.js";
import { type TransactionScope, transactionOverride, transactionScope } from "./transactions.js";
import type { FilesExtension } from "./types.js";
import { discardUpload, type UploadOptions, upload } from "./upload.js";
import { collectRelatedRows, type OldKeySelect, planWrite, relatedRowsSelect, strayUpload } from "./write-plan.js";

/** Options of {@link s3Files}. */
export interface S3FilesOptions<Meta extends FileFieldsMetadataShape> {
  /** The generated metadata: `fileFields` from the generator's output module. */
  fields: Meta;
  /**
   * Storages by the names used in `@file(storage: "...")`. `default` (for columns that name
   * none) defaults to an `S3Storage` on the session's bucket.
   */
  storages?: { [name: string]: Storage };
  /**
   * Called with failures that must not fail a committed write: deleting a replaced object, or
   * one uploaded for a write that rolled back (`sweepOrphans` finds what is left). Default:
   * `console.warn`.
   */
  onCleanupError?: (error: unknown) => void;
  /**
   * @deprecated No effect: reads skip Prisma's own per-row result pass by default whenever that
   * is safe (no Prisma `result` extension before or after `s3Files` on the client), and keep it
   * otherwise. Kept so existing configurations still type-check.
   */
  fastReads?: boolean;
  /**
   * Browser direct uploads: `prisma.user.uploadGrant("avatar", {...})` presigns an upload to
   * S3, and the grant's token, passed where the column takes an upload, attaches the verified
   * object. Needs a `secret` (or `PRISMA_S3_FILES_SECRET`) to sign grants.
   */
  directUploads?: DirectUploadOptions;
}

/** The parameters of Prisma's `$allOperations` query hook that the binding uses. */
interface HookParams {
  model: string;
  operation: string;
  args: unknown;
  query: (args: unknown) => Promise<unknown>;
  /** Internal: `dataPath` of fluent calls, `transaction.kind` of batches. Covered by tests. */
  __internalParams?: { dataPath?: string[]; transaction?: { kind?: string }; model?: string | undefined };
}

/** The client part of Prisma's extension API that the binding uses; no Prisma import needed. */
interface ExtensibleClient {
  $extends(extension: {
    name: string;
    query?: { $allModels: { $allOperations(params: HookParams): Promise<unknown> } };
    client?: Record<string, unknown>;
    model?: { $allModels: Record<string, unknown> };
  }): ExtensibleClient;
}

/**
 * The Prisma client extension: `prisma.$extends(s3Files(session, { fields }))`.
 *
 * Reads: every declared file column reads as a {@link FieldFile} (or `null`) on every read path.
 * Writes: a file column takes `upload(content)`; the bytes are validated and stored first, the
 * row written next, and objects are cleaned up by outcome: the new ones if the write fails or its
 * transaction rolls back, the replaced or deleted ones once the write has committed.
 */
export function s3Files<const Meta extends FileFieldsMetadataShape>(
  session: S3Session | undefined,
  options: S3FilesOptions<Meta>,
): FilesExtension<Meta> {
  const fields = options.fields;
  const storages = resolveStorages(session, options);
  const report =
    options.onCleanupError ??
    ((error: unknown) => console.warn(`prisma-s3-files: cleanup failed: ${(error as Error)?.message ?? error}`));
  const ctx = lifecycleContext(fields, storages, report, resolveDirectUploads(options.directUploads));
  const mappers = compileMappers(fields, ctx.storageOf);

  const extension = (client: unknown) => {
    const base = client as ExtensibleClient;
    // The client with the query hook: what files read outside a transaction write back through.
    let hooked: unknown;
    checkDelegates(base, Object.keys(fields));
    // Prisma walks every result row for computed fields once a client has any extension (~1.5×
    // a plain read), even when no extension computes any. The walk is skipped unless a `result`
    // extension exists: one applied before ours is visible on `base` now; one applied after is
    // seen by our `$extends` override below, before any query can run on that client.
    const resultPass = { needed: hasComputedFields(base, Object.keys(fields)) };
    const mapResult = (params: HookParams, result: unknown) => {
      if (!ROW_OPERATIONS.has(params.operation)) return result;
      // Prisma's request handler runs its result-extension pass only when the request still
      // names a model after the hooks (internal; covered by tests and the prisma-read bench).
      if (!resultPass.needed) skipResultExtensionPass(params, base);
      // A fluent call (`user.findUnique(...).posts()`) hands the hook the relation's rows,
      // already taken out along `dataPath` (["select", "posts", ...]): follow it to their model.
      const path = fluentDataPath(params, base);
      const target = path ? followDataPath(fields, params.model, path) : params.model;
      if (target === undefined) return result;
      return mapRows(mappers, target, result, transactionScope.getStore()?.tx ?? hooked);
    };
    const write = async (params: HookParams) => {
      const args = (params.args ?? {}) as Record<string, unknown>;
      const plan = planWrite(fields, params.model, params.operation, args);
      const stray = strayUpload(args, new Set(plan.uploads.map((u) => u.token)));
      if (stray !== undefined) {
        // Nothing is written: the write's uploads will not be stored.
        for (const token of [stray.token, ...plan.uploads.map((u) => u.token)]) discardUpload(token);
        throw new PrismaS3FilesError(
          "NOT_A_FILE_FIELD",
          `${params.model}.${params.operation}: an upload() value is at ${stray.path}, which is not a file column; declare the column with /// @file(...) or write a key there`,
        );
      }
      // A pending direct upload is attached by its grant's token, which verifies it; its bare
      // key (which the browser knows) would skip that, in any spelling a storage reads as it.
      const pendingKey = plan.keys.find((k) => isPendingKey(k.key, ctx.directUploads.pendingPrefix));
      if (pendingKey) {
        throw new PrismaS3FilesError(
          "GRANT_REQUIRED",
          `${pendingKey.model}.${pendingKey.field}: "${pendingKey.key}" is a pending direct upload; write its grant's token instead`,
        );
      }
      if (plan.uploads.length === 0 && !plan.oldKeys && plan.keys.length === 0) {
        return mapResult(params, await params.query(args));
      }
      const scope = transactionScope.getStore();
      // Inside an interactive transaction, read through it: it sees the transaction's own writes.
      const reader = scope?.tx ?? base;
      // Uploads first, outside any lock: they are the slow part and touch no row. In a
      // transaction they are registered for the rollback at once: a batch may fail before this
      // write's query ever runs.
      let stored: StoredObject[] = [];
      let releaseUploads: (() => void) | undefined;
      if (plan.uploads.length > 0) {
        ({ stored, release: releaseUploads } = await storeHeld(plan.uploads, ctx, scope));
      }
      // Rows replaced or deleted: no other writer of this process may read their old keys
      // between our read and our write (in a transaction: until it settles).
      let release: (() => void) | undefined;
      if (plan.oldKeys) {
        const rows = SINGLE_ROW.has(params.operation)
          ? [await singleRowKey(reader, params.model, args.where, fields)]
          : await lockableRows(reader, params.model, args, fields);
        // The rows a cascade or a nested write reaches too: a concurrent write of one of them
        // must not replace a file between our read of its key and our write.
        const related = await relatedRowKeys(reader, params.model, params.operation, args, plan.oldKeys, fields);
        release = await lockRows([...rows, ...related], scope, ROW_LOCK_TIMEOUT_MS);
      }
      let oldKeys: Awaited<ReturnType<typeof readOldKeys>> = [];
      let result: unknown;
      let unpin: (() => void) | undefined;
      try {
        // Keys copied from other rows stay put until this write's outcome is known.
        if (plan.keys.length > 0) {
          unpin = await pinKeys(plan.keys.map((k) => ({ ...k, storage: ctx.storageOf(k.model, k.field) })));
          // A batch that already failed will not run this write: release at once.
          if (scope?.closed) unpin();
          else if (scope) scope.settled.push(unpin);
        }
        if (plan.oldKeys) oldKeys = await readOldKeys(reader, params.model, params.operation, args, plan.oldKeys, ctx);
        result = await params.query(args);
      } catch (error) {
        release?.();
        if (!scope) {
          unpin?.();
          releaseUploads?.();
        }
        // The row was not written: the new objects are nobody's. The error goes back unchanged.
        await deleteObjects(stored, ctx);
        throw error;
      }
      if (scope) {
        // A batch reads committed data, so a later item replacing the same row reads the key
        // an earlier item replaced, not the earlier item's upload: check all of a batch's uploads.
        const check = scope.tx ? stored : stored.map((o) => ({ ...o, conditional: true }));
        scope.afterCommit.push(() => removeUntakenUploads(base, check, ctx));
        if (oldKeys.length > 0) scope.afterCommit.push(() => removeUnreferenced(base, oldKeys, ctx));
      } else {
        // Not in a transaction: the write has committed.
        unpin?.();
        releaseUploads?.();
        try {
          await removeUntakenUploads(base, stored, ctx).catch(report);
          if (oldKeys.length > 0) await removeUnreferenced(base, oldKeys, ctx).catch(report);
        } finally {
          release?.();
        }
      }
      return mapResult(params, result);
    };

    // The model methods go on the client the hook is on: an interactive transaction runs on
    // that client (`$parent` of the one with our `$transaction`), and `tx.user.attach` must exist.
    hooked = base.$extends({
      name: "prisma-s3-files",
      client: { $extends: watchResultExtensions(base.$extends, resultPass) },
      query: {
        $allModels: {
          async $allOperations(params) {
            if (WRITE_OPERATIONS.has(params.operation)) return write(params);
            return mapResult(params, await params.query(params.args));
          },
        },
      },
      model: { $allModels: modelMethods(fields, ctx) },
    });
    return (hooked as ExtensibleClient).$extends({
      name: "prisma-s3-files:transactions",
      client: { $transaction: transactionOverride(report) },
    });
  };
  return extension as unknown as FilesExtension<Meta>;
}

/** Whether a key names an object under the pending prefix, as storages normalise it (`./_pending/…`, `_pending//…`). */
function isPendingKey(key: string, pendingPrefix: string): boolean {
  return `${normalizeName(key)}/`.startsWith(pendingPrefix);
}

/**
 * Stores a write's uploads, each held from the moment it exists (no row references it yet, and a
 * sweep in this process must not take it for an orphan) until the returned `release`, or in a
 * transaction until it settles. In a transaction they are registered for the rollback at once:
 * a batch may fail before the write's query ever runs. An upload a sweep deleted in the instant
 * before its hold fails the write with `FILE_NOT_FOUND`, before any row points at it.
 */
async function storeHeld(
  uploads: Parameters<typeof storeUploads>[0],
  ctx: LifecycleContext,
  scope: TransactionScope | undefined,
): Promise<{ stored: StoredObject[]; release: () => void }> {
  const holds: ReturnType<typeof holdUploaded>[] = [];
  const release = () => {
    for (const hold of holds) hold.release();
  };
  const storing = storeUploads(uploads, ctx, (o) => holds.push(holdUploaded(o.storage, o.key)));
  scope?.uploads.push(storing.catch(() => undefined));
  let stored: StoredObject[];
  try {
    stored = await storing;
  } catch (error) {
    release();
    throw error;
  }
  scope?.onRollback.push(() => deleteObjects(stored, ctx));
  if (scope?.closed) release();
  else scope?.settled.push(release);
  const swept = (await Promise.all(holds.map((h) => h.swept))).indexOf(true);
  if (swept !== -1) {
    const lost = stored[swept] as StoredObject;
    if (!scope) {
      release();
      await deleteObjects(stored, ctx);
    }
    throw new PrismaS3FilesError(
      "FILE_NOT_FOUND",
      `${lost.model}.${lost.field}: the upload "${lost.key}" was deleted as unreferenced (by sweepOrphans) before its row was written; write it again`,
    );
  }
  return { stored, release };
}

/** Writes that replace or delete the files of exactly one row (selected by a unique `where`). */
const SINGLE_ROW: ReadonlySet<string> = new Set(["update", "upsert", "delete"]);
/**
 * The lock key of the row a unique `where` selects, by its primary key, so that `{ id: 1 }` and
 * `{ email }` naming one row take one lock. A `where` holding the whole primary key needs no
 * query; any other is resolved with a read of the key. A row that does not exist (an upsert's
 * create) is locked by its `where`.
 */
async function singleRowKey(
  reader: unknown,
  model: string,
  where: unknown,
  fields: FileFieldsMetadataShape,
): Promise<string> {
  const pk = fields[model]?.primaryKey ?? [];
  const given = (where ?? {}) as Record<string, unknown>;
  const direct = pk.length > 0 && pk.every((k) => isScalar(given[k]));
  if (direct) return rowKey(model, Object.fromEntries(pk.map((k) => [k, given[k]])));
  if (pk.length > 0) {
    const row = await delegate(reader, model).findUnique({
      where,
      select: Object.fromEntries(pk.map((k) => [k, true])),
    });
    if (row) return rowKey(model, Object.fromEntries(pk.map((k) => [k, (row as Record<string, unknown>)[k]])));
  }
  return rowKey(model, where);
}

/** Lock keys of the related rows `select` reaches below the written rows (read now, by primary key). */
async function relatedRowKeys(
  reader: unknown,
  model: string,
  operation: string,
  args: Record<string, unknown>,
  select: OldKeySelect,
  fields: FileFieldsMetadataShape,
): Promise<string[]> {
  const related = relatedRowsSelect(fields, select);
  if (!related) return [];
  const rows = await readWrittenRows(reader, model, operation, args, related);
  return collectRelatedRows(fields, select, rows).map((r) => rowKey(r.model, r.key));
}

function isScalar(value: unknown): boolean {
  return ["string", "number", "bigint", "boolean"].includes(typeof value);
}

/** Past this many rows an `updateMany`/`deleteMany` is not narrowed to locked rows (the id list would not fit a query). */
const MAX_LOCKED_ROWS = 1000;

/**
 * The rows an `updateMany`/`deleteMany` will write, as lock keys, read now; the write is then
 * narrowed to exactly those rows (`AND` their primary keys), so no row it did not lock, and whose
 * old key it did not read, is written. Without a primary key, or past {@link MAX_LOCKED_ROWS}
 * rows, nothing is locked (concurrent writers of those rows may orphan an upload, which
 * `sweepOrphans` collects).
 */
async function lockableRows(
  reader: unknown,
  model: string,
  args: Record<string, unknown>,
  fields: FileFieldsMetadataShape,
): Promise<string[]> {
  const pk = fields[model]?.primaryKey ?? [];
  if (pk.length === 0) return [];
  const rows = await delegate(reader, model).findMany({
    where: args.where,
    select: Object.fromEntries(pk.map((k) => [k, true])),
    take: MAX_LOCKED_ROWS + 1,
  });
  if (rows.length > MAX_LOCKED_ROWS) return [];
  const wheres = rows.map((r) => Object.fromEntries(pk.map((k) => [k, (r as Record<string, unknown>)[k]])));
  const only = pk.length === 1 ? { [pk[0]!]: { in: wheres.map((w) => w[pk[0]!]) } } : { OR: wheres };
  args.where = args.where === undefined ? only : { AND: [args.where, only] };
  return wheres.map((w) => rowKey(model, w));
}

/** How long a writer waits for another writer of the same row before going ahead anyway (a stuck transaction is ended by its own timeout, which releases the row). */
const ROW_LOCK_TIMEOUT_MS = 60_000;

const WRITE_OPERATIONS: ReadonlySet<string> = new Set([
  "create",
  "createMany",
  "createManyAndReturn",
  "update",
  "updateMany",
  "updateManyAndReturn",
  "upsert",
  "delete",
  "deleteMany",
]);

/**
 * `prisma.user.attach(where, "avatar", content, options?)` and `detach(where, "avatar")`: the
 * record-level `FieldFile.save` / `delete` from a `where`, through the same write path (and the
 * transaction, when called on `tx`).
 */
function modelMethods(fields: FileFieldsMetadataShape, ctx: LifecycleContext) {
  type Delegate = { $name: string; update(args: unknown): Promise<Record<string, unknown>> };
  const fieldOf = (delegate: Delegate, field: string) => {
    const meta = fields[delegate.$name]?.fileFields[field];
    if (!meta) throw new PrismaS3FilesError("CONFIGURATION", `${delegate.$name}.${field} is not a file field`);
    return meta;
  };
  /** Checks the field and returns a select of it and the primary key (so the returned file can `save()` again). */
  const selectFor = (delegate: Delegate, field: string) => {
    fieldOf(delegate, field);
    return Object.fromEntries([...fields[delegate.$name]!.primaryKey, field].map((k) => [k, true]));
  };
  return {
    /** `content` may also be a direct-upload grant token: the uploaded object is verified and attached. */
    async attach(
      this: Delegate,
      where: unknown,
      field: string,
      content: FileContent | string,
      options?: UploadOptions,
    ) {
      const select = selectFor(this, field);
      const value = isGrantToken(content) ? content : upload(content as FileContent, options);
      const row = await this.update({ where, data: { [field]: value }, select });
      return row[field];
    },
    async detach(this: Delegate, where: unknown, field: string) {
      const select = selectFor(this, field);
      await this.update({ where, data: { [field]: null }, select });
    },
    async uploadGrant(this: Delegate, field: string, options: UploadGrantOptions) {
      const meta = fieldOf(this, field);
      return createUploadGrant(ctx.storageOf(this.$name, field), this.$name, field, meta, ctx.directUploads, options);
    },
  };
}

/**
 * A client-level `$extends` for the clients derived from ours: it notes an extension with a
 * `result` component (Prisma calls a function-form extension with the client, so its inner
 * `$extends` calls come through here too), then extends as Prisma does. Noting is one-way and
 * covers every client of this `s3Files()` instance: the hook cannot tell which derived client a
 * query came through (Prisma passes it no reference to the client).
 */
function watchResultExtensions(
  original: ExtensibleClient["$extends"],
  resultPass: { needed: boolean },
): (this: ExtensibleClient, extension: unknown) => unknown {
  return function $extends(this: ExtensibleClient, extension: unknown) {
    if (extension !== null && typeof extension === "object") {
      const result = (extension as { result?: unknown }).result;
      if (result !== null && typeof result === "object" && Object.keys(result).length > 0) resultPass.needed = true;
    }
    return original.call(this, extension as Parameters<ExtensibleClient["$extends"]>[0]);
  };
}

function followDataPath(fields: FileFieldsMetadataShape, model: string, path: readonly string[]): string | undefined {
  let current: string | undefined = model;
  for (let i = 1; i < path.length && current !== undefined; i += 2) {
    current = fields[current]?.relations[path[i] as string]?.model;
  }
  return current;
}

/** Every storage the metadata names, checked up front: a missing one is a configuration error now, not at first read. */
export function resolveStorages(
  session: S3Session | undefined,
  options: S3FilesOptions<FileFieldsMetadataShape>,
): Map<string, Storage> {
  const given = options.storages ?? {};
  const storages = new Map<string, Storage>(Object.entries(given));
  const missing = new Map<string, string[]>();
  for (const [model, meta] of Object.entries(options.fields)) {
    for (const [field, f] of Object.entries(meta.fileFields)) {
      if (storages.has(f.storage)) continue;
      if (f.storage === "default") {
        if (!session) {
          throw new PrismaS3FilesError(
            "CONFIGURATION",
            `${model}.${field} uses the default storage: pass a session or storages.default to s3Files()`,
          );
        }
        // Objects it cannot remove (a probe, a moved source) go where the binding's cleanup failures go.
        const onLeftBehind = options.onCleanupError;
        storages.set("default", defaultS3Storage({ session, ...(onLeftBehind ? { onLeftBehind } : {}) }));
        continue;
      }
      missing.set(f.storage, [...(missing.get(f.storage) ?? []), `${model}.${field}`]);
    }
  }
  if (missing.size > 0) {
    const list = [...missing].map(([name, fields]) => `"${name}" (used by ${fields.join(", ")})`).join("; ");
    throw new PrismaS3FilesError(
      "CONFIGURATION",
      `s3Files(): no storage given for ${list}; pass them in options.storages`,
    );
  }
  return storages;
}
