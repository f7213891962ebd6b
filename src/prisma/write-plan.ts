import { hasMetadataColumns } from "./file-metadata.js";
import { isGrantToken } from "./grant-token.js";
import type { FileFieldMetadata, FileFieldsMetadataShape } from "./metadata-types.js";
import { isUploadToken } from "./upload.js";

/** A file column receiving an upload somewhere in a write's arguments. */
export interface UploadAssignment {
  model: string;
  field: string;
  meta: FileFieldMetadata;
  /** An `upload()` token, or a direct-upload grant token (`kind: "grant"`). */
  token: string;
  kind: "upload" | "grant";
  /** The data object the column is in: what an `uploadTo` function sees as the record. */
  record: Record<string, unknown>;
  /** Puts the stored key where the token was. */
  replace(key: string): void;
  /**
   * In a branch the database may not take (an `upsert`'s create or update, a
   * `connectOrCreate`'s create): the object may end up unreferenced after a successful write.
   */
  conditional: boolean;
}

/** A `select` tree for reading, before the write, the keys the write may replace or orphan. */
export interface OldKeySelect {
  fields: Set<string>;
  relations: Map<string, { model: string; wheres: (object | undefined)[]; select: OldKeySelect }>;
}

/** A file column set to an existing key as-is (copying another row's file). */
export interface KeyAssignment {
  model: string;
  field: string;
  key: string;
}

/** A file column set to `null`: its metadata columns are cleared with it (see `file-metadata.ts`). */
export interface ClearAssignment {
  model: string;
  field: string;
  meta: FileFieldMetadata;
  /** The data object the column is in, where the cleared metadata columns go. */
  record: Record<string, unknown>;
}

export interface WritePlan {
  uploads: UploadAssignment[];
  /** File columns set to `null` whose fields have metadata or dimension columns. */
  clears: ClearAssignment[];
  /** Keys assigned as-is: they must not be deleted as unreferenced while this write is in flight. */
  keys: KeyAssignment[];
  /** What to read before the write; `undefined` when the write can replace or delete no file. */
  oldKeys: OldKeySelect | undefined;
}

type Data = Record<string, unknown>;

/** How many levels of cascading deletes are read before a delete. */
const MAX_CASCADE_DEPTH = 4;

const isObject = (v: unknown): v is Data => v !== null && typeof v === "object" && !Array.isArray(v);
const asArray = (v: unknown): unknown[] => (Array.isArray(v) ? v : v === undefined ? [] : [v]);

/**
 * Walks a write's arguments (Prisma's shapes, nested writes included) through the relation map:
 * finds every upload token in a file column, and builds the read that captures the keys the
 * write replaces or deletes. Prisma's query hook sees only the top-level operation, so nested
 * `create`/`update`/`upsert`/`connectOrCreate`/`delete` are found here.
 */
export function planWrite(metadata: FileFieldsMetadataShape, model: string, operation: string, args: Data): WritePlan {
  const planner = new Planner(metadata);
  const root = emptySelect();
  switch (operation) {
    case "create":
      planner.create(model, args.data);
      break;
    case "createMany":
    case "createManyAndReturn":
      for (const row of asArray(args.data)) planner.create(model, row);
      break;
    case "update":
      planner.update(model, args.data, root);
      break;
    case "updateMany":
    case "updateManyAndReturn":
      // May match no row: its uploads are then nobody's.
      planner.branch(() => planner.update(model, args.data, root));
      break;
    case "upsert":
      planner.branch(() => {
        planner.create(model, args.create);
        planner.update(model, args.update, root);
      });
      break;
    case "delete":
    case "deleteMany":
      planner.deleteRows(model, root);
      break;
    default:
      return { uploads: [], clears: [], keys: [], oldKeys: undefined };
  }
  return {
    uploads: planner.uploads,
    clears: planner.clears,
    keys: planner.keys,
    oldKeys: isEmpty(root) ? undefined : root,
  };
}

/**
 * Where an `upload()` value sits in a write's arguments outside any file column (a column without
 * `@file`, a misspelt field, a filter): the first one and its path (`data.name`,
 * `data.posts.create.title`), or `undefined`. Such a value must fail the write: only PostgreSQL refuses the NUL it
 * starts with, and MySQL or SQLite would store the token as text.
 */
