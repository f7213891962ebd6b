import { AsyncLocalStorage } from "node:async_hooks";
import { parentClient } from "./prisma-internals.js";

/**
 * An interactive transaction the extension is running in. Prisma has no after-commit or
 * after-rollback hook, so the extension's `$transaction` keeps these lists in AsyncLocalStorage
 * and runs them itself once the transaction has settled.
 */
export interface TransactionScope {
  /** The transaction client, for reads that must see the transaction's own writes; `undefined` for a batch. */
  tx: unknown;
  /** Run after the commit: deleting objects the committed rows no longer reference. */
  afterCommit: (() => Promise<void>)[];
  /** Run after a rollback: deleting objects uploaded for writes that never happened. */
  onRollback: (() => Promise<void>)[];
  /** Run as soon as the outcome is known, before the lists above: releasing row locks. */
  settled: (() => void)[];
  /**
   * Uploads started for this transaction's writes. A batch can fail while a sibling query's
   * upload is still running (its query then never runs): the rollback waits for them first.
   */
  uploads: Promise<unknown>[];
  /** Rows this transaction holds (or is acquiring) in-process locks on (see row-locks.ts). */
  rows: Map<string, Promise<void>>;
  /** Set once the outcome is known: locks taken later are released at once. */
  closed: boolean;
}

export const transactionScope = new AsyncLocalStorage<TransactionScope>();

/** Runs the settled transaction's actions; their failures are reported, never thrown (the transaction's outcome stands). */
export async function runActions(actions: (() => Promise<void>)[], report: (error: unknown) => void): Promise<void> {
  for (const action of actions) {
    try {
      await action();
    } catch (error) {
      report(error);
    }
  }
}

interface TransactionClient {
  $transaction(arg: unknown, options?: unknown): Promise<unknown>;
}

/**
 * `$transaction` for the extended client: the interactive form runs the callback inside a
 * {@link TransactionScope} and settles uploads and deletions after the outcome is known; a
 * transaction started inside another joins it (Prisma cannot nest them). The batch form runs
 * in a scope too: a query's own result does not tell whether the batch as a whole committed.
 */
export function transactionOverride(report: (error: unknown) => void) {
  return async function $transaction(this: { $parent: TransactionClient }, arg: unknown, options?: unknown) {
    const parent = parentClient<TransactionClient>(this, "$transaction");
    const outer = transactionScope.getStore();
    let scope: TransactionScope | undefined;
    let run: () => Promise<unknown>;
    if (typeof arg === "function") {
      const callback = arg as (tx: unknown) => Promise<unknown>;
      if (outer?.tx) return callback(outer.tx);
      run = () =>
        parent.$transaction((tx: unknown) => {
          scope = { tx, afterCommit: [], onRollback: [], settled: [], uploads: [], rows: new Map(), closed: false };
          return transactionScope.run(scope, () => callback(tx));
        }, options);
    } else {
      // The queries of a batch run when it starts, inside this scope.
      scope = {
        tx: undefined,
        afterCommit: [],
        onRollback: [],
        settled: [],
        uploads: [],
        rows: new Map(),
        closed: false,
      };
      const batchScope = scope;
      run = () => transactionScope.run(batchScope, () => parent.$transaction(arg, options));
    }
    try {
      const result = await run();
      if (scope) {
        // Release first: the next writer must see this commit, and the actions below need pool
        // connections that writers waiting on these rows may be holding.
        scope.closed = true;
        for (const release of scope.settled) release();
        await runActions(scope.afterCommit, report);
      }
      return result;
    } catch (error) {
      if (scope) {
        scope.closed = true;
        for (const release of scope.settled) release();
        await Promise.allSettled(scope.uploads);
        await runActions(scope.onRollback, report);
      }
      throw error;
    }
  };
}
