import { randomUUID } from "node:crypto";
import { LeftBehindError, PrismaS3FilesError } from "../errors.js";
import { ImageProcessor } from "../files/image-processor.js";
import { IMAGE_HEAD_BYTES, type ImageDimensions, readImageDimensions } from "../files/image-size.js";
import { defaultFileName, uploadedFileName } from "../files/uploaded-name.js";
import {
  checkDeclaredSize,
  checkPixels,
  checkType,
  DEFAULT_MAX_PIXELS,
  nameForContent,
  toFileValidationError,
} from "../files/validation.js";
import { isBlob, normalizeContent, resolveContentType } from "../storage/content.js";
import { generateFilename } from "../storage/naming.js";
import type { FileContent, Storage } from "../storage/storage.js";
import {
  type ClaimedGrant,
  claimGrant,
  type ResolvedDirectUploads,
  resolveDirectUploads,
  verifyAttached,
} from "./direct-uploads.js";
import {
  digestContent,
  digestStored,
  type FileMetadata,
  hasMetadataColumns,
  writeFileMetadata,
} from "./file-metadata.js";
import { checkVariantSource, hasEagerVariants, type StoredVariant, storeVariants } from "./file-variants.js";
import type { FileFieldsMetadataShape } from "./metadata-types.js";
import { modelDelegate } from "./prisma-internals.js";
import { discardUpload, type PendingUpload, takeUpload } from "./upload.js";
import type { OldKeySelect, UploadAssignment } from "./write-plan.js";
import { collectKeys, toPrismaSelect } from "./write-plan.js";

/** An object written for a pending database write; removed again if that write does not happen. */
export interface StoredObject {
  storage: Storage;
  key: string;
  model: string;
  field: string;
  /** Written for a branch the database may not take (see `UploadAssignment.conditional`). */
  conditional: boolean;
}

/** A key a row held before a write; deleted after the commit if no row references it any more. */
export interface OldKey {
  model: string;
  field: string;
  key: string;
}

/** What the lifecycle functions need from the extension. */
export interface LifecycleContext {
  fields: FileFieldsMetadataShape;
  storageOf(model: string, field: string): Storage;
  storageName(model: string, field: string): string;
  /** A storage by the name `@file(storage: ...)` uses. */
  storageNamed(name: string): Storage;
  /** A column's storage as the journal names it: its namespace (see `Storage.namespace`). */
  storageId(model: string, field: string): string;
  /** The configured storage of a journal's storage id, with one of its names; `undefined` if none is. */
  storageById(id: string): { storage: Storage; name: string } | undefined;
  /** The journal's ids of every configured storage. */
  storageIds(): string[];
  /** Reports failures that must not fail the database write (cleanup after a commit). */
  report(error: unknown): void;
  /** Browser direct uploads: grant signing and limits. */
  directUploads: ResolvedDirectUploads;
  /** Makes image variants (sharp, loaded on first use), with its own bound on decodes at once. */
  images: ImageProcessor;
}

/** The context for `fields` and their resolved storages (by storage name). */
export function lifecycleContext(
  fields: FileFieldsMetadataShape,
  storages: Map<string, Storage>,
  report: (error: unknown) => void,
  directUploads: ResolvedDirectUploads = resolveDirectUploads(undefined),
): LifecycleContext {
  const storageName = (model: string, field: string) => fields[model]!.fileFields[field]!.storage;
  const byId = new Map<string, { storage: Storage; name: string }>();
  for (const [name, storage] of storages) {
    const id = storageId(storage);
    if (!byId.has(id)) byId.set(id, { storage, name });
  }
  return {
    fields,
    storageName,
    storageNamed: (name) => storages.get(name)!,
    storageOf: (m, f) => storages.get(storageName(m, f))!,
    storageId: (m, f) => storageId(storages.get(storageName(m, f))!),
    storageById: (id) => byId.get(id),
    storageIds: () => [...byId.keys()],
    report,
    directUploads,
    images: new ImageProcessor(),
  };
}

