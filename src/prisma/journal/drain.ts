/**
 * The drain: finishes what the journal records, in any process. It claims due records (skipping
 * those another drain holds), locks their keys, and deletes each object no row and no live
 * record holds; records whose key a row holds again are dropped without deleting. A failed
 * deletion stays, with its error, for a later attempt. Idempotent: deleting a missing object is
 * a success, and a crash at any point leaves the records for the next drain.
 */
import type { S3Session } from "../../session/session.js";
import type { Storage } from "../../storage/storage.js";
import { resolveDirectUploads } from "../direct-uploads.js";
import { resolveStorages, type S3FilesOptions } from "../extension.js";
import { type LifecycleContext, lifecycleContext, referencedKeys } from "../file-lifecycle.js";
import { hasVariants, listVariants, originalOf } from "../file-variants.js";
import type { FileFieldsMetadataShape } from "../metadata-types.js";
import { type Coordination, coordinationFor } from "./coordination.js";
import type { JournalRecord } from "./journal.js";
import { type SqlClient, transactionOptions } from "./sql.js";

/** What a drain did. */
export interface DrainReport {
  /** Records claimed. */
  claimed: number;
  /** Objects deleted (a key several records named counts once). */
  deleted: number;
  /** Records removed without deleting: a row holds the key (an upload that committed, a key written back). */
  dropped: number;
  /** Deletions that failed; their records stay and are tried again later. */
  failed: { storage: string; key: string; error: string }[];
}

/** Options of {@link drainFiles}. */
export interface DrainOptions<Meta extends FileFieldsMetadataShape> extends S3FilesOptions<Meta> {
  /** The most records to process in this call. Default: all that are due. */
  limit?: number;
  /** Records per transaction (and per DeleteObjects request). Default 500. */
  batchSize?: number;
}

/** A client the drain runs on: raw SQL, interactive transactions, the models' delegates. */
export interface DrainClient extends SqlClient {
  $transaction<T>(
    fn: (tx: SqlClient) => Promise<T>,
    options?: { timeout?: number; maxWait?: number; isolationLevel?: string },
  ): Promise<T>;
}

const DEFAULT_BATCH = 500;
/** A batch's deciding transaction may wait for key locks that writers hold. */
const BATCH_TRANSACTION = { timeout: 60_000, maxWait: 10_000 };

/**
 * Processes due journal records: `npx prisma-s3-files drain` for cron, or from code. Apps with
 * long-running processes need not call it: `s3Files()` drains in the background.
 */
export async function drainFiles<const Meta extends FileFieldsMetadataShape>(
  client: unknown,
  session: S3Session | undefined,
  options: DrainOptions<Meta>,
): Promise<DrainReport> {
  const storages = resolveStorages(session, options);
  const ctx = lifecycleContext(options.fields, storages, () => undefined, resolveDirectUploads(options.directUploads));
  const coordination = coordinationFor(options.fields);
  return drain(client as DrainClient, coordination, ctx, {
    ...(options.limit === undefined ? {} : { limit: options.limit }),
    ...(options.batchSize === undefined ? {} : { batchSize: options.batchSize }),
  });
}

/** The drain behind {@link drainFiles}, the background timer and the write path's prompt deletions (`ids`). */
export async function drain(
  client: DrainClient,
  coordination: Coordination,
  ctx: LifecycleContext,
  options: { ids?: readonly bigint[]; limit?: number; batchSize?: number } = {},
): Promise<DrainReport> {
  const report: DrainReport = { claimed: 0, deleted: 0, dropped: 0, failed: [] };
  const batchSize = options.batchSize ?? DEFAULT_BATCH;
  let remaining = options.limit ?? Number.POSITIVE_INFINITY;
  for (let offset = 0; remaining > 0; ) {
    const ids = options.ids?.slice(offset, offset + batchSize);
    if (ids && ids.length === 0) break;
    const limit = Math.min(batchSize, remaining);
    const claimed = await drainBatch(client, coordination, ctx, { ...(ids ? { ids } : {}), limit }, report);
    remaining -= claimed;
    offset += batchSize;
    if (!ids && claimed < limit) break;
  }
  return report;
}

