import type { S3Session } from "../session/session.js";
import { BaseStorage } from "../storage/base-storage.js";
import type { ObjectInfo, Storage } from "../storage/storage.js";
import { pendingKeyExpiry, resolveDirectUploads } from "./direct-uploads.js";
import { resolveStorages, type S3FilesOptions } from "./extension.js";
import { delayedDeletions, type LifecycleContext, lifecycleContext, referencedKeys } from "./file-lifecycle.js";
import { guardedDeletion } from "./key-guards.js";
import type { FileFieldsMetadataShape } from "./metadata-types.js";

/** Options of {@link sweepOrphans}. */
export interface SweepOptions<Meta extends FileFieldsMetadataShape> extends S3FilesOptions<Meta> {
  /**
   * Only objects at least this old are removed (seconds; default 3600). Uploads in flight, and
   * objects kept for `deleteAfterSeconds`, are younger than a sensible value.
   */
  olderThan?: number;
  /**
   * Incomplete multipart uploads (parts stored and billed, never completed nor aborted: a crashed
   * save, a browser that gave up on a multipart grant) started at least this many seconds ago
   * are aborted. Default 86400 (24 hours): above what a save takes. A direct upload's plan is
   * aborted once its grant has expired (`pendingGraceSeconds` later), whatever its age, and never
   * before. Listed under the same prefixes as objects, on S3 storages only.
   */
  abortMultipartOlderThan?: number;
  /** Report what would be deleted without deleting. */
  dryRun?: boolean;
  /** Called as objects are examined, e.g. for a progress bar. */
  onProgress?: (progress: { storage: string; examined: number; orphans: number }) => void;
}

export interface SweepReport {
  /** Objects examined under the file columns' prefixes. */
  examined: number;
  /** Objects no row references (deleted unless `dryRun`), per storage name. */
  orphans: { storage: string; key: string; size?: number }[];
  deleted: number;
  /** Orphans whose deletion failed (the sweep goes on). */
  failed: { storage: string; key: string; error: string }[];
  /** Incomplete multipart uploads (see {@link SweepOptions.abortMultipartOlderThan}). */
  multipart: MultipartSweepReport;
  dryRun: boolean;
}

/** What the sweep found and did about incomplete multipart uploads. */
export interface MultipartSweepReport {
  /** Incomplete uploads listed under the file columns' prefixes. */
  examined: number;
  /** Uploads old enough to abort (aborted unless `dryRun`). */
  abandoned: { storage: string; key: string; uploadId: string; initiated?: Date }[];
  aborted: number;
  /** Uploads whose abort failed (the sweep goes on). */
  failed: { storage: string; key: string; uploadId: string; error: string }[];
  /** Storages whose server cannot list multipart uploads (s3rver): none were swept there. */
  unsupported: string[];
  /** Storages whose listing failed otherwise (e.g. no `s3:ListBucketMultipartUploads` permission); the sweep goes on. */
  listFailed: { storage: string; error: string }[];
}

/** Structurally, what an S3 storage offers for sweeping multipart uploads. */
interface MultipartSweepable {
  listMultipartUploads(prefix: string): AsyncIterable<{ name: string; uploadId: string; initiated: Date | undefined }>;
  abortMultipartUpload(name: string, uploadId: string): Promise<void>;
}

function multipartSweepable(storage: Storage): MultipartSweepable | undefined {
  const s = storage as Partial<MultipartSweepable>;
  return typeof s.listMultipartUploads === "function" && typeof s.abortMultipartUpload === "function"
    ? (storage as unknown as MultipartSweepable)
    : undefined;
}

/**
 * Deletes objects that no row references: left by cascading deletes, raw SQL, or a crash
 * between upload and commit. Lists each file column's prefix (the fixed part of `uploadTo`
 * before its first `%` directive) in its storage, and keeps every key any file column on that
 * storage holds. Objects younger than `olderThan`, and those this process keeps for
 * `deleteAfterSeconds`, are left alone. Reads through `client` (a plain or extended Prisma
 * client). An `uploadTo` without a fixed directory (`""`, `"%Y/"`) makes the whole storage the
 * prefix: give such a storage a `location` of its own.
 */
