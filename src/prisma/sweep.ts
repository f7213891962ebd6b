import { VARIANTS_PREFIX } from "../files/variants.js";
import type { S3Session } from "../session/session.js";
import { BaseStorage } from "../storage/base-storage.js";
import type { ObjectInfo, Storage } from "../storage/storage.js";
import { pendingKeyExpiry, resolveDirectUploads } from "./direct-uploads.js";
import { resolveStorages, type S3FilesOptions } from "./extension.js";
import { type LifecycleContext, lifecycleContext, referencedKeys, storageId } from "./file-lifecycle.js";
import { originalOf } from "./file-variants.js";
import { type Coordination, coordinationFor } from "./journal/coordination.js";
import type { DrainClient } from "./journal/drain.js";
import { type SqlClient, transactionOptions } from "./journal/sql.js";
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
      // Variants live under `variants/<original key>/`.
      if (f.variants !== undefined) set.add(VARIANTS_PREFIX + staticPrefix(f.uploadTo));
      prefixes.set(f.storage, set);
    }
  }

  const sweep: Sweep = { client: client as DrainClient, coordination: coordinationFor(fields), ctx, report };
  for (const [name, set] of prefixes) {
    const storage = storages.get(name)!;
    const roots = [...set].filter((p) => ![...set].some((q) => q !== p && p.startsWith(q)));
    // An object a save of this process is storing right now (its journal record says so too).
    const writing = (o: ObjectInfo) => storage instanceof BaseStorage && storage.isWriting(o.name);
    let examined = 0;
    let found = 0;
    const progress = () => options.onProgress?.({ storage: name, examined, orphans: found });
    // Streamed: one batch of keys in memory, decided in one transaction.
    for (const root of roots) {
      let batch: ObjectInfo[] = [];
      const decide = async () => {
        found += await removeOrphans(sweep, storage, name, batch);
        batch = [];
        progress();
      };
      for await (const o of storage.listAll(root.replace(/\/+$/, ""))) {
        // Pending direct uploads have rules of their own (below), wherever the roots are.
        if (o.name.startsWith(pendingPrefix)) continue;
        examined++;
        report.examined++;
        if (o.modifiedTime.getTime() > cutoff || writing(o)) continue;
        batch.push(o);
        if (batch.length >= SWEEP_BATCH) await decide();
      }
      if (batch.length > 0) await decide();
    }
    progress();
    await sweepPending(sweep, storage, name, pendingPrefix, directUploads.pendingGraceMs);
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

/** Keys decided per transaction (and per DeleteObjects request). */
const SWEEP_BATCH = 1000;

/** What the sweep's steps share. */
interface Sweep {
  client: DrainClient;
  coordination: Coordination;
  ctx: LifecycleContext;
  report: SweepReport;
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
  sweep: Sweep,
  storage: Storage,
  name: string,
  prefix: string,
  graceMs: number,
): Promise<void> {
  const now = Date.now();
  let expired: ObjectInfo[] = [];
  for await (const o of storage.listAll(prefix.replace(/\/+$/, ""))) {
    sweep.report.examined++;
    const expiry = pendingKeyExpiry(o.name, prefix);
    if (expiry !== undefined && expiry + graceMs <= now) expired.push(o);
    if (expired.length >= SWEEP_BATCH) {
      await removeOrphans(sweep, storage, name, expired);
      expired = [];
    }
  }
  // Never what a row points at (written by raw SQL, say): the sweep only removes orphans.
  if (expired.length > 0) await removeOrphans(sweep, storage, name, expired);
}

/**
 * Decides a batch of candidates in one transaction: their keys locked (a write copying one of
 * them waits, and then sees it gone), keys with a journal record left to the drain (an upload in
 * flight, a deletion in its grace period), keys a row holds kept; the rest reported and, unless
 * it is a dry run, deleted. Returns how many orphans it found. A failure is reported, never
 * thrown: the sweep goes on.
 */
async function removeOrphans(sweep: Sweep, storage: Storage, name: string, candidates: ObjectInfo[]): Promise<number> {
  const { client, coordination, ctx, report } = sweep;
  const keys = candidates.map((o) => o.name);
  // A variant is kept while its original is: their keys are asked and locked together.
  const asked = [...new Set([...keys, ...keys.flatMap((k) => originalOf(k) ?? [])])];
  const id = storageId(storage);
  const locks = asked.map((key) => ({ storage: id, key }));
  const decide = async (tx: SqlClient, lock: boolean) => {
    if (lock) await coordination.journal.runIn(tx, coordination.journal.lockKeys(locks));
    // Records first, rows second (see Journal.liveKeys).
    const recorded = await coordination.journal.recordedKeys(tx, id, asked);
    const held = await referencedKeys(tx, name, asked, ctx);
    const kept = (k: string | undefined) => k !== undefined && (recorded.has(k) || held.has(k));
    const orphans = candidates.filter((o) => !kept(o.name) && !kept(originalOf(o.name)));
    for (const o of orphans) report.orphans.push({ storage: name, key: o.name, size: o.size });
    if (report.dryRun || orphans.length === 0) return orphans.length;
    // Copies of these keys are refused from our commit on, whatever the request's outcome.
    await coordination.journal.buryKeys(
      tx,
      id,
      orphans.map((o) => o.name),
      coordination.tombstoneSeconds,
    );
    let result: Awaited<ReturnType<Storage["deleteMany"]>>;
    try {
      result = await storage.deleteMany(orphans.map((o) => o.name));
    } catch (error) {
      for (const o of orphans) report.failed.push({ storage: name, key: o.name, error: describeFailure(error) });
      return orphans.length;
    }
    report.deleted += result.deleted.length;
    for (const { name: key, error } of result.failed) {
      report.failed.push({ storage: name, key, error: describeFailure(error) });
    }
    return orphans.length;
  };
  try {
    if (report.dryRun) return await decide(client, false);
    return await client.$transaction(
      async (tx) => {
        const found = await decide(tx, true);
        await coordination.journal.runIn(tx, coordination.journal.unlockKeys(locks));
        return found;
      },
      transactionOptions(coordination.dialect, { timeout: 120_000, maxWait: 10_000 }),
    );
  } catch (error) {
    for (const key of keys) report.failed.push({ storage: name, key, error: describeFailure(error) });
    return 0;
  }
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