const instanceIds = new WeakMap<Storage, string>();
/** A storage's namespace, or an id of its own for a storage that has none. */
export function storageId(storage: Storage): string {
  if (typeof storage.namespace === "string") return storage.namespace;
  let id = instanceIds.get(storage);
  if (!id) {
    id = `instance:${randomUUID()}`;
    instanceIds.set(storage, id);
  }
  return id;
}

/** A model's delegate (`client.user`) on any client; the binding does not import Prisma's types. */
type Delegate = {
  findUnique(args: unknown): Promise<unknown>;
  findMany(args: unknown): Promise<unknown[]>;
};
export function delegate(client: unknown, model: string): Delegate {
  return modelDelegate<Delegate>(client, model);
}

const UPLOAD_CONCURRENCY = 4;

/**
 * Validates every upload of a write, then stores them and puts their keys into the arguments,
 * with their metadata and dimensions where the field names columns for them (`file-metadata.ts`).
 * Validation of all of them comes first (declared size, type sniffed from the first bytes, an
 * image's pixels against `maxPixels`), so a bad file among several writes nothing; `maxSize` is
 * also counted while streaming. On any
 * failure the objects already stored are deleted and the rest discarded before rethrowing.
 */
export async function storeUploads(
  assignments: UploadAssignment[],
  ctx: LifecycleContext,
  beforeWrite?: (assignment: UploadAssignment, name: string) => Promise<void>,
): Promise<StoredObject[]> {
  const stored: StoredObject[] = [];
  type Prepared = { a: UploadAssignment; where: { model: string; field: string } } & (
    | {
        kind: "upload";
        pending: PendingUpload;
        content: FileContent;
        contentType: string;
        filename: string;
        clientName: string | undefined;
        dimensions: ImageDimensions | undefined;
      }
    | { kind: "grant"; grant: ClaimedGrant; moved: boolean }
  );
  const prepared: Prepared[] = [];
  try {
    for (const a of assignments) {
      const where = { model: a.model, field: a.field };
      if (a.kind === "grant") {
        // Token, expiry, single use and size now; the content once moved (see verifyAttached).
        const storage = ctx.storageOf(a.model, a.field);
        const grant = await claimGrant(a.token, storage, a.model, a.field, a.meta, ctx.directUploads);
        prepared.push({ kind: "grant", a, where, grant, moved: false });
        continue;
      }
      const pending = takeUpload(a.token);
      if (!pending) {
        throw new PrismaS3FilesError(
          "UPLOAD_NOT_FOUND",
          `${a.model}.${a.field}: this upload() value was already used or expired (each upload can be written once, within 60 s)`,
        );
      }
      const rules = { maxSize: a.meta.maxSize, accept: a.meta.accept };
      const normalized = normalizeContent(pending.content);
      // The client's name, as Django keeps it: base name only, printable, at most 255 characters.
      const clientName = uploadedFileName(pending.filename ?? normalized.fileName);
      const contentType = resolveContentType(clientName ?? "", {
        explicit: pending.contentType,
        blobType: normalized.blobType,
      });
      checkDeclaredSize(normalized.length, rules, where);
      // One peek for the type (its first 4 KiB) and an image's dimensions (a JPEG's frame header
      // may follow a long EXIF segment).
      const { head, content } = await normalized.peek(IMAGE_HEAD_BYTES);
      const { detectedType } = checkType(head, contentType, rules, where);
      // Decompression bombs stop here, before a byte is stored.
      const dimensions = readImageDimensions(head, detectedType);
      checkPixels(dimensions, a.meta.maxPixels ?? DEFAULT_MAX_PIXELS, where);
      checkVariantSource(a.meta, detectedType, contentType, where);
      // The stored name and type follow the content (PNG bytes named `x.exe` are stored as `x.png`).
      const named = nameForContent(clientName ?? defaultFileName(contentType), contentType, detectedType);
      prepared.push({ kind: "upload", a, where, pending, content, clientName, dimensions, ...named });
    }
    let next = 0;
    let failedFast = false;
    const worker = async () => {
      while (next < prepared.length && !failedFast) {
        const p = prepared[next++]!;
        const { a, where } = p;
        const storage = ctx.storageOf(a.model, a.field);
        const name = generateFilename(p.kind === "grant" ? p.grant.claims.filename : p.filename, {
          uploadTo: a.meta.uploadTo,
          record: a.record,
          getValidName: (n) => storage.getValidName(n),
        });
        const maxLength = a.meta.maxLength === null ? {} : { maxLength: a.meta.maxLength };
        const journaled = beforeWrite ? { beforeWrite: (n: string) => beforeWrite(a, n) } : {};
        const original = (key: string): StoredObject => ({
          storage,
          key,
          model: a.model,
          field: a.field,
          conditional: a.conditional,
        });
        // Each variant as it is stored (a failure below removes it, with the original).
        const variantsOf = async (key: string, contentType: string, bytes: Uint8Array) => {
          const made: StoredVariant[] = [];
          try {
            await storeVariants(
              ctx.images,
              storage,
              a.meta,
              { key, contentType, bytes },
              where,
              made,
              journaled.beforeWrite,
            );
          } finally {
            for (const v of made) stored.push(original(v.key));
          }
        };
        try {
          let key: string;
          if (p.kind === "grant") {
            // From the pending prefix to the final key: a rename where the storage can, else copy + delete.
            key = await storage.move(p.grant.claims.key, name, {
              ...maxLength,
              ...journaled,
              onLeftBehind: ctx.report,
            });
            p.moved = true;
            let facts: FileMetadata;
            try {
              facts = await verifyAttached(storage, key, p.grant.claims, a.meta);
              // A field with variants takes images only (checked once the bytes are there).
              checkVariantSource(a.meta, facts.contentType, facts.contentType, where);
            } catch (error) {
              await storage.delete(key).catch((e: unknown) => ctx.report(e));
              throw error;
            }
            stored.push(original(key));
            if (hasMetadataColumns(a.meta)) writeFileMetadata(a.record, a.meta, facts);
            if (hasEagerVariants(a.meta)) await variantsOf(key, facts.contentType, await storage.read(key));
          } else {
            // The SHA-256 is computed as the storage reads the bytes, only where a column keeps it.
            const digest = a.meta.metadata === undefined ? undefined : digestContent(p.content);
            key = await storage.save(name, digest?.content ?? p.content, {
              contentType: p.contentType,
              ...(p.pending.metadata ? { metadata: p.pending.metadata } : {}),
              ...maxLength,
              ...journaled,
              ...(a.meta.maxSize === null ? {} : { maxSize: a.meta.maxSize }),
            });
            stored.push(original(key));
            if (hasMetadataColumns(a.meta)) {
              // A storage that stopped reading before the content's end (its length was known)
              // leaves no digest: the stored object is hashed instead.
              const read = digest === undefined ? undefined : (digest.result() ?? (await digestStored(storage, key)));
              const facts: FileMetadata = {
                size: read?.size ?? 0,
                contentType: p.contentType,
                ...(read ? { sha256: read.sha256 } : {}),
                ...(p.clientName === undefined ? {} : { originalName: p.clientName }),
                ...(p.dimensions ?? {}),
              };
              writeFileMetadata(a.record, a.meta, facts);
            }
            if (hasEagerVariants(a.meta)) {
              await variantsOf(key, p.contentType, await contentBytes(p.content, storage, key));
            }
          }
          a.replace(key);
        } catch (error) {
          failedFast = true; // start no further uploads
          // The storage could not remove a partial object (a multipart claim): the caller gets the
          // error, and onCleanupError hears of the object left behind.
          if (error instanceof LeftBehindError) ctx.report(error);
          throw toFileValidationError(error, where);
        }
      }
    };
    // allSettled: on a failure, uploads still in flight must land in `stored` before the cleanup.
    const outcomes = await Promise.allSettled(
      Array.from({ length: Math.min(UPLOAD_CONCURRENCY, prepared.length) }, worker),
    );
    const failed = outcomes.find((o) => o.status === "rejected");
    if (failed) throw failed.reason;
    return stored;
  } catch (error) {
    for (const a of assignments) if (a.kind === "upload") discardUpload(a.token);
    // A grant whose object never moved may be attached again (its object is still pending).
    await Promise.all(
      prepared.map((p) => (p.kind === "grant" && !p.moved ? p.grant.release().catch(ctx.report) : undefined)),
    );
    await deleteObjects(stored, ctx);
    throw error;
  }
}