/** Records a batch decided to delete, by storage: deleted after the deciding transaction. */
interface Doomed {
  storage: Storage;
  /** The storage's journal id. */
  id: string;
  name: string;
  keys: string[];
  records: JournalRecord[];
}

/**
 * One batch: decided in one transaction (claimed, keys locked, rows and records checked; records
 * whose key is held again dropped; the rest marked `deleting`, which refuses copies of the keys
 * from the commit on), then deleted, then buried as tombstones. A crash after the decision leaves
 * `deleting` records that a later drain takes again (after {@link DECISION_LEASE_SECONDS}).
 * Returns how many records it claimed.
 */
async function drainBatch(
  client: DrainClient,
  coordination: Coordination,
  ctx: LifecycleContext,
  options: { ids?: readonly bigint[]; limit: number },
  report: DrainReport,
): Promise<number> {
  const { journal } = coordination;
  const decided = await retrying(coordination, () =>
    client.$transaction(
      (tx) => decideBatch(tx, coordination, ctx, options),
      transactionOptions(coordination.dialect, BATCH_TRANSACTION),
    ),
  );
  report.claimed += decided.claimed;
  report.dropped += decided.dropped;
  for (const d of decided.doomed) {
    let result: { deleted: string[]; failed: { name: string; error: unknown }[] };
    try {
      result = await d.storage.deleteMany(d.keys);
    } catch (error) {
      result = { deleted: [], failed: d.keys.map((name) => ({ name, error })) };
    }
    report.deleted += result.deleted.length;
    const errors = new Map(result.failed.map((f) => [f.name, describe(f.error)]));
    for (const f of result.failed) ctx.report(f.error);
    // An original's variants go with it; until they are gone its record stays (tried again).
    if (hasVariants(ctx, d.id)) {
      for (const key of result.deleted) {
        if (originalOf(key) !== undefined) continue;
        try {
          const variants = await listVariants(d.storage, key);
          if (variants.length === 0) continue;
          const gone = await d.storage.deleteMany(variants);
          report.deleted += gone.deleted.length;
          for (const f of gone.failed) ctx.report(f.error);
          if (gone.failed.length > 0)
            errors.set(key, `variant ${gone.failed[0]!.name}: ${describe(gone.failed[0]!.error)}`);
        } catch (error) {
          ctx.report(error);
          errors.set(key, `its variants: ${describe(error)}`);
        }
      }
    }
    await journal.bury(
      client,
      d.records.filter((r) => !errors.has(r.key)).map((r) => r.id),
      coordination.tombstoneSeconds,
    );
    for (const r of d.records) {
      const error = errors.get(r.key);
      if (error === undefined) continue;
      await journal.failed(client, r, error);
      report.failed.push({ storage: d.name, key: r.key, error });
    }
  }
  return decided.claimed;
}

/** How long a decided deletion waits for its drain before another drain takes it again. */
const DECISION_LEASE_SECONDS = 300;

