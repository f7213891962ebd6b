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
  /** Run after the commit: deletions due now, uploads a write may not have used (see write-path.ts). */
  afterCommit: (() => Promise<void>)[];
  /** Run after a rollback: deleting objects uploaded for writes that never happened. */
  onRollback: (() => Promise<void>)[];
  /**
   * Uploads started for this transaction's writes. A batch can fail while a sibling query's
   * upload is still running (its query then never runs): the rollback waits for them first.
   */
  uploads: Promise<unknown>[];
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
          scope = { tx, afterCommit: [], onRollback: [], uploads: [] };
          return transactionScope.run(scope, () => callback(tx));
        }, options);
    } else {
      // The queries of a batch run when it starts, inside this scope.
      scope = { tx: undefined, afterCommit: [], onRollback: [], uploads: [] };
      const batchScope = scope;
      run = () => transactionScope.run(batchScope, () => parent.$transaction(arg, options));
    }
    try {
      const result = await run();
      if (scope) await runActions(scope.afterCommit, report);
      return result;
    } catch (error) {
      if (scope) {
        await Promise.allSettled(scope.uploads);
        await runActions(scope.onRollback, report);
      }
      throw error;
    }
  };
}
