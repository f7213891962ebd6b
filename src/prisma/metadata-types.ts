/**
 * The shape of the metadata the generator emits (`fileFields` in the generated module) and the
 * runtime reads. The generated module declares the same shape for itself, so it imports nothing;
 * it stays assignable to {@link FileFieldsMetadataShape}.
 */

/** One file column: its `@file(...)` options, normalized, plus whether the column is nullable. */
export interface FileFieldMetadata {
  /** Directory pattern (Django's `upload_to`), strftime directives allowed; `""`: the root. */
  readonly uploadTo: string;
  /** Storage name; `"default"` unless the annotation names one. */
  readonly storage: string;
  /** Largest accepted upload in bytes; `null`: no limit. */
  readonly maxSize: number | null;
  /** Accepted MIME types, lower case, exact or `type/*`; `null`: any type. */
  readonly accept: readonly string[] | null;
  /** `true`: deleting the row or clearing the column leaves the object in the storage. */
  readonly keepFiles: boolean;
  /** Seconds to wait before removing a replaced or deleted object; `0`: right away. */
  readonly deleteAfterSeconds: number;
  /** Longest key the column can store (`@file(maxLength)` or `@db.VarChar(n)`); `null`: unknown. */
  readonly maxLength: number | null;
  /** `false` for a required (`String`) column, `true` for an optional one (`String?`). */
  readonly nullable: boolean;
  /**
   * The `Json?` field that receives the file's {@link FileMetadata} in the same row write as the
   * key (`@file(metadata: "...")`); absent: none.
   */
  readonly metadata?: string;
  /** The `Int?` field that receives an image's width (`@file(widthField: "...")`); absent: none. */
  readonly widthField?: string;
  /** The `Int?` field that receives an image's height (`@file(heightField: "...")`); absent: none. */
  readonly heightField?: string;
  /** Largest image accepted, in pixels (width × height); absent: 40,000,000. */
  readonly maxPixels?: number;
  /**
   * Images derived from each upload (`@file(variants: { thumb: "cover 128x128 webp" })`): spec
   * text by variant name; absent: none.
   */
  readonly variants?: { readonly [name: string]: string };
}

/** A relation field: the model it points to and whether it holds a list (`Post[]`). */
export interface RelationMetadata {
  readonly model: string;
  readonly list: boolean;
  /**
   * Deleting a row of this model deletes the related rows in the database (`onDelete: Cascade`
   * on the other side): their files are read before the delete and removed after it.
   */
  readonly cascade?: boolean;
}

/** One model: its file columns and its relation fields, both keyed by field name. */
export interface ModelFileMetadata {
  readonly fileFields: { readonly [field: string]: FileFieldMetadata };
  readonly relations: { readonly [field: string]: RelationMetadata };
  /** The primary key's fields (`@id` or `@@id`); empty when the model has none. */
  readonly primaryKey: readonly string[];
  /**
   * The model's table (`@@map("...")`; the model's name when unmapped). The generator always
   * emits it; absent in hand-written metadata, where the runtime takes the model's name.
   */
  readonly dbName?: string;
  /** The database schema of the table (`@@schema("...")`, multiSchema); absent when not set. */
  readonly schema?: string;
  /**
   * Database column names (`@map("...")`) by field name: of the primary-key fields and the file
   * fields (on the journal model, of every scalar field). The generator always emits it; a field
   * missing here is a column of its own name.
   */
  readonly columns?: { readonly [field: string]: string };
  /**
   * Present only on the file journal model (`FileJournal`, or the generator's `journal = "..."`):
   * `provider` is the datasource's active provider (`postgresql`, `mysql`, `sqlite`, ...).
   */
  readonly journal?: JournalMetadata;
}

/** Marks the file journal model: the datasource provider its SQL is written for. */
export interface JournalMetadata {
  readonly provider: string;
}

/** Every model of the schema, keyed by model name (models without file columns included). */
export interface FileFieldsMetadataShape {
  readonly [model: string]: ModelFileMetadata;
}
