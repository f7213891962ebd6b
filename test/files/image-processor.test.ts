/**
 * `ImageProcessor` against the real sharp: sizes per fit, formats, orientation and metadata,
 * the refusals (bombs before decode, corrupt images, SVG), the concurrency bound, a missing sharp.
 */
import sharp from "sharp";
import { describe, expect, it } from "vitest";
import { PrismaS3FilesError } from "../../src/errors.js";
import { ImageProcessor, loadSharp, type SharpLoader } from "../../src/files/image-processor.js";
import { sniffContentType } from "../../src/files/sniff.js";
import { FileValidationError } from "../../src/files/validation.js";
import { parseVariantSpec, type VariantSpec } from "../../src/files/variants.js";
import { pngHeader } from "./images.js";

function spec(text: string): VariantSpec {
  const parsed = parseVariantSpec(text);
  if ("error" in parsed) throw new Error(parsed.error);
  return parsed;
}

const where = { model: "User", field: "avatar" };
const MP = 40_000_000;

/** A `width` × `height` PNG whose left half is red and right half blue. */
async function twoTone(width: number, height: number, format: "png" | "jpeg" = "png"): Promise<Buffer> {
  const half = Math.floor(width / 2);
  return sharp({ create: { width, height, channels: 3, background: "#0000ff" } })
    .composite([
      {
        input: await sharp({ create: { width: half, height, channels: 3, background: "#ff0000" } })
          .png()
          .toBuffer(),
        left: 0,
        top: 0,
      },
    ])
    .toFormat(format)
    .toBuffer();
}

/** The mean colour of a 4 × 4 square at (x, y) of an image. */
async function colourAt(image: Uint8Array, x: number, y: number): Promise<number[]> {
  const { data } = await sharp(image)
    .extract({ left: x, top: y, width: 4, height: 4 })
    .removeAlpha()
    .raw()
    .toBuffer({ resolveWithObject: true });
  const sums = [0, 0, 0];
  for (let i = 0; i < data.length; i++) sums[i % 3]! += data[i]!;
  return sums.map((sum) => Math.round(sum / 16));
}

/** A `width` × `height` JPEG of deterministic noise (so that its quality shows in its size). */
function noisy(width: number, height: number): Promise<Buffer> {
  const raw = Buffer.alloc(width * height * 3);
  let s = 0x2545f491;
  for (let i = 0; i < raw.length; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    raw[i] = s & 0xff;
  }
  return sharp(raw, { raw: { width, height, channels: 3 } })
    .jpeg({ quality: 95 })
    .toBuffer();
}

/** `red` or `blue` when that channel is near full and the others near zero (JPEG shifts colours a little). */
function dominant([r = 0, g = 0, b = 0]: number[]): string {
  if (r > 220 && g < 40 && b < 40) return "red";
  if (b > 220 && r < 40 && g < 40) return "blue";
  return `rgb(${r}, ${g}, ${b})`;
}

/** A loader of the real sharp that counts loads, instances and pipelines in flight (toBuffer, metadata). */
function instrumentedSharp() {
  const state = { loads: 0, instances: 0, inFlight: 0, maxInFlight: 0 };
  const loader: SharpLoader = async () => {
    state.loads++;
    const real = (await import("sharp")).default;
    return (...args: Parameters<typeof real>) => {
      state.instances++;
      const instance = real(...args) as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>;
      for (const method of ["toBuffer", "metadata"]) {
        const original = instance[method]!.bind(instance);
        instance[method] = async (...a: unknown[]) => {
          state.inFlight++;
          state.maxInFlight = Math.max(state.maxInFlight, state.inFlight);
          try {
            return await original(...a);
          } finally {
            state.inFlight--;
          }
        };
      }
      return instance;
    };
  };
  return { state, loader };
}

async function refusal(promise: Promise<unknown>): Promise<FileValidationError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(FileValidationError);
  return error as FileValidationError;
}

