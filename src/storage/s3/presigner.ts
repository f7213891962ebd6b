/**
 * SigV4 query presigning of S3 URLs without the SDK's middleware stack: GET URLs, the requests a
 * browser makes in a multipart upload ({@link QueryPresigner.presign}), and form POST policies.
 *
 * The output is byte-identical to `getSignedUrl(client, new GetObjectCommand(...), { expiresIn })` of
 * `@aws-sdk/s3-request-presigner` (checked against 3.1169 with client-s3 3.1175) for the same inputs and clock.
 * What that presigner emits:
 *
 * - path: the endpoint path, then `/`, then the key encoded per `/`-separated segment with the RFC 3986
 *   unreserved set kept (`A-Z a-z 0-9 - _ . ~`), everything else as uppercase `%XX` of its UTF-8 bytes.
 *   The signed canonical path is that same string: S3 is signed with `uriEscapePath: false`, so nothing is
 *   encoded twice and `.`/`..` segments and empty segments are kept.
 * - query, sorted by name (uppercase `X-Amz-*` first), values encoded like key segments but with `/` encoded:
 *   `X-Amz-Algorithm=AWS4-HMAC-SHA256`, `X-Amz-Content-Sha256=UNSIGNED-PAYLOAD` (a header the presigner sets and
 *   then hoists, so it is part of the signed query), `X-Amz-Credential`, `X-Amz-Date`, `X-Amz-Expires`,
 *   `X-Amz-Security-Token` (only with a session token; signed as a query parameter, not a header),
 *   `X-Amz-Signature` (in the URL only), `X-Amz-SignedHeaders=host` (`x-amz-user-agent` and the invocation
 *   headers are dropped before signing), `response-content-disposition`, `response-content-type`,
 *   `x-amz-checksum-mode=ENABLED` (the client's default `responseChecksumValidation: "WHEN_SUPPORTED"`),
 *   `x-id=GetObject`.
 * - canonical request: `GET`, path, query without the signature, `host:<host[:port]>`, blank line, `host`,
 *   `UNSIGNED-PAYLOAD`.
 */
import { createHash, createHmac } from "node:crypto";

/** Credentials a URL is signed with; the session token, when present, travels in the URL. */
export interface PresignCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

/** Where the object lives: the URL base the key is appended to, and the signing scope. */
export interface PresignTarget {
  /**
   * Origin + path prefix the key is appended to (after a `/`), e.g. "https://bucket.s3.eu-west-1.amazonaws.com"
   * or "http://127.0.0.1:9000/bucket". {@link s3BaseUrl} builds it the way the SDK resolves endpoints.
   */
  baseUrl: string;
  /** Signing region, e.g. "eu-west-1". */
  region: string;
  /** Signing service; only S3 is meant here. */
  service?: "s3";
}

/** Per-call options of {@link QueryPresigner.presignGet}. */
export interface PresignGetOptions {
  /** Lifetime in whole seconds, 1..604800 (7 days, the SigV4 maximum). */
  expiresIn: number;
  /** Signing instant: a Date or epoch milliseconds. Defaults to the current time. */
  now?: Date | number;
  /** Sent back by S3 as the Content-Disposition header; see {@link contentDispositionFor}. */
  responseContentDisposition?: string;
  /** Sent back by S3 as the Content-Type header. */
  responseContentType?: string;
  /**
   * More query parameters to sign, e.g. `{ "response-cache-control": "no-cache" }`. They may not replace
   * the parameters this class sets. A client with `requestChecksumCalculation: "WHEN_SUPPORTED"` (the
   * default) and `responseChecksumValidation: "WHEN_REQUIRED"` adds `{ "x-amz-checksum-crc32": "AAAAAA==" }`
   * (the CRC32 of the empty body); pass that here, with `checksumMode: false`, to match it.
   */
  extraQuery?: Record<string, string>;
}

