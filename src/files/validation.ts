/**
 * Validation of an upload before anything is written: its size against a field's `maxSize`
 * (declared lengths up front, streams while they are read) and its type against `accept`, using
 * the type the first bytes show as well as the declared one, so that a `.png` whose bytes are
 * HTML is refused.
 */
import mime from "mime";
import { PrismaS3FilesError } from "../errors.js";
import { ContentTooLargeError } from "../storage/content.js";
import { matchesAccept, mimeEssence, sniffContentType } from "./sniff.js";

/** Which model and field an upload is for, to name them in errors. */
export interface FileFieldRef {
  model?: string | undefined;
  field?: string | undefined;
}

/**
 * Why a file was refused: over `maxSize`; a type `accept` does not take; an image whose header
 * declares more pixels than `maxPixels`; (direct uploads) a size, SHA-256 or stored Content-Type
 * other than the grant declared; (variants) an image whose bytes could not be decoded.
 */
export type FileValidationReason =
  | "too_large"
  | "too_many_pixels"
  | "type_not_accepted"
  | "size_mismatch"
  | "checksum_mismatch"
  | "content_type_mismatch"
  | "corrupt_image";

/** An upload broke a field's rules (`maxSize`, `accept`). Nothing was written. */
export class FileValidationError extends PrismaS3FilesError {
  readonly model?: string;
  readonly field?: string;
  readonly reason: FileValidationReason;
  /** The `maxSize` in bytes, for `too_large`; the `maxPixels`, for `too_many_pixels`. */
  readonly limit?: number;
  /** The image's width and height as its header declares them, for `too_many_pixels`. */
  readonly width?: number;
  readonly height?: number;
  /** The type the upload was declared as (`contentType`, `File.type` or the extension's). */
  readonly declaredType?: string;
  /** The type its first bytes show, when they show one. */
  readonly detectedType?: string;
  /** The field's `accept` list, for `type_not_accepted`. */
  readonly accept?: readonly string[];
  /** The Content-Type the object was stored with, for `content_type_mismatch`. */
  readonly storedType?: string;

  constructor(
    reason: FileValidationReason,
    message: string,
    details: FileFieldRef & {
      limit?: number | undefined;
      width?: number | undefined;
      height?: number | undefined;
      declaredType?: string | undefined;
      detectedType?: string | undefined;
      accept?: readonly string[] | undefined;
      storedType?: string | undefined;
      cause?: unknown;
    } = {},
  ) {
    super("FILE_VALIDATION", message, { cause: details.cause });
    this.reason = reason;
    if (details.model !== undefined) this.model = details.model;
    if (details.field !== undefined) this.field = details.field;
    if (details.limit !== undefined) this.limit = details.limit;
    if (details.width !== undefined) this.width = details.width;
    if (details.height !== undefined) this.height = details.height;
    if (details.declaredType !== undefined) this.declaredType = details.declaredType;
    if (details.detectedType !== undefined) this.detectedType = details.detectedType;
    if (details.accept !== undefined) this.accept = details.accept;
    if (details.storedType !== undefined) this.storedType = details.storedType;
  }
}

/** A file field's validation rules; `null` turns a rule off. */
export interface FileRules {
  /** Largest accepted size in bytes. */
  maxSize: number | null;
  /** Accepted types: exact (`image/png`), `image/*`, or `*` + `/*`. */
  accept: readonly string[] | null;
}

// ---------------------------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------------------------

/** `User.avatar: ` (or what is known of it), so that every message names the field. */
function prefix(where: FileFieldRef): string {
  const { model, field } = where;
  if (model && field) return `${model}.${field}: `;
  if (field || model) return `${field || model}: `;
  return "";
}

/** `text` as an error message about the field: `User.avatar: text`, or `Text` when no field is known. */
export function sentence(where: FileFieldRef, text: string): string {
  const start = prefix(where);
  return start === "" ? text.charAt(0).toUpperCase() + text.slice(1) : start + text;
}

