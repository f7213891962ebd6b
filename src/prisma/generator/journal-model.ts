/**
 * The file journal model: the table in the application's database where prisma-s3-files records
 * uploads whose row has not committed yet and deletions that are due, in the same transactions
 * as the rows. The generator refuses a schema with file fields and no journal model (printing
 * the model to paste), and checks the one it finds; `prisma-s3-files init` appends it.
 */
import { PrismaS3FilesError } from "../../errors.js";
import type { DmmfFieldLike, DmmfModelLike } from "./metadata.js";

/** The journal model's name unless the generator block says `journal = "..."`. */
export const DEFAULT_JOURNAL_MODEL = "FileJournal";

/** The table the journal model maps to (`@@map`). */
export const JOURNAL_TABLE = "prisma_s3_files_journal";

/** The migration name the README and `init` suggest. */
export const JOURNAL_MIGRATION_NAME = "file-journal";

/**
 * The journal model's source, as a user pastes it into `schema.prisma`, for the datasource's
 * provider: MySQL gets column types whose `(storage, objectKey)` index fits InnoDB's 3072-byte
 * key limit (a 512-character prefix of `objectKey`) and a `TEXT` error column; PostgreSQL, SQLite
 * and the others take Prisma's default `String` column.
 */
export function journalModelSource(provider: string | undefined, name = DEFAULT_JOURNAL_MODEL): string {
  const mysql = provider === "mysql";
  const field = (fieldName: string, type: string, attributes = "") =>
    `  ${fieldName.padEnd(9)} ${attributes === "" ? type : `${type.padEnd(8)} ${attributes}`}`;
  return [
    "/// prisma-s3-files' file journal: uploads whose row has not committed yet, and deletions due.",
    `model ${name} {`,
    field("id", "BigInt", "@id @default(autoincrement())"),
    '  /// "upload" (bytes stored or being stored, no committed row yet) or "delete" (due at notBefore).',
    field("kind", "String"),
    field("storage", "String", mysql ? "@db.VarChar(191)" : ""),
    field("objectKey", "String", mysql ? "@db.VarChar(1024)" : ""),
    '  /// "Model.field" the object belongs to.',
    field("owner", "String?"),
    field("notBefore", "DateTime", "@default(now())"),
    field("attempts", "Int", "@default(0)"),
    field("lastError", "String?", mysql ? "@db.Text" : ""),
    field("createdAt", "DateTime", "@default(now())"),
    "",
    "  @@index([notBefore])",
    mysql ? "  @@index([storage, objectKey(length: 512)])" : "  @@index([storage, objectKey])",
    `  @@map("${JOURNAL_TABLE}")`,
    "}",
    "",
  ].join("\n");
}

/**
 * The journal model is missing or does not have the fields the runtime writes. `model` is its
 * name; `problems` lists what is wrong with it (empty when it is missing).
 */
export class JournalModelError extends PrismaS3FilesError {
  readonly model: string;
  readonly problems: readonly string[];
  constructor(model: string, message: string, problems: readonly string[] = []) {
    super("JOURNAL_MODEL", message);
    this.model = model;
    this.problems = problems;
  }
}

/** The error `prisma generate` fails with when file fields exist and the journal model does not. */
export function missingJournalError(name: string, fileFields: readonly string[], provider: string | undefined) {
  const shown = fileFields.slice(0, 3).join(", ") + (fileFields.length > 3 ? `, ... (${fileFields.length})` : "");
  const model = journalModelSource(provider, name)
    .trimEnd()
    .split("\n")
    .map((line) => (line === "" ? "" : `    ${line}`))
    .join("\n");
  return new JournalModelError(
    name,
    `The schema has file fields (${shown}) but no file journal model ${JSON.stringify(name)}. ` +
      "prisma-s3-files records uploads and pending deletions there, in the same transactions as your rows, " +
      "so that no process or crash leaves an object behind or deletes one a row still uses.\n" +
      `  Add it with \`npx prisma-s3-files init\`, or paste this model into the schema:\n\n${model}\n\n` +
      `  then create its table: \`npx prisma migrate dev --name ${JOURNAL_MIGRATION_NAME}\`.` +
      (name === DEFAULT_JOURNAL_MODEL
        ? ""
        : `\n  (The generator block names the journal model ${JSON.stringify(name)}: journal = ${JSON.stringify(name)}.)`),
  );
}