/** An upload's bytes for its variants: the content itself when it is in memory, else read back once stored. */
async function contentBytes(content: FileContent, storage: Storage, key: string): Promise<Uint8Array> {
  const normalized = normalizeContent(content);
  if (normalized.bytes !== undefined) return normalized.bytes;
  if (isBlob(content)) return new Uint8Array(await content.arrayBuffer());
  return storage.read(key);
}

/**
 * Deletes objects, reporting (not throwing) failures, each as a single delete's error: used where
 * the caller's error must win. One `deleteMany` per storage (S3: DeleteObjects batches).
 */
export async function deleteObjects(objects: StoredObject[], ctx: LifecycleContext): Promise<void> {
  const byStorage = new Map<Storage, string[]>();
  for (const o of objects) byStorage.set(o.storage, [...(byStorage.get(o.storage) ?? []), o.key]);
  await Promise.all(
    [...byStorage].map(async ([storage, keys]) => {
      try {
        for (const { error } of (await storage.deleteMany(keys)).failed) ctx.report(error);
      } catch (error) {
        ctx.report(error);
      }
    }),
  );
}

/** Reads the keys a write may replace or orphan, before the write. */
export async function readOldKeys(
  client: unknown,
  model: string,
  operation: string,
  args: Record<string, unknown>,
  select: OldKeySelect,
  ctx: LifecycleContext,
): Promise<OldKey[]> {
  const rows = await readWrittenRows(client, model, operation, args, toPrismaSelect(select));
  return collectKeys(ctx.fields, model, select, rows);
}