/** Options of {@link QueryPresigner.presignPost}. */
export interface PresignPostOptions {
  /** The bucket (the policy names it). */
  bucket: string;
  /** Lifetime of the grant in whole seconds, 1..604800. */
  expiresIn: number;
  /** Pin the object's Content-Type. */
  contentType?: string;
  /** Size range in bytes the upload must fall in (`content-length-range`). */
  minSize?: number;
  maxSize?: number;
  /**
   * User metadata, sent as `x-amz-meta-<name>` fields and pinned by the policy. Names are
   * lowercased (S3 stores them so) and must be HTTP token characters.
   */
  metadata?: Record<string, string>;
  /**
   * Base64 SHA-256 of the exact bytes to upload: adds `x-amz-checksum-algorithm: SHA256` and
   * `x-amz-checksum-sha256` to the form and policy, and S3 refuses a file with another digest.
   */
  checksumSha256?: string;
  now?: Date | number;
}

/** What a browser needs to upload with a form POST: send `fields` first, the file last (field name `file`). */
export interface PresignedPost {
  url: string;
  fields: Record<string, string>;
  expiresAt: Date;
}

/** SigV4 refuses presigned URLs living longer than a week. */
export const MAX_PRESIGN_EXPIRES = 604_800;

const ALGORITHM = "AWS4-HMAC-SHA256";
const UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD";
/** Parameters fixed for every URL; their names also guard `extraQuery` against overriding them. */
const GENERATED_PARAMS = new Set([
  "X-Amz-Algorithm",
  "X-Amz-Content-Sha256",
  "X-Amz-Credential",
  "X-Amz-Date",
  "X-Amz-Expires",
  "X-Amz-Security-Token",
  "X-Amz-Signature",
  "X-Amz-SignedHeaders",
  "response-content-disposition",
  "response-content-type",
  "x-amz-checksum-mode",
  "x-id",
]);
/** The signature's own parameters (lowercase): `presign()`'s `query` may not set them. */
const SIGNATURE_PARAMS = new Set(
  [...GENERATED_PARAMS].filter((p) => p.startsWith("X-Amz-")).map((p) => p.toLowerCase()),
);
const SIGNING_KEY_CACHE_SIZE = 4;
/** A DNS label, as the SDK's endpoint rules require of a region; it goes into hosts and the credential scope. */
const REGION = /^[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?$/;
const TARGET_CACHE_SIZE = 8;

/** 1 for the RFC 3986 unreserved ASCII characters, the only ones the SDK leaves unencoded. */
const UNRESERVED = new Uint8Array(128);
for (let c = 0; c < 128; c++) {
  const ch = String.fromCharCode(c);
  if (/[A-Za-z0-9\-_.~]/.test(ch)) UNRESERVED[c] = 1;
}
const PCT: string[] = [];
for (let b = 0; b < 256; b++) PCT.push(`%${b.toString(16).toUpperCase().padStart(2, "0")}`);

/**
 * Percent-encodes `s` the way the SDK does (`encodeURIComponent` plus `!'()*`), optionally keeping `/`.
 * Throws URIError on a lone surrogate, as `encodeURIComponent` (and therefore the SDK) does.
 */
export function uriEncode(s: string, keepSlash: boolean): string {
  const n = s.length;
  let i = 0;
  // Fast path: most keys and values need no encoding at all.
  for (; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c >= 128 || (UNRESERVED[c] === 0 && !(keepSlash && c === 47))) break;
  }
  if (i === n) return s;
  let out = s.slice(0, i);
  for (; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c < 128) {
      out += UNRESERVED[c] === 1 || (keepSlash && c === 47) ? s[i] : PCT[c];
    } else if (c < 0x800) {
      out += PCT[0xc0 | (c >> 6)]! + PCT[0x80 | (c & 63)]!;
    } else if (c < 0xd800 || c > 0xdfff) {
      out += PCT[0xe0 | (c >> 12)]! + PCT[0x80 | ((c >> 6) & 63)]! + PCT[0x80 | (c & 63)]!;
    } else {
      const d = i + 1 < n ? s.charCodeAt(i + 1) : 0;
      if (c > 0xdbff || d < 0xdc00 || d > 0xdfff) throw new URIError("URI malformed: lone surrogate");
      const cp = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
      out +=
        PCT[0xf0 | (cp >> 18)]! +
        PCT[0x80 | ((cp >> 12) & 63)]! +
        PCT[0x80 | ((cp >> 6) & 63)]! +
        PCT[0x80 | (cp & 63)]!;
      i++;
    }
  }
  return out;
}

