import { describe, expect, it } from "vitest";
import { readImageDimensions } from "../../src/files/image-size.js";
import { sniffContentType } from "../../src/files/sniff.js";
import { checkPixels, DEFAULT_MAX_PIXELS, FileValidationError } from "../../src/files/validation.js";
import { png } from "../demo/png.js";
import { PNG } from "../prisma/direct-upload-support.js";
import { avifHeader, bmpHeader, gifHeader, jpegHeader, pngHeader, webpHeader } from "./images.js";

describe("readImageDimensions", () => {
  it.each([
    ["PNG", pngHeader(640, 480), "image/png", { width: 640, height: 480 }],
    ["a 20,000 × 20,000 PNG header", pngHeader(20_000, 20_000), "image/png", { width: 20_000, height: 20_000 }],
    ["GIF", gifHeader(320, 200), "image/gif", { width: 320, height: 200 }],
    ["WebP lossy (VP8)", webpHeader("VP8 ", 1024, 768), "image/webp", { width: 1024, height: 768 }],
    ["WebP lossless (VP8L)", webpHeader("VP8L", 16_383, 3), "image/webp", { width: 16_383, height: 3 }],
    ["WebP extended (VP8X)", webpHeader("VP8X", 16_777_216, 2), "image/webp", { width: 16_777_216, height: 2 }],
    ["BMP", bmpHeader(300, 100), "image/bmp", { width: 300, height: 100 }],
    ["BMP top-down (negative height)", bmpHeader(300, -100), "image/bmp", { width: 300, height: 100 }],
    ["JPEG (SOF0)", jpegHeader(4000, 3000), "image/jpeg", { width: 4000, height: 3000 }],
    ["JPEG progressive (SOF2)", jpegHeader(800, 600, { sof: 0xc2 }), "image/jpeg", { width: 800, height: 600 }],
    [
      "JPEG, EXIF orientation 1 (upright)",
      jpegHeader(4000, 3000, { orientation: 1 }),
      "image/jpeg",
      { width: 4000, height: 3000 },
    ],
    [
      "JPEG, EXIF orientation 3 (half turn): not swapped",
      jpegHeader(4000, 3000, { orientation: 3 }),
      "image/jpeg",
      { width: 4000, height: 3000 },
    ],
    [
      "JPEG, EXIF orientation 6 (quarter turn): reported as displayed",
      jpegHeader(4000, 3000, { orientation: 6 }),
      "image/jpeg",
      { width: 3000, height: 4000 },
    ],
    [
      "JPEG, big-endian EXIF orientation 8",
      jpegHeader(4000, 3000, { orientation: 8, bigEndianExif: true }),
      "image/jpeg",
      { width: 3000, height: 4000 },
    ],
    [
      "JPEG whose frame header follows 40 KiB of profile",
      jpegHeader(1200, 900, { padding: 40_000 }),
      "image/jpeg",
      { width: 1200, height: 900 },
    ],
    [
      "AVIF: the primary item's ispe, not the thumbnail's",
      avifHeader(1920, 1080),
      "image/avif",
      { width: 1920, height: 1080 },
    ],
    [
      "AVIF turned a quarter (irot)",
      avifHeader(1920, 1080, { rotate: true }),
      "image/avif",
      { width: 1080, height: 1920 },
    ],
    [
      "AVIF without pitm: the largest ispe",
      avifHeader(1920, 1080, { pitm: false }),
      "image/avif",
      { width: 1920, height: 1080 },
    ],
  ])("%s", (_, bytes, type, expected) => {
    expect(sniffContentType(bytes)).toBe(type);
    expect(readImageDimensions(bytes)).toEqual(expected);
    expect(readImageDimensions(bytes, type)).toEqual(expected);
  });

  it("reads real PNGs", () => {
    expect(readImageDimensions(PNG)).toEqual({ width: 1, height: 1 });
    expect(readImageDimensions(png(37, 5))).toEqual({ width: 37, height: 5 });
  });

  it("reads nothing from types it does not know, text or empty input", () => {
    expect(readImageDimensions(new Uint8Array(0))).toBeUndefined();
    expect(readImageDimensions(Buffer.from("%PDF-1.7\n"))).toBeUndefined();
    expect(readImageDimensions(Buffer.from('<svg width="99999" height="99999"/>'))).toBeUndefined();
    expect(readImageDimensions(Buffer.from([0x49, 0x49, 0x2a, 0x00, 8, 0, 0, 0]))).toBeUndefined(); // TIFF
  });

  describe("corrupt or truncated headers: no dimensions, no exception", () => {
    const ihdrRenamed = pngHeader(100, 100);
    ihdrRenamed.write("IHDX", 12, "latin1");
    const ihdrShort = pngHeader(100, 100);
    ihdrShort.writeUInt32BE(12, 8);
    const jpegNoFrame = Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xda, 0x00, 0x04, 0, 0]), Buffer.alloc(32)]);
    const jpegGarbage = Buffer.concat([
      Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10]),
      Buffer.alloc(14),
      Buffer.from("garbage"),
    ]);
    const jpegZeroLength = Buffer.from([0xff, 0xd8, 0xff, 0xe1, 0x00, 0x00, 0xff, 0xc0]);
    const avifNoMeta = avifHeader(100, 100).subarray(0, 28);
    const avifLoop = Buffer.concat([avifHeader(10, 10).subarray(0, 28), Buffer.from([0, 0, 0, 0])]);
    it.each([
      ["PNG signature alone", pngHeader(1, 1).subarray(0, 8)],
      ["PNG cut inside IHDR", pngHeader(100, 100).subarray(0, 20)],
      ["PNG whose first chunk is not IHDR", ihdrRenamed],
      ["PNG whose IHDR has the wrong length", ihdrShort],
      ["PNG with a zero width", pngHeader(0, 100)],
      ["PNG with a width over 2^31 - 1", pngHeader(0x80000000, 1)],
      ["GIF with a zero height", gifHeader(10, 0)],
      ["GIF cut short", gifHeader(10, 10).subarray(0, 8)],
      ["BMP with a zero width", bmpHeader(0, 10)],
      ["JPEG whose scan starts before a frame header", jpegNoFrame],
      ["JPEG with bytes between segments", jpegGarbage],
      ["JPEG with a segment length under 2", jpegZeroLength],
      ["JPEG cut inside its frame header", jpegHeader(100, 100).subarray(0, 27)],
      ["JPEG with a zero height (defined later by DNL)", jpegHeader(100, 0)],
      [
        "JPEG whose frame header lies past the bytes given",
        jpegHeader(100, 100, { padding: 70_000 }).subarray(0, 65_536),
      ],
      ["WebP VP8 without its start code", webpHeader("VP8 ", 10, 10).fill(0, 23, 26)],
      ["WebP VP8L without its signature byte", webpHeader("VP8L", 10, 10).fill(0, 20, 21)],
      ["AVIF without a meta box", avifNoMeta],
      ["AVIF ending in a zero-size box", avifLoop],
    ])("%s", (_, bytes) => {
      expect(() => readImageDimensions(bytes)).not.toThrow();
      expect(readImageDimensions(bytes)).toBeUndefined();
    });

    it("random bytes after each signature never throw", () => {
      const signatures = [
        pngHeader(1, 1),
        jpegHeader(1, 1),
        gifHeader(1, 1),
        webpHeader("VP8X", 1, 1),
        avifHeader(1, 1),
        bmpHeader(1, 1),
      ];
      let seed = 42;
      const random = () => {
        seed = (seed * 1103515245 + 12345) & 0x7fffffff;
        return seed & 0xff;
      };
      for (const signature of signatures) {
        for (let round = 0; round < 200; round++) {
          const bytes = Buffer.from(signature);
          // Keep the first 12 bytes (the signature), scramble some of the rest.
          for (let i = 0; i < 8; i++) bytes[12 + ((random() * 7 + random()) % (bytes.length - 12))] = random();
          const result = readImageDimensions(bytes);
          if (result !== undefined) {
            expect(result.width).toBeGreaterThan(0);
            expect(result.height).toBeGreaterThan(0);
          }
        }
      }
    });
  });
});

describe("checkPixels", () => {
  it("refuses more pixels than the limit with too_many_pixels, naming the field and the size", () => {
    let error: unknown;
    try {
      checkPixels({ width: 20_000, height: 20_000 }, DEFAULT_MAX_PIXELS, { model: "User", field: "avatar" });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(FileValidationError);
    const e = error as FileValidationError;
    expect(e.code).toBe("FILE_VALIDATION");
    expect(e.reason).toBe("too_many_pixels");
    expect(e.limit).toBe(40_000_000);
    expect([e.width, e.height]).toEqual([20_000, 20_000]);
    expect(e.message).toBe("User.avatar: image is 20000 × 20000 pixels (400 MP), more than the 40 MP allowed");
  });

  it("accepts the limit exactly, and anything without dimensions", () => {
    expect(() => checkPixels({ width: 8000, height: 5000 }, DEFAULT_MAX_PIXELS)).not.toThrow();
    expect(() => checkPixels({ width: 8000, height: 5001 }, DEFAULT_MAX_PIXELS)).toThrow(FileValidationError);
    expect(() => checkPixels(undefined, 1)).not.toThrow();
  });
});
