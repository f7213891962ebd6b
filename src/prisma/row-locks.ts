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

/** A stable key for a row of `model` selected by a unique `where`. */
export function rowKey(model: string, where: unknown): string {
  return `${model}:${stableJson(where)}`;
}

function stableJson(value: unknown): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value) ?? "undefined";
  if (Array.isArray(value)) return `[${value.map(stableJson).join(",")}]`;
  const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${stableJson(v)}`).join(",")}}`;
}