/** What a target contributes to every URL, computed once per target. */
interface PreparedTarget {
  baseUrl: string;
  region: string;
  service: string;
  /** `scheme://host[:port]` + path prefix + `/`: the URL up to the encoded key. */
  urlPrefix: string;
  /** Path prefix + `/`: the canonical path up to the encoded key. */
  pathPrefix: string;
  /** `/region/service/aws4_request`, the credential scope after the date. */
  scopeTail: string;
  /** The same, encoded for the `X-Amz-Credential` value. */
  encodedScopeTail: string;
  /** Canonical request from the headers on: `\nhost:<host>\n\nhost\nUNSIGNED-PAYLOAD`. */
  canonicalTail: string;
}

interface SigningKeyEntry {
  shortDate: string;
  region: string;
  service: string;
  accessKeyId: string;
  secretAccessKey: string;
  key: Buffer;
}

function prepareTarget(target: PresignTarget): PreparedTarget {
  const { baseUrl, region } = target;
  const service = target.service ?? "s3";
  let url: URL;
  try {
    url = new URL(baseUrl);
  } catch {
    throw new TypeError(`presign: baseUrl is not a valid URL: ${JSON.stringify(baseUrl)}`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new TypeError(`presign: baseUrl must be http or https: ${JSON.stringify(baseUrl)}`);
  }
  if (url.search !== "" || url.hash !== "" || url.username !== "" || url.password !== "") {
    throw new TypeError(`presign: baseUrl may not carry a query, fragment or credentials: ${JSON.stringify(baseUrl)}`);
  }
  if (!REGION.test(region)) throw new TypeError(`presign: invalid region ${JSON.stringify(region)}`);
  // WHATWG URL lowercases the host and drops a default port, as the SDK's endpoint parsing does.
  // The SDK joins an endpoint path of "/" as "" and any other path verbatim (so "/p/" gives "/p//key").
  const path = url.pathname === "/" ? "" : url.pathname;
  const scopeTail = `/${region}/${service}/aws4_request`;
  return {
    baseUrl,
    region,
    service,
    urlPrefix: `${url.protocol}//${url.host}${path}/`,
    pathPrefix: `${path}/`,
    scopeTail,
    encodedScopeTail: uriEncode(scopeTail, false),
    canonicalTail: `\nhost:${url.host}\n\nhost\n${UNSIGNED_PAYLOAD}`,
  };
}

function hmac(key: string | Buffer, data: string): Buffer {
  return createHmac("sha256", key).update(data).digest();
}

/**
 * Presigns S3 GET URLs with cached per-day signing keys: a warm call costs one SHA-256 (canonical request)
 * and one HMAC-SHA256 (signature), and allocates little besides the strings of the URL itself.
 * Instances are cheap; keep one per storage so its caches stay warm. Not tied to a credential source:
 * pass the current credentials on each call.
 */
export class QueryPresigner {
  private readonly querySuffix: string;
  private readonly checksumParam: readonly [string, string] | undefined;
  private readonly targets: PreparedTarget[] = [];
  private lastTarget: PresignTarget | undefined;
  private lastPrepared: PreparedTarget | undefined;
  private readonly keys: SigningKeyEntry[] = [];
  // Memos of the last second's date strings and the last credentials' encodings (a token is ~1 KB).
  private lastSecond = Number.NaN;
  private longDate = "";
  private shortDate = "";
  private lastAccessKeyId = "";
  private encodedAccessKeyId = "";
  private lastToken = "";
  private encodedToken = "";

  /**
   * @param opts.checksumMode add `x-amz-checksum-mode=ENABLED` like an S3Client with the default
   *   `responseChecksumValidation: "WHEN_SUPPORTED"` (default true). Set false to match a client configured with
   *   `requestChecksumCalculation` and `responseChecksumValidation` both `"WHEN_REQUIRED"`.
   */
  constructor(opts: { checksumMode?: boolean } = {}) {
    const checksum = opts.checksumMode ?? true;
    this.checksumParam = checksum ? ["x-amz-checksum-mode", "ENABLED"] : undefined;
    this.querySuffix = checksum ? "&x-amz-checksum-mode=ENABLED&x-id=GetObject" : "&x-id=GetObject";
  }

  /**
   * A presigned GET URL for `key` (not empty; used verbatim, `/` separates path segments).
   * @throws RangeError when `expiresIn` is not a whole number of seconds in 1..604800.
   * @throws URIError when the key or a parameter holds a lone UTF-16 surrogate.
   */
  presignGet(target: PresignTarget, key: string, credentials: PresignCredentials, opts: PresignGetOptions): string {
    const t = this.prepared(target);
    const { path, head } = this.begin(t, key, credentials, opts);
    const { secretAccessKey, accessKeyId } = credentials;
    let tail = "X-Amz-SignedHeaders=host";
    const { responseContentDisposition: rcd, responseContentType: rct, extraQuery } = opts;
    if (extraQuery !== undefined && hasKeys(extraQuery)) {
      return this.presignWithExtraQuery(t, path, head, secretAccessKey, accessKeyId, opts, extraQuery);
    }
    if (rcd !== undefined) tail += `&response-content-disposition=${uriEncode(rcd, false)}`;
    if (rct !== undefined) tail += `&response-content-type=${uriEncode(rct, false)}`;
    tail += this.querySuffix;

    const signature = this.sign(t, `GET\n${t.pathPrefix}${path}\n${head}&${tail}`, secretAccessKey, accessKeyId);
    return `${t.urlPrefix}${path}?${head}&X-Amz-Signature=${signature}&${tail}`;
  }

  /**
   * A presigned URL for another S3 request on `key`: `method` with the operation's own query
   * parameters (`query`, e.g. `{ partNumber: "1", uploadId, "x-id": "UploadPart" }`), signed
   * headers `host` only and an unsigned payload. For UploadPart and CompleteMultipartUpload this
   * is byte-identical to `getSignedUrl` of an S3Client with `requestChecksumCalculation:
   * "WHEN_REQUIRED"` for the same inputs and clock. (A client with the default `WHEN_SUPPORTED`
   * adds `x-amz-checksum-crc32=AAAAAA==`, the CRC32 of an empty body, which S3 then holds any
   * real part to; such a URL cannot upload anything, so it is not reproduced.)
   * @throws RangeError when `expiresIn` is not a whole number of seconds in 1..604800.
   * @throws TypeError when `query` sets a parameter of the signature itself.
   */
  presign(
    method: "GET" | "PUT" | "POST" | "DELETE" | "HEAD",
    target: PresignTarget,
    key: string,
    credentials: PresignCredentials,
    opts: { expiresIn: number; now?: Date | number; query?: Record<string, string> },
  ): string {
    const t = this.prepared(target);
    const { path, head } = this.begin(t, key, credentials, opts);
    const params = headParams(head);
    params.push(["X-Amz-SignedHeaders", "X-Amz-SignedHeaders=host"]);
    for (const [name, value] of Object.entries(opts.query ?? {})) {
      if (SIGNATURE_PARAMS.has(name.toLowerCase())) {
        throw new TypeError(`presign: query may not set ${JSON.stringify(name)}`);
      }
      params.push([name, `${uriEncode(name, false)}=${uriEncode(value, false)}`]);
    }
    return this.signParams(method, t, path, params, credentials.secretAccessKey, credentials.accessKeyId);
  }

  /**
   * What every presigned URL starts with: validates the lifetime and key, sets the date, and
   * returns the encoded key and the `X-Amz-*` parameters sorting before `X-Amz-Signature`.
   */
  private begin(
    t: PreparedTarget,
    key: string,
    credentials: PresignCredentials,
    opts: { expiresIn: number; now?: Date | number | undefined },
  ): { path: string; head: string } {
    const { expiresIn } = opts;
    if (!Number.isInteger(expiresIn) || expiresIn < 1 || expiresIn > MAX_PRESIGN_EXPIRES) {
      throw new RangeError(
        `presign: expiresIn must be a whole number of seconds from 1 to ${MAX_PRESIGN_EXPIRES} (7 days), got ${expiresIn}`,
      );
    }
    if (typeof key !== "string" || key.length === 0) throw new TypeError("presign: key must be a non-empty string");

    const now = opts.now;
    const ms = now === undefined ? Date.now() : typeof now === "number" ? now : now.getTime();
    if (!Number.isFinite(ms)) throw new RangeError("presign: now is not a valid time");
    const second = Math.floor(ms / 1000);
    if (second !== this.lastSecond) this.setDate(second);
    const shortDate = this.shortDate;

    const { accessKeyId, sessionToken } = credentials;
    if (accessKeyId !== this.lastAccessKeyId) {
      this.encodedAccessKeyId = uriEncode(accessKeyId, false);
      this.lastAccessKeyId = accessKeyId;
    }
    let tokenParam = "";
    if (sessionToken) {
      if (sessionToken !== this.lastToken) {
        this.encodedToken = uriEncode(sessionToken, false);
        this.lastToken = sessionToken;
      }
      tokenParam = `&X-Amz-Security-Token=${this.encodedToken}`;
    }

    const path = uriEncode(key, true);
    const head =
      `X-Amz-Algorithm=${ALGORITHM}&X-Amz-Content-Sha256=${UNSIGNED_PAYLOAD}` +
      `&X-Amz-Credential=${this.encodedAccessKeyId}%2F${shortDate}${t.encodedScopeTail}` +
      `&X-Amz-Date=${this.longDate}&X-Amz-Expires=${expiresIn}${tokenParam}`;
    return { path, head };
  }

  /** GET with extra query parameters: every parameter sorted, through {@link QueryPresigner.signParams}. */
  private presignWithExtraQuery(
    t: PreparedTarget,
    path: string,
    head: string,
    secretAccessKey: string,
    accessKeyId: string,
    opts: PresignGetOptions,
    extraQuery: Record<string, string>,
  ): string {
    const params = headParams(head);
    const add = (name: string, value: string) =>
      params.push([name, `${uriEncode(name, false)}=${uriEncode(value, false)}`]);
    add("X-Amz-SignedHeaders", "host");
    if (opts.responseContentDisposition !== undefined)
      add("response-content-disposition", opts.responseContentDisposition);
    if (opts.responseContentType !== undefined) add("response-content-type", opts.responseContentType);
    if (this.checksumParam) add(this.checksumParam[0], this.checksumParam[1]);
    add("x-id", "GetObject");
    for (const name of Object.keys(extraQuery)) {
      if (GENERATED_PARAMS.has(name) || name.toLowerCase() === "x-amz-signature") {
        throw new TypeError(`presign: extraQuery may not set ${JSON.stringify(name)}`);
      }
      add(name, extraQuery[name]!);
    }
    return this.signParams("GET", t, path, params, secretAccessKey, accessKeyId);
  }

  /**
   * General form: the canonical query sorted by encoded name, the URL's by raw name (as the SDK).
   * `params` are `[raw name, encoded "name=value"]` pairs, without the signature.
   */
  private signParams(
    method: string,
    t: PreparedTarget,
    path: string,
    params: [raw: string, encoded: string][],
    secretAccessKey: string,
    accessKeyId: string,
  ): string {
    const byEncoded = params
      .map((p) => p[1])
      .sort((a, b) => compare(a.slice(0, a.indexOf("=")), b.slice(0, b.indexOf("="))));
    const signature = this.sign(
      t,
      `${method}\n${t.pathPrefix}${path}\n${byEncoded.join("&")}`,
      secretAccessKey,
      accessKeyId,
    );
    params.push(["X-Amz-Signature", `X-Amz-Signature=${signature}`]);
    params.sort((a, b) => compare(a[0], b[0]));
    return `${t.urlPrefix}${path}?${params.map((p) => p[1]).join("&")}`;
  }

  /** Hex signature of a canonical request (without its constant header tail). */
  private sign(t: PreparedTarget, canonicalHead: string, secretAccessKey: string, accessKeyId: string): string {
    const hash = createHash("sha256").update(canonicalHead).update(t.canonicalTail).digest("hex");
    const stringToSign = `${ALGORITHM}\n${this.longDate}\n${this.shortDate}${t.scopeTail}\n${hash}`;
    return createHmac("sha256", this.signingKey(t, accessKeyId, secretAccessKey))
      .update(stringToSign)
      .digest("hex");
  }

  private prepared(target: PresignTarget): PreparedTarget {
    const last = this.lastPrepared;
    const service = target.service ?? "s3";
    // Same object and fields unchanged: the common case of one storage presigning many keys.
    if (
      last !== undefined &&
      this.lastTarget === target &&
      last.baseUrl === target.baseUrl &&
      last.region === target.region &&
      last.service === service
    ) {
      return last;
    }
    let found = this.targets.find(
      (p) => p.baseUrl === target.baseUrl && p.region === target.region && p.service === service,
    );
    if (found === undefined) {
      found = prepareTarget(target);
      this.targets.unshift(found);
      if (this.targets.length > TARGET_CACHE_SIZE) this.targets.pop();
    }
    this.lastTarget = target;
    this.lastPrepared = found;
    return found;
  }

  /**
   * A browser-form upload grant (S3 POST Object with a SigV4 policy): the form must carry
   * `fields` in this order before the file. The policy pins the exact key, the content type when
   * given, the size range, the metadata and the checksum; S3 refuses a POST that breaks any of
   * them. Pure computation.
   * @throws TypeError on a metadata name that is not an HTTP token (or repeats another in another
   *   case), or a checksum that is not the base64 of 32 bytes.
   */
  presignPost(
    target: PresignTarget,
    key: string,
    credentials: PresignCredentials,
    opts: PresignPostOptions,
  ): PresignedPost {
    const { expiresIn } = opts;
    if (!Number.isInteger(expiresIn) || expiresIn < 1 || expiresIn > MAX_PRESIGN_EXPIRES) {
      throw new RangeError(`presignPost: expiresIn must be a whole number of seconds from 1 to ${MAX_PRESIGN_EXPIRES}`);
    }
    if (key.length === 0) throw new TypeError("presignPost: key must be a non-empty string");
    const extra = postExtraFields(opts);
    const t = this.prepared(target);
    const now = opts.now === undefined ? Date.now() : typeof opts.now === "number" ? opts.now : opts.now.getTime();
    const second = Math.floor(now / 1000);
    if (second !== this.lastSecond) this.setDate(second);
    const credential = `${credentials.accessKeyId}/${this.shortDate}${t.scopeTail}`;
    const fields: Record<string, string> = { key };
    if (opts.contentType !== undefined) fields["Content-Type"] = opts.contentType;
    for (const [name, value] of extra) fields[name] = value;
    fields["x-amz-algorithm"] = ALGORITHM;
    fields["x-amz-credential"] = credential;
    fields["x-amz-date"] = this.longDate;
    if (credentials.sessionToken) fields["x-amz-security-token"] = credentials.sessionToken;
    const bucket = opts.bucket;
    const conditions: unknown[] = [{ bucket }, ["eq", "$key", key]];
    if (opts.contentType !== undefined) conditions.push(["eq", "$Content-Type", opts.contentType]);
    if (opts.maxSize !== undefined) conditions.push(["content-length-range", opts.minSize ?? 0, opts.maxSize]);
    for (const [name, value] of extra) conditions.push({ [name]: value });
    for (const name of ["x-amz-algorithm", "x-amz-credential", "x-amz-date", "x-amz-security-token"]) {
      if (fields[name] !== undefined) conditions.push({ [name]: fields[name] });
    }
    const expiration = new Date(second * 1000 + expiresIn * 1000).toISOString();
    const policy = Buffer.from(JSON.stringify({ expiration, conditions }), "utf8").toString("base64");
    fields.Policy = policy;
    fields["X-Amz-Signature"] = createHmac(
      "sha256",
      this.signingKey(t, credentials.accessKeyId, credentials.secretAccessKey),
    )
      .update(policy)
      .digest("hex");
    return { url: target.baseUrl, fields, expiresAt: new Date(second * 1000 + expiresIn * 1000) };
  }

  /** The derived key for (date, region, service, credentials): four HMACs on a miss, none on a hit. */
  private signingKey(t: PreparedTarget, accessKeyId: string, secretAccessKey: string): Buffer {
    const shortDate = this.shortDate;
    const keys = this.keys;
    for (let i = 0; i < keys.length; i++) {
      const e = keys[i]!;
      if (
        e.shortDate === shortDate &&
        e.region === t.region &&
        e.service === t.service &&
        e.accessKeyId === accessKeyId &&
        e.secretAccessKey === secretAccessKey
      ) {
        return e.key;
      }
    }
    const key = hmac(hmac(hmac(hmac(`AWS4${secretAccessKey}`, shortDate), t.region), t.service), "aws4_request");
    // Newest first: a date roll-over or credential rotation pushes out the oldest entry.
    keys.unshift({ shortDate, region: t.region, service: t.service, accessKeyId, secretAccessKey, key });
    if (keys.length > SIGNING_KEY_CACHE_SIZE) keys.pop();
    return key;
  }

  private setDate(second: number): void {
    const d = new Date(second * 1000);
    const y = d.getUTCFullYear();
    if (y < 1000 || y > 9999) throw new RangeError("presign: now is outside the years 1000..9999");
    const shortDate = `${y}${pad2(d.getUTCMonth() + 1)}${pad2(d.getUTCDate())}`;
    this.shortDate = shortDate;
    this.longDate = `${shortDate}T${pad2(d.getUTCHours())}${pad2(d.getUTCMinutes())}${pad2(d.getUTCSeconds())}Z`;
    this.lastSecond = second;
  }
}

function pad2(n: number): string {
  return n < 10 ? `0${n}` : `${n}`;
}

/** UTF-16 code-unit order, as `Array.prototype.sort` without a comparator. */
function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

const HTTP_TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const SHA256_BASE64 = /^[A-Za-z0-9+/]{43}=$/;

/** The metadata and checksum form fields of a POST grant, in form order, validated. */
function postExtraFields(opts: PresignPostOptions): [string, string][] {
  const fields: [string, string][] = [];
  const seen = new Set<string>();
  for (const [name, value] of Object.entries(opts.metadata ?? {})) {
    const lower = name.toLowerCase();
    if (!HTTP_TOKEN.test(name) || seen.has(lower)) {
      throw new TypeError(`presignPost: invalid or repeated metadata name ${JSON.stringify(name)}`);
    }
    seen.add(lower);
    fields.push([`x-amz-meta-${lower}`, value]);
  }
  if (opts.checksumSha256 !== undefined) {
    if (!SHA256_BASE64.test(opts.checksumSha256)) {
      throw new TypeError("presignPost: checksumSha256 must be the base64 of a 32-byte SHA-256 digest");
    }
    fields.push(["x-amz-checksum-algorithm", "SHA256"], ["x-amz-checksum-sha256", opts.checksumSha256]);
  }
  return fields;
}

/** The `[raw name, "name=value"]` pairs of an already encoded `a=b&c=d` string. */
function headParams(head: string): [raw: string, encoded: string][] {
  return head.split("&").map((part) => [part.slice(0, part.indexOf("=")), part]);
}

function hasKeys(o: object): boolean {
  for (const _ in o) return true;
  return false;
}

const PARTITION_DNS_SUFFIXES: readonly [RegExp, string][] = [
  [/^cn-\w+-\d+$/, "amazonaws.com.cn"],
  [/^eusc-de-\w+-\d+$/, "amazonaws.eu"],
  [/^us-iso-\w+-\d+$/, "c2s.ic.gov"],
  [/^us-isob-\w+-\d+$/, "sc2s.sgov.gov"],
  [/^eu-isoe-\w+-\d+$/, "cloud.adc-e.uk"],
  [/^us-isof-\w+-\d+$/, "csp.hci.ic.gov"],
];

const IPV4 = /^(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]\d|\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]\d|\d)){3}$/;

