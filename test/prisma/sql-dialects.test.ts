import { describe, expect, it } from "vitest";
import { PrismaS3FilesError } from "../../src/errors.js";
import { explainUnsupported, findJournal } from "../../src/prisma/journal/sql.js";
import type { FileFieldsMetadataShape } from "../../src/prisma/metadata-types.js";

const dialect = (provider: string) =>
  findJournal({ FileJournal: { journal: { provider } } } as unknown as FileFieldsMetadataShape)!.dialect;

/** A Prisma raw-query error as the MariaDB adapter reports a server error. */
const serverError = (code: string, message: string) => ({
  code: "P2010",
  meta: { driverAdapterError: { cause: { originalCode: code, originalMessage: message } } },
});

describe("databases the journal cannot use", () => {
  it("MySQL without INSERT … RETURNING (or MariaDB without SKIP LOCKED) is a CONFIGURATION error naming MariaDB 10.6", () => {
    const refused = serverError(
      "1064",
      "You have an error in your SQL syntax; ... near 'RETURNING `id` AS id' at line 1",
    );
    const e = explainUnsupported(dialect("mysql"), refused) as PrismaS3FilesError;
    expect(e).toBeInstanceOf(PrismaS3FilesError);
    expect(e.code).toBe("CONFIGURATION");
    expect(e.message).toContain("MariaDB 10.6");
    expect(e.cause).toBe(refused);
    const other = serverError("1064", "near 'FROM' at line 1");
    expect(explainUnsupported(dialect("mysql"), other)).toBe(other);
    expect(explainUnsupported(dialect("postgresql"), refused)).toBe(refused);
  });

  it("another provider is refused with the list of supported ones", () => {
    expect(() => dialect("sqlserver")).toThrow(
      /PostgreSQL, MySQL\/MariaDB and SQLite; this schema's provider is "sqlserver"/,
    );
  });
});