describe("ImageProcessor.makeVariants", () => {
  const processor = new ImageProcessor();

  it("sizes each variant by its fit (sharp's meaning)", async () => {
    const input = await twoTone(400, 300);
    const made = await processor.makeVariants(
      input,
      [
        { name: "cover", spec: spec("cover 100x100 png") },
        { name: "contain", spec: spec("contain 100x100 png") },
        { name: "fill", spec: spec("fill 100x50 png") },
        { name: "inside", spec: spec("inside 100x100 png") },
        { name: "outside", spec: spec("outside 100x100 png") },
      ],
      { maxPixels: MP, contentType: "image/png" },
    );
    expect(made.map(({ name, width, height }) => [name, width, height])).toEqual([
      ["cover", 100, 100],
      ["contain", 100, 100],
      ["fill", 100, 50],
      ["inside", 100, 75],
      ["outside", 133, 100],
    ]);
    for (const v of made) {
      const meta = await sharp(v.bytes).metadata();
      expect([v.name, meta.width, meta.height]).toEqual([v.name, v.width, v.height]);
    }
    // contain pads with transparency: the corner of a 4:3 image in a square box is see-through.
    const contain = made.find((v) => v.name === "contain")!;
    const { data } = await sharp(contain.bytes).ensureAlpha().raw().toBuffer({ resolveWithObject: true });
    expect(data[3]).toBe(0);
    // cover crops the centre: both halves survive, red left and blue right.
    const cover = made.find((v) => v.name === "cover")!;
    expect(dominant(await colourAt(cover.bytes, 2, 48))).toBe("red");
    expect(dominant(await colourAt(cover.bytes, 94, 48))).toBe("blue");
  });

  it("noenlarge keeps an image smaller than the box at its size; without it, sharp enlarges it", async () => {
    const input = await twoTone(120, 90);
    const made = await processor.makeVariants(
      input,
      [
        { name: "inside", spec: spec("inside 640x640 png") },
        { name: "insideKept", spec: spec("inside 640x640 png noenlarge") },
        { name: "coverKept", spec: spec("cover 640x640 png noenlarge") },
        { name: "shrunk", spec: spec("inside 60x60 png noenlarge") },
      ],
      { maxPixels: MP, contentType: "image/png" },
    );
    expect(made.map(({ name, width, height }) => [name, width, height])).toEqual([
      ["inside", 640, 480],
      ["insideKept", 120, 90],
      ["coverKept", 120, 90],
      ["shrunk", 60, 45], // larger than the box: reduced as without the token
    ]);
  });

  it("encodes each declared format, sniffing as its content type, with the quality asked", async () => {
    const input = await noisy(300, 200);
    const made = await processor.makeVariants(
      input,
      [
        { name: "w", spec: spec("cover 64x64 webp") },
        { name: "a", spec: spec("cover 64x64 avif") },
        { name: "j", spec: spec("cover 64x64 jpeg") },
        { name: "p", spec: spec("cover 64x64 png") },
        { name: "low", spec: spec("inside 200x200 jpeg q5") },
        { name: "high", spec: spec("inside 200x200 jpeg q100") },
      ],
      { maxPixels: MP, contentType: "image/jpeg" },
    );
    expect(made.map((v) => v.contentType)).toEqual([
      "image/webp",
      "image/avif",
      "image/jpeg",
      "image/png",
      "image/jpeg",
      "image/jpeg",
    ]);
    for (const v of made) expect(sniffContentType(v.bytes)).toBe(v.contentType);
    expect((await sharp(made[1]!.bytes).metadata()).format).toBe("heif");
    const [low, high] = [made[4]!.bytes.length, made[5]!.bytes.length];
    expect(low * 2).toBeLessThan(high);
  });

  it("applies EXIF orientation 6 (w/h swapped, pixels turned) and strips EXIF and GPS; keepMetadata keeps them", async () => {
    // Stored 300 × 200, red left; orientation 6 displays it turned a quarter clockwise: 200 × 300, red on top.
    const input = await sharp(await twoTone(300, 200))
      .jpeg()
      .withExif({
        IFD0: { ImageDescription: "gps-marker-ifd0" },
        IFD3: { GPSLatitudeRef: "N", GPSLatitude: "51/1 30/1 0/1", GPSLongitudeRef: "W", GPSLongitude: "0/1 7/1 0/1" },
      })
      .withMetadata({ orientation: 6 })
      .toBuffer();
    const before = await sharp(input).metadata();
    expect(before.orientation).toBe(6);
    expect([before.width, before.height]).toEqual([300, 200]);
    expect(before.exif?.includes("gps-marker-ifd0")).toBe(true);
    const gpsTag = (exif: Buffer | undefined) =>
      exif !== undefined && (exif.includes(Buffer.from([0x88, 0x25])) || exif.includes(Buffer.from([0x25, 0x88])));
    expect(gpsTag(before.exif)).toBe(true);

    const [stripped] = await processor.makeVariants(input, [{ name: "v", spec: spec("inside 150x150 jpeg") }], {
      maxPixels: MP,
      contentType: "image/jpeg",
    });
    expect([stripped!.width, stripped!.height]).toEqual([100, 150]);
    const after = await sharp(stripped!.bytes).metadata();
    expect([after.width, after.height]).toEqual([100, 150]);
    expect(after.exif).toBeUndefined();
    expect(after.orientation).toBeUndefined();
    expect(after.xmp).toBeUndefined();
    expect(after.icc).toBeUndefined();
    expect(Buffer.from(stripped!.bytes).includes("gps-marker-ifd0")).toBe(false);
    expect(dominant(await colourAt(stripped!.bytes, 48, 10))).toBe("red");
    expect(dominant(await colourAt(stripped!.bytes, 48, 136))).toBe("blue");

    const [kept] = await processor.makeVariants(input, [{ name: "v", spec: spec("inside 150x150 jpeg") }], {
      maxPixels: MP,
      contentType: "image/jpeg",
      keepMetadata: true,
    });
    const keptMeta = await sharp(kept!.bytes).metadata();
    expect([keptMeta.width, keptMeta.height]).toEqual([100, 150]);
    expect(keptMeta.orientation ?? 1).toBe(1); // applied once, not again by a viewer
    expect(keptMeta.exif?.includes("gps-marker-ifd0")).toBe(true);
    expect(gpsTag(keptMeta.exif)).toBe(true);
  });

  it("strips the colour profile after converting to sRGB, so colours survive (Display P3 input)", async () => {
    // sRGB (200, 100, 50) stored as Display P3 pixels (about 187, 105, 62) with the P3 profile attached.
    const input = await sharp({ create: { width: 64, height: 64, channels: 3, background: { r: 200, g: 100, b: 50 } } })
      .withIccProfile("p3")
      .png()
      .toBuffer();
    expect((await sharp(input).metadata()).icc).toBeDefined();
    const [made] = await processor.makeVariants(input, [{ name: "v", spec: spec("fill 16x16 png") }], {
      maxPixels: MP,
      contentType: "image/png",
    });
    expect((await sharp(made!.bytes).metadata()).icc).toBeUndefined();
    const [r = 0, g = 0, b = 0] = await colourAt(made!.bytes, 4, 4);
    // Within rounding of the sRGB colour; the P3 numbers read as sRGB would be off by 13 in red.
    expect(Math.max(Math.abs(r - 200), Math.abs(g - 100), Math.abs(b - 50))).toBeLessThanOrEqual(3);
  });

  it("refuses a 20,000 × 20,000 PNG from its header, without loading or calling sharp, in under 200 ms", async () => {
    const { state, loader } = instrumentedSharp();
    const guarded = new ImageProcessor({ sharp: loader });
    const bomb = pngHeader(20_000, 20_000, 4096);
    const start = performance.now();
    const e = await refusal(
      guarded.makeVariants(bomb, [{ name: "thumb", spec: spec("cover 128x128 webp") }], {
        maxPixels: MP,
        contentType: "image/png",
        where,
      }),
    );
    expect(performance.now() - start).toBeLessThan(200);
    expect(e).toMatchObject({
      code: "FILE_VALIDATION",
      reason: "too_many_pixels",
      model: "User",
      field: "avatar",
      limit: MP,
      width: 20_000,
      height: 20_000,
    });
    expect(e.message).toMatch(/^User\.avatar: image is 20000 × 20000 pixels \(400 MP\), more than the 40 MP allowed/);
    expect(state).toMatchObject({ loads: 0, instances: 0 });
  });

  it("checks pixels from sharp's header read when its own reader finds no header (JPEG frame header past 64 KiB)", async () => {
    const jpeg = await twoTone(300, 200, "jpeg");
    const app2 = Buffer.alloc(60_004, 0x20);
    app2.writeUInt16BE(0xffe2, 0);
    app2.writeUInt16BE(60_002, 2);
    const padded = Buffer.concat([jpeg.subarray(0, 2), app2, app2, jpeg.subarray(2)]);
    const { state, loader } = instrumentedSharp();
    const guarded = new ImageProcessor({ sharp: loader });
    const e = await refusal(
      guarded.makeVariants(padded, [{ name: "thumb", spec: spec("cover 16x16 png") }], {
        maxPixels: 50_000,
        contentType: "image/jpeg",
      }),
    );
    expect(e).toMatchObject({ reason: "too_many_pixels", width: 300, height: 200, limit: 50_000 });
    expect(state.instances).toBe(1); // the metadata read only: no pipeline
    const [ok] = await guarded.makeVariants(padded, [{ name: "t", spec: spec("cover 16x16 png") }], {
      maxPixels: 60_000,
      contentType: "image/jpeg",
    });
    expect([ok!.width, ok!.height]).toEqual([16, 16]);
  });

  it.each([
    ["truncated", (png: Buffer) => png.subarray(0, Math.floor(png.length / 2))],
    [
      "garbage after the signature and IHDR",
      (png: Buffer) => Buffer.concat([png.subarray(0, 33), Buffer.alloc(600, 0x41)]),
    ],
    ["a header and nothing else", (png: Buffer) => png.subarray(0, 33)],
  ])("refuses a PNG that is %s as corrupt_image, with sharp's error as cause", async (_, damage) => {
    const png = await sharp({ create: { width: 300, height: 200, channels: 3, background: "#123456" } })
      .png({ compressionLevel: 0 })
      .toBuffer();
    const damaged = damage(png);
    expect(sniffContentType(damaged)).toBe("image/png");
    const e = await refusal(
      processor.makeVariants(damaged, [{ name: "thumb", spec: spec("cover 64x64 webp") }], {
        maxPixels: MP,
        contentType: "image/png",
        where,
      }),
    );
    expect(e).toMatchObject({
      code: "FILE_VALIDATION",
      reason: "corrupt_image",
      field: "avatar",
      detectedType: "image/png",
    });
    expect(e.message).toMatch(/^User\.avatar: image could not be decoded \(image\/png\): /);
    expect(e.cause).toBeInstanceOf(Error);
  });

  it("refuses bytes declared as PNG that show no format (corrupt_image) and non-images (type_not_accepted)", async () => {
    const variants = [{ name: "thumb", spec: spec("cover 64x64 webp") }];
    const noise = Buffer.from(Array.from({ length: 512 }, (_, i) => (i * 7 + 3) & 0xff));
    expect(
      await refusal(processor.makeVariants(noise, variants, { maxPixels: MP, contentType: "image/png" })),
    ).toMatchObject({ reason: "corrupt_image", declaredType: "image/png" });
    const pdf = Buffer.from("%PDF-1.7\n%âãÏÓ\n1 0 obj\n", "latin1");
    const e = await refusal(processor.makeVariants(pdf, variants, { maxPixels: MP, contentType: "image/png" }));
    expect(e).toMatchObject({ reason: "type_not_accepted", detectedType: "application/pdf" });
    expect(e.message).toContain("not from application/pdf");
    // HEVC-coded HEIC: sharp's prebuilt binaries cannot decode it, so it is a type, not a corruption.
    const heic = Buffer.concat([Buffer.from([0, 0, 0, 24]), Buffer.from("ftypheic\0\0\0\0mif1heic", "latin1")]);
    expect(sniffContentType(heic)).toBe("image/heic");
    expect(
      await refusal(processor.makeVariants(heic, variants, { maxPixels: MP, contentType: "image/heic" })),
    ).toMatchObject({ reason: "type_not_accepted", detectedType: "image/heic" });
  });

  const svg = Buffer.from(
    '<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="120" height="60"><rect width="120" height="60" fill="#f00"/></svg>',
  );

  it.each([
    ["image/svg+xml", svg],
    ["image/png", svg], // the content decides
    [
      "image/svg+xml",
      Buffer.concat([Buffer.from(`<?xml version="1.0"?><!-- ${"x".repeat(5000)} -->`), svg.subarray(21)]),
    ],
  ])(
    "never rasterises SVG (declared %s) unless allowed: type_not_accepted, sharp not called",
    async (declared, bytes) => {
      const { state, loader } = instrumentedSharp();
      const guarded = new ImageProcessor({ sharp: loader });
      const e = await refusal(
        guarded.makeVariants(bytes, [{ name: "thumb", spec: spec("cover 64x64 png") }], {
          maxPixels: MP,
          contentType: declared,
          where,
        }),
      );
      expect(e).toMatchObject({ reason: "type_not_accepted", field: "avatar" });
      expect(e.message).toContain("SVG images are not rasterised into variants unless the field allows SVG (allowSvg)");
      expect(state.instances).toBe(0);
    },
  );

  it("rasterises SVG when allowed, with its size checked first", async () => {
    const options = { maxPixels: MP, contentType: "image/svg+xml", allowSvg: true };
    const [png] = await processor.makeVariants(svg, [{ name: "p", spec: spec("inside 60x60 png") }], options);
    expect([png!.width, png!.height, png!.contentType]).toEqual([60, 30, "image/png"]);
    expect(sniffContentType(png!.bytes)).toBe("image/png");
    expect(
      await refusal(
        processor.makeVariants(svg, [{ name: "p", spec: spec("inside 60x60 png") }], { ...options, maxPixels: 7_000 }),
      ),
    ).toMatchObject({ reason: "too_many_pixels", width: 120, height: 60 });
  });

  it("returns nothing for no variants, after the checks", async () => {
    expect(
      await processor.makeVariants(await twoTone(10, 10), [], { maxPixels: MP, contentType: "image/png" }),
    ).toEqual([]);
    await refusal(processor.makeVariants(pngHeader(9_000, 9_000), [], { maxPixels: MP, contentType: "image/png" }));
  });
});

