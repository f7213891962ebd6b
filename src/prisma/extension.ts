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
import { type LifecycleContext, lifecycleContext } from "./file-lifecycle.js";
import { clearFileMetadata, metadataColumns, metadataConflict } from "./file-metadata.js";
import { isGrantToken } from "./grant-token.js";
import { coordinationFor } from "./journal/coordination.js";
import { type DrainClient, DrainTimer, drain } from "./journal/drain.js";
import type { FileFieldsMetadataShape } from "./metadata-types.js";
import {
  checkDelegates,
  fluentDataPath,
  hasComputedFields,
  parentClient,
  skipResultExtensionPass,
} from "./prisma-internals.js";
import { compileMappers, mapRows, ROW_OPERATIONS } from "./result-mapper.js";
import { transactionOverride, transactionScope } from "./transactions.js";
import type { FilesExtension } from "./types.js";
import { discardUpload, type UploadOptions, upload } from "./upload.js";
import { type LazyVariantOptions, VariantUrlSigner } from "./variant-urls.js";
import { coordinatedWrite, RowQueue } from "./write-path.js";
import { planWrite, strayUpload, type WritePlan } from "./write-plan.js";

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
  /**
   * The background drain: deletes what the file journal says is due (replaced files after
   * `deleteAfterSeconds`, uploads of crashed processes), in whichever process gets to it first.
   * An unref'd timer every `intervalSeconds` (default 30) per client. `false` for serverless
   * functions: run `npx prisma-s3-files drain` (or `drainFiles()`) from a cron job instead.
   */
  drain?: false | { intervalSeconds?: number };
  /**
   * How long an upload's journal record waits for its row to commit before the drain takes the
   * upload as abandoned (a crashed process) and deletes it. Default 3600 (seconds): above the
   * longest upload plus its transaction.
   */
  uploadExpirySeconds?: number;
  /**
   * Lazy variants (`"... lazy"` in a variant's spec): `file.variant(name).url()` is a signed
   * URL at `baseUrl`, where {@link createVariantHandler} (with the same options) makes the
   * variant on its first request. Without it, a lazy variant's `url()` throws `CONFIGURATION`.
   */
  lazyVariants?: LazyVariantOptions;
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
  const signer = options.lazyVariants ? new VariantUrlSigner(options.lazyVariants) : undefined;
  const mappers = compileMappers(fields, ctx.storageOf, signer ? (claims) => signer.url(claims) : undefined);
  const coordination = coordinationFor(fields);
  const rowQueue = new RowQueue();
  const uploadExpirySeconds = options.uploadExpirySeconds ?? 3600;
  const drainIntervalMs = options.drain === false ? 0 : (options.drain?.intervalSeconds ?? 30) * 1000;

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
    // The journal's due records, drained from this client in the background; $disconnect stops it.
    const timer = new DrainTimer(
      (ids) => drain(base as unknown as DrainClient, coordination, ctx, ids ? { ids } : {}),
      report,
    );
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
      refuseMisplacedValues(params, args, plan, ctx);
      // A cleared file takes its metadata with it (the columns the write does not set itself).
      for (const c of plan.clears) clearFileMetadata(c.record, c.meta);
      if (plan.uploads.length === 0 && !plan.oldKeys && plan.keys.length === 0) {
        return mapResult(params, await params.query(args));
      }
      const env = {
        ctx,
        coordination,
        base: base as unknown as DrainClient,
        uploadExpirySeconds,
        later: (id: bigint, seconds: number) => timer.later(id, seconds),
        rowQueue,
      };
      const result = await coordinatedWrite(
        env,
        {
          model: params.model,
          operation: params.operation,
          args,
          plan,
          query: params.query,
          dataPath: fluentDataPath(params, base),
        },
        transactionScope.getStore(),
      );
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
    if (drainIntervalMs > 0) timer.start(drainIntervalMs);
    return (hooked as ExtensibleClient).$extends({
      name: "prisma-s3-files:transactions",
      client: {
        $transaction: transactionOverride(report),
        $disconnect: disconnectStopping(timer),
      },
    });
  };
  return extension as unknown as FilesExtension<Meta>;
}

/**
 * Values a write must not carry, refused before anything is stored: an upload in a column that
 * is not a file field, metadata columns set beside an upload (the upload fills them), a pending
 * direct upload's bare key (its grant's token verifies it).
 */
function refuseMisplacedValues(
  params: HookParams,
  args: Record<string, unknown>,
  plan: WritePlan,
  ctx: LifecycleContext,
) {
  const stray = strayUpload(args, new Set(plan.uploads.map((u) => u.token)));
  if (stray !== undefined) {
    // Nothing is written: the write's uploads will not be stored.
    for (const token of [stray.token, ...plan.uploads.map((u) => u.token)]) discardUpload(token);
    throw new PrismaS3FilesError(
      "NOT_A_FILE_FIELD",
      `${params.model}.${params.operation}: an upload() value is at ${stray.path}, which is not a file column; declare the column with /// @file(...) or write a key there`,
    );
  }
  for (const a of plan.uploads) {
    const conflict = metadataConflict(a.model, a.field, a.record, a.meta);
    if (conflict === undefined) continue;
    for (const u of plan.uploads) discardUpload(u.token);
    throw conflict;
  }
  // Any spelling a storage reads as a pending key counts.
  const pendingKey = plan.keys.find((k) => isPendingKey(k.key, ctx.directUploads.pendingPrefix));
  if (pendingKey) {
    throw new PrismaS3FilesError(
      "GRANT_REQUIRED",
      `${pendingKey.model}.${pendingKey.field}: "${pendingKey.key}" is a pending direct upload; write its grant's token instead`,
    );
  }
}

/** Whether a key names an object under the pending prefix, as storages normalise it (`./_pending/…`, `_pending//…`). */
function isPendingKey(key: string, pendingPrefix: string): boolean {
  return `${normalizeName(key)}/`.startsWith(pendingPrefix);
}

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
  /**
   * Checks the field and returns a select of it, its metadata columns and the primary key (so
   * the returned file can `save()` again and knows its metadata).
   */
  const selectFor = (delegate: Delegate, field: string) => {
    const meta = fieldOf(delegate, field);
    const names = [...fields[delegate.$name]!.primaryKey, field, ...metadataColumns(meta)];
    return Object.fromEntries(names.map((k) => [k, true]));
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

/** `$disconnect` that stops the client's background drain first. */
function disconnectStopping(timer: DrainTimer) {
  return function $disconnect(this: { $parent: { $disconnect(): Promise<void> } }) {
    timer.stop();
    return parentClient<{ $disconnect(): Promise<void> }>(this, "$disconnect").$disconnect();
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
