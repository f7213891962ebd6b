import { createHmac, timingSafeEqual } from "node:crypto";
import { PrismaS3FilesError } from "../errors.js";

/**
 * What an upload grant's token says, signed by the app: the browser carries it from the grant to
 * the write, and nothing in it can be changed without the app's secret. Short names keep the
 * token short (it travels in forms and URLs).
 */
export interface GrantClaims {
  /** Grant id: a grant can be used once. */
  id: string;
  /** Model and field the grant is for. */
  m: string;
  f: string;
  /** Pending key, relative to the field's storage. */
  k: string;
  /** Expiry, epoch seconds. */
  e: number;
  /** Declared size in bytes. */
  z: number;
  /** Declared content type. */
  t: string;
  /** The client's file name, already reduced to a safe base name. */
  n: string;
  /** Base64 SHA-256 the browser declared, if any. */
  s?: string;
  /** Multipart upload id, for grants over the multipart threshold. */
  u?: string;
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
  const payload = Buffer.from(JSON.stringify(claims)).toString("base64url");
  const signature = createHmac("sha256", key).update(payload).digest("base64url");
  return `${PREFIX}${payload}.${signature}`;
}

/**
 * The claims of a token this app signed.
 * @throws PrismaS3FilesError `GRANT_INVALID` for a malformed token or a wrong signature.
 */
export function verifyGrantToken(token: string, key: Buffer): GrantClaims {
  const invalid = () => new PrismaS3FilesError("GRANT_INVALID", "Not an upload grant token signed by this app");
  if (!isGrantToken(token)) throw invalid();
  const [, payload, signature] = token.split(".") as [string, string, string];
  const expected = createHmac("sha256", key).update(payload).digest();
  const given = Buffer.from(signature, "base64url");
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw invalid();
  let claims: GrantClaims;
  try {
    claims = JSON.parse(Buffer.from(payload, "base64url").toString("utf8")) as GrantClaims;
  } catch (error) {
    throw new PrismaS3FilesError("GRANT_INVALID", "Not an upload grant token signed by this app", { cause: error });
  }
  if (typeof claims?.k !== "string" || typeof claims.e !== "number" || typeof claims.z !== "number") throw invalid();
  return claims;
}
