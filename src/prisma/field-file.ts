import { PrismaS3FilesError } from "../errors.js";
import { StoredFile } from "../files/stored-file.js";
import { variantKey, variantSpecDigest } from "../files/variants.js";
import type { FileContent, Storage } from "../storage/storage.js";
import type { FileMetadata } from "./file-metadata.js";
import { declaredVariant, type FieldVariant } from "./file-variants.js";
import { modelDelegate } from "./prisma-internals.js";
import { type UploadOptions, upload } from "./upload.js";
import type { VariantClaims } from "./variant-urls.js";

/** How a file read from a row reaches that row again: the client it was read with (a transaction's, if any). */
export interface RowBinding {
  /** The client (or transaction client) whose model delegates write through the extension. */
  client: unknown;
  /** The row's primary-key fields. */
  primaryKey: readonly string[];
}

type Row = Record<string, unknown>;

/**
 * The metadata and dimension columns of a file field, by the `@file` option naming them, and
 * its variants (`@file(variants)`: spec text by name).
 */
export interface MetadataColumnNames {
  readonly metadata?: string | undefined;
  readonly widthField?: string | undefined;
  readonly heightField?: string | undefined;
  readonly variants?: { readonly [name: string]: string } | undefined;
  /** The signed URL of a lazy variant (`s3Files({ lazyVariants })`); absent when not configured. */
  readonly lazyVariantUrl?: ((claims: VariantClaims) => string) | undefined;
}

/**
 * A lazy variant (`"... lazy"` in its spec): the object once made, under its derived key, but
 * `url()` is the app's signed URL that makes it on the first request (see
 * `createVariantHandler`), since it may not be stored yet.
 */
export class LazyVariantFile extends StoredFile {
  readonly #claims: VariantClaims;
  readonly #url: ((claims: VariantClaims) => string) | undefined;

  constructor(
    storage: Storage,
    key: string,
    claims: VariantClaims,
    url: ((claims: VariantClaims) => string) | undefined,
  ) {
    super(storage, key);
    this.#claims = claims;
    this.#url = url;
  }

  /**
   * The signed URL of the app's variant route: it redirects to the stored variant, made first if
   * needed. Options of storage URLs do not apply (the handler picks the storage's URL).
   *
   * @throws PrismaS3FilesError `CONFIGURATION` when `s3Files` has no `lazyVariants` option.
   */
  override async url(): Promise<string> {
    if (!this.#url) {
      throw new PrismaS3FilesError(
        "CONFIGURATION",
        `${this.#claims.model}.${this.#claims.field}: variant "${this.#claims.name}" is lazy; its URL needs s3Files(session, { lazyVariants: { secret, baseUrl } }) and createVariantHandler() at baseUrl`,
      );
    }
    return this.#url(this.#claims);
  }
}
type Delegate = { update(args: unknown): Promise<Row> };

/**
 * The value a declared file column reads as (Django's `FieldFile`): a {@link StoredFile} that
 * knows the model, field and row it came from. `user.avatar?.url()`, `.open()`, `.size()`;
 * `save()` and `delete()` write the row through the same client (inside its transaction, if it
 * was read in one). Serializes as its key.
 */
export class FieldFile<Variant extends string = never> extends StoredFile {
  readonly #model: string;
  readonly #field: string;
  readonly #row: Row | undefined;
  readonly #binding: RowBinding | undefined;
  readonly #columns: MetadataColumnNames;

  /**
   * @param columns The field's metadata and dimension columns (`@file(metadata, widthField,
   * heightField)`), read from `row` by {@link metadata}, {@link width} and {@link height}.
   */
  constructor(
    storage: Storage,
    name: string,
    model: string,
    field: string,
    row?: Row,
    binding?: RowBinding,
    columns: MetadataColumnNames = {},
  ) {
    super(storage, name);
    this.#model = model;
    this.#field = field;
    this.#row = row;
    this.#binding = binding;
    this.#columns = columns;
  }

