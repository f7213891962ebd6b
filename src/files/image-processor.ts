/**
 * Making a file field's image variants with sharp, an optional peer dependency loaded on first
 * use. The safety rules of image fields live here:
 *
 * - only raster images whose first bytes show PNG, JPEG, GIF, WebP, AVIF/HEIF or TIFF reach
 *   sharp; SVG only when the field allows it (`allowSvg`), anything else is refused;
 * - the pixel count is checked against `maxPixels` from the header before any decode (sharp's
 *   `limitInputPixels` guards again while decoding), so a decompression bomb costs nothing;
 * - variants have the EXIF orientation applied and their metadata (EXIF, GPS, XMP, IPTC, the
 *   colour profile after conversion to sRGB) stripped, unless `keepMetadata`;
 * - bytes that claim an image format but do not decode are a `corrupt_image` validation error;
 * - no more sharp pipelines run at once than the processor's `concurrency` (default: the cores).
 */
import { availableParallelism } from "node:os";
import type sharpFunction from "sharp";
import { PrismaS3FilesError } from "../errors.js";
import { IMAGE_HEAD_BYTES, type ImageDimensions, readImageDimensions } from "./image-size.js";
import { mimeEssence, sniffContentType } from "./sniff.js";
import { checkPixels, type FileFieldRef, FileValidationError, formatPixels, sentence } from "./validation.js";
import { type VariantSpec, variantContentType } from "./variants.js";

/**
 * sharp's default export. Not exported, and named in no exported signature, so that this
 * module's declarations never import the optional package (a project without sharp and without
 * `skipLibCheck` would fail to compile them).
 */
type Sharp = typeof sharpFunction;

/**
 * Loads sharp: resolves to its module namespace or its default export (the `sharp` function).
 * The default is `() => import("sharp")`; tests pass their own (an instrumented or missing sharp).
 */
export type SharpLoader = () => Promise<unknown>;

const importSharp: SharpLoader = () => import("sharp");

/**
 * Loads sharp through `loader` (default: `import("sharp")`), e.g. to fail early when variants
 * are declared. Throws a `CONFIGURATION` {@link PrismaS3FilesError} naming the package when it
 * is not installed or cannot load (e.g. no prebuilt binary for the platform); the loader's error
 * is its `cause`. Resolves to sharp's function, typed `unknown` so that these declarations never
 * name the optional package.
 */
export function loadSharp(loader: SharpLoader = importSharp): Promise<unknown> {
  return loadSharpFunction(loader);
}

async function loadSharpFunction(loader: SharpLoader): Promise<Sharp> {
  let loaded: unknown;
  try {
    loaded = await loader();
  } catch (cause) {
    throw new PrismaS3FilesError(
      "CONFIGURATION",
      "Image variants need the optional package sharp, which could not be loaded: npm install sharp",
      { cause },
    );
  }
  // An ES module namespace (`import()`), or the function itself (a test's loader, a CommonJS require).
  const candidate = typeof loaded === "function" ? loaded : (loaded as { default?: unknown } | null)?.default;
  if (typeof candidate !== "function") {
    throw new PrismaS3FilesError(
      "CONFIGURATION",
      "Image variants need the optional package sharp, but what was loaded as sharp is not its function: npm install sharp",
    );
  }
  return candidate as Sharp;
}

/** A counting semaphore with a FIFO queue: at most `size` holders at once. */
class Semaphore {
  private free: number;
  private readonly waiting: (() => void)[] = [];

  constructor(size: number) {
    this.free = size;
  }

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.free > 0) this.free--;
    else await new Promise<void>((resolve) => this.waiting.push(resolve));
    try {
      return await task();
    } finally {
      // Hand the slot straight to the next waiter (so `free` never lets a newcomer jump the queue).
      const next = this.waiting.shift();
      if (next) next();
      else this.free++;
    }
  }
}

/** One variant to make: its name (for the result) and its parsed spec. */
export interface VariantRequest {
  name: string;
  spec: VariantSpec;
}

/** A variant made: the encoded bytes, their `Content-Type` and the output's size in pixels. */
export interface MadeVariant {
  name: string;
  spec: VariantSpec;
  bytes: Uint8Array;
  contentType: string;
  width: number;
  height: number;
}

/** How one original is made into variants. */
export interface MakeVariantsOptions {
  /** The field's pixel limit (e.g. `DEFAULT_MAX_PIXELS`): larger images are refused before decoding. */
  maxPixels: number;
  /** The original's declared (or stored) `Content-Type`; the bytes' own signature decides, this breaks ties. */
  contentType: string;
  /** Keep EXIF, GPS, XMP and the ICC profile in the variants (default: stripped). */
  keepMetadata?: boolean;
  /** Rasterise SVG originals (default: refused, see {@link ImageProcessor.makeVariants}). */
  allowSvg?: boolean;
  /** The model and field, to name them in errors. */
  where?: FileFieldRef;
}