/** `5 MB (5000000 bytes)`: decimal units, as file sizes are usually quoted to users. */
function formatSize(bytes: number): string {
  const exact = `${bytes} ${bytes === 1 ? "byte" : "bytes"}`;
  for (const [unit, size] of [
    ["TB", 1e12],
    ["GB", 1e9],
    ["MB", 1e6],
    ["kB", 1e3],
  ] as const) {
    if (bytes >= size) return `${Number((bytes / size).toFixed(2))} ${unit} (${exact})`;
  }
  return exact;
}

/** A client-supplied type, made safe to quote: its essence, printable, of bounded length. */
function quoteType(type: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: stripping control characters is the point
  const clean = mimeEssence(type).replace(/[\u0000-\u001f\u007f]/g, "");
  return clean === "" ? "(none)" : clean.length > 100 ? `${clean.slice(0, 100)}…` : clean;
}

// ---------------------------------------------------------------------------------------------
// Size
// ---------------------------------------------------------------------------------------------

function tooLarge(limit: number, where: FileFieldRef, cause?: unknown): FileValidationError {
  return new FileValidationError("too_large", sentence(where, `file is larger than ${formatSize(limit)}`), {
    ...where,
    limit,
    cause,
  });
}

/**
 * Refuses a content whose length is known up front (bytes, `Blob`) and over `maxSize`, before
 * any of it is read. Streams are checked while they are read, by `meterContent`'s `limit`.
 */
export function checkDeclaredSize(length: number | undefined, rules: FileRules, where: FileFieldRef = {}): void {
  if (rules.maxSize !== null && length !== undefined && length > rules.maxSize) throw tooLarge(rules.maxSize, where);
}

/**
 * Maps the {@link ContentTooLargeError} that `meterContent` throws when a stream passes its
 * `limit` to a `too_large` {@link FileValidationError} naming the field (the original attached as
 * `cause`). Any other value is returned unchanged.
 */
export function toFileValidationError(error: unknown, where: FileFieldRef = {}): unknown {
  if (error instanceof ContentTooLargeError) return tooLarge(error.limit, where, error);
  return error;
}

// ---------------------------------------------------------------------------------------------
// Pixels
// ---------------------------------------------------------------------------------------------

/** The pixel limit of image fields that set none: 40 megapixels (a 7,300 × 5,500 photo fits). */
export const DEFAULT_MAX_PIXELS = 40_000_000;

/**
 * Refuses an image whose header declares more than `maxPixels` pixels (width × height) with a
 * `too_many_pixels` {@link FileValidationError}: a decompression bomb (a few kilobytes that
 * decode to gigabytes) is stopped before any byte is stored or decoded. `dimensions` is what
 * `readImageDimensions` read from the file's first bytes; `undefined` (not an image, or a header
 * it could not read) passes.
 */
export function checkPixels(
  dimensions: { width: number; height: number } | undefined,
  maxPixels: number,
  where: FileFieldRef = {},
): void {
  if (dimensions === undefined) return;
  const { width, height } = dimensions;
  if (width * height <= maxPixels) return;
  const text = `image is ${width} × ${height} pixels (${formatPixels(width * height)}), more than the ${formatPixels(maxPixels)} allowed`;
  throw new FileValidationError("too_many_pixels", sentence(where, text), {
    ...where,
    limit: maxPixels,
    width,
    height,
  });
}

/** `40 MP` or `1,500 pixels`. */
export function formatPixels(pixels: number): string {
  if (pixels >= 1e6) return `${Number((pixels / 1e6).toFixed(2))} MP`;
  return `${pixels.toLocaleString("en-US")} pixels`;
}

// ---------------------------------------------------------------------------------------------
// Type
// ---------------------------------------------------------------------------------------------