/** The SDK's `aws.isVirtualHostableS3Bucket(bucket, false)`: one lowercase DNS label of 3..63, not an IP. */
function isVirtualHostableBucket(bucket: string): boolean {
  return /^(?!-)[a-z0-9-]{3,63}$/.test(bucket) && !bucket.endsWith("-");
}

/**
 * The URL base the SDK's S3 endpoint resolution produces for GetObject, for use as {@link PresignTarget.baseUrl}.
 *
 * - No `endpoint`: AWS, `https://BUCKET.s3[.dualstack].REGION.SUFFIX` when the bucket is one lowercase DNS label
 *   (3..63 of `a-z 0-9 -`, no dots: TLS wildcards do not cover dotted names) and `forcePathStyle` is off;
 *   otherwise `https://s3[.dualstack].REGION.SUFFIX/BUCKET`. The regional us-east-1 host is used, as the SDK does.
 * - A custom `endpoint` (no dual-stack, as in the SDK): virtual-host `scheme://BUCKET.host[:port]/path` under the
 *   same bucket rule when `forcePathStyle` is off and the host is not an IP address; otherwise path style
 *   `scheme://host[:port]/path/BUCKET`.
 *
 * S3 Express directory buckets (`--x-s3`) and ARNs need other endpoints and auth and are rejected.
 */
