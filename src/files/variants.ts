/**
 * Image variants as declared in a schema (`variants: { thumb: "cover 128x128 webp" }`): the
 * spec's grammar, its canonical text and digest, and the storage keys variants live under.
 * Pure: no sharp, no storage (the image work is in `image-processor.ts`).
 *
 * ## Spec grammar
 *
 * ```text
 * spec    = fit " " size " " format [ " " quality ] [ " noenlarge" ] [ " lazy" ]
 * fit     = "cover" | "contain" | "fill" | "inside" | "outside"
 * size    = W "x" H            ; integers 1..16384 (16383 for webp), no sign, no leading zero
 * format  = "webp" | "avif" | "jpeg" | "png"
 * quality = "q" Q              ; integer 1..100; not allowed with png
 * ```
 *
 * e.g. `"cover 128x128 webp"`, `"inside 640x640 avif q50"`, `"inside 2048x2048 webp lazy"`. `lazy`
 * says when, not what: the variant is made on its first request through a signed URL instead of
 * in the write (it is not part of the digest). Lower case only; tokens are separated
 * by one or more spaces (leading and trailing spaces are ignored). `fit` has sharp's meaning:
 *
 * - `cover`: fills W×H exactly, cropping what overflows (centre);
 * - `contain`: fits inside W×H and pads the rest (transparent, or black for JPEG) to exactly W×H;
 * - `fill`: stretched to exactly W×H, ignoring the aspect ratio;
 * - `inside`: as large as possible within W×H, aspect ratio kept (never padded);
 * - `outside`: as small as possible while covering W×H, aspect ratio kept (never cropped).
 *
 * As in sharp, an image smaller than the box is enlarged to it, unless the spec says `noenlarge`:
 * then an image already within the box on the side that decides is kept at its size (Rails'
 * `resize_to_limit` for `inside`; with `cover`, `contain` or `fill` the result is then smaller
 * than the box rather than upscaled).
 *
 * Without a quality the format's default applies (sharp's: 80 for WebP and JPEG, 50 for AVIF).
 * Every variant is made with the EXIF orientation applied and the metadata (EXIF, GPS, XMP, IPTC)
 * stripped; the colour profile is converted to sRGB.
 */
import { createHash } from "node:crypto";

/** How the image is fitted into the spec's box (sharp's `fit`). */
export type VariantFit = "cover" | "contain" | "fill" | "inside" | "outside";
/** The output format of a variant. */
export type VariantFormat = "webp" | "avif" | "jpeg" | "png";

/** The fits a spec may name, in the order the grammar lists them. */
export const VARIANT_FITS: readonly VariantFit[] = ["cover", "contain", "fill", "inside", "outside"];
/** The formats a spec may name. */
export const VARIANT_FORMATS: readonly VariantFormat[] = ["webp", "avif", "jpeg", "png"];
/** Largest width or height a spec may ask for. */
export const MAX_VARIANT_SIDE = 16384;
/** WebP's own limit on either side (its header stores 14 bits). */
const MAX_WEBP_SIDE = 16383;

/** A parsed variant spec: `"inside 640x640 avif q50"` is `{ fit: "inside", width: 640, height: 640, format: "avif", quality: 50 }`. */
export interface VariantSpec {
  fit: VariantFit;
  width: number;
  height: number;
  format: VariantFormat;
  /** 1..100; absent: the format's default. Never set for `png`. */
  quality?: number;
  /** Never upscales an image smaller than the box (sharp's `withoutEnlargement`). Part of the digest. */
  noEnlarge?: true;
  /** Made on its first request (a signed derivation URL), not in the write. Not part of the digest. */
  lazy?: true;
}

/** The grammar in one line, quoted by every parse error. */
export const VARIANT_SPEC_GRAMMAR =
  '"<fit> <W>x<H> <format> [q<quality>] [noenlarge] [lazy]" (fit: cover, contain, fill, inside or outside; W and H: 1..16384; ' +
  'format: webp, avif, jpeg or png; quality: 1..100, not for png), e.g. "cover 128x128 webp"';

const FORMAT_INFO: Record<VariantFormat, { extension: string; contentType: string }> = {
  webp: { extension: "webp", contentType: "image/webp" },
  avif: { extension: "avif", contentType: "image/avif" },
  jpeg: { extension: "jpg", contentType: "image/jpeg" },
  png: { extension: "png", contentType: "image/png" },
};

