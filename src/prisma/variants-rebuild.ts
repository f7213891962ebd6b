/**
 * `rebuildVariants`: brings every stored original's variants to the schema's current specs
 * (`npx prisma-s3-files variants --stale`). A variant's key carries the digest of the spec it
 * was made from, so the variants an original should have are known from its key alone: those
 * missing (never made, or made under another spec) are built, and those under an old spec or a
 * name no longer declared are deleted. Originals are only read.
 *
 * Safe to interrupt and run again: each variant is recorded in the journal before its bytes go
 * and settled by the drain after (kept while a row holds its original, deleted otherwise: an
 * original replaced meanwhile leaves nothing behind); writing one again gives the same object.
 */
import { FileNotFoundError } from "../errors.js";
import { variantKey } from "../files/variants.js";
import type { S3Session } from "../session/session.js";
import { resolveDirectUploads } from "./direct-uploads.js";
import { resolveStorages, type S3FilesOptions } from "./extension.js";
import { delegate, type LifecycleContext, lifecycleContext } from "./file-lifecycle.js";
import { fieldVariants, listVariants, storeVariants } from "./file-variants.js";
import { coordinationFor } from "./journal/coordination.js";
import { type DrainClient, drain } from "./journal/drain.js";
import type { FileFieldsMetadataShape } from "./metadata-types.js";

/** Progress of {@link rebuildVariants}, after each original. */
export interface RebuildProgress {
  model: string;
  field: string;
  /** Originals examined so far in this field. */
  examined: number;
  built: number;
  deleted: number;
}

/** What {@link rebuildVariants} did. */
export interface RebuildReport {
  /** Originals examined (rows holding a file in a field with variants). */
  examined: number;
  /** Variants built (missing, or made under another spec). */
  built: number;
  /** Variants deleted: made under an old spec, or under a name no longer declared. */
  deleted: number;
  /**
   * Originals a row names that the storage does not hold (lost, or the row points elsewhere):
   * no variant can be made of them. Reported, not failed: nothing here can mend them.
   */
  missing: { model: string; field: string; key: string }[];
  /** Originals whose variants could not be brought up to date (the rest went on). */
  failed: { model: string; field: string; key: string; error: string }[];
  dryRun: boolean;
}

/** Options of {@link rebuildVariants}. */
export interface RebuildOptions<Meta extends FileFieldsMetadataShape> extends S3FilesOptions<Meta> {
  /** Only report what would be built and deleted. */
  dryRun?: boolean;
  /** Rows read per query. Default 200. */
  batchSize?: number;
  onProgress?: (progress: RebuildProgress) => void;
}

/** How long a variant's record waits, should this run die, before a drain removes its object. */
const RECORD_SECONDS = 3600;

/**
 * Builds missing and stale variants of every original, and deletes variants of old specs; see the
 * module's comment. Returns counts; failures are listed per original, never thrown.
 */
export async function rebuildVariants<const Meta extends FileFieldsMetadataShape>(
  client: unknown,
  session: S3Session | undefined,
  options: RebuildOptions<Meta>,
): Promise<RebuildReport> {
  const storages = resolveStorages(session, options);
  const ctx = lifecycleContext(options.fields, storages, () => undefined, resolveDirectUploads(options.directUploads));
  const report: RebuildReport = {
    examined: 0,
    built: 0,
    deleted: 0,
    missing: [],
    failed: [],
    dryRun: options.dryRun ?? false,
  };
  for (const [model, meta] of Object.entries(options.fields)) {
    for (const [field, f] of Object.entries(meta.fileFields)) {
      if (fieldVariants(f).length === 0) continue;
      const progress: RebuildProgress = { model, field, examined: 0, built: 0, deleted: 0 };
      for await (const key of originals(client, model, field, meta.primaryKey, options.batchSize ?? 200)) {
        try {
          const done = await rebuildOne(client as DrainClient, ctx, model, field, key, report.dryRun);
          progress.built += done.built;
          progress.deleted += done.deleted;
          report.built += done.built;
          report.deleted += done.deleted;
        } catch (error) {
          if (error instanceof FileNotFoundError && error.fileName === key) report.missing.push({ model, field, key });
          else report.failed.push({ model, field, key, error: (error as Error)?.message ?? String(error) });
        }
        progress.examined++;
        report.examined++;
        options.onProgress?.({ ...progress });
      }
    }
  }
  return report;
}

