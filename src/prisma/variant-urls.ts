/**
 * Lazy variants (`"inside 2048x2048 webp lazy"`): made on their first request, not in the write.
 * `file.variant("big").url()` is then a URL of the app's, signed, naming the model, field,
 * original key and variant; {@link createVariantHandler} serves it: it checks the signature and
 * that a row still holds the original, makes the variant if it is not stored yet (recorded in the
 * journal like any variant), and redirects to the storage's URL for it. The signature is what
 * stops anyone from making the server resize arbitrary images or sizes: only the variants the
 * schema declares, of originals a row holds, can be made. URLs do not expire (they are stable,
 * so browsers and CDNs cache them); the spec's digest in them changes when the spec does.
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import { FileNotFoundError, PrismaS3FilesError } from "../errors.js";
import { variantKey } from "../files/variants.js";
import type { S3Session } from "../session/session.js";
import { resolveDirectUploads } from "./direct-uploads.js";
import { resolveStorages, type S3FilesOptions } from "./extension.js";
import { lifecycleContext, referencedKeys } from "./file-lifecycle.js";
import { fieldVariants } from "./file-variants.js";
import type { DrainClient } from "./journal/drain.js";
import type { FileFieldsMetadataShape } from "./metadata-types.js";
import { buildVariants } from "./variants-rebuild.js";

/** Where lazy variants are served, and the secret their URLs are signed with. */
export interface LazyVariantOptions {
  /**
   * Signs the URLs (at least 32 bytes; keep it out of the code, e.g. `PRISMA_S3_FILES_SECRET`).
   * The same secret as direct uploads' may be used: the keys are derived apart.
   */
  secret: string | Uint8Array;
  /** The route that runs {@link createVariantHandler}: `"/files/variants"` or an absolute URL. */
  baseUrl: string;
}

/** What a lazy variant's URL names. */
export interface VariantClaims {
  model: string;
  field: string;
  /** The original's key. */
  key: string;
  /** The variant's name. */
  name: string;
  /** The spec's digest when the URL was made: a new spec gives a new URL (caches miss). */
  digest: string;
}

const PREFIX = "psfv1.";
const TOKEN = /^psfv1\.([A-Za-z0-9_-]{1,8000})\.([A-Za-z0-9_-]{43})$/;

function signingKey(secret: string | Uint8Array): Buffer {
  const bytes = typeof secret === "string" ? Buffer.from(secret, "utf8") : Buffer.from(secret);
  if (bytes.length < 32) {
    throw new PrismaS3FilesError("CONFIGURATION", "lazyVariants.secret must be at least 32 bytes");
  }
  // Derived apart from the grant tokens' key: one kind of token never verifies as the other.
  return createHmac("sha256", bytes).update("prisma-s3-files lazy variant urls v1").digest();
}

/** A signer/verifier of lazy variants' tokens under one secret. */
export class VariantUrlSigner {
  readonly #key: Buffer;
  readonly #base: string;

  constructor(options: LazyVariantOptions) {
    this.#key = signingKey(options.secret);
    this.#base = options.baseUrl.replace(/\/+$/, "");
  }

  /** The token for `claims`: `psfv1.<payload>.<signature>`, URL-safe. */
  sign(claims: VariantClaims): string {
    const payload = Buffer.from(
      JSON.stringify([claims.model, claims.field, claims.key, claims.name, claims.digest]),
    ).toString("base64url");
    return `${PREFIX}${payload}.${this.#mac(payload)}`;
  }

  /** The URL of the handler for `claims`. */
  url(claims: VariantClaims): string {
    return `${this.#base}/${this.sign(claims)}`;
  }

  /** The claims of a token signed with this secret; `undefined` for anything else. */
  verify(token: string): VariantClaims | undefined {
    const m = TOKEN.exec(token);
    if (!m) return undefined;
    const given = Buffer.from(m[2]!, "base64url");
    const expected = Buffer.from(this.#mac(m[1]!), "base64url");
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return undefined;
    let parts: unknown;
    try {
      parts = JSON.parse(Buffer.from(m[1]!, "base64url").toString("utf8"));
    } catch {
      return undefined;
    }
    if (!Array.isArray(parts) || parts.length !== 5 || !parts.every((p) => typeof p === "string")) return undefined;
    const [model, field, key, name, digest] = parts as string[];
    return { model: model!, field: field!, key: key!, name: name!, digest: digest! };
  }

  #mac(payload: string): string {
    return createHmac("sha256", this.#key).update(PREFIX).update(payload).digest("base64url");
  }
}

/** Options of {@link createVariantHandler}: those of `s3Files`, with `lazyVariants` required. */
export interface VariantHandlerOptions<Meta extends FileFieldsMetadataShape> extends S3FilesOptions<Meta> {
  lazyVariants: LazyVariantOptions;
}

/**
 * The handler of lazy variants' URLs, as a web-standard `(Request) => Promise<Response>` (Hono,
 * Next.js route handlers, and Express through a small adapter): mount it at
 * `lazyVariants.baseUrl`. It answers `302` to the variant's storage URL (made first if it is
 * not stored yet), `404` for a token that does not verify, a variant the field no longer
 * declares, or an original no row holds, and `405` for methods other than GET and HEAD.
 * `client` is a Prisma client on the app's database (plain or extended).
 */
export function createVariantHandler<const Meta extends FileFieldsMetadataShape>(
  client: unknown,
  session: S3Session | undefined,
  options: VariantHandlerOptions<Meta>,
): (request: Request) => Promise<Response> {
  const storages = resolveStorages(session, options);
  const report =
    options.onCleanupError ??
    ((error: unknown) => console.warn(`prisma-s3-files: cleanup failed: ${(error as Error)?.message ?? error}`));
  const ctx = lifecycleContext(options.fields, storages, report, resolveDirectUploads(options.directUploads));
  const signer = new VariantUrlSigner(options.lazyVariants);
  const notFound = () => new Response("Not Found", { status: 404 });
  return async (request) => {
    if (request.method !== "GET" && request.method !== "HEAD") {
      return new Response("Method Not Allowed", { status: 405, headers: { allow: "GET, HEAD" } });
    }
    // Phase 1: the token, and what it names still declared.
    const token = new URL(request.url).pathname.split("/").pop() ?? "";
    const claims = signer.verify(decodeURIComponent(token));
    if (!claims) return notFound();
    const meta = Object.hasOwn(options.fields, claims.model)
      ? options.fields[claims.model]!.fileFields[claims.field]
      : undefined;
    const variant = meta && fieldVariants(meta).find((v) => v.name === claims.name);
    if (!variant) return notFound();
    const storage = ctx.storageOf(claims.model, claims.field);
    const key = variantKey(claims.key, variant.name, variant.spec);
    // Phase 2: only originals a row holds (a deleted one's variants would be orphans).
    const held = await referencedKeys(client, ctx.storageName(claims.model, claims.field), [claims.key], ctx);
    if (!held.has(claims.key)) return notFound();
    // Phase 3: made once; concurrent first requests write the same object under the same key.
    if (!(await storage.exists(key))) {
      try {
        await buildVariants(client as DrainClient, ctx, claims.model, claims.field, claims.key, [claims.name]);
      } catch (error) {
        // The original went meanwhile (or a row names a key the storage lacks): nothing to make.
        if (error instanceof FileNotFoundError && error.fileName === claims.key) return notFound();
        throw error;
      }
    }
    return new Response(null, {
      status: 302,
      headers: { location: await storage.url(key), "cache-control": "public, max-age=300" },
    });
  };
}
