import type { FieldFile } from "./field-file.js";
import type { FileFieldMetadata, FileFieldsMetadataShape } from "./metadata-types.js";

/** What a file column reads as: `FieldFile`, or `FieldFile | null` for an optional column. */
export type FileValue<F extends FileFieldMetadata> = F["nullable"] extends false ? FieldFile : FieldFile | null;

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

/** Prisma's internal extension-arguments shape (`InternalArgs`) for {@link FileResultArgs}. */
export interface FilesExtensionArgs<Meta extends FileFieldsMetadataShape> {
  result: {
    [K in keyof FileResultArgs<Meta>]: { [P in keyof FileResultArgs<Meta>[K]]: () => FileResultArgs<Meta>[K][P] };
  };
  // biome-ignore lint/complexity/noBannedTypes: Prisma's InternalArgs uses {} for "no entries".
  model: {};
  // biome-ignore lint/complexity/noBannedTypes: as above.
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