/** Phases for one original: compare, delete old specs' variants, build the missing ones, settle. */
async function rebuildOne(
  client: DrainClient,
  ctx: LifecycleContext,
  model: string,
  field: string,
  key: string,
  dryRun: boolean,
): Promise<{ built: number; deleted: number }> {
  const meta = ctx.fields[model]!.fileFields[field]!;
  const storage = ctx.storageOf(model, field);
  // Compare: what the key says should be there against what is.
  const variants = fieldVariants(meta);
  const expected = new Map(variants.map((v) => [variantKey(key, v.name, v.spec), v]));
  const present = new Set(await listVariants(storage, key));
  // Lazy variants are made on their first request; only eager ones are built here.
  const missing = [...expected].filter(([k, v]) => !present.has(k) && !v.spec.lazy).map(([, v]) => v.name);
  const stale = [...present].filter((k) => !expected.has(k));
  // An original that is not there has nothing to make variants of (FileNotFoundError, reported).
  if (missing.length > 0 && !(await storage.exists(key))) throw new FileNotFoundError(key);
  if (dryRun) return { built: missing.length, deleted: stale.length };
  // Old specs' variants: nothing derives their keys any more.
  let deleted = 0;
  if (stale.length > 0) {
    const result = await storage.deleteMany(stale);
    if (result.failed.length > 0) throw result.failed[0]!.error;
    deleted = result.deleted.length;
  }
  if (missing.length === 0) return { built: 0, deleted };
  return { built: await buildVariants(client, ctx, model, field, key, missing), deleted };
}

/**
 * Builds variants `names` of the original at `key` (lazy ones too) and stores them, each recorded
 * in the journal before it is written, then settled by the drain: kept while a row holds the
 * original, deleted otherwise. Returns how many were stored.
 */
export async function buildVariants(
  client: DrainClient,
  ctx: LifecycleContext,
  model: string,
  field: string,
  key: string,
  names: readonly string[],
): Promise<number> {
  const meta = ctx.fields[model]!.fileFields[field]!;
  const storage = ctx.storageOf(model, field);
  const coordination = coordinationFor(ctx.fields);
  const stat = await storage.stat(key);
  const bytes = await storage.read(key);
  const records: bigint[] = [];
  const made: { name: string; key: string }[] = [];
  try {
    await storeVariants(
      ctx.images,
      storage,
      meta,
      { key, contentType: stat.contentType ?? "application/octet-stream", bytes },
      { model, field },
      made,
      async (name) => {
        const entry = { storage: ctx.storageId(model, field), key: name, owner: `${model}.${field}` };
        records.push(await coordination.journal.recordUpload(client, entry, RECORD_SECONDS, "standalone"));
      },
      names,
    );
  } finally {
    // Kept while a row holds the original, deleted otherwise (see the drain).
    if (records.length > 0) await drain(client, coordination, ctx, { ids: records });
  }
  return made.length;
}

/** The keys a field's rows hold, in primary-key order, a page at a time. */
async function* originals(
  client: unknown,
  model: string,
  field: string,
  primaryKey: readonly string[],
  batchSize: number,
): AsyncGenerator<string> {
  const select = Object.fromEntries([...primaryKey, field].map((k) => [k, true]));
  const orderBy = primaryKey.map((k) => ({ [k]: "asc" }));
  let skip = 0;
  let after: unknown;
  for (;;) {
    // One primary-key column: a keyset page (stable while rows come and go); else by offset.
    const where: Record<string, unknown> = { [field]: { not: null } };
    if (primaryKey.length === 1 && after !== undefined) where[primaryKey[0]!] = { gt: after };
    const rows = (await delegate(client, model).findMany({
      where,
      select,
      ...(orderBy.length > 0 ? { orderBy } : {}),
      take: batchSize,
      ...(primaryKey.length === 1 ? {} : { skip }),
    })) as Record<string, unknown>[];
    for (const row of rows) {
      const value = row[field];
      const key = typeof value === "string" ? value : (value as { name?: unknown } | null)?.name;
      if (typeof key === "string") yield key;
    }
    if (rows.length < batchSize) return;
    skip += rows.length;
    if (primaryKey.length === 1) after = rows[rows.length - 1]![primaryKey[0]!];
  }
}