async function decideBatch(
  tx: SqlClient,
  { journal }: Coordination,
  ctx: LifecycleContext,
  options: { ids?: readonly bigint[]; limit: number },
): Promise<{ claimed: number; dropped: number; doomed: Doomed[] }> {
  const claimed = await journal.claim(tx, { ...options, storages: ctx.storageIds() });
  const outcome = { claimed: claimed.length, dropped: 0, doomed: [] as Doomed[] };
  if (claimed.length === 0) return outcome;
  // Tombstones past their time: nothing to delete.
  const done: bigint[] = claimed.filter((r) => r.kind === "gone").map((r) => r.id);
  const records = claimed.filter((r) => r.kind !== "gone");
  // A variant's record (`variants/<key>/...`) is decided by its original: its key is locked too.
  const originals = records.flatMap((r) => {
    const original = originalOf(r.key);
    return original === undefined ? [] : [{ storage: r.storage, key: original }];
  });
  const locked = [...records, ...originals];
  await journal.runIn(tx, journal.lockKeys(locked));
  const claimedIds = records.map((r) => r.id);
  const byStorage = new Map<string, JournalRecord[]>();
  for (const r of records) byStorage.set(r.storage, [...(byStorage.get(r.storage) ?? []), r]);
  const deciding: bigint[] = [];
  for (const [storageId, group] of byStorage) {
    // Claimed only for storages this process has (see Journal.claim).
    const { storage, name } = ctx.storageById(storageId)!;
    const keys = [...new Set(group.map((r) => r.key))];
    const asked = [...new Set([...keys, ...keys.flatMap((k) => originalOf(k) ?? [])])];
    // Records first, rows second (see Journal.liveKeys).
    const live = await journal.liveKeys(tx, storageId, asked, claimedIds);
    const held = await referencedKeys(tx, name, asked, ctx);
    const kept = (k: string | undefined) => k !== undefined && (live.has(k) || held.has(k));
    const doomed = new Set(keys.filter((k) => !kept(k) && !kept(originalOf(k))));
    for (const r of group) {
      if (doomed.has(r.key)) deciding.push(r.id);
      else {
        done.push(r.id);
        outcome.dropped++;
      }
    }
    if (doomed.size > 0) {
      outcome.doomed.push({
        storage,
        id: storageId,
        name,
        keys: [...doomed],
        records: group.filter((r) => doomed.has(r.key)),
      });
    }
  }
  await journal.forget(tx, done, "tx");
  await journal.decide(tx, deciding, DECISION_LEASE_SECONDS);
  await journal.runIn(tx, journal.unlockKeys(locked));
  return outcome;
}

function describe(error: unknown): string {
  return (error as Error)?.message ?? String(error);
}

/**
 * Runs a transaction again after a deadlock or serialization failure, a bounded number of times:
 * enough attempts, far enough apart, to outlast a burst of deadlocks among writers of one row.
 */
export async function retrying<T>(
  coordination: Coordination,
  run: () => Promise<T>,
  alsoRetry: (error: unknown) => boolean = () => false,
  attempts = 12,
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await run();
    } catch (error) {
      if (attempt >= attempts || !(coordination.dialect.isRetryable(error) || alsoRetry(error))) throw error;
      // Up to ~1.3 s apart: MySQL's deadlocks come in bursts while writers contend for one row.
      await new Promise((resolve) => setTimeout(resolve, 5 * 2 ** Math.min(attempt, 8) * Math.random()));
    }
  }
}

/**
 * The background drain of one `s3Files()` instance: an unref'd timer (it never keeps a process
 * alive), one run at a time, failures to `report`.
 */
export class DrainTimer {
  #timer: NodeJS.Timeout | undefined;
  #running = false;
  /** Deletions of this process due later, drained when due (an optimisation: any drain does it). */
  readonly #later = new Set<NodeJS.Timeout>();

  constructor(
    private readonly run: (ids?: readonly bigint[]) => Promise<unknown>,
    private readonly report: (error: unknown) => void,
  ) {}

  /** Drains record `id` in `seconds` (an unref'd timer: a process that exits leaves it to other drains). */
  later(id: bigint, seconds: number): void {
    const timer = setTimeout(
      () => {
        this.#later.delete(timer);
        this.run([id]).catch(this.report);
      },
      seconds * 1000 + 50,
    );
    timer.unref();
    this.#later.add(timer);
  }

  start(intervalMs: number): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => void this.tick(), intervalMs);
    this.#timer.unref();
  }

  async tick(): Promise<void> {
    if (this.#running) return;
    this.#running = true;
    try {
      await this.run();
    } catch (error) {
      this.report(error);
    } finally {
      this.#running = false;
    }
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
    for (const timer of this.#later) clearTimeout(timer);
    this.#later.clear();
  }
}