export async function sweepOrphans<const Meta extends FileFieldsMetadataShape>(
  client: unknown,
  session: S3Session | undefined,
  options: SweepOptions<Meta>,
): Promise<SweepReport> {
  const fields = options.fields;
  const storages = resolveStorages(session, options);
  const directUploads = resolveDirectUploads(options.directUploads);
  const ctx = lifecycleContext(fields, storages, () => undefined, directUploads);
  const pendingPrefix = directUploads.pendingPrefix;
  const olderThanMs = (options.olderThan ?? 3600) * 1000;
  const cutoff = Date.now() - olderThanMs;
  const multipartCutoff = Date.now() - (options.abortMultipartOlderThan ?? 86_400) * 1000;
  const report: SweepReport = {
    examined: 0,
    orphans: [],
    deleted: 0,
    failed: [],
    multipart: { examined: 0, abandoned: [], aborted: 0, failed: [], unsupported: [], listFailed: [] },
    dryRun: options.dryRun ?? false,
  };

  // One storage under several names is listed once per name: each upload counts once.
  const uploadsSeen = new Map<Storage, Set<string>>();

  // Prefixes per storage; a prefix inside another is covered by it.
  const prefixes = new Map<string, Set<string>>();
  for (const meta of Object.values(fields)) {
    for (const f of Object.values(meta.fileFields)) {
      const set = prefixes.get(f.storage) ?? new Set<string>();
      set.add(staticPrefix(f.uploadTo));
      prefixes.set(f.storage, set);
    }
  }

  for (const [name, set] of prefixes) {
    const storage = storages.get(name)!;
    const roots = [...set].filter((p) => ![...set].some((q) => q !== p && p.startsWith(q)));
    const objects: ObjectInfo[] = [];
    // Pending direct uploads have rules of their own (below), wherever the roots are.
    for (const root of roots) {
      for await (const o of storage.listAll(root.replace(/\/+$/, ""))) {
        if (!o.name.startsWith(pendingPrefix)) objects.push(o);
      }
    }
    report.examined += objects.length;
    options.onProgress?.({ storage: name, examined: objects.length, orphans: 0 });
    const referenced = await referencedKeys(
      client,
      name,
      objects.map((o) => o.name),
      ctx,
    );
    const pending = delayedDeletions.get(storage);
    // An object a write of this process is storing right now (its PUT may be answered after the
    // listing saw the object) is that write's: its row is not written yet.
    const writing = (o: ObjectInfo) => storage instanceof BaseStorage && storage.isWriting(o.name);
    const orphans = objects.filter(
      (o) => !referenced.has(o.name) && !pending?.has(o.name) && o.modifiedTime.getTime() <= cutoff && !writing(o),
    );
    let found = 0;
    await removeOrphans(client, storage, name, orphans, report, ctx, () =>
      options.onProgress?.({ storage: name, examined: objects.length, orphans: ++found }),
    );
    await sweepPending(client, storage, name, pendingPrefix, directUploads.pendingGraceMs, report, ctx);
    const sweepable = multipartSweepable(storage);
    if (sweepable) {
      const seen = uploadsSeen.get(storage) ?? new Set<string>();
      uploadsSeen.set(storage, seen);
      await sweepMultipart(sweepable, name, [...roots, pendingPrefix], report, seen, {
        cutoff: multipartCutoff,
        pendingPrefix,
        graceMs: directUploads.pendingGraceMs,
      });
    }
  }
  return report;
}

/**
 * Aborts incomplete multipart uploads under `prefixes`: a direct upload's plan (a pending key
 * carrying its grant's expiry) once the grant has expired, any other once started before
 * `cutoff`. A server without ListMultipartUploads is reported, not an error.
 */
async function sweepMultipart(
  storage: MultipartSweepable,
  name: string,
  prefixes: string[],
  report: SweepReport,
  seen: Set<string>,
  rules: { cutoff: number; pendingPrefix: string; graceMs: number },
): Promise<void> {
  const now = Date.now();
  const abandoned: { key: string; uploadId: string; initiated?: Date }[] = [];
  const roots = prefixes.filter((p) => !prefixes.some((q) => q !== p && p.startsWith(q)));
  try {
    for (const root of roots) {
      for await (const u of storage.listMultipartUploads(root.replace(/\/+$/, ""))) {
        const id = `${u.name}\u0000${u.uploadId}`;
        if (seen.has(id)) continue;
        seen.add(id);
        report.multipart.examined++;
        const expiry = pendingKeyExpiry(u.name, rules.pendingPrefix);
        const old =
          expiry !== undefined
            ? expiry + rules.graceMs <= now
            : u.initiated !== undefined && u.initiated.getTime() <= rules.cutoff;
        if (old)
          abandoned.push({ key: u.name, uploadId: u.uploadId, ...(u.initiated ? { initiated: u.initiated } : {}) });
      }
    }
  } catch (error) {
    // Neither stops the sweep: objects were swept already, and the bucket's lifecycle rule may cover uploads.
    if ((error as { code?: unknown })?.code === "UNSUPPORTED_BY_SERVER") report.multipart.unsupported.push(name);
    else report.multipart.listFailed.push({ storage: name, error: describeFailure(error) });
    return;
  }
  for (const u of abandoned) {
    report.multipart.abandoned.push({ storage: name, ...u });
    if (report.dryRun) continue;
    try {
      await storage.abortMultipartUpload(u.key, u.uploadId);
      report.multipart.aborted++;
    } catch (error) {
      report.multipart.failed.push({
        storage: name,
        key: u.key,
        uploadId: u.uploadId,
        error: describeFailure(error),
      });
    }
  }
}

