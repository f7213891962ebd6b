/**
 * From the DMMF datamodel to the file-field metadata: every model's file columns (from their
 * `@file` annotations) and its relation fields (so the runtime can walk nested writes and
 * includes). The input types are the parts of `@prisma/dmmf`'s `Datamodel` this reads, so the DMMF
 * object Prisma hands a generator fits them as is.
 */
import { PrismaS3FilesError } from "../../errors.js";
import type {
  FileFieldMetadata,
  FileFieldsMetadataShape,
  ModelFileMetadata,
  RelationMetadata,
} from "../metadata-types.js";
import { FileAnnotationError, hasFileAnnotation, parseFileAnnotation } from "./annotation.js";
import {
  DEFAULT_JOURNAL_MODEL,
  invalidJournalError,
  journalModelProblems,
  missingJournalError,
} from "./journal-model.js";

/** The parts of a DMMF field the generator reads. */
export interface DmmfFieldLike {
  readonly name: string;
  readonly kind: string;
  readonly type: string;
  readonly isList: boolean;
  readonly isRequired: boolean;
  readonly documentation?: string | undefined;
  readonly relationName?: string | null | undefined;
  /** The referential action on the side holding the foreign key (`Cascade`, `SetNull`, ...). */
  readonly relationOnDelete?: string | null | undefined;
  readonly nativeType?: readonly [string, readonly string[]] | null | undefined;
  readonly isId?: boolean | undefined;
  /** The column's name (`@map("...")`); `null` or absent when it is the field's. */
  readonly dbName?: string | null | undefined;
  readonly hasDefaultValue?: boolean | undefined;
  /** `{ name: "autoincrement", args: [] }`, `{ name: "now", ... }`, or a scalar default. */
  readonly default?: unknown;
}

/** The parts of a DMMF model the generator reads. */
export interface DmmfModelLike {
  readonly name: string;
  readonly fields: readonly DmmfFieldLike[];
  /** A compound `@@id([...])`. */
  readonly primaryKey?: { readonly fields: readonly string[] } | null | undefined;
  /** The table's name (`@@map("...")`); `null` or absent when it is the model's. */
  readonly dbName?: string | null | undefined;
  /** `@@schema("...")` (multiSchema); `null` or absent when not set. */
  readonly schema?: string | null | undefined;
}

/** The parts of `options.dmmf.datamodel` the generator reads. */
export interface DmmfDatamodelLike {
  readonly models: readonly DmmfModelLike[];
  /** Composite types (MongoDB); a `@file` annotation there is refused. */
  readonly types?: readonly DmmfModelLike[];
}

export interface BuildMetadataOptions {
  /**
   * The storage names the generator block declares (`storages = ["public", "private"]`).
   * `"default"` is always allowed. `undefined`: storage names are not checked.
   */
  storages?: readonly string[] | undefined;
  /**
   * The datasource's provider (`postgresql`, `mysql`, `sqlite`, ...): a `String` column without
   * a native type gets that provider's default length as its `maxLength` (MySQL: 191).
   */
  provider?: string | undefined;
  /**
   * Where the generated module imports the runtime from for its pre-bound `s3Files`
   * (`runtime = "..."` in the generator block; default `"prisma-s3-files"`; `"none"`: no import,
   * no pre-bound function).
   */
  runtime?: string | undefined;
  /** The file journal model's name (`journal = "..."` in the generator block; default `FileJournal`). */
  journal?: string | undefined;
  /**
   * `false`: build the metadata even when file fields exist and the journal model does not
   * (the generator always requires it; this is for tests and tools reading partial schemas).
   */
  requireJournal?: boolean | undefined;
}

/** Several `@file` annotations are wrong; `errors` lists them, the message has one per line. */
export class FileAnnotationErrors extends PrismaS3FilesError {
  readonly errors: readonly FileAnnotationError[];
  constructor(errors: readonly FileAnnotationError[]) {
    super(
      "FILE_ANNOTATION",
      `${errors.length} problems with @file annotations:\n${errors.map((e) => `  ${e.message}`).join("\n")}`,
    );
    this.errors = errors;
  }
}

/** Native types whose first argument is the column's length in characters. */
const LENGTH_TYPES = new Set(["VarChar", "Char", "NVarChar", "NChar"]);