/** Options of an {@link ImageProcessor}. */
export interface ImageProcessorOptions {
  /** How many sharp pipelines may run at once across all calls (default: `os.availableParallelism()`). */
  concurrency?: number;
  /** Loads sharp (default `import("sharp")`), see {@link SharpLoader}. */
  sharp?: SharpLoader;
}

/** Types whose bytes sharp's prebuilt binaries decode: what variants are made from (SVG aside). */
export const RASTER_TYPES: ReadonlySet<string> = new Set([
  "image/png",
  "image/jpeg",
  "image/gif",
  "image/webp",
  "image/avif",
  "image/heif",
  "image/tiff",
]);
// Not HEIC: sharp's prebuilt binaries decode AV1 (AVIF) but not HEVC, so a phone's HEIC would
// otherwise be called corrupt. (A generic `image/heif` may be either; sharp says which.)
const RASTER_NAMES = "PNG, JPEG, GIF, WebP, AVIF, HEIF or TIFF";

/** What an SVG may sniff as: the sniffer reports an SVG whose root is past its first 4 KiB as XML or text. */
const SVG_SNIFFS = new Set(["image/svg+xml", "text/xml", "text/plain"]);

/** sharp's message about its output: the encoder's fault (or the spec's), never the original's. */
const ENCODER_ERROR = /Processed image|save/i;
const PIXEL_LIMIT_ERROR = /exceeds pixel limit/i;

/**
 * Makes image variants with sharp, no more than `concurrency` pipelines at a time across all
 * calls on the instance. sharp is loaded on first use (a missing sharp is a `CONFIGURATION`
 * error then); one instance is meant to be shared by everything that writes image fields.
 */
export class ImageProcessor {
  /** The most sharp pipelines that run at once. */
  readonly concurrency: number;
  private readonly slots: Semaphore;
  private readonly loader: SharpLoader;
  /** The loaded module; a failed load is not kept, so a later call tries again. */
  private loading: Promise<Sharp> | undefined;

  constructor(options: ImageProcessorOptions = {}) {
    const concurrency = options.concurrency ?? availableParallelism();
    if (!Number.isInteger(concurrency) || concurrency < 1) {
      throw new PrismaS3FilesError(
        "CONFIGURATION",
        `ImageProcessor concurrency must be an integer ≥ 1, got ${concurrency}`,
      );
    }
    this.concurrency = concurrency;
    this.slots = new Semaphore(concurrency);
    this.loader = options.sharp ?? importSharp;
  }

  /** sharp, loaded once per processor. */
  private sharp(): Promise<Sharp> {
    if (!this.loading) {
      const loading = loadSharpFunction(this.loader);
      this.loading = loading;
      loading.catch(() => {
        if (this.loading === loading) this.loading = undefined;
      });
    }
    return this.loading;
  }

