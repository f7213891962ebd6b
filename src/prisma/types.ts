import type { UploadGrant } from "../browser/upload-grant.js";
import type { FileContent } from "../storage/storage.js";
import type { UploadGrantOptions } from "./direct-uploads.js";
import type { FieldFile } from "./field-file.js";
import type { FileFieldMetadata, FileFieldsMetadataShape } from "./metadata-types.js";
import type { UploadOptions } from "./upload.js";

/** The variant names a field declares (`never` for none: every name is a type error). */
export type VariantName<F extends FileFieldMetadata> = F extends { readonly variants: infer V }
  ? keyof V & string
  : never;

/** What a file column reads as: `FieldFile`, or `FieldFile | null` for an optional column. */
export type FileValue<F extends FileFieldMetadata> = F["nullable"] extends false
  ? FieldFile<VariantName<F>>
  : FieldFile<VariantName<F>> | null;

type FileColumns<Meta extends FileFieldsMetadataShape, M extends keyof Meta> = Meta[M]["fileFields"];

/**
 * Prisma's `result` extension arguments, as types only: per model property (`user`), each file
 * column shadowed by a computed field of type {@link FileValue}. The runtime maps results in a
 * `query` hook instead (far cheaper); these types make Prisma type every read path — nested
 * includes, fluent relations, transactions — as if it were a result extension.
 */
export type FileResultArgs<Meta extends FileFieldsMetadataShape> = {
  [M in keyof Meta as keyof FileColumns<Meta, M> extends never ? never : Uncapitalize<M & string>]: {
    [P in keyof FileColumns<Meta, M>]: {
      needs: { [K in P]: true };
      compute: (data: unknown) => FileValue<FileColumns<Meta, M>[P]>;
    };
  };
};

type ModelsWithFiles<Meta extends FileFieldsMetadataShape> = {
  [M in keyof Meta as keyof FileColumns<Meta, M> extends never ? never : Uncapitalize<M & string>]: M;
};

type NullableColumns<Meta extends FileFieldsMetadataShape, M extends keyof Meta> = {
  [P in keyof FileColumns<Meta, M>]: FileColumns<Meta, M>[P]["nullable"] extends true ? P : never;
}[keyof FileColumns<Meta, M>];

/** `attach` / `detach` on each model with file columns (see {@link FilesExtensionArgs}). */
export interface FileModelMethods<Meta extends FileFieldsMetadataShape, M extends keyof Meta> {
  /**
   * Uploads `content` into `field` of the row `where` selects (or attaches a direct upload: pass
   * its grant token); the old object goes after the commit. Returns the new file.
   */
  attach: (
    where: Record<string, unknown>,
    field: keyof FileColumns<Meta, M> & string,
    content: FileContent | string,
    options?: UploadOptions,
  ) => Promise<FieldFile>;
  /**
   * A grant for the browser to upload one file straight to `field`'s storage (S3): a presigned
   * POST form, or a multipart plan over `directUploads.multipartThreshold`. After the upload,
   * pass `grant.token` where the column takes an upload; the object is verified then.
   */
  uploadGrant: (field: keyof FileColumns<Meta, M> & string, options: UploadGrantOptions) => Promise<UploadGrant>;
  /** Empties `field` (an optional column) of the row `where` selects; the object goes after the commit. */
  detach: (where: Record<string, unknown>, field: NullableColumns<Meta, M> & string) => Promise<void>;
}

/** Prisma's internal extension-arguments shape (`InternalArgs`) for {@link FileResultArgs}. */
export interface FilesExtensionArgs<Meta extends FileFieldsMetadataShape> {
  result: {
    [K in keyof FileResultArgs<Meta>]: { [P in keyof FileResultArgs<Meta>[K]]: () => FileResultArgs<Meta>[K][P] };
  };
  model: {
    [K in keyof ModelsWithFiles<Meta>]: {
      [P in keyof FileModelMethods<Meta, ModelsWithFiles<Meta>[K] & keyof Meta>]: () => FileModelMethods<
        Meta,
        ModelsWithFiles<Meta>[K] & keyof Meta
      >[P];
    };
  };
  // biome-ignore lint/complexity/noBannedTypes: Prisma's InternalArgs uses {} for "no entries".
  query: {};
  // biome-ignore lint/complexity/noBannedTypes: as above.
  client: {};
}

/**
 * What `prisma.$extends()` accepts and how it types the result: Prisma merges
 * `FilesExtensionArgs` into the client's extension arguments, so earlier extensions keep their
 * types.
 */
export type FilesExtension<Meta extends FileFieldsMetadataShape> = (client: unknown) => {
  $extends: { extArgs: FilesExtensionArgs<Meta> };
};