/** Names the same format goes by; a sniffed and a declared type in one group agree. */
const ALIASES: readonly (readonly string[])[] = [
  ["image/jpeg", "image/jpg", "image/pjpeg"],
  ["image/x-icon", "image/vnd.microsoft.icon", "image/ico", "image/icon"],
  ["image/bmp", "image/x-bmp", "image/x-ms-bmp"],
  ["image/heic", "image/heif", "image/heic-sequence", "image/heif-sequence"],
  ["image/tiff", "image/tiff-fx"],
  ["image/vnd.adobe.photoshop", "image/x-photoshop", "application/x-photoshop", "application/photoshop"],
  ["audio/mpeg", "audio/mp3", "audio/mpeg3", "audio/x-mpeg", "audio/x-mp3"],
  ["audio/wav", "audio/wave", "audio/x-wav", "audio/vnd.wave", "audio/x-pn-wav"],
  ["audio/flac", "audio/x-flac"],
  ["audio/aac", "audio/x-aac", "audio/aacp"],
  ["audio/aiff", "audio/x-aiff"],
  ["audio/midi", "audio/x-midi", "audio/mid"],
  ["audio/ogg", "video/ogg", "application/ogg", "audio/opus", "audio/vorbis", "audio/x-ogg"],
  ["video/webm", "audio/webm"],
  ["video/x-matroska", "audio/x-matroska", "video/webm", "audio/webm"],
  // ISO base media: one container for audio-only and video files alike.
  [
    "video/mp4",
    "audio/mp4",
    "application/mp4",
    "audio/x-m4a",
    "audio/m4a",
    "video/x-m4v",
    "video/quicktime",
    "video/3gpp",
    "video/3gpp2",
    "audio/3gpp",
    "audio/3gpp2",
  ],
  ["video/x-msvideo", "video/avi", "video/msvideo"],
  ["video/x-flv", "video/flv"],
  ["font/ttf", "font/sfnt", "application/x-font-ttf", "application/font-sfnt", "application/x-font-truetype"],
  ["font/otf", "font/sfnt", "application/x-font-otf", "application/font-sfnt", "application/x-font-opentype"],
  ["font/woff", "application/font-woff", "application/x-font-woff"],
  ["font/woff2", "application/font-woff2"],
  ["font/collection", "font/ttc"],
  [
    "application/gzip",
    "application/x-gzip",
    "application/x-compressed-tar",
    "application/x-tgz",
    "application/tar+gzip",
  ],
  ["application/vnd.rar", "application/x-rar-compressed", "application/x-rar"],
  ["application/x-bzip2", "application/x-bzip"],
  ["application/pdf", "application/x-pdf"],
  ["application/x-msdownload", "application/vnd.microsoft.portable-executable", "application/x-dosexec"],
  ["application/vnd.sqlite3", "application/x-sqlite3"],
  ["text/xml", "application/xml"],
];

/** Every name `type` goes by, itself first. */
function aliasesOf(type: string): string[] {
  const names = [type];
  for (const group of ALIASES) {
    if (!group.includes(type)) continue;
    for (const name of group) if (!names.includes(name)) names.push(name);
  }
  return names;
}

/** ZIP-based formats: a sniffed `application/zip` is what they look like. */
function isZipBased(type: string): boolean {
  return (
    type.endsWith("+zip") ||
    type.startsWith("application/vnd.openxmlformats-officedocument.") ||
    type.startsWith("application/vnd.oasis.opendocument.") ||
    type.startsWith("application/vnd.ms-") ||
    [
      "application/x-zip-compressed",
      "application/x-zip",
      "application/java-archive",
      "application/vnd.android.package-archive",
      "application/vnd.apple.keynote",
      "application/vnd.apple.pages",
      "application/vnd.apple.numbers",
      "application/vnd.google-earth.kmz",
      "application/x-xpinstall",
      "application/vnd.sketch",
      "model/vnd.usdz+zip",
    ].includes(type)
  );
}

