import type { S3Session } from "../session/session.js";
import type { Storage } from "../storage/storage.js";
import { resolveStorages, type S3FilesOptions } from "./extension.js";
import { delayedDeletions, type LifecycleContext, referencedKeys } from "./file-lifecycle.js";
import type { FileFieldsMetadataShape } from "./metadata-types.js";

/** Options of {@link sweepOrphans}. */
export interface SweepOptions<Meta extends FileFieldsMetadataShape> extends S3FilesOptions<Meta> {
  /**
   * Only objects at least this old are removed (seconds; default 3600). Uploads in flight, and
   * objects kept for `deleteAfterSeconds`, are younger than a sensible value.
   */
  olderThan?: number;
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
  dryRun: boolean;
}

/**
 * Deletes objects that no row references: left by cascading deletes, raw SQL, or a crash
 * between upload and commit. Lists each file column's prefix (the fixed part of `uploadTo`
 * before its first `%` directive) in its storage, and keeps every key any file column on that
 * storage holds. Reads through `client` (a plain or extended Prisma client).
 */
export async function sweepOrphans<const Meta extends FileFieldsMetadataShape>(
  client: unknown,
  session: S3Session | undefined,
  options: SweepOptions<Meta>,
): Promise<SweepReport> {
  const fields = options.fields;
  const storages = resolveStorages(session, options);
  const storageName = (model: string, field: string) => fields[model]!.fileFields[field]!.storage;
  const ctx: LifecycleContext = {
    fields,
    storageName,
    storageOf: (m, f) => storages.get(storageName(m, f))!,
    report: () => undefined,
  };
  const olderThanMs = (options.olderThan ?? 3600) * 1000;
  const cutoff = Date.now() - olderThanMs;
  const report: SweepReport = { examined: 0, orphans: [], deleted: 0, dryRun: options.dryRun ?? false };

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
    const keys: string[] = [];
    for (const root of roots) for await (const key of walk(storage, root.replace(/\/+$/, ""))) keys.push(key);
    report.examined += keys.length;
    const referenced = await referencedKeys(client, name, keys, ctx);
    const pending = delayedDeletions.get(storage);
    let orphans = 0;
    for (const key of keys) {
      if (referenced.has(key) || pending?.has(key)) continue;
      if ((await storage.modifiedTime(key)).getTime() > cutoff) continue;
      orphans++;
      report.orphans.push({ storage: name, key });
      if (!report.dryRun) {
        await storage.delete(key);
        report.deleted++;
      }
      options.onProgress?.({ storage: name, examined: keys.length, orphans });
    }
    options.onProgress?.({ storage: name, examined: keys.length, orphans });
  }
  return report;
}

/** The part of an `uploadTo` pattern before its first strftime directive, cut at a `/`. */
export function staticPrefix(uploadTo: string): string {
  const i = uploadTo.indexOf("%");
  const fixed = i === -1 ? uploadTo : uploadTo.slice(0, i);
  return fixed.slice(0, fixed.lastIndexOf("/") + 1);
}

/** Every file name under `dir` (recursively), as storage names. */
async function* walk(storage: Storage, dir: string): AsyncGenerator<string> {
  const { directories, files } = await storage.listdir(dir);
  const prefix = dir === "" ? "" : `${dir}/`;
  for (const f of files) yield prefix + f;
  for (const d of directories) yield* walk(storage, prefix + d);
}