/**
 * The length of a `String` column without a native type, per datasource provider: Prisma maps
 * it to `VARCHAR(191)` on MySQL/MariaDB and `NVARCHAR(1000)` on SQL Server; PostgreSQL's `text`
 * and SQLite's `TEXT` have none.
 */
const DEFAULT_STRING_LENGTH: Readonly<Record<string, number>> = { mysql: 191, sqlserver: 1000 };

function nativeLength(field: DmmfFieldLike, provider: string | undefined): number | null {
  const native = field.nativeType;
  if (!native) return (provider && DEFAULT_STRING_LENGTH[provider]) || null;
  if (!LENGTH_TYPES.has(native[0])) return null;
  const arg = native[1][0];
  if (arg === undefined || !/^[0-9]+$/.test(arg)) return null; // e.g. NVarChar(Max)
  const n = Number(arg);
  return n > 0 ? n : null;
}

function describeType(field: DmmfFieldLike): string {
  return `${field.type}${field.isList ? "[]" : ""}${field.isRequired || field.isList ? "" : "?"}`;
}

function fileField(
  model: DmmfModelLike,
  field: DmmfFieldLike,
  allowedStorages: ReadonlySet<string> | null,
  provider: string | undefined,
): FileFieldMetadata | null {
  const location = { model: model.name, field: field.name };
  const options = parseFileAnnotation(field.documentation, location);
  if (options === null) return null;
  if (field.kind !== "scalar" || field.type !== "String" || field.isList) {
    throw new FileAnnotationError(
      location,
      `@file needs a String or String? column holding the object key, but the field is ${describeType(field)}`,
    );
  }
  if (allowedStorages !== null && !allowedStorages.has(options.storage)) {
    throw new FileAnnotationError(
      location,
      `unknown storage ${JSON.stringify(options.storage)} (the generator's storages: ${[...allowedStorages].map((s) => JSON.stringify(s)).join(", ")})`,
    );
  }
  const columnLength = nativeLength(field, provider);
  let maxLength = options.maxLength;
  if (maxLength === null) {
    maxLength = columnLength;
  } else if (columnLength !== null && maxLength > columnLength) {
    throw new FileAnnotationError(
      location,
      `maxLength ${maxLength} exceeds the column's length (${field.nativeType ? `@db.${field.nativeType[0]}` : `String on ${provider}: VARCHAR`}(${columnLength}))`,
    );
  }
  const { metadata, widthField, heightField, maxPixels, variants, ...rest } = options;
  const columns = { metadata, widthField, heightField };
  for (const [option, name] of Object.entries(columns) as [keyof typeof columns, string | null][]) {
    if (name === null) continue;
    const problem = metadataColumnProblem(model, field, option, name);
    if (problem !== null) throw new FileAnnotationError(location, problem);
  }
  if (widthField !== null && widthField === heightField) {
    throw new FileAnnotationError(
      location,
      `widthField and heightField name the same field ${JSON.stringify(widthField)}`,
    );
  }
  return {
    ...rest,
    maxLength,
    nullable: !field.isRequired,
    ...(metadata === null ? {} : { metadata }),
    ...(widthField === null ? {} : { widthField }),
    ...(heightField === null ? {} : { heightField }),
    ...(maxPixels === null ? {} : { maxPixels }),
    ...(variants === null ? {} : { variants }),
  };
}

/**
 * What is wrong with the field a `metadata`, `widthField` or `heightField` option names, or
 * `null`: it must be a scalar field of the same model, `Json?` or `Int?`, and no file field.
 * Optional, because a file set as a plain key (a copy) or cleared, or one that is no image, has
 * no metadata or dimensions to write.
 */
function metadataColumnProblem(
  model: DmmfModelLike,
  file: DmmfFieldLike,
  option: "metadata" | "widthField" | "heightField",
  name: string,
): string | null {
  const type = option === "metadata" ? "Json" : "Int";
  const column = model.fields.find((f) => f.name === name);
  if (column === undefined) {
    return `${option}: the model has no field ${JSON.stringify(name)} (add \`${name} ${type}?\`)`;
  }
  if (column === file) return `${option} names the file field itself; name a ${type}? field`;
  if (hasFileAnnotation(column.documentation)) return `${option}: ${name} is a file field; name a ${type}? field`;
  if (column.kind !== "scalar" || column.type !== type || column.isList || column.isRequired) {
    return `${option}: ${name} must be ${type}? (optional: a copied or cleared file has none), but it is ${describeType(column)}`;
  }
  return null;
}