  /**
   * Makes `variants` of the image `input`, in their order. Refuses, with a
   * {@link FileValidationError} and before sharp sees a byte:
   *
   * - an image whose header declares more than `maxPixels` pixels: `too_many_pixels` (the same
   *   error `checkPixels` gives at upload); headers the reader does not know (TIFF, SVG) are read
   *   by sharp's header-only `metadata()` first;
   * - SVG unless `allowSvg`: `type_not_accepted` (rendering SVG runs an XML and CSS engine on the
   *   upload and can reference other resources; a field must opt in);
   * - content that is not a PNG, JPEG, GIF, WebP, AVIF/HEIF or TIFF image: `type_not_accepted`,
   *   or `corrupt_image` when it is declared as one of them but its bytes show no format.
   *
   * Bytes that show an image format and do not decode (truncated, garbage after the signature)
   * are `corrupt_image`. Each variant has the EXIF orientation applied and is resized with its
   * spec's fit (`contain` pads with transparency, black in JPEG) and encoded in its format at its
   * quality; metadata is stripped and colours converted to sRGB unless `keepMetadata`. Only the
   * first frame of an animated image is used.
   */
  async makeVariants(
    input: Uint8Array,
    variants: readonly VariantRequest[],
    options: MakeVariantsOptions,
  ): Promise<MadeVariant[]> {
    const where = options.where ?? {};
    const { maxPixels } = options;
    if (!(maxPixels > 0)) {
      throw new PrismaS3FilesError("CONFIGURATION", sentence(where, `maxPixels must be positive, got ${maxPixels}`));
    }
    const declared = mimeEssence(options.contentType);
    const detected = sniffContentType(input);
    const kind = this.classify(declared, detected, options.allowSvg === true, where);

    // The header's size, before sharp is even loaded: a bomb is refused for free.
    let dimensions: ImageDimensions | undefined =
      kind === "raster" ? readImageDimensions(input.subarray(0, IMAGE_HEAD_BYTES), detected) : undefined;
    checkPixels(dimensions, maxPixels, where);
    if (variants.length === 0) return [];

    const sharp = await this.sharp();
    const fail = (error: unknown) => decodeFailure(error, { where, maxPixels, declared, detected });
    // Second guard: sharp refuses to decode more pixels than this (it counts the stored, unrotated size).
    const limitInputPixels = Number.isFinite(maxPixels) ? Math.max(1, Math.floor(maxPixels)) : true;
    const inputOptions = { failOn: "warning", limitInputPixels, autoOrient: true } as const;

    if (dimensions === undefined) {
      // TIFF, SVG or a header past the first 64 KiB: sharp reads the header (no pixel is decoded),
      // without its pixel limit, so that a bomb is refused with the size it declares.
      const headerOptions = { ...inputOptions, limitInputPixels: false };
      const metadata = await this.slots
        .run(() => sharp(input, headerOptions).metadata())
        .catch((error) => {
          throw fail(error);
        });
      dimensions = metadata.autoOrient ?? { width: metadata.width, height: metadata.height };
      checkPixels(dimensions, maxPixels, where);
    }

    // Each variant is its own pipeline: sharp decodes JPEG and WebP already shrunk to about the
    // output's size, which costs less than one full-size decode shared by all (measured in bench/images).
    const settled = await Promise.allSettled(
      variants.map(({ name, spec }) =>
        this.slots.run(async (): Promise<MadeVariant> => {
          let pipeline = sharp(input, inputOptions).resize(spec.width, spec.height, {
            fit: spec.fit,
            background: { r: 0, g: 0, b: 0, alpha: 0 },
            withoutEnlargement: spec.noEnlarge === true,
          });
          if (options.keepMetadata === true) pipeline = pipeline.keepMetadata();
          pipeline = pipeline.toFormat(spec.format, spec.quality === undefined ? {} : { quality: spec.quality });
          const { data, info } = await pipeline.toBuffer({ resolveWithObject: true });
          return {
            name,
            spec,
            bytes: data,
            contentType: variantContentType(spec.format),
            width: info.width,
            height: info.height,
          };
        }),
      ),
    );
    // Every pipeline has ended before the call returns or throws: nothing keeps decoding behind it.
    const failed = settled.find((r) => r.status === "rejected");
    if (failed) throw fail(failed.reason);
    return settled.map((r) => (r as PromiseFulfilledResult<MadeVariant>).value);
  }

  /** Which path the bytes take: a raster image or an SVG to rasterise; throws for anything else. */
  private classify(
    declared: string,
    detected: string | undefined,
    allowSvg: boolean,
    where: FileFieldRef,
  ): "raster" | "svg" {
    const details = { ...where, declaredType: declared, detectedType: detected };
    if (detected !== undefined && RASTER_TYPES.has(detected)) return "raster";
    const svg =
      detected === "image/svg+xml" ||
      (declared === "image/svg+xml" && (detected === undefined || SVG_SNIFFS.has(detected)));
    if (svg) {
      if (allowSvg) return "svg";
      const text =
        "SVG images are not rasterised into variants unless the field allows SVG (allowSvg): " +
        "rendering one runs an XML and CSS engine on the upload and can reference other resources";
      throw new FileValidationError("type_not_accepted", sentence(where, text), details);
    }
    if (detected === undefined && RASTER_TYPES.has(declared)) {
      const text = `image could not be decoded: declared ${declared}, its bytes show no image format`;
      throw new FileValidationError("corrupt_image", sentence(where, text), details);
    }
    const what = detected ?? (declared || "content of an unknown type");
    const text = `variants are made from ${RASTER_NAMES} images, not from ${what}`;
    throw new FileValidationError("type_not_accepted", sentence(where, text), details);
  }
}

/**
 * The validation error a sharp failure on the original stands for: its pixel limit
 * (`too_many_pixels`) or an undecodable image (`corrupt_image`, sharp's error as `cause`). An
 * encoder's error is about the output, not the upload: it is returned unchanged.
 */
function decodeFailure(
  error: unknown,
  context: { where: FileFieldRef; maxPixels: number; declared: string; detected: string | undefined },
): unknown {
  if (error instanceof PrismaS3FilesError) return error;
  const message = error instanceof Error ? error.message : String(error);
  const { where, maxPixels, declared, detected } = context;
  if (PIXEL_LIMIT_ERROR.test(message)) {
    const text = `image is larger than the ${formatPixels(maxPixels)} allowed (found while decoding it)`;
    return new FileValidationError("too_many_pixels", sentence(where, text), {
      ...where,
      limit: maxPixels,
      cause: error,
    });
  }
  if (ENCODER_ERROR.test(message)) return error;
  // sharp's message names the decoder and what it found (no data of ours); it is cut short anyway.
  const why = message.trim().replace(/:$/, "").slice(0, 200);
  const text = `image could not be decoded (${detected ?? declared}): ${why}`;
  return new FileValidationError("corrupt_image", sentence(where, text), {
    ...where,
    declaredType: declared,
    detectedType: detected,
    cause: error,
  });
}