export function s3BaseUrl(opts: {
  endpoint?: string;
  region: string;
  bucket: string;
  forcePathStyle?: boolean;
  useDualstack?: boolean;
}): string {
  const { endpoint, region, bucket, forcePathStyle = false, useDualstack = false } = opts;
  if (!REGION.test(region)) {
    throw new TypeError(`s3BaseUrl: invalid region ${JSON.stringify(region)}`);
  }
  if (bucket.length === 0) throw new TypeError("s3BaseUrl: bucket is empty");
  if (bucket.startsWith("arn:") || bucket.endsWith("--x-s3")) {
    throw new TypeError(`s3BaseUrl: access point ARNs and S3 Express buckets are not supported: ${bucket}`);
  }
  const virtual = !forcePathStyle && isVirtualHostableBucket(bucket);
  const encodedBucket = uriEncode(bucket, false);
  if (endpoint === undefined) {
    const suffix = PARTITION_DNS_SUFFIXES.find(([re]) => re.test(region))?.[1] ?? "amazonaws.com";
    const host = `s3.${useDualstack ? "dualstack." : ""}${region}.${suffix}`;
    return virtual ? `https://${bucket}.${host}` : `https://${host}/${encodedBucket}`;
  }
  if (useDualstack) throw new TypeError("s3BaseUrl: dual-stack cannot be combined with a custom endpoint");
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw new TypeError(`s3BaseUrl: custom endpoint is not a valid URL: ${JSON.stringify(endpoint)}`);
  }
  if ((url.protocol !== "http:" && url.protocol !== "https:") || url.search !== "") {
    throw new TypeError(`s3BaseUrl: custom endpoint must be an http(s) URL without a query: ${endpoint}`);
  }
  const isIp = IPV4.test(url.hostname) || url.hostname.startsWith("[");
  if (virtual && !isIp) {
    return `${url.protocol}//${bucket}.${url.host}${url.pathname === "/" ? "" : url.pathname}`;
  }
  const path = url.pathname.endsWith("/") ? url.pathname : `${url.pathname}/`;
  return `${url.protocol}//${url.host}${path}${encodedBucket}`;
}