/**
 * Builds the metadata of every model (sorted by name; fields in schema order).
 *
 * The file journal model (`options.journal`, default `FileJournal`) gets `journal: { provider }`
 * and every scalar field in `columns`; the others have their primary-key and file fields there.
 *
 * @throws FileAnnotationError for one bad annotation, {@link FileAnnotationErrors} for several:
 * malformed annotations, a `@file` on anything but a `String`/`String?` column, a storage name
 * not in `options.storages`, a `maxLength` longer than the column, a `metadata` that names no
 * `Json?` field of the model or a `widthField`/`heightField` that names no `Int?` field (or one
 * that another file field already fills).
 * @throws JournalModelError (`JOURNAL_MODEL`) when file fields exist and the journal model does
 * not (unless `options.requireJournal` is `false`), or when the journal model lacks a field the
 * runtime writes, has one of the wrong type, or carries a file field.
 */
export function buildMetadata(
  datamodel: DmmfDatamodelLike,
  options: BuildMetadataOptions = {},
): FileFieldsMetadataShape {
  const allowedStorages = options.storages === undefined ? null : new Set(["default", ...options.storages]);
  const modelNames = new Set(datamodel.models.map((m) => m.name));
  const errors: FileAnnotationError[] = [];
  const journalName = options.journal ?? DEFAULT_JOURNAL_MODEL;
  const result: Record<string, ModelFileMetadata> = {};
  /** `Model.field` of every file field, and the longest key one may hold. */
  const fileFieldNames: string[] = [];
  let longestKey: { field: string; length: number } | null = null;

  const models = [...datamodel.models].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const model of models) {
    const fileFields: Record<string, FileFieldMetadata> = {};
    const relations: Record<string, RelationMetadata> = {};
    /** Metadata columns already named, by the file field naming them. */
    const metadataOwners = new Map<string, string>();
    for (const field of model.fields) {
      try {
        const file = fileField(model, field, allowedStorages, options.provider);
        if (file !== null) {
          for (const column of [file.metadata, file.widthField, file.heightField]) {
            if (column === undefined) continue;
            const owner = metadataOwners.get(column);
            if (owner !== undefined) {
              throw new FileAnnotationError(
                { model: model.name, field: field.name },
                `${column} already receives the metadata of ${owner}: each file field needs columns of its own`,
              );
            }
            metadataOwners.set(column, field.name);
          }
          fileFields[field.name] = file;
          fileFieldNames.push(`${model.name}.${field.name}`);
          if (file.maxLength !== null && (longestKey === null || file.maxLength > longestKey.length)) {
            longestKey = { field: `${model.name}.${field.name}`, length: file.maxLength };
          }
        }
      } catch (e) {
        if (!(e instanceof FileAnnotationError)) throw e;
        errors.push(e);
      }
      if (field.kind === "object" && modelNames.has(field.type)) {
        relations[field.name] = { model: field.type, list: field.isList, ...cascadeOf(datamodel, model, field) };
      }
    }
    // The row's identity, so a file read from it can update that row (FieldFile.save/delete).
    const primaryKey = model.primaryKey?.fields ?? model.fields.filter((f) => f.isId).map((f) => f.name);
    // Column names (`@map`) of what the runtime names in SQL: the key and the file columns, or
    // every scalar field of the journal.
    const isJournal = model.name === journalName;
    const columns: Record<string, string> = {};
    for (const field of model.fields) {
      const named = isJournal
        ? field.kind === "scalar" || field.kind === "enum"
        : primaryKey.includes(field.name) || Object.hasOwn(fileFields, field.name);
      if (named) columns[field.name] = field.dbName ?? field.name;
    }
    result[model.name] = {
      fileFields,
      relations,
      primaryKey: [...primaryKey],
      dbName: model.dbName ?? model.name,
      ...(model.schema ? { schema: model.schema } : {}),
      columns,
      ...(isJournal ? { journal: { provider: options.provider ?? "unknown" } } : {}),
    };
  }

  for (const type of datamodel.types ?? []) {
    for (const field of type.fields) {
      if (hasFileAnnotation(field.documentation)) {
        errors.push(
          new FileAnnotationError(
            { model: type.name, field: field.name },
            "@file is not supported on fields of composite types; declare the column on a model",
          ),
        );
      }
    }
  }

  if (errors.length === 1) throw errors[0]!;
  if (errors.length > 1) throw new FileAnnotationErrors(errors);

  const journal = datamodel.models.find((m) => m.name === journalName);
  if (journal === undefined) {
    if (fileFieldNames.length > 0 && options.requireJournal !== false) {
      throw missingJournalError(journalName, fileFieldNames, options.provider);
    }
  } else {
    const objectKey = journal.fields.find((f) => f.name === "objectKey");
    const keyLength = objectKey && objectKey.type === "String" ? nativeLength(objectKey, options.provider) : null;
    const problems = journalModelProblems(journal, { keyLength, longestKey });
    for (const field of Object.keys(result[journal.name]!.fileFields)) {
      problems.push(`${field}: the journal model has no file fields; remove its @file annotation`);
    }
    if (problems.length > 0) throw invalidJournalError(journalName, problems, options.provider);
  }
  return result;
}