/** Types whose content is text: a sniffed `text/plain` (or markup) is what they look like. */
function isTextual(type: string): boolean {
  if (type.startsWith("text/")) return true;
  if (type === "image/svg+xml") return false; // an image: handled on its own
  return (
    type.endsWith("+json") ||
    type.endsWith("+xml") ||
    [
      "application/json",
      "application/xml",
      "application/javascript",
      "application/ecmascript",
      "application/x-javascript",
      "application/x-sh",
      "application/x-csh",
      "application/x-httpd-php",
      "application/sql",
      "application/x-sql",
      "application/yaml",
      "application/x-yaml",
      "application/toml",
      "application/x-tex",
      "application/x-latex",
      "application/rtf",
      "application/x-ndjson",
      "application/csv",
      "application/x-subrip",
      "application/graphql",
      "application/x-www-form-urlencoded",
      "message/rfc822",
    ].includes(type)
  );
}

/** What the content sniffer reports for text: plain text or markup. */
const TEXTUAL_SNIFFS = new Set(["text/plain", "text/html", "text/xml", "image/svg+xml"]);

/** Types whose media a browser decodes (so text posing as one is suspicious). */
function isMedia(type: string): boolean {
  return /^(image|audio|video|font)\//.test(type);
}

/**
 * Types a browser renders as documents that can run scripts when an object is opened from the
 * bucket (or the app's own origin): HTML, XHTML, SVG and generic XML (which can embed XHTML).
 * A wildcard such as `image/*` or `text/*` is easily written to mean "pictures" or "text files";
 * it must not silently let a stored-XSS vector in. So these are accepted only when `accept`
 * names them (or one of their aliases) exactly, or accepts everything (star, slash, star).
 */
const ACTIVE_TYPES = new Set(["text/html", "application/xhtml+xml", "image/svg+xml", "text/xml", "application/xml"]);

function accepts(type: string, accept: readonly string[]): boolean {
  const names = aliasesOf(type);
  if (!names.some((name) => matchesAccept(name, accept))) return false;
  if (!ACTIVE_TYPES.has(type)) return true;
  const listed = new Set(accept.map(mimeEssence));
  return listed.has("*/*") || names.some((name) => listed.has(name));
}

/** Whether a sniffed type is simply what the declared type looks like on the wire. */
function agrees(detected: string, declared: string): boolean {
  if (aliasesOf(declared).includes(detected)) return true;
  if (detected === "application/zip" && isZipBased(declared)) return true;
  if (TEXTUAL_SNIFFS.has(detected) && isTextual(declared)) return true;
  if (declared === "image/svg+xml" && detected === "text/xml") return true;
  return false;
}

/** Types that say nothing about the content. */
function isUnknownType(type: string): boolean {
  return type === "" || type === "application/octet-stream" || type === "binary/octet-stream";
}

/**
 * The name and `Content-Type` to store an upload under, following its content: when the first
 * bytes show a binary format (an image, a PDF, an archive...) that the name's extension does not
 * say, the name's last extension is replaced by the format's (or added, when there is none) and
 * the type is the format's: PNG bytes sent as `x.exe`, or without a name (`file.bin`), are stored
 * as `x.png` / `file.png` with `image/png`, so `url()` serves them as what they are. (Django keeps
 * the client's name, and django-storages guesses the type from it.)
 *
 * Left as they are: content that shows no format, or only text or markup (a sniff cannot tell
 * CSV from plain text, and HTML or SVG must never be promoted to an active type); names whose
 * extension agrees with the content (`.jpg` for JPEG, `.docx` for the ZIP it is). A declared type
 * the content agrees with (`File.type`, `upload(..., { contentType })`) is kept; one that says
 * nothing (`application/octet-stream`) gives way to the detected type.
 */
