import { PrismaS3FilesError } from "../errors.js";
import type { Storage } from "../storage/storage.js";

/**
 * In-process coordination between deleting a key no row references any more and a write that
 * points a row at that same key (copying another row's file: `data: { avatar: other.avatar.name }`).
 *
 * Without it the two interleave badly: the deleter finds no reference, the copying write
 * commits, the deleter removes the object, and the new row points at nothing. A write pins the
 * keys it assigns until its outcome is known; a deleter leaves pinned keys alone (if the copy
 * then fails, `sweepOrphans` collects the object), and a write that arrives while a deletion of
 * its key is under way waits for it and fails with `FILE_NOT_FOUND` if the object went.
 * Across processes there is no such coordination (see the README's consistency notes).
 */
interface Guard {
  pins: number;
  /** Resolves to whether the object was deleted. */
  deleting?: Promise<boolean>;
  /** A deletion skipped while the key was pinned: run again once the last pin goes. */
  retry?: () => Promise<void>;
}

const guards = new Map<string, Guard>();

/** Storages by identity, not by name: two clients may give one name to different storages. */
const storageIds = new WeakMap<object, number>();
let nextStorageId = 0;
function id(storage: object, key: string): string {
  let n = storageIds.get(storage);
  if (n === undefined) {
    n = nextStorageId++;
    storageIds.set(storage, n);
  }
  return `${n}\u0000${key}`;
}

function guardOf(storage: object, key: string): Guard {
  const k = id(storage, key);
  let guard = guards.get(k);
  if (!guard) {
    guard = { pins: 0 };
    guards.set(k, guard);
  }
  return guard;
}

function forget(storage: object, key: string, guard: Guard): void {
  if (guard.pins === 0 && !guard.deleting && !guard.retry) guards.delete(id(storage, key));
}

/** A key a write assigns as-is to a file column. */
export interface AssignedKey {
  model: string;
  field: string;
  /** The storage the key is in (its identity is what counts). */
  storage: Storage;
  key: string;
}

/**
 * Keys this process deleted as unreferenced, lately (id → when): a copy that read such a key
 * before the deletion may arrive after it. Bounded in time and size; across processes nothing
 * is known.
 */
const recentlyDeleted = new Map<string, number>();
const TOMBSTONE_MS = 10 * 60_000;
const MAX_TOMBSTONES = 10_000;

function tombstone(storage: object, key: string): void {
  const now = Date.now();
  recentlyDeleted.delete(id(storage, key));
  recentlyDeleted.set(id(storage, key), now);
  // Oldest first (insertion order): drop the expired and the surplus.
  for (const [k, at] of recentlyDeleted) {
    if (at > now - TOMBSTONE_MS && recentlyDeleted.size <= MAX_TOMBSTONES) break;
    recentlyDeleted.delete(k);
  }
}

const notFound = (k: AssignedKey) =>
  new PrismaS3FilesError(
    "FILE_NOT_FOUND",
    `${k.model}.${k.field}: the file "${k.key}" was deleted (no row referenced it any more) before this write could assign it`,
  );

/**
 * Pins the keys a write assigns; returns the unpin function (idempotent). Waits for deletions
 * of those keys already under way. A key this process deleted lately is checked for existence
 * once pinned (it may have been stored again since); if it is gone, nothing stays pinned and
 * `FILE_NOT_FOUND` is thrown, so the row is not pointed at a missing object.
 */
export async function pinKeys(keys: AssignedKey[]): Promise<() => void> {
  // Re-check every key after each wait: another deletion may have started meanwhile.
  for (;;) {
    const busy = keys.find((k) => guards.get(id(k.storage, k.key))?.deleting);
    if (!busy) break;
    if (await guards.get(id(busy.storage, busy.key))!.deleting) throw notFound(busy);
  }
  const unpin = pin(keys);
  try {
    const since = Date.now() - TOMBSTONE_MS;
    for (const k of keys) {
      const deletedAt = recentlyDeleted.get(id(k.storage, k.key));
      if (deletedAt !== undefined && deletedAt > since && !(await k.storage.exists(k.key))) throw notFound(k);
    }
  } catch (error) {
    unpin();
    throw error;
  }
  return unpin;
}

/** Pins keys now, without waiting; returns the idempotent unpin. */
function pin(keys: readonly { storage: object; key: string }[]): () => void {
  const pinned = keys.map((k) => {
    const guard = guardOf(k.storage, k.key);
    guard.pins++;
    return { k, guard };
  });
  let done = false;
  return () => {
    if (done) return;
    done = true;
    for (const { k, guard } of pinned) {
      guard.pins--;
      const retry = guard.pins === 0 ? guard.retry : undefined;
      guard.retry = undefined;
      forget(k.storage, k.key, guard);
      // The write that pinned it may have failed: the skipped deletion decides again now.
      if (retry) void retry();
    }
  };
}

/**
 * Holds an object a write just uploaded until the write's outcome is known: no row references
 * it yet, so a sweep in this process would take it for an orphan. A deletion of that name under
 * way when the hold is taken may have removed our object (a sweep that listed it) or only an
 * older object of the same name, removed before our upload reused the name: once it settles,
 * `swept` says whether our object is gone (the write must then fail, not commit a dangling key).
 */
export function holdUploaded(storage: Storage, key: string): { release: () => void; swept: Promise<boolean> } {
  const deleting = guards.get(id(storage, key))?.deleting;
  const swept = deleting
    ? deleting.then(async (deleted) => deleted && !(await storage.exists(key)))
    : Promise.resolve(false);
  return { release: pin([{ storage, key }]), swept };
}

/**
 * Runs a delete-if-unreferenced pass over `keys` of one storage: keys pinned by a write in flight
 * are left out (and passed again once their last pin goes), the others are marked as being
 * deleted while `pass` checks references and deletes. `pass` gets the candidates, returns the
 * keys it deleted, and must not throw (it reports its own failures).
 */
export async function guardedDeletion(
  storage: object,
  keys: string[],
  pass: (candidates: string[]) => Promise<Set<string>>,
): Promise<void> {
  const marked: { key: string; guard: Guard; settle: (deleted: boolean) => void }[] = [];
  for (const key of new Set(keys)) {
    const guard = guardOf(storage, key);
    if (guard.pins > 0) {
      guard.retry = () => guardedDeletion(storage, [key], pass);
      continue;
    }
    if (guard.deleting) continue; // that deletion decides
    let settle!: (deleted: boolean) => void;
    guard.deleting = new Promise<boolean>((resolve) => {
      settle = resolve;
    });
    marked.push({ key, guard, settle });
  }
  if (marked.length === 0) return;
  let deleted = new Set<string>();
  try {
    deleted = await pass(marked.map((m) => m.key));
  } finally {
    for (const { key, guard, settle } of marked) {
      if (deleted.has(key)) tombstone(storage, key);
      guard.deleting = undefined;
      settle(deleted.has(key));
      forget(storage, key, guard);
    }
  }
}