interface ExpectedField {
  types: readonly string[];
  /** `true`: `Type`; `false`: `Type?`. */
  required: boolean;
  /** Needs a default: `"autoincrement"` exactly, or `"any"` default. */
  default?: "autoincrement" | "any";
}

/** What the runtime reads and writes; the order is the model's. */
const EXPECTED_FIELDS: Readonly<Record<string, ExpectedField>> = {
  id: { types: ["BigInt", "Int"], required: true, default: "autoincrement" },
  kind: { types: ["String"], required: true },
  storage: { types: ["String"], required: true },
  objectKey: { types: ["String"], required: true },
  owner: { types: ["String"], required: false },
  notBefore: { types: ["DateTime"], required: true, default: "any" },
  attempts: { types: ["Int"], required: true, default: "any" },
  lastError: { types: ["String"], required: false },
  createdAt: { types: ["DateTime"], required: true, default: "any" },
};

function typeText(field: DmmfFieldLike): string {
  return `${field.type}${field.isList ? "[]" : ""}${field.isRequired || field.isList ? "" : "?"}`;
}

/**
 * What is wrong with the journal model, one line per problem (empty: nothing). `keyLength` is the
 * length of its `objectKey` column where that is limited, `longestKey` the longest key a file
 * column may hold (both `null` when unknown or unlimited).
 */
export function journalModelProblems(
  model: DmmfModelLike,
  lengths: { keyLength: number | null; longestKey: { field: string; length: number } | null } = {
    keyLength: null,
    longestKey: null,
  },
): string[] {
  const problems: string[] = [];
  const byName = new Map(model.fields.map((f) => [f.name, f]));
  for (const [name, expected] of Object.entries(EXPECTED_FIELDS)) {
    const field = byName.get(name);
    const want = expected.types.map((t) => `${t}${expected.required ? "" : "?"}`).join(" or ");
    if (field === undefined) {
      problems.push(`${name}: missing (expected ${want})`);
      continue;
    }
    if (
      field.kind !== "scalar" ||
      field.isList ||
      !expected.types.includes(field.type) ||
      field.isRequired !== expected.required
    ) {
      problems.push(`${name}: must be ${want}, but is ${typeText(field)}`);
      continue;
    }
    if (name === "id") {
      const primaryKey = model.primaryKey?.fields;
      if (!field.isId || (primaryKey && !(primaryKey.length === 1 && primaryKey[0] === "id"))) {
        problems.push("id: must be the primary key (@id)");
      }
    }
    if (expected.default === "autoincrement") {
      const isAutoincrement =
        field.default !== null &&
        typeof field.default === "object" &&
        !Array.isArray(field.default) &&
        (field.default as { name?: unknown }).name === "autoincrement";
      if (!isAutoincrement) problems.push(`${name}: needs @default(autoincrement())`);
    } else if (expected.default === "any" && field.hasDefaultValue === false) {
      problems.push(`${name}: needs a default (${name === "attempts" ? "@default(0)" : "@default(now())"})`);
    }
  }
  for (const field of model.fields) {
    if (Object.hasOwn(EXPECTED_FIELDS, field.name)) continue;
    if (field.kind !== "object" && field.isRequired && !field.isList && field.hasDefaultValue === false) {
      problems.push(
        `${field.name}: a field of its own must be optional or have a default (the journal's inserts leave it out)`,
      );
    }
  }
  const { keyLength, longestKey } = lengths;
  if (keyLength !== null && longestKey !== null && longestKey.length > keyLength) {
    problems.push(
      `objectKey: holds ${keyLength} characters, but ${longestKey.field} holds keys of up to ${longestKey.length}; make objectKey at least as long`,
    );
  }
  return problems;
}

/** The error for a journal model with problems. */
export function invalidJournalError(
  name: string,
  problems: readonly string[],
  provider: string | undefined,
): JournalModelError {
  return new JournalModelError(
    name,
    `The file journal model ${name} does not have the fields prisma-s3-files writes:\n${problems
      .map((p) => `  ${name}.${p}`)
      .join("\n")}\n  The expected model:\n\n${journalModelSource(provider, name)
      .trimEnd()
      .split("\n")
      .map((line) => (line === "" ? "" : `    ${line}`))
      .join("\n")}`,
    problems,
  );
}