export function nameForContent(
  filename: string,
  contentType: string,
  detectedType: string | undefined,
): { filename: string; contentType: string } {
  if (detectedType === undefined) return { filename, contentType };
  const detected = mimeEssence(detectedType);
  if (detected.startsWith("text/") || ACTIVE_TYPES.has(detected)) return { filename, contentType };
  const declared = mimeEssence(contentType);
  // The content's type: the declared one when the content merely looks like it (a .docx is a ZIP).
  const type = !isUnknownType(declared) && agrees(detected, declared) ? declared : detected;
  const fromName = mime.getType(filename);
  if (fromName !== null && (aliasesOf(type).includes(mimeEssence(fromName)) || agrees(type, mimeEssence(fromName)))) {
    return { filename, contentType: isUnknownType(declared) ? type : contentType };
  }
  const ext = mime.getExtension(type);
  if (ext === null) return { filename, contentType: isUnknownType(declared) ? type : contentType };
  // The last extension goes; a leading dot (`.profile`) starts no extension.
  const dot = filename.lastIndexOf(".");
  const root = dot > 0 ? filename.slice(0, dot) : filename;
  return { filename: `${root}.${ext}`, contentType: type === declared ? contentType : type };
}

/**
 * Checks an upload's type against `rules.accept` (no check when it is `null`), using the
 * declared type (`contentType`, `File.type`, or the extension's) and the type its first bytes
 * (`head`) show. Throws a `type_not_accepted` {@link FileValidationError} when:
 *
 * - the declared type is not accepted;
 * - the content is text or markup while the declared type is an image, audio, video or font
 *   type (a `.png` that is HTML), whatever `accept` says; an SVG declared as `image/svg+xml` may
 *   of course sniff as SVG or XML;
 * - the content shows another type that is not accepted either (a `.png` that is a PDF), unless
 *   it is merely how the declared type looks (`application/zip` for a `.docx`, `text/plain` for
 *   a `.csv`, `audio/wav` for `audio/x-wav`);
 * - the type is HTML, XHTML, SVG or XML and `accept` matches it only through a wildcard
 *   (`image/*`, `text/*`): these can carry scripts, see {@link ACTIVE_TYPES}.
 *
 * Content that matches no known signature is judged by its declared type. A declared type that
 * says nothing (`application/octet-stream` or empty, e.g. a stream without a name) is replaced
 * by the detected one when `accept` does not take `application/octet-stream` itself.
 */
export function checkType(
  head: Uint8Array,
  declaredType: string,
  rules: FileRules,
  where: FileFieldRef = {},
): { detectedType: string | undefined } {
  const detectedType = sniffContentType(head);
  const accept = rules.accept;
  if (accept === null) return { detectedType };

  let declared = mimeEssence(declaredType);
  const detected = detectedType === undefined ? undefined : mimeEssence(detectedType);
  const refuse = (rejected: "declared" | "detected", why = ""): never => {
    const type =
      rejected === "declared"
        ? quoteType(declaredType)
        : `${detected} (detected from its content; declared ${quoteType(declaredType)})`;
    const text = `file type ${type} is not accepted${why} (accepted: ${accept.join(", ") || "nothing"})`;
    throw new FileValidationError("type_not_accepted", sentence(where, text), {
      ...where,
      declaredType: quoteType(declaredType),
      detectedType,
      accept,
    });
  };
  /** Why a type `accept` matches is still refused, when it is an active type matched by a wildcard. */
  const activeNote = (type: string) =>
    ACTIVE_TYPES.has(type) && aliasesOf(type).some((name) => matchesAccept(name, accept))
      ? ": it can carry scripts, so it must be listed explicitly"
      : "";

  // A type that says nothing about the content: let the content speak.
  let fromContent = false;
  if (isUnknownType(declared) && detected !== undefined && !accepts(declared, accept)) {
    declared = detected;
    fromContent = true;
  }
  if (!accepts(declared, accept)) refuse(fromContent ? "detected" : "declared", activeNote(declared));
  if (detected === undefined || detected === declared || agrees(detected, declared)) return { detectedType };

  if (!accepts(detected, accept)) refuse("detected", activeNote(detected));
  // Both accepted (e.g. accept: image/*, text/plain), yet text posing as an image is still a lie.
  if (isMedia(declared) && TEXTUAL_SNIFFS.has(detected)) refuse("detected", `: text content declared as ${declared}`);
  return { detectedType };
}