/** The file extension a variant of `format` is stored with: `webp`, `avif`, `jpg`, `png`. */
export function variantExtension(format: VariantFormat): string {
  return FORMAT_INFO[format].extension;
}

/** The `Content-Type` a variant of `format` is stored with, e.g. `image/webp`. */
export function variantContentType(format: VariantFormat): string {
  return FORMAT_INFO[format].contentType;
}

const ORDER = "after the format come q<quality>, noenlarge and lazy, in that order";

/** A token quoted for an error message: JSON-quoted and cut short (it comes from a schema). */
function quote(token: string): string {
  return JSON.stringify(token.length > 40 ? `${token.slice(0, 40)}…` : token);
}

/** A decimal integer without sign or leading zero, within `min..max`; `undefined` otherwise. */
function integer(text: string, min: number, max: number): number | undefined {
  if (!/^[1-9][0-9]{0,5}$/.test(text)) return undefined;
  const value = Number(text);
  return value >= min && value <= max ? value : undefined;
}

/**
 * Parses a variant spec (see the module's grammar). Returns the spec, or `{ error }`: a sentence
 * naming the bad token and quoting the grammar, for the generator to prefix with the model,
 * field and variant name. Never throws.
 */
export function parseVariantSpec(text: string): VariantSpec | { error: string } {
  const fail = (why: string) => ({ error: `${why}; a variant spec is ${VARIANT_SPEC_GRAMMAR}` });
  if (typeof text !== "string") return fail(`expected a string, got ${text === null ? "null" : typeof text}`);
  const tokens = text.trim() === "" ? [] : text.trim().split(/ +/);
  const lazy = tokens.length > 3 && tokens[tokens.length - 1] === "lazy";
  if (lazy) tokens.pop();
  const noEnlarge = tokens.length > 3 && tokens[tokens.length - 1] === "noenlarge";
  if (noEnlarge) tokens.pop();
  if (tokens.length < 3) return fail(`${quote(text)} has ${tokens.length} of the 3 or 4 tokens`);
  if (tokens.length > 4) {
    return fail(`unexpected ${quote(tokens[4] ?? "")}: ${ORDER}`);
  }
  const [fitText = "", sizeText = "", formatText = "", qualityText] = tokens;

  const fit = VARIANT_FITS.find((f) => f === fitText);
  if (fit === undefined) return fail(`unknown fit ${quote(fitText)}`);

  const size = /^([^x]+)x([^x]+)$/.exec(sizeText);
  if (!size) return fail(`size ${quote(sizeText)} is not <W>x<H>`);
  const width = integer(size[1] ?? "", 1, MAX_VARIANT_SIDE);
  if (width === undefined) return fail(`width ${quote(size[1] ?? "")} is not an integer 1..${MAX_VARIANT_SIDE}`);
  const height = integer(size[2] ?? "", 1, MAX_VARIANT_SIDE);
  if (height === undefined) return fail(`height ${quote(size[2] ?? "")} is not an integer 1..${MAX_VARIANT_SIDE}`);

  const format = VARIANT_FORMATS.find((f) => f === formatText);
  if (format === undefined) {
    const hint = formatText === "jpg" ? ' (write "jpeg")' : "";
    return fail(`unknown format ${quote(formatText)}${hint}`);
  }

  // Refused here rather than by the encoder at the first upload.
  if (format === "webp" && Math.max(width, height) > MAX_WEBP_SIDE) {
    return fail(`size ${quote(sizeText)} is over webp's ${MAX_WEBP_SIDE} pixels a side`);
  }

  const spec: VariantSpec = { fit, width, height, format };
  if (qualityText === "lazy" || qualityText === "noenlarge")
    return fail(`${quote(qualityText)} is out of order: ${ORDER}`);
  if (qualityText !== undefined) {
    if (format === "png") return fail(`quality ${quote(qualityText)} is not allowed for png (it is lossless)`);
    const quality = qualityText.startsWith("q") ? integer(qualityText.slice(1), 1, 100) : undefined;
    if (quality === undefined) return fail(`quality ${quote(qualityText)} is not q1..q100`);
    spec.quality = quality;
  }
  if (noEnlarge) spec.noEnlarge = true;
  if (lazy) spec.lazy = true;
  return spec;
}

