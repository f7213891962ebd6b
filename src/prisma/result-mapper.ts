import type { Storage } from "../storage/storage.js";
import { FieldFile, type RowBinding } from "./field-file.js";
import type { FileFieldsMetadataShape } from "./metadata-types.js";
import type { VariantClaims } from "./variant-urls.js";

/** Replaces file-column strings by {@link FieldFile}s in one row (and the rows nested in it), in place. */
type RowMapper = (row: Record<string, unknown>, client: unknown) => void;

/** Operations whose result is rows of the model (others return counts or aggregates). */
export const ROW_OPERATIONS: ReadonlySet<string> = new Set([
  "findUnique",
  "findUniqueOrThrow",
  "findFirst",
  "findFirstOrThrow",
  "findMany",
  "create",
  "createManyAndReturn",
  "update",
  "updateManyAndReturn",
  "upsert",
  "delete",
]);

/**
 * One mapper per model, compiled once from the metadata: it visits only the file columns and
 * the relations that can lead to a file column, so a `findMany` pays a few property reads per
 * row, not a walk of every field (Prisma's `result` extension costs ~1.9× a plain read; this
 * stays close to 1×).
 */
export function compileMappers(
  metadata: FileFieldsMetadataShape,
  storageFor: (model: string, field: string) => Storage,
  lazyVariantUrl?: (claims: VariantClaims) => string,
): Map<string, RowMapper> {
  const reaches = modelsReachingFiles(metadata);
  const mappers = new Map<string, RowMapper>();
  for (const model of reaches) {
    const meta = metadata[model]!;
    const primaryKey = meta.primaryKey ?? [];
    const files = Object.entries(meta.fileFields).map(([field, f]) => ({
      field,
      storage: storageFor(model, field),
      // Metadata columns, for FieldFile.metadata/width/height; the same object for every row.
      columns: {
        metadata: f.metadata,
        widthField: f.widthField,
        heightField: f.heightField,
        variants: f.variants,
        lazyVariantUrl,
      },
    }));
    const relations = Object.entries(meta.relations)
      .filter(([, r]) => reaches.has(r.model))
      .map(([field, r]) => ({ field, model: r.model }));
    // One binding per client, shared by every row read through it (it holds no row): a page of
    // rows allocates its file objects, not a binding per row as well.
    let bound: RowBinding | undefined;
    mappers.set(model, (row, client) => {
      for (const { field, storage, columns } of files) {
        const value = row[field];
        // Only strings: a FieldFile (the extension applied twice) or null stays as it is.
        if (typeof value === "string") {
          if (bound?.client !== client) bound = { client, primaryKey };
          row[field] = new FieldFile(storage, value, model, field, row, bound, columns);
        }
      }
      for (const { field, model: target } of relations) {
        const value = row[field];
        if (value !== null && typeof value === "object") mapRows(mappers, target, value, client);
      }
    });
  }
  return mappers;
}

/**
 * Maps a result (a row, an array of rows, or null) of `model` in place and returns it. `client`
 * is what the files' `save()`/`delete()` will write through.
 */
export function mapRows(mappers: Map<string, RowMapper>, model: string, result: unknown, client: unknown): unknown {
  const mapper = mappers.get(model);
  if (!mapper || result === null || typeof result !== "object") return result;
  if (Array.isArray(result)) {
    for (const row of result)
      if (row !== null && typeof row === "object") mapper(row as Record<string, unknown>, client);
  } else {
    mapper(result as Record<string, unknown>, client);
  }
  return result;
}

/** Models with a file column or a relation path to one. */
function modelsReachingFiles(metadata: FileFieldsMetadataShape): Set<string> {
  const reaches = new Set(Object.keys(metadata).filter((m) => Object.keys(metadata[m]!.fileFields).length > 0));
  for (let changed = true; changed; ) {
    changed = false;
    for (const [model, meta] of Object.entries(metadata)) {
      if (reaches.has(model)) continue;
      if (Object.values(meta.relations).some((r) => reaches.has(r.model))) {
        reaches.add(model);
        changed = true;
      }
    }
  }
  return reaches;
}