/** RFC 5987 attr-char: what may stay unencoded in `filename*`. */
const ATTR_CHAR = /^[A-Za-z0-9!#$&+\-.^_`|~]$/;

/**
 * A Content-Disposition value for downloading (`attachment`, default) or showing (`inline`) a file (RFC 6266):
 * `filename="..."` with an ASCII fallback (quotes and backslashes escaped, other characters outside printable
 * ASCII replaced by `_`), plus `filename*=UTF-8''...` (RFC 5987, percent-encoded) when the name is not plain
 * printable ASCII. Lone surrogates become U+FFFD. An empty name gives the bare disposition type.
 */
export function contentDispositionFor(fileName: string, disposition: "attachment" | "inline" = "attachment"): string {
  if (fileName.length === 0) return disposition;
  const wellFormed = fileName.replace(
    /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g,
    "\uFFFD",
  );
  let fallback = "";
  let plain = true;
  for (const ch of wellFormed) {
    const c = ch.codePointAt(0)!;
    if (c < 0x20 || c > 0x7e) {
      plain = false;
      fallback += "_";
    } else {
      fallback += ch === '"' || ch === "\\" ? `\\${ch}` : ch;
    }
  }
  let value = `${disposition}; filename="${fallback}"`;
  if (!plain) {
    let encoded = "";
    for (const byte of Buffer.from(wellFormed, "utf8")) {
      const ch = String.fromCharCode(byte);
      encoded += byte < 128 && ATTR_CHAR.test(ch) ? ch : PCT[byte];
    }
    value += `; filename*=UTF-8''${encoded}`;
  }
  return value;
}