/** Whether `value` is a parse error rather than a spec. */
export function isVariantSpecError(value: VariantSpec | { error: string }): value is { error: string } {
  return "error" in value;
}

/** The canonical text of a spec: single spaces, then quality, `noenlarge`, `lazy` where set. `parseVariantSpec` gives the spec back. */
export function formatVariantSpec(spec: VariantSpec): string {
  const quality = spec.quality === undefined ? "" : ` q${spec.quality}`;
  const noEnlarge = spec.noEnlarge ? " noenlarge" : "";
  return `${spec.fit} ${spec.width}x${spec.height} ${spec.format}${quality}${noEnlarge}${spec.lazy ? " lazy" : ""}`;
}

/**
 * The version of what a spec means. Part of the digest, so that changing how variants are made
 * (e.g. no longer applying the orientation, or keeping metadata) gives every variant a new key
 * and the stale regeneration rebuilds them. v1: orientation applied, metadata stripped, sRGB.
 */
export const VARIANT_SPEC_VERSION = 1;

/**
 * 12 lower-case hex characters of the SHA-256 of `"v<version> <canonical spec>"`: a spec's
 * identity in its variant's key. Two specs that differ in any field (or a change of
 * {@link VARIANT_SPEC_VERSION}) give different digests; equal specs, however written, the same.
 */
export function variantSpecDigest(spec: VariantSpec): string {
  return createHash("sha256")
    .update(`v${VARIANT_SPEC_VERSION} ${formatVariantSpec({ ...spec, lazy: undefined } as VariantSpec)}`)
    .digest("hex")
    .slice(0, 12);
}

/** A variant's name in `variants: { … }`: a letter, then up to 31 letters, digits or `_` (no `-`: it ends the name in keys). */
export function isVariantName(name: string): boolean {
  return /^[A-Za-z][A-Za-z0-9_]{0,31}$/.test(name);
}

/**
 * Where every variant is stored: under this prefix, then the original's key. Originals must not
 * be stored under it (a sweep tells variants from originals by it).
 */
export const VARIANTS_PREFIX = "variants/";

/** The prefix of all variants of the original stored as `originalKey`: `variants/<originalKey>/`. */
export function variantPrefix(originalKey: string): string {
  return `${VARIANTS_PREFIX}${originalKey}/`;
}

/**
 * The key of variant `name` of the original stored as `originalKey`:
 * `variants/<originalKey>/<name>-<digest>.<ext>`, e.g. `variants/avatars/a.png/thumb-3f2a…9c.webp`.
 * A changed spec gives a new key, so a stale variant is never served for a new spec.
 */
export function variantKey(originalKey: string, name: string, spec: VariantSpec): string {
  return `${variantPrefix(originalKey)}${name}-${variantSpecDigest(spec)}.${variantExtension(spec.format)}`;
}

/** What a variant's key says: its original's key, the variant's name, its spec's digest and the extension. */
export interface ParsedVariantKey {
  original: string;
  name: string;
  digest: string;
  ext: string;
}

const VARIANT_FILE = /^([A-Za-z][A-Za-z0-9_]{0,31})-([0-9a-f]{12})\.(webp|avif|jpg|png)$/;

/**
 * The parts of a key {@link variantKey} made, or `undefined` for a key that is not under
 * {@link VARIANTS_PREFIX} or does not end in `/<name>-<12 hex>.<webp|avif|jpg|png>` after a
 * non-empty original key.
 */
export function parseVariantKey(key: string): ParsedVariantKey | undefined {
  if (!key.startsWith(VARIANTS_PREFIX)) return undefined;
  const rest = key.slice(VARIANTS_PREFIX.length);
  // The file part holds no slash, so the last one ends the original's key (which may hold slashes).
  const slash = rest.lastIndexOf("/");
  if (slash <= 0) return undefined;
  const match = VARIANT_FILE.exec(rest.slice(slash + 1));
  if (!match) return undefined;
  return { original: rest.slice(0, slash), name: match[1]!, digest: match[2]!, ext: match[3]! };
}
