import { createHmac, timingSafeEqual } from "node:crypto";
import { PrismaS3FilesError } from "../errors.js";

/**
 * What an upload grant's token says, signed by the app: the browser carries it from the grant to
 * the write, and nothing in it can be changed without the app's secret. Decoded from the token's
 * short keys ({@link GrantWireClaims}) where the token is verified, and encoded back when signed.
 */
export interface GrantClaims {
  /** Grant id: a grant can be used once. */
  id: string;
  /** Model the grant is for. */
  model: string;
  /** Field the grant is for. */
  field: string;
  /** Pending key, relative to the field's storage. */
  key: string;
  /** Expiry, to the second (the token carries epoch seconds). */
  expiresAt: Date;
  /** Declared size in bytes. */
  size: number;
  /** Declared content type. */
  contentType: string;
  /** The client's file name, already reduced to a safe base name. */
  filename: string;
  /** Base64 SHA-256 the browser declared, if any. */
  checksumSha256?: string;
  /** Multipart upload id, for grants over the multipart threshold. */
  uploadId?: string;
}

/**
 * The claims as the token's payload carries them: short names keep the token short (it travels
 * in forms and URLs). This is the wire format; tokens already issued must keep verifying, so
 * it does not change.
 */
export interface GrantWireClaims {
  id: string;
  /** Model. */
  m: string;
  /** Field. */
  f: string;
  /** Pending key. */
  k: string;
  /** Expiry, epoch seconds. */
  e: number;
  /** Declared size. */
  z: number;
  /** Declared content type. */
  t: string;
  /** File name. */
  n: string;
  /** Declared SHA-256 (base64). */
  s?: string;
  /** Multipart upload id. */
  u?: string;
}

/** The wire form of `claims`, keys in the order tokens have always had. */
export function encodeGrantClaims(claims: GrantClaims): GrantWireClaims {
  return {
    id: claims.id,
    m: claims.model,
    f: claims.field,
    k: claims.key,
    e: Math.floor(claims.expiresAt.getTime() / 1000),
    z: claims.size,
    t: claims.contentType,
    n: claims.filename,
    ...(claims.checksumSha256 === undefined ? {} : { s: claims.checksumSha256 }),
    ...(claims.uploadId === undefined ? {} : { u: claims.uploadId }),
  };
}

/** The named claims of a wire payload, or `undefined` when it lacks one or has one of the wrong type. */
export function decodeGrantClaims(wire: unknown): GrantClaims | undefined {
  if (typeof wire !== "object" || wire === null) return undefined;
  const w = wire as Partial<Record<keyof GrantWireClaims, unknown>>;
  const strings = [w.id, w.m, w.f, w.k, w.t, w.n];
  if (!strings.every((v) => typeof v === "string")) return undefined;
  if (!Number.isFinite(w.e) || !Number.isFinite(w.z)) return undefined;
  if ((w.s !== undefined && typeof w.s !== "string") || (w.u !== undefined && typeof w.u !== "string")) {
    return undefined;
  }
  const v = w as GrantWireClaims;
  return {
    id: v.id,
    model: v.m,
    field: v.f,
    key: v.k,
    expiresAt: new Date(v.e * 1000),
    size: v.z,
    contentType: v.t,
    filename: v.n,
    ...(v.s === undefined ? {} : { checksumSha256: v.s }),
    ...(v.u === undefined ? {} : { uploadId: v.u }),
  };
}

const PREFIX = "psfg1.";
const TOKEN = /^psfg1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}$/;

/** Whether a value has the shape of a grant token (its signature is checked by {@link verifyGrantToken}). */
export function isGrantToken(value: unknown): value is string {
  return typeof value === "string" && value.length < 8192 && TOKEN.test(value);
}

/** The HMAC key for grant tokens, derived from the app's secret so the secret itself signs nothing else. */
export function grantKey(secret: string): Buffer {
  return createHmac("sha256", secret).update("prisma-s3-files upload grant v1").digest();
}

export function signGrantToken(claims: GrantClaims, key: Buffer): string {
  const payload = Buffer.from(JSON.stringify(encodeGrantClaims(claims))).toString("base64url");
  const signature = createHmac("sha256", key).update(payload).digest("base64url");
  return `${PREFIX}${payload}.${signature}`;
}

/**
 * The claims of a token this app signed, decoded into named fields.
 * @throws PrismaS3FilesError `GRANT_INVALID` for a malformed token or a wrong signature.
 */
export function verifyGrantToken(token: string, key: Buffer): GrantClaims {
  const invalid = () => new PrismaS3FilesError("GRANT_INVALID", "Not an upload grant token signed by this app");
  if (!isGrantToken(token)) throw invalid();
  const [, payload, signature] = token.split(".") as [string, string, string];
  const expected = createHmac("sha256", key).update(payload).digest();
  const given = Buffer.from(signature, "base64url");
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw invalid();
  let wire: unknown;
  try {
    wire = JSON.parse(Buffer.from(payload, "base64url").toString("utf8"));
  } catch (error) {
    throw new PrismaS3FilesError("GRANT_INVALID", "Not an upload grant token signed by this app", { cause: error });
  }
  const claims = decodeGrantClaims(wire);
  if (!claims) throw invalid();
  return claims;
}
