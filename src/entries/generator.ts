/**
 * `prisma-s3-files/generator`: the file-field metadata the generator writes, its types, the
 * type-level pieces of the Prisma extension, and the generator's errors. (The generator itself
 * runs as the package's bin: `provider = "prisma-s3-files"`.)
 */

export { FileAnnotationError } from "../prisma/generator/annotation.js";
export { JournalModelError } from "../prisma/generator/journal-model.js";
export { FileAnnotationErrors } from "../prisma/generator/metadata.js";
export type {
  FileFieldMetadata,
  FileFieldsMetadataShape,
  JournalMetadata,
  ModelFileMetadata,
  RelationMetadata,
} from "../prisma/metadata-types.js";
export type { FileModelMethods, FileResultArgs, FilesExtensionArgs, FileValue } from "../prisma/types.js";
