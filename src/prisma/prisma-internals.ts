/**
 * What the binding relies on in Prisma that Prisma does not document, in one module. Each
 * assumption is checked where it is used (the delegates when the extension is applied, the rest
 * on first use) and, when a Prisma release changes it, fails with a `PRISMA_INCOMPATIBLE` error
 * naming the assumption and the client's Prisma version, instead of mapping results wrongly in
 * silence. Checked against Prisma 7.10; `test/prisma/prisma-internals.test.ts` has a test per
 * assumption, and `test/prisma/types.test-d.ts` the type-level one (`FilesExtensionArgs` has the
 * shape of Prisma's `InternalArgs`, see types.ts).
 */
import { PrismaS3FilesError } from "../errors.js";

/** The client's Prisma version (`_clientVersion`, itself internal), for messages. */
export function prismaVersion(client: unknown): string {
  const version = (client as { _clientVersion?: unknown } | null | undefined)?._clientVersion;
  return typeof version === "string" ? version : "unknown";
}

/** An assumption about Prisma's internals no longer holds. */
export function incompatible(what: string, client: unknown): PrismaS3FilesError {
  return new PrismaS3FilesError(
    "PRISMA_INCOMPATIBLE",
    `prisma-s3-files relies on ${what}, which this Prisma client (version ${prismaVersion(client)}) does not have; prisma-s3-files supports @prisma/client >=7.5 <8 (checked against 7.10)`,
  );
}

// ---------------------------------------------------------------------------------------------
// `Prisma.DbNull`, without the generated client.

/**
 * Prisma's `DbNull`, the value that sets a `Json?` column to SQL NULL (a plain `null` is
 * refused there). The client recognises it by the global symbol Prisma's runtime marks these
 * values with (across copies of its modules) and by its name, so the binding needs no import
 * of the generated client. A change would store JSON `null` instead: the image-metadata tests
 * read the column with raw SQL, and prisma-internals.test.ts compares it with the real one.
 */
export const DB_NULL: object = Object.freeze({
  [Symbol.for("prisma.objectEnumValue")]: true,
  _getNamespace: () => "NullTypes",
  _getName: () => "DbNull",
  toString: () => "Prisma.DbNull",
});

// ---------------------------------------------------------------------------------------------
// Delegates: `client.user` for `model User`.

/** The client property of a model's delegate: the model name with a lower-case first letter. */
export function delegateName(model: string): string {
  return model.charAt(0).toLowerCase() + model.slice(1);
}

/** A model's delegate on any client (plain, extended, transaction). */
export function modelDelegate<D>(client: unknown, model: string): D {
  const delegate = (client as Record<string, unknown> | null | undefined)?.[delegateName(model)];
  if (delegate === null || (typeof delegate !== "object" && typeof delegate !== "function")) {
    throw incompatible(
      `model delegates named like the model with a lower-case first letter (client.${delegateName(model)} for model ${model})`,
      client,
    );
  }
  return delegate as D;
}

/** Checks, when the extension is applied, that every model of the metadata has its delegate. */
export function checkDelegates(client: unknown, models: Iterable<string>): void {
  for (const model of models) {
    const delegate = modelDelegate<{ findMany?: unknown }>(client, model);
    if (typeof delegate.findMany !== "function") {
      throw incompatible(
        `model delegates named like the model with a lower-case first letter (client.${delegateName(model)}.findMany for model ${model})`,
        client,
      );
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Query hooks: `params.__internalParams`.

/** What the binding reads of a query hook's `__internalParams`. */
export interface InternalParams {
  /** A fluent call's path to the relation's rows, e.g. `["select", "posts"]`. */
  dataPath?: unknown;
  /** The request's model; Prisma's result-extension pass runs only while it is set. */
  model?: string | undefined;
  transaction?: { kind?: string };
}

/** The hook parameters that carry them. */
export interface HookInternals {
  model: string;
  __internalParams?: InternalParams;
}

function internalParams(params: HookInternals, client: unknown): InternalParams {
  const internal = params.__internalParams;
  if (internal === null || typeof internal !== "object") {
    throw incompatible("the __internalParams of query-extension hooks", client);
  }
  return internal;
}

/**
 * The path a fluent call (`user.findUnique(...).posts()`) took to the rows the hook receives
 * (`["select", "posts", ...]`), or `undefined` for a plain call.
 */
export function fluentDataPath(params: HookInternals, client: unknown): readonly string[] | undefined {
  const path = internalParams(params, client).dataPath;
  if (path === undefined) return undefined;
  if (!Array.isArray(path) || path.some((p) => typeof p !== "string")) {
    throw incompatible("__internalParams.dataPath (a fluent call's path, an array of strings)", client);
  }
  return path.length > 0 ? (path as string[]) : undefined;
}

/**
 * Skips Prisma's result-extension pass for this request (`fastReads`): the request handler runs
 * it only while `__internalParams.model` still names a model after the hooks.
 */
export function skipResultExtensionPass(params: HookInternals, client: unknown): void {
  const internal = internalParams(params, client);
  // Cleared already when s3Files is applied twice (the inner hook ran first): that is fine.
  if (!("model" in internal) || (internal.model !== undefined && typeof internal.model !== "string")) {
    throw incompatible("__internalParams.model (the request's model, read by the result-extension pass)", client);
  }
  internal.model = undefined;
}

// ---------------------------------------------------------------------------------------------
// Result extensions: `client._extensions.getAllComputedFields`.

/**
 * Whether a Prisma `result` extension applied before this one computes fields on any of the
 * models (then `fastReads` must keep Prisma's pass).
 */
export function hasComputedFields(client: unknown, models: Iterable<string>): boolean {
  const extensions = (client as { _extensions?: { getAllComputedFields?: unknown } } | null | undefined)?._extensions;
  const getAllComputedFields = extensions?.getAllComputedFields;
  if (typeof getAllComputedFields !== "function") {
    throw incompatible("client._extensions.getAllComputedFields (read by the fastReads option; leave it off)", client);
  }
  for (const model of models) {
    const fields = getAllComputedFields.call(extensions, delegateName(model)) as object | undefined;
    if (Object.keys(fields ?? {}).length > 0) return true;
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// Client extension methods: `this.$parent`.

/** The client a client-extension method was applied over (`this.$parent`). */
export function parentClient<C extends object>(self: unknown, method: string): C {
  const parent = (self as { $parent?: unknown } | null | undefined)?.$parent;
  if (
    parent === null ||
    typeof parent !== "object" ||
    typeof (parent as Record<string, unknown>)[method] !== "function"
  ) {
    throw incompatible(
      `this.$parent in client-extension methods (the client the extension was applied to, with ${method})`,
      self,
    );
  }
  return parent as C;
}
