import { afterEach, describe, expect, it, vi } from "vitest";
import type { Coordination } from "../../src/prisma/journal/coordination.js";
import { retrying } from "../../src/prisma/journal/drain.js";
import { findJournal } from "../../src/prisma/journal/sql.js";
import type { FileFieldsMetadataShape } from "../../src/prisma/metadata-types.js";

/** What the MariaDB driver adapter's deadlock looks like under Prisma (P2010, its code in `meta`). */
function deadlock(): Error {
  return Object.assign(new Error("Raw query failed. Code: `1213`."), {
    code: "P2010",
    meta: { driverAdapterError: { cause: { originalCode: "1213", kind: "TransactionWriteConflict" } } },
  });
}

const mysql = findJournal({ FileJournal: { journal: { provider: "mysql" } } } as unknown as FileFieldsMetadataShape)!;
const coordination = { dialect: mysql.dialect } as unknown as Coordination;

/** Runs `retrying` to its end with the back-off's timers fast-forwarded. */
async function settled<T>(run: () => Promise<T>): Promise<{ value?: T; error?: unknown }> {
  vi.useFakeTimers();
  const outcome = retrying(coordination, run).then(
    (value) => ({ value }),
    (error: unknown) => ({ error }),
  );
  await vi.runAllTimersAsync();
  return outcome;
}

afterEach(() => {
  vi.useRealTimers();
});

describe("retrying (our transactions after a deadlock)", () => {
  it("commits a transaction that deadlocked 11 times in a row (four writers on MariaDB saw 8)", async () => {
    let calls = 0;
    const result = await settled(async () => {
      calls++;
      if (calls <= 11) throw deadlock();
      return "committed";
    });
    expect(result).toEqual({ value: "committed" });
    expect(calls).toBe(12);
  });

  it("gives up after 12 attempts with the last deadlock", async () => {
    let calls = 0;
    const last = deadlock();
    const result = await settled(async () => {
      calls++;
      throw calls === 12 ? last : deadlock();
    });
    expect(result.error).toBe(last);
    expect(calls).toBe(12);
  });

  it("does not run again after an error that is not a deadlock", async () => {
    let calls = 0;
    const unique = Object.assign(new Error("Unique constraint failed"), { code: "P2002" });
    const result = await settled(async () => {
      calls++;
      throw unique;
    });
    expect(result.error).toBe(unique);
    expect(calls).toBe(1);
  });
});