  /**
   * The file's facts as its `@file(metadata: "...")` column holds them (size, content type,
   * SHA-256, original name, and an image's width and height), read from the row: no storage
   * call. `null` when the column was read and holds none (the file was set as a plain key, or
   * written before the column existed); `undefined` when the field declares no metadata column
   * or the query did not select it.
   */
  get metadata(): FileMetadata | null | undefined {
    const column = this.#columns.metadata;
    if (column === undefined || this.#row === undefined) return undefined;
    const value = this.#row[column];
    if (value === undefined) return undefined;
    return value !== null && typeof value === "object" ? (value as FileMetadata) : null;
  }

  /**
   * The image's width in pixels, as displayed, with no storage call: from the `widthField`
   * column when the row has it, else from the `metadata` column. `null` when the column read
   * holds none (not an image, an image whose header gave no size, a file set as a plain key);
   * `undefined` when neither column is declared or selected.
   */
  get width(): number | null | undefined {
    return this.#dimension(this.#columns.widthField, "width");
  }

  /** The image's height in pixels, as displayed: as {@link width}, from `heightField` or `metadata`. */
  get height(): number | null | undefined {
    return this.#dimension(this.#columns.heightField, "height");
  }

  #dimension(column: string | undefined, key: "width" | "height"): number | null | undefined {
    const row = this.#row;
    if (row === undefined) return undefined;
    if (column !== undefined && row[column] !== undefined) {
      const value = row[column];
      return typeof value === "number" ? value : null;
    }
    const metadata = this.metadata;
    if (metadata === undefined) return undefined;
    const value = metadata?.[key];
    return typeof value === "number" ? value : null;
  }

  /**
   * Image variant `name` of this file (`@file(variants: { thumb: "cover 128x128 webp" })`), as a
   * {@link StoredFile}: `user.avatar?.variant("thumb").url()`. Its key is derived from this
   * file's key and the variant's spec, so no storage call is made here; the names are typed from
   * the schema. A variant made under an earlier spec is not this one (`npx prisma-s3-files
   * variants --stale` rebuilds them).
   *
   * @throws PrismaS3FilesError `CONFIGURATION` for a name the field does not declare.
   */
  variant(name: Variant): StoredFile {
    const meta = { variants: this.#columns.variants } as Parameters<typeof declaredVariant>[0];
    let declared: FieldVariant;
    try {
      declared = declaredVariant(meta, name);
    } catch (error) {
      if (!(error instanceof PrismaS3FilesError)) throw error;
      throw new PrismaS3FilesError("CONFIGURATION", `${this.#model}.${this.#field}: ${error.message}`);
    }
    const key = variantKey(this.name, declared.name, declared.spec);
    if (!declared.spec.lazy) return new StoredFile(this.storage, key);
    const claims = {
      model: this.#model,
      field: this.#field,
      key: this.name,
      name,
      digest: variantSpecDigest(declared.spec),
    };
    return new LazyVariantFile(this.storage, key, claims, this.#columns.lazyVariantUrl);
  }

  /** The Prisma model the value was read from, e.g. `User`. */
  get model(): string {
    return this.#model;
  }

  /** The file column, e.g. `avatar`. */
  get field(): string {
    return this.#field;
  }

  /**
   * Django's `FieldFile.save`: uploads `content` as this column's new file, updates the row, and
   * deletes this (old) object once the update has committed. Returns the new file; the row
   * object this file came from is updated too.
   */
  async save(content: FileContent, options?: UploadOptions): Promise<FieldFile> {
    await this.#update(upload(content, options));
    return this.#row![this.#field] as FieldFile;
  }

  /**
   * Django's `FieldFile.delete`: sets the column to `null` and deletes the object after the
   * update has committed. A required column cannot be emptied: use `save()` to replace it.
   */
  async delete(): Promise<void> {
    await this.#update(null);
  }

  async #update(value: string | null): Promise<Row> {
    const row = this.#row;
    const binding = this.#binding;
    const label = `${this.#model}.${this.#field}`;
    if (!row || !binding) {
      throw new PrismaS3FilesError(
        "NOT_BOUND",
        `${label}: this file was not read from a row; use the client to update it`,
      );
    }
    if (binding.primaryKey.length === 0 || binding.primaryKey.some((k) => row[k] === undefined)) {
      throw new PrismaS3FilesError(
        "NOT_BOUND",
        `${label}: save()/delete() need the row's primary key (${binding.primaryKey.join(", ") || "none"}) in the query's select`,
      );
    }
    const where = Object.fromEntries(binding.primaryKey.map((k) => [k, row[k]]));
    const delegate = modelDelegate<Delegate>(binding.client, this.#model);
    const columns = [this.#columns.metadata, this.#columns.widthField, this.#columns.heightField].filter(
      (c): c is string => c !== undefined,
    );
    const select = Object.fromEntries([...binding.primaryKey, this.#field, ...columns].map((k) => [k, true]));
    const updated = await delegate.update({ where, data: { [this.#field]: value }, select });
    // The row this file came from follows: its metadata columns, and the new value, bound to it so
    // it can be saved or deleted in turn.
    for (const column of columns) row[column] = updated[column];
    const stored = updated[this.#field];
    const name = stored instanceof FieldFile ? stored.name : typeof stored === "string" ? stored : null;
    row[this.#field] =
      name === null ? null : new FieldFile(this.storage, name, this.#model, this.#field, row, binding, this.#columns);
    return updated;
  }
}