/**
 * Direct uploads never attached: a pending key carries its grant's expiry, and the object goes
 * once that has passed (`pendingGraceSeconds` later, for clocks that differ). Pending objects without one
 * (not made by a grant) are left alone.
 */
async function sweepPending(
  client: unknown,
  storage: Storage,
  name: string,
  prefix: string,
  graceMs: number,
  report: SweepReport,
  ctx: LifecycleContext,
): Promise<void> {
  const now = Date.now();
  const expired: ObjectInfo[] = [];
  for await (const o of storage.listAll(prefix.replace(/\/+$/, ""))) {
    report.examined++;
    const expiry = pendingKeyExpiry(o.name, prefix);
    if (expiry !== undefined && expiry + graceMs <= now) expired.push(o);
  }
  // Never what a row points at (written by raw SQL, say): the sweep only removes orphans.
  const referenced = await referencedKeys(
    client,
    name,
    expired.map((o) => o.name),
    ctx,
  );
  await removeOrphans(
    client,
    storage,
    name,
    expired.filter((o) => !referenced.has(o.name)),
    report,
    ctx,
  );
}

/**
 * Reports `orphans` and, unless it is a dry run, deletes them: through the same in-process guard
 * as the write path, so a key a write of this process is assigning right now is left to that
 * write (and decided again once it settles), and checked once more against the rows, which may
 * have taken it since the listing. One failure does not stop the sweep or lose what it did.
 */
async function removeOrphans(
  client: unknown,
  storage: Storage,
  name: string,
  orphans: ObjectInfo[],
  report: SweepReport,
  ctx: LifecycleContext,
  onOrphan?: () => void,
): Promise<void> {
  const record = (o: ObjectInfo) => {
    report.orphans.push({ storage: name, key: o.name, size: o.size });
    onOrphan?.();
  };
  if (report.dryRun) {
    for (const o of orphans) record(o);
    return;
  }
  const byName = new Map(orphans.map((o) => [o.name, o]));
  await guardedDeletion(storage, [...byName.keys()], async (candidates) => {
    const deleted = new Set<string>();
    let taken: Set<string>;
    try {
      taken = await referencedKeys(client, name, candidates, ctx);
    } catch (error) {
      const message = (error as Error)?.message ?? String(error);
      for (const key of candidates) report.failed.push({ storage: name, key, error: message });
      return deleted;
    }
    const unreferenced = candidates.filter((key) => !taken.has(key));
    for (const key of unreferenced) record(byName.get(key)!);
    if (unreferenced.length === 0) return deleted;
    // One batch (S3: DeleteObjects, 1,000 keys a request); per-key failures as single deletes'.
    let result: Awaited<ReturnType<Storage["deleteMany"]>>;
    try {
      result = await storage.deleteMany(unreferenced);
    } catch (error) {
      for (const key of unreferenced) report.failed.push({ storage: name, key, error: describeFailure(error) });
      return deleted;
    }
    for (const key of result.deleted) deleted.add(key);
    report.deleted += result.deleted.length;
    for (const { name: key, error } of result.failed) {
      report.failed.push({ storage: name, key, error: describeFailure(error) });
    }
    return deleted;
  });
}

/** A failure for the report: our message, and the backend's error code (S3's `AccessDenied`, ...) when it has one. */
function describeFailure(error: unknown): string {
  const message = (error as Error)?.message ?? String(error);
  const cause = (error as { cause?: { name?: unknown; Code?: unknown } } | null)?.cause;
  const code = cause?.Code ?? cause?.name;
  return typeof code === "string" && code !== "Error" && !message.includes(code) ? `${message} (${code})` : message;
}

/** The part of an `uploadTo` pattern before its first strftime directive, cut at a `/`. */
export function staticPrefix(uploadTo: string): string {
  const i = uploadTo.indexOf("%");
  const fixed = i === -1 ? uploadTo : uploadTo.slice(0, i);
  return fixed.slice(0, fixed.lastIndexOf("/") + 1);
}
