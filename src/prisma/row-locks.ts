import type { TransactionScope } from "./transactions.js";

/**
 * In-process locks per row, for writes that replace or delete files. Reading the old key and
 * writing the new one must not interleave with another replace of the same row, or the loser's
 * upload is orphaned (both read the same old key). The database gives no portable "read the old
 * value under the row lock" through Prisma, so one process serialises its own writers; across
 * processes `sweepOrphans` collects what a race leaves.
 */
const tails = new Map<string, Promise<void>>();

/** Waits for the row, then returns a release function. Gives up waiting after `timeoutMs` (no deadlock with database locks). */
export async function lockRow(key: string, timeoutMs: number): Promise<() => void> {
  const previous = tails.get(key);
  let release!: () => void;
  const mine = new Promise<void>((resolve) => {
    release = resolve;
  });
  const tail = previous ? previous.then(() => mine) : mine;
  tails.set(key, tail);
  if (previous) {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([previous, new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
    clearTimeout(timer);
  }
  let released = false;
  return () => {
    if (released) return;
    released = true;
    release();
    if (tails.get(key) === tail) tails.delete(key);
  };
}

/**
 * Locks `keys` (in sorted order: two writers of several rows take them in one order, so neither
 * waits on the other). Outside a transaction, returns the release function. In a transaction
 * (`scope`), each row is taken once (re-entrant) and released when the transaction settles, even
 * if the write's query never runs (a failed batch); the acquisition is shared at once, because a
 * batch's writes run their hooks concurrently and a second lockRow would wait for the first.
 */
export async function lockRows(
  keys: string[],
  scope: TransactionScope | undefined,
  timeoutMs: number,
): Promise<(() => void) | undefined> {
  const releases: (() => void)[] = [];
  for (const key of [...new Set(keys)].sort()) {
    if (!scope) {
      releases.push(await lockRow(key, timeoutMs));
      continue;
    }
    let acquired = scope.rows.get(key);
    if (!acquired) {
      acquired = lockRow(key, timeoutMs).then((unlock) => {
        if (scope.closed)
          unlock(); // the batch already failed: its writes will not run
        else scope.settled.push(unlock);
      });
      scope.rows.set(key, acquired);
    }
    await acquired;
  }
  if (releases.length === 0) return undefined;
  return () => {
    for (const release of releases) release();
  };
}

/** A stable key for a row of `model` selected by a unique `where`. */
export function rowKey(model: string, where: unknown): string {
  return `${model}:${stableJson(where)}`;
}

function stableJson(value: unknown): string {
  if (typeof value === "bigint") return `${value}n`; // JSON.stringify throws on BigInt ids
  if (value === null || typeof value !== "object") return JSON.stringify(value) ?? "undefined";
  if (Array.isArray(value)) return `[${value.map(stableJson).join(",")}]`;
  const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${stableJson(v)}`).join(",")}}`;
}