/**
 * Reads the generator block's `storages` config value (`storages = ["public", "private"]`, or a
 * single string). Returns `undefined` when it is absent.
 *
 * @throws PrismaS3FilesError for unknown config keys and malformed names.
 */
export function readGeneratorConfig(
  config: { readonly [key: string]: string | readonly string[] | undefined },
  generatorName = "files",
): BuildMetadataOptions {
  const known = ["storages", "runtime", "journal"];
  for (const key of Object.keys(config)) {
    if (!known.includes(key)) {
      throw new PrismaS3FilesError(
        "GENERATOR_CONFIG",
        `generator ${generatorName}: unknown config key ${JSON.stringify(key)} (known: ${known.join(", ")})`,
      );
    }
  }
  const runtime = config.runtime;
  if (runtime !== undefined && (typeof runtime !== "string" || runtime === "")) {
    throw new PrismaS3FilesError("GENERATOR_CONFIG", `generator ${generatorName}: runtime must be a module specifier`);
  }
  const journal = config.journal;
  if (journal !== undefined && (typeof journal !== "string" || !/^[A-Za-z][A-Za-z0-9_]*$/.test(journal))) {
    throw new PrismaS3FilesError(
      "GENERATOR_CONFIG",
      `generator ${generatorName}: journal must be a model name, got ${JSON.stringify(journal)}`,
    );
  }
  const result: BuildMetadataOptions = {
    ...(runtime === undefined ? {} : { runtime }),
    ...(journal === undefined ? {} : { journal }),
  };
  const raw = config.storages;
  if (raw === undefined) return result;
  const storages = typeof raw === "string" ? [raw] : [...raw];
  for (const name of storages) {
    if (!/^[A-Za-z0-9_.-]+$/.test(name)) {
      throw new PrismaS3FilesError(
        "GENERATOR_CONFIG",
        `generator ${generatorName}: storage name ${JSON.stringify(name)} in storages must be non-empty and use only letters, digits, "_", "-" and "."`,
      );
    }
  }
  return { storages, ...result };
}

/**
 * Whether deleting a `model` row makes the database delete the rows `field` points to: the
 * other side of the relation (same relation name, pointing back) holds the foreign key with
 * `onDelete: Cascade`.
 */
function cascadeOf(datamodel: DmmfDatamodelLike, model: DmmfModelLike, field: DmmfFieldLike): { cascade?: true } {
  if (!field.relationName || field.relationOnDelete) return {}; // this side holds the key: deletes do not flow to the other
  const target = datamodel.models.find((m) => m.name === field.type);
  const back = target?.fields.find(
    (f) => f !== field && f.kind === "object" && f.relationName === field.relationName && f.type === model.name,
  );
  return back?.relationOnDelete === "Cascade" ? { cascade: true } : {};
}