export function strayUpload(args: unknown, planned: ReadonlySet<string>): { path: string; token: string } | undefined {
  const seen = new Set<object>();
  const walk = (value: unknown, path: string): { path: string; token: string } | undefined => {
    if (typeof value === "string") {
      return isUploadToken(value) && !planned.has(value) ? { path, token: value } : undefined;
    }
    if (value === null || typeof value !== "object" || seen.has(value) || ArrayBuffer.isView(value)) return undefined;
    seen.add(value);
    if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++) {
        const found = walk(value[i], `${path}[${i}]`);
        if (found) return found;
      }
      return undefined;
    }
    for (const [key, child] of Object.entries(value)) {
      const found = walk(child, path === "" ? key : `${path}.${key}`);
      if (found) return found;
    }
    return undefined;
  };
  return walk(args, "");
}

function emptySelect(): OldKeySelect {
  return { fields: new Set(), relations: new Map() };
}

/** Selects no file column at any depth (relations without file columns below them count as nothing). */
function isEmpty(s: OldKeySelect): boolean {
  return s.fields.size === 0 && [...s.relations.values()].every((r) => isEmpty(r.select));
}

class Planner {
  readonly uploads: UploadAssignment[] = [];
  readonly keys: KeyAssignment[] = [];
  readonly clears: ClearAssignment[] = [];
  /** Depth of branches the database may skip; uploads found inside are conditional. */
  #conditional = 0;
  constructor(private readonly metadata: FileFieldsMetadataShape) {}

  /** Create input: uploads in file columns, nested creates below. */
  create(model: string, data: unknown): void {
    if (!isObject(data)) return;
    const meta = this.metadata[model];
    if (!meta) return;
    for (const [field, f] of Object.entries(meta.fileFields)) this.#token(model, field, f, data, data, field);
    for (const [rel, r] of Object.entries(meta.relations)) {
      const nested = data[rel];
      if (!isObject(nested)) continue;
      this.#nestedCreates(r.model, nested);
    }
  }

  /** Update input: uploads and replaced columns, nested writes below. */
  update(model: string, data: unknown, select: OldKeySelect): void {
    if (!isObject(data)) return;
    const meta = this.metadata[model];
    if (!meta) return;
    for (const [field, f] of Object.entries(meta.fileFields)) {
      if (!(field in data)) continue;
      const value = data[field];
      // `{ set: value }` is the long form of a scalar update.
      if (isObject(value) && "set" in value) this.#token(model, field, f, data, value, "set");
      else this.#token(model, field, f, data, data, field);
      select.fields.add(field); // whatever the new value, the old key may be orphaned
    }
    for (const [rel, r] of Object.entries(meta.relations)) {
      const ops = data[rel];
      if (!isObject(ops)) continue;
      this.#nestedCreates(r.model, ops);
      const child = (where: object | undefined) => this.#relationSelect(select, rel, r.model, where);
      for (const u of asArray(ops.update)) {
        if (!isObject(u)) continue;
        // To-many: `{ where, data }`; to-one: the data itself, or `{ where?, data }`.
        const wrapped = r.list || ("data" in u && Object.keys(u).every((k) => k === "data" || k === "where"));
        const where = wrapped && isObject(u.where) ? u.where : undefined;
        this.update(r.model, wrapped ? u.data : u, child(where));
      }
      for (const u of asArray(ops.updateMany)) {
        if (isObject(u))
          this.branch(() => this.update(r.model, u.data, child(isObject(u.where) ? u.where : undefined)));
      }
      for (const u of asArray(ops.upsert)) {
        if (!isObject(u)) continue;
        this.branch(() => {
          this.create(r.model, u.create);
          this.update(r.model, u.update, child(isObject(u.where) ? u.where : undefined));
        });
      }
      for (const d of [...asArray(ops.delete), ...asArray(ops.deleteMany)]) {
        // `delete: true` (to-one) or a where filter; every file column of those rows may be orphaned.
        this.deleteRows(r.model, child(isObject(d) ? d : undefined));
      }
    }
  }

  /** Runs `plan` with uploads marked conditional. */
  branch(plan: () => void): void {
    this.#conditional++;
    try {
      plan();
    } finally {
      this.#conditional--;
    }
  }

  /**
   * Rows about to be deleted: all their file columns, and those of the rows the database deletes
   * with them (`onDelete: Cascade`), a few levels down (a self-cascading tree deeper than that
   * leaves its files to `sweepOrphans`).
   */
  deleteRows(model: string, select: OldKeySelect, depth = 0): void {
    const meta = this.metadata[model];
    if (!meta) return;
    for (const field of Object.keys(meta.fileFields)) select.fields.add(field);
    if (depth >= MAX_CASCADE_DEPTH) return;
    for (const [rel, r] of Object.entries(meta.relations)) {
      if (r.cascade) this.deleteRows(r.model, this.#relationSelect(select, rel, r.model, undefined), depth + 1);
    }
  }

  #nestedCreates(model: string, ops: Data): void {
    for (const c of asArray(ops.create)) this.create(model, c);
    for (const cm of asArray(ops.createMany))
      if (isObject(cm)) for (const row of asArray(cm.data)) this.create(model, row);
    for (const coc of asArray(ops.connectOrCreate))
      if (isObject(coc)) this.branch(() => this.create(model, coc.create));
  }