describe("ImageProcessor concurrency", () => {
  it.each([1, 2, 3])("never runs more than %i sharp pipelines at once across calls", async (bound) => {
    const { state, loader } = instrumentedSharp();
    const processor = new ImageProcessor({ concurrency: bound, sharp: loader });
    expect(processor.concurrency).toBe(bound);
    const input = await twoTone(800, 600, "jpeg");
    const variants = ["cover 64x64 webp", "inside 200x200 png", "fill 50x80 jpeg"].map((s, i) => ({
      name: `v${i}`,
      spec: spec(s),
    }));
    const calls = Array.from({ length: 5 }, () =>
      processor.makeVariants(input, variants, { maxPixels: MP, contentType: "image/jpeg" }),
    );
    const results = await Promise.all(calls);
    expect(results.flat()).toHaveLength(15);
    expect(state.loads).toBe(1); // loaded once per processor
    expect(state.instances).toBe(15);
    // Reached (15 pipelines were queued at once) and never passed.
    expect(state.maxInFlight).toBe(bound);
    expect(state.inFlight).toBe(0);
  });

  it("defaults to the machine's parallelism and refuses a bad bound", async () => {
    const { availableParallelism } = await import("node:os");
    expect(new ImageProcessor().concurrency).toBe(availableParallelism());
    for (const concurrency of [0, -1, 1.5, Number.NaN]) {
      expect(() => new ImageProcessor({ concurrency })).toThrow(
        expect.objectContaining({ code: "CONFIGURATION", message: expect.stringContaining("concurrency") }),
      );
    }
  });
});

