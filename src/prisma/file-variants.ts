/**
 * Image variants of a file field (`@file(variants: { thumb: "cover 128x128 webp" })`, issue #18):
 * made from each upload in the same write as the original, stored under a key derived from the
 * original's key and a digest of the spec (`variants/<key>/<name>-<digest>.<ext>`), and so found
 * again from the row alone. They follow their original: recorded in the journal before their
 * bytes (a crash leaves records the drain finishes), taken with it when the row commits, deleted
 * with it by the drain, and kept by the sweep exactly while a row holds the original.
 */
import { PrismaS3FilesError } from "../errors.js";
import { type ImageProcessor, RASTER_TYPES } from "../files/image-processor.js";
import { DEFAULT_MAX_PIXELS, FileValidationError } from "../files/validation.js";
import { parseVariantKey, parseVariantSpec, type VariantSpec, variantKey, variantPrefix } from "../files/variants.js";
import type { Storage } from "../storage/storage.js";
import type { FileFieldMetadata, FileFieldsMetadataShape } from "./metadata-types.js";

/** One variant a field declares. */
export interface FieldVariant {
  name: string;
  spec: VariantSpec;
}

const parsed = new WeakMap<object, FieldVariant[]>();

/** The variants a field declares (none: `[]`), parsed once per metadata object. */
export function fieldVariants(meta: FileFieldMetadata): FieldVariant[] {
  const declared = meta.variants;
  if (declared === undefined) return [];
  let out = parsed.get(declared);
  if (out === undefined) {
    out = Object.entries(declared).map(([name, text]) => {
      const spec = parseVariantSpec(text);
      if ("error" in spec) {
        // Hand-written or edited metadata: the generator refuses this at generate time.
        throw new PrismaS3FilesError("CONFIGURATION", `variant ${JSON.stringify(name)}: ${spec.error}`);
      }
      return { name, spec };
    });
    parsed.set(declared, out);
  }
  return out;
}

/** Whether the field makes variants in the write (any not marked `lazy`). */
export function hasEagerVariants(meta: FileFieldMetadata): boolean {
  return fieldVariants(meta).some((v) => !v.spec.lazy);
}

/** Variant `name` as the field declares it. @throws PrismaS3FilesError `CONFIGURATION` for a name it does not. */
export function declaredVariant(meta: FileFieldMetadata, name: string): FieldVariant {
  const variant = fieldVariants(meta).find((v) => v.name === name);
  if (variant === undefined) {
    const known = fieldVariants(meta).map((v) => JSON.stringify(v.name));
    throw new PrismaS3FilesError(
      "CONFIGURATION",
      `no variant ${JSON.stringify(name)} (this field's: ${known.length === 0 ? "none" : known.join(", ")})`,
    );
  }
  return variant;
}

/** Whether an upload of `detectedType` can be made into the field's variants (SVG only where the field accepts it by name). */
export function variantSource(
  meta: FileFieldMetadata,
  detectedType: string | undefined,
): { allowSvg: boolean } | undefined {
  const allowSvg = meta.accept?.includes("image/svg+xml") ?? false;
  if (detectedType !== undefined && RASTER_TYPES.has(detectedType)) return { allowSvg };
  if (detectedType === "image/svg+xml" && allowSvg) return { allowSvg };
  return undefined;
}

/**
 * Refuses, before anything is stored, an upload the field cannot make variants of: not an image,
 * or an SVG the field does not accept by name (SVG is never rasterised unless asked for).
 */
export function checkVariantSource(
  meta: FileFieldMetadata,
  detectedType: string | undefined,
  declaredType: string,
  where: { model: string; field: string },
): void {
  if (fieldVariants(meta).length === 0 || variantSource(meta, detectedType)) return;
  const what = detectedType ?? declaredType;
  const svg = what === "image/svg+xml";
  throw new FileValidationError(
    "type_not_accepted",
    `${where.model}.${where.field}: makes image variants, and ${svg ? 'an SVG is only rasterised where the field accepts "image/svg+xml" by name' : `the upload is not an image they can be made from (${what})`}`,
    { ...where, declaredType, ...(detectedType === undefined ? {} : { detectedType }) },
  );
}

/** A variant stored for an upload. */
export interface StoredVariant {
  name: string;
  key: string;
}

/**
 * Makes the field's variants of `source` (the original's bytes) and stores each under its derived
 * key, each name passed to `beforeWrite` (the journal) before its bytes go. The names are exact:
 * writing one again replaces it with the same image. On a failure, the variants stored so far
 * are in `stored` for the caller to remove. Makes the eager variants, or those `only` names.
 */
export async function storeVariants(
  images: ImageProcessor,
  storage: Storage,
  meta: FileFieldMetadata,
  original: { key: string; contentType: string; bytes: Uint8Array },
  where: { model: string; field: string },
  stored: StoredVariant[],
  beforeWrite?: (name: string) => Promise<void>,
  only?: readonly string[],
): Promise<void> {
  // By default the eager ones (a write's); `only` names any, lazy ones included.
  const variants = fieldVariants(meta).filter((v) => (only === undefined ? !v.spec.lazy : only.includes(v.name)));
  if (variants.length === 0) return;
  const source = variantSource(meta, original.contentType);
  const made = await images.makeVariants(original.bytes, variants, {
    maxPixels: meta.maxPixels ?? DEFAULT_MAX_PIXELS,
    contentType: original.contentType,
    allowSvg: source?.allowSvg ?? false,
    where,
  });
  for (const variant of made) {
    const key = variantKey(original.key, variant.name, variant.spec);
    await storage.save(key, variant.bytes, {
      contentType: variant.contentType,
      overwrite: true,
      ...(beforeWrite ? { beforeWrite } : {}),
    });
    stored.push({ name: variant.name, key });
  }
}

/**
 * Every variant stored for the original at `key`, under any spec (old ones too): what goes when
 * the original goes.
 */
export async function listVariants(storage: Storage, key: string): Promise<string[]> {
  const prefix = variantPrefix(key);
  const out: string[] = [];
  for await (const o of storage.listAll(prefix.replace(/\/+$/, ""))) {
    // listAll takes a directory: keep only this original's variants (not `<key>x/...`).
    if (o.name.startsWith(prefix) && parseVariantKey(o.name)?.original === key) out.push(o.name);
  }
  return out;
}

/** The original's key of a variant's key; `undefined` for a key that is no variant's. */
export function originalOf(key: string): string | undefined {
  return parseVariantKey(key)?.original;
}

/** Whether any field whose storage has the journal's id `storageId` declares variants. */
export function hasVariants(
  ctx: { fields: FileFieldsMetadataShape; storageId(model: string, field: string): string },
  storageId: string,
): boolean {
  return Object.entries(ctx.fields).some(([model, m]) =>
    Object.entries(m.fileFields).some(
      ([field, f]) => f.variants !== undefined && ctx.storageId(model, field) === storageId,
    ),
  );
}