  #relationSelect(parent: OldKeySelect, rel: string, model: string, where: object | undefined): OldKeySelect {
    let entry = parent.relations.get(rel);
    if (!entry) {
      entry = { model, wheres: [], select: emptySelect() };
      parent.relations.set(rel, entry);
    }
    entry.wheres.push(where);
    return entry.select;
  }

  #token(model: string, field: string, meta: FileFieldMetadata, record: Data, holder: Data, key: string): void {
    const value = holder[key];
    if (value === null && hasMetadataColumns(meta)) this.clears.push({ model, field, meta, record });
    if (typeof value !== "string") return;
    const kind = isUploadToken(value) ? "upload" : isGrantToken(value) ? "grant" : undefined;
    if (!kind) {
      this.keys.push({ model, field, key: value });
      return;
    }
    this.uploads.push({
      model,
      field,
      meta,
      token: value,
      kind,
      record,
      replace: (stored) => {
        holder[key] = stored;
      },
      conditional: this.#conditional > 0,
    });
  }
}

/**
 * The Prisma `select` argument for an {@link OldKeySelect}: wheres of one relation are OR-ed
 * (reading a few rows too many only costs a read: keys still referenced are never deleted).
 */
export function toPrismaSelect(s: OldKeySelect): Record<string, unknown> {
  const select: Record<string, unknown> = {};
  for (const f of s.fields) select[f] = true;
  for (const [rel, { wheres, select: child }] of s.relations) {
    const inner = toPrismaSelect(child);
    if (Object.keys(inner).length === 0) continue;
    const all = wheres.some((w) => w === undefined);
    select[rel] =
      all || wheres.length === 0
        ? { select: inner }
        : { where: wheres.length === 1 ? wheres[0] : { OR: wheres }, select: inner };
  }
  return select;
}

/**
 * A Prisma `select` reading the primary keys of the related rows an {@link OldKeySelect} reaches
 * (the rows a nested write or a cascade touches), at every depth; `undefined` when it reaches none.
 */
export function relatedRowsSelect(
  metadata: FileFieldsMetadataShape,
  s: OldKeySelect,
): Record<string, unknown> | undefined {
  const select: Record<string, unknown> = {};
  for (const [rel, { model, wheres, select: child }] of s.relations) {
    const pk = metadata[model]?.primaryKey ?? [];
    if (pk.length === 0) continue;
    const inner: Record<string, unknown> = {
      ...Object.fromEntries(pk.map((k) => [k, true])),
      ...relatedRowsSelect(metadata, child),
    };
    const all = wheres.some((w) => w === undefined);
    select[rel] =
      all || wheres.length === 0
        ? { select: inner }
        : { where: wheres.length === 1 ? wheres[0] : { OR: wheres }, select: inner };
  }
  return Object.keys(select).length === 0 ? undefined : select;
}

/** The related rows (model and primary key) in rows read with {@link relatedRowsSelect}. */
export function collectRelatedRows(
  metadata: FileFieldsMetadataShape,
  s: OldKeySelect,
  rows: unknown,
  out: { model: string; key: Record<string, unknown> }[] = [],
): { model: string; key: Record<string, unknown> }[] {
  for (const row of asArray(rows)) {
    if (!isObject(row)) continue;
    for (const [rel, { model, select }] of s.relations) {
      const pk = metadata[model]?.primaryKey ?? [];
      if (pk.length === 0) continue;
      for (const child of asArray(row[rel])) {
        if (!isObject(child)) continue;
        out.push({ model, key: Object.fromEntries(pk.map((k) => [k, child[k]])) });
        collectRelatedRows(metadata, select, child, out);
      }
    }
  }
  return out;
}

/** Every key (with its model and field) found in rows read with {@link toPrismaSelect}. */
export function collectKeys(
  metadata: FileFieldsMetadataShape,
  model: string,
  s: OldKeySelect,
  rows: unknown,
  out: { model: string; field: string; key: string }[] = [],
): { model: string; field: string; key: string }[] {
  for (const row of asArray(rows)) {
    if (!isObject(row)) continue;
    for (const field of s.fields) {
      const v = row[field];
      const key = typeof v === "string" ? v : isObject(v) && typeof v.name === "string" ? v.name : undefined;
      if (key) out.push({ model, field, key });
    }
    for (const [rel, { model: target, select }] of s.relations) collectKeys(metadata, target, select, row[rel], out);
  }
  return out;
}