describe("a missing sharp", () => {
  const missing = Object.assign(new Error("Cannot find package 'sharp' imported from /app/x.js"), {
    code: "ERR_MODULE_NOT_FOUND",
  });

  it("is a CONFIGURATION error naming the package, with the loader's error as cause", async () => {
    const e = await loadSharp(() => Promise.reject(missing)).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(PrismaS3FilesError);
    expect(e).toMatchObject({ code: "CONFIGURATION", cause: missing });
    expect((e as Error).message).toContain("npm install sharp");
    expect((e as Error).message).toContain("optional package sharp");
  });

  it("fails makeVariants at first use, and a later call loads again", async () => {
    let attempts = 0;
    const processor = new ImageProcessor({
      sharp: async () => {
        attempts++;
        if (attempts === 1) throw missing;
        return import("sharp");
      },
    });
    const args = [
      await twoTone(40, 40),
      [{ name: "t", spec: spec("cover 8x8 png") }],
      { maxPixels: MP, contentType: "image/png" },
    ] as const;
    await expect(processor.makeVariants(...args)).rejects.toMatchObject({ code: "CONFIGURATION" });
    const [made] = await processor.makeVariants(...args);
    expect([made!.width, made!.height]).toEqual([8, 8]);
    expect(attempts).toBe(2);
  });

  it("refuses what is not sharp's function; the default loader loads the real one", async () => {
    await expect(loadSharp(async () => ({ default: 42 }))).rejects.toMatchObject({ code: "CONFIGURATION" });
    expect(await loadSharp()).toBe(sharp);
  });
});
