/**
 * What coordinates file writes across processes: the database's locks and the file journal,
 * resolved once per `s3Files()` instance from the generated metadata.
 */
import { PrismaS3FilesError } from "../../errors.js";
import type { FileFieldsMetadataShape } from "../metadata-types.js";
import { Journal } from "./journal.js";
import { type Dialect, findJournal, type Table } from "./sql.js";

export interface Coordination {
  fields: FileFieldsMetadataShape;
  dialect: Dialect;
  journal: Journal;
  /** A model's table (names from `@@map`/`@map`). */
  table(model: string): Table;
  /** How long a deleted object's tombstone refuses copies of its key (seconds). */
  tombstoneSeconds: number;
}

/** Default: a key read from a row up to a day before its object was deleted is refused when written back. */
export const DEFAULT_TOMBSTONE_SECONDS = 86_400;

/**
 * The coordination for `fields`.
 * @throws PrismaS3FilesError `CONFIGURATION` when file fields exist but the schema has no journal model.
 */
export function coordinationFor(
  fields: FileFieldsMetadataShape,
  tombstoneSeconds = DEFAULT_TOMBSTONE_SECONDS,
): Coordination {
  const found = findJournal(fields);
  if (!found) {
    const owners = Object.entries(fields).flatMap(([m, meta]) => Object.keys(meta.fileFields).map((f) => `${m}.${f}`));
    throw new PrismaS3FilesError(
      "CONFIGURATION",
      `the schema has file fields (${owners.slice(0, 3).join(", ")}${owners.length > 3 ? ", ..." : ""}) but no file journal model: run \`npx prisma-s3-files init\`, migrate, and generate again`,
    );
  }
  const tables = new Map<string, Table>();
  return {
    fields,
    dialect: found.dialect,
    journal: new Journal(fields, found.model, found.dialect),
    table(model) {
      let table = tables.get(model);
      if (!table) {
        table = found.dialect.table(fields, model);
        tables.set(model, table);
      }
      return table;
    },
    tombstoneSeconds,
  };
}