/**
 * Reads, with `select`, the rows a write's `where` selects: the one row of an `update`, `upsert`
 * or `delete` (a unique `where`), else every row it matches.
 */
export async function readWrittenRows(
  client: unknown,
  model: string,
  operation: string,
  args: Record<string, unknown>,
  select: Record<string, unknown>,
): Promise<unknown> {
  const query = { where: args.where, select };
  const single = operation === "update" || operation === "upsert" || operation === "delete";
  return single ? delegate(client, model).findUnique(query) : delegate(client, model).findMany(query);
}

/** Keys among `keys` that some row of any file column on the same storage still holds. */
export async function referencedKeys(
  client: unknown,
  storageName: string,
  keys: string[],
  ctx: LifecycleContext,
): Promise<Set<string>> {
  const found = new Set<string>();
  for (const [model, meta] of Object.entries(ctx.fields)) {
    for (const field of Object.keys(meta.fileFields)) {
      // By where the objects live, not by name or instance: one bucket and prefix may be
      // configured under several names, or as several instances (the journal's namespaces).
      if (storageId(ctx.storageOf(model, field)) !== storageId(ctx.storageNamed(storageName))) continue;
      for (let i = 0; i < keys.length; i += 1000) {
        const chunk = keys.slice(i, i + 1000);
        const rows = await delegate(client, model).findMany({
          where: { [field]: { in: chunk } },
          select: { [field]: true },
        });
        for (const row of rows) {
          const v = (row as Record<string, unknown>)[field];
          found.add(typeof v === "string" ? v : (v as { name: string }).name);
        }
      }
    }
  }
  return found;
}
