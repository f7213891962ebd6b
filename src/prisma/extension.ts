import { PrismaS3FilesError } from "../errors.js";
import type { S3Session } from "../session/session.js";
import { S3Storage } from "../storage/s3/s3-storage.js";
import type { Storage } from "../storage/storage.js";
import type { FileFieldsMetadataShape } from "./metadata-types.js";
import { compileMappers, mapRows, ROW_OPERATIONS } from "./result-mapper.js";
import type { FilesExtension } from "./types.js";

/** Options of {@link s3Files}. */
export interface S3FilesOptions<Meta extends FileFieldsMetadataShape> {
  /** The generated metadata: `fileFields` from the generator's output module. */
  fields: Meta;
  /**
   * Storages by the names used in `@file(storage: "...")`. `default` (for columns that name
   * none) defaults to an {@link S3Storage} on the session's bucket.
   */
  storages?: { [name: string]: Storage };
}

/** The client part of Prisma's extension API that the binding uses; no Prisma import needed. */
interface ExtensibleClient {
  $extends(extension: {
    name: string;
    query: {
      $allModels: {
        $allOperations(params: {
          model: string;
          operation: string;
          args: unknown;
          query: (args: unknown) => Promise<unknown>;
          __internalParams?: { dataPath?: string[] };
        }): Promise<unknown>;
      };
    };
  }): unknown;
}

/**
 * The Prisma client extension: `prisma.$extends(s3Files(session, { fields }))`. Every declared
 * file column then reads as a {@link FieldFile} (or `null`) on every read path.
 */
export function s3Files<const Meta extends FileFieldsMetadataShape>(
  session: S3Session | undefined,
  options: S3FilesOptions<Meta>,
): FilesExtension<Meta> {
  const storages = resolveStorages(session, options);
  const mappers = compileMappers(options.fields, (model, field) => {
    const name = options.fields[model]!.fileFields[field]!.storage;
    return storages.get(name)!;
  });
  const extension = (client: unknown) =>
    (client as ExtensibleClient).$extends({
      name: "prisma-s3-files",
      query: {
        $allModels: {
          async $allOperations({ model, operation, args, query, __internalParams }) {
            const result = await query(args);
            if (!ROW_OPERATIONS.has(operation)) return result;
            // A fluent call (`user.findUnique(...).posts()`) hands the hook the relation's rows,
            // already taken out along `dataPath` (["select", "posts", ...]): follow it to their model.
            const path = __internalParams?.dataPath;
            const target = path && path.length > 0 ? followDataPath(options.fields, model, path) : model;
            return target === undefined ? result : mapRows(mappers, target, result);
          },
        },
      },
    });
  return extension as unknown as FilesExtension<Meta>;
}

function followDataPath(fields: FileFieldsMetadataShape, model: string, path: readonly string[]): string | undefined {
  let current: string | undefined = model;
  for (let i = 1; i < path.length && current !== undefined; i += 2) {
    current = fields[current]?.relations[path[i] as string]?.model;
  }
  return current;
}

/** Every storage the metadata names, checked up front: a missing one is a configuration error now, not at first read. */
function resolveStorages(
  session: S3Session | undefined,
  options: S3FilesOptions<FileFieldsMetadataShape>,
): Map<string, Storage> {
  const given = options.storages ?? {};
  const storages = new Map<string, Storage>(Object.entries(given));
  const missing = new Map<string, string[]>();
  for (const [model, meta] of Object.entries(options.fields)) {
    for (const [field, f] of Object.entries(meta.fileFields)) {
      if (storages.has(f.storage)) continue;
      if (f.storage === "default") {
        if (!session) {
          throw new PrismaS3FilesError(
            "CONFIGURATION",
            `${model}.${field} uses the default storage: pass a session or storages.default to s3Files()`,
          );
        }
        storages.set("default", new S3Storage({ session }));
        continue;
      }
      missing.set(f.storage, [...(missing.get(f.storage) ?? []), `${model}.${field}`]);
    }
  }
  if (missing.size > 0) {
    const list = [...missing].map(([name, fields]) => `"${name}" (used by ${fields.join(", ")})`).join("; ");
    throw new PrismaS3FilesError(
      "CONFIGURATION",
      `s3Files(): no storage given for ${list}; pass them in options.storages`,
    );
  }
  return storages;
}
