import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  formatVariantSpec,
  isVariantName,
  isVariantSpecError,
  parseVariantKey,
  parseVariantSpec,
  VARIANT_SPEC_GRAMMAR,
  VARIANTS_PREFIX,
  type VariantSpec,
  variantContentType,
  variantExtension,
  variantKey,
  variantPrefix,
  variantSpecDigest,
} from "../../src/files/variants.js";

function spec(text: string): VariantSpec {
  const parsed = parseVariantSpec(text);
  if (isVariantSpecError(parsed)) throw new Error(parsed.error);
  return parsed;
}

describe("parseVariantSpec", () => {
  it.each<[string, VariantSpec]>([
    ["cover 128x128 webp", { fit: "cover", width: 128, height: 128, format: "webp" }],
    ["inside 640x640 avif q50", { fit: "inside", width: 640, height: 640, format: "avif", quality: 50 }],
    ["contain 1x1 png", { fit: "contain", width: 1, height: 1, format: "png" }],
    ["fill 16384x16384 jpeg q100", { fit: "fill", width: 16384, height: 16384, format: "jpeg", quality: 100 }],
    ["outside 300x200 jpeg q1", { fit: "outside", width: 300, height: 200, format: "jpeg", quality: 1 }],
    ["cover 16383x1 webp", { fit: "cover", width: 16383, height: 1, format: "webp" }],
    ["  cover   128x64  webp  q75 ", { fit: "cover", width: 128, height: 64, format: "webp", quality: 75 }],
    ["inside 640x640 webp noenlarge", { fit: "inside", width: 640, height: 640, format: "webp", noEnlarge: true }],
    [
      "inside 640x640 avif q50 noenlarge lazy",
      { fit: "inside", width: 640, height: 640, format: "avif", quality: 50, noEnlarge: true, lazy: true },
    ],
  ])("accepts %j", (text, expected) => {
    expect(parseVariantSpec(text)).toStrictEqual(expected);
  });

  it.each<[string, string]>([
    ["", "0 of the 3 or 4 tokens"],
    ["cover 128x128", "2 of the 3 or 4 tokens"],
    ["cover 128x128 webp q50 extra", 'unexpected "extra"'],
    ["Cover 128x128 webp", 'unknown fit "Cover"'],
    ["crop 128x128 webp", 'unknown fit "crop"'],
    ["cover 128X128 webp", 'size "128X128" is not <W>x<H>'],
    ["cover 128 webp", 'size "128" is not <W>x<H>'],
    ["cover 128x128x2 webp", 'size "128x128x2" is not <W>x<H>'],
    ["cover 0x128 webp", 'width "0" is not an integer 1..16384'],
    ["cover 128x0 webp", 'height "0" is not an integer 1..16384'],
    ["cover 16385x1 png", 'width "16385" is not an integer'],
    ["cover 1x99999999 png", 'height "99999999" is not an integer'],
    ["cover 0128x128 webp", 'width "0128"'],
    ["cover -1x128 webp", 'width "-1"'],
    ["cover 1.5x128 webp", 'width "1.5"'],
    ["cover 16384x16384 webp", "over webp's 16383 pixels a side"],
    ["cover 128x128 jpg", 'unknown format "jpg" (write "jpeg")'],
    ["cover 128x128 WEBP", 'unknown format "WEBP"'],
    ["cover 128x128 gif", 'unknown format "gif"'],
    ["cover 128x128 png q80", 'quality "q80" is not allowed for png'],
    ["cover 128x128 webp 80", 'quality "80" is not q1..q100'],
    ["inside 64x64 webp noenlarge q50", 'unexpected "q50": after the format come q<quality>, noenlarge and lazy'],
    ["inside 64x64 webp lazy noenlarge", '"lazy" is out of order: after the format come'],
    ["inside 64x64 png noenlarge noenlarge", '"noenlarge" is out of order'],
    ["inside 64x64 webp noEnlarge", 'quality "noEnlarge" is not q1..q100'],
    ["cover 128x128 webp q0", 'quality "q0"'],
    ["cover 128x128 webp q101", 'quality "q101"'],
    ["cover 128x128 webp Q80", 'quality "Q80"'],
    ["cover\t128x128\twebp", "1 of the 3 or 4 tokens"],
  ])("refuses %j, naming the bad token and quoting the grammar", (text, why) => {
    const parsed = parseVariantSpec(text);
    expect(isVariantSpecError(parsed)).toBe(true);
    const { error } = parsed as { error: string };
    expect(error).toContain(why);
    expect(error).toContain(VARIANT_SPEC_GRAMMAR);
  });

  it("refuses a non-string without throwing (a schema may hold anything)", () => {
    expect(parseVariantSpec(42 as unknown as string)).toMatchObject({ error: expect.stringContaining("number") });
    expect(parseVariantSpec(null as unknown as string)).toMatchObject({ error: expect.stringContaining("null") });
  });

  it("cuts a long bad token short in the message", () => {
    const { error } = parseVariantSpec(`${"x".repeat(500)} 1x1 png`) as { error: string };
    expect(error).toContain(`"${"x".repeat(40)}…"`);
    expect(error).not.toContain("x".repeat(41));
  });
});

describe("formatVariantSpec", () => {
  it.each([
    "cover 128x128 webp",
    "inside 640x640 avif q50",
    "contain 1x16384 png",
    "fill 3x2 jpeg q100",
    "outside 300x200 webp q1",
    "inside 640x640 webp noenlarge",
    "cover 64x64 jpeg q70 noenlarge lazy",
  ])("gives %j back, and parses back to the same spec", (text) => {
    const parsed = spec(text);
    expect(formatVariantSpec(parsed)).toBe(text);
    expect(parseVariantSpec(formatVariantSpec(parsed))).toStrictEqual(parsed);
  });

  it("canonicalises spacing", () => {
    expect(formatVariantSpec(spec("  inside  640x480   avif  q50 "))).toBe("inside 640x480 avif q50");
  });
});

describe("variantSpecDigest", () => {
  const base: VariantSpec = { fit: "cover", width: 128, height: 128, format: "webp" };

  it("is 12 lower-hex characters of SHA-256 over the versioned canonical text, stable across runs", () => {
    const expected = createHash("sha256").update("v1 cover 128x128 webp").digest("hex").slice(0, 12);
    expect(variantSpecDigest(base)).toBe(expected);
    expect(variantSpecDigest(base)).toMatch(/^[0-9a-f]{12}$/);
    // Pinned: a change here renames every stored variant, which must be a deliberate version bump.
    expect(variantSpecDigest(base)).toBe("a074f2e14357");
    expect(variantSpecDigest(spec(" cover  128x128 webp"))).toBe(variantSpecDigest(base));
  });

  it("differs when any field differs", () => {
    const variants: VariantSpec[] = [
      base,
      { ...base, fit: "contain" },
      { ...base, fit: "fill" },
      { ...base, fit: "inside" },
      { ...base, fit: "outside" },
      { ...base, width: 129 },
      { ...base, height: 127 },
      { ...base, width: 64, height: 256 },
      { ...base, format: "avif" },
      { ...base, format: "jpeg" },
      { ...base, format: "png" },
      { ...base, quality: 80 },
      { ...base, quality: 81 },
      { ...base, noEnlarge: true },
    ];
    const digests = new Set(variants.map(variantSpecDigest));
    expect(digests.size).toBe(variants.length);
  });

  it("leaves out lazy (when, not what) but not noenlarge", () => {
    expect(variantSpecDigest(spec("inside 640x640 webp noenlarge lazy"))).toBe(
      variantSpecDigest(spec("inside 640x640 webp noenlarge")),
    );
    expect(variantSpecDigest(spec("inside 640x640 webp noenlarge"))).not.toBe(
      variantSpecDigest(spec("inside 640x640 webp")),
    );
  });
});

describe("isVariantName", () => {
  it.each(["thumb", "T", "card_2x", "a".repeat(32), "Thumb_Large_2"])("accepts %j", (name) => {
    expect(isVariantName(name)).toBe(true);
  });
  it.each(["", "2x", "_thumb", "a".repeat(33), "thumb-small", "thumb.png", "thumb/x", "thümb", " thumb", "thumb\n"])(
    "refuses %j",
    (name) => {
      expect(isVariantName(name)).toBe(false);
    },
  );
});

describe("variant keys", () => {
  const thumb = spec("cover 128x128 webp");
  const digest = variantSpecDigest(thumb);

  it("derives variants/<original>/<name>-<digest>.<ext>", () => {
    expect(VARIANTS_PREFIX).toBe("variants/");
    expect(variantPrefix("avatars/a.png")).toBe("variants/avatars/a.png/");
    expect(variantKey("avatars/a.png", "thumb", thumb)).toBe(`variants/avatars/a.png/thumb-${digest}.webp`);
    expect(variantKey("a.png", "card", spec("inside 640x640 jpeg q70"))).toMatch(
      /^variants\/a\.png\/card-[0-9a-f]{12}\.jpg$/,
    );
  });

  it.each<[VariantSpec["format"], string, string]>([
    ["webp", "webp", "image/webp"],
    ["avif", "avif", "image/avif"],
    ["jpeg", "jpg", "image/jpeg"],
    ["png", "png", "image/png"],
  ])("%s: extension %s, content type %s", (format, ext, type) => {
    expect(variantExtension(format)).toBe(ext);
    expect(variantContentType(format)).toBe(type);
    expect(variantKey("x", "v", { ...thumb, format }).endsWith(`.${ext}`)).toBe(true);
  });

  it.each([
    "a.png",
    "avatars/2026/12/a.png",
    "deep/er/and/deeper/file.tar.gz",
    "no-extension",
    "dots.../..name.",
    "ünïcødé/日本語の名前.jpg",
    "emoji 🎉 name.png",
    "variants/looks/like/thumb-0123456789ab.webp",
    "trailing/",
    "thumb-0123456789ab.webp",
  ])("parses a variant key of %j back", (original) => {
    for (const [name, s] of [
      ["thumb", thumb],
      ["card_2x", spec("inside 640x640 avif q50")],
      ["J", spec("fill 10x10 jpeg")],
      ["P9", spec("contain 5x5 png")],
    ] as const) {
      const key = variantKey(original, name, s);
      expect(key.startsWith(variantPrefix(original))).toBe(true);
      expect(parseVariantKey(key)).toStrictEqual({
        original,
        name,
        digest: variantSpecDigest(s),
        ext: variantExtension(s.format),
      });
    }
  });

  it.each([
    "a.png",
    "avatars/thumb-0123456789ab.webp",
    "variant/a.png/thumb-0123456789ab.webp",
    "Variants/a.png/thumb-0123456789ab.webp",
    "variants/thumb-0123456789ab.webp",
    "variants//thumb-0123456789ab.webp",
    "variants/a.png/",
    "variants/a.png/thumb.webp",
    "variants/a.png/thumb-0123456789AB.webp",
    "variants/a.png/thumb-0123456789a.webp",
    "variants/a.png/thumb-0123456789abc.webp",
    "variants/a.png/thumb-0123456789ab.gif",
    "variants/a.png/thumb-0123456789ab.jpeg",
    "variants/a.png/thumb-0123456789ab.webp.tmp",
    "variants/a.png/2x-0123456789ab.webp",
    "variants/a.png/my-thumb-0123456789ab.webp",
    `variants/a.png/${"a".repeat(33)}-0123456789ab.webp`,
  ])("is undefined for %j", (key) => {
    expect(parseVariantKey(key)).toBeUndefined();
  });
});

describe("lazy variants", () => {
  it("a trailing `lazy` marks the spec; it round-trips and leaves the digest (and so the key) alone", () => {
    const lazy = spec("inside 2048x2048 webp q70 lazy");
    expect(lazy).toEqual({ fit: "inside", width: 2048, height: 2048, format: "webp", quality: 70, lazy: true });
    expect(formatVariantSpec(lazy)).toBe("inside 2048x2048 webp q70 lazy");
    expect(spec("cover 10x10 png lazy")).toEqual({ fit: "cover", width: 10, height: 10, format: "png", lazy: true });
    const eager = spec("inside 2048x2048 webp q70");
    expect(variantSpecDigest(lazy)).toBe(variantSpecDigest(eager));
    expect(variantKey("a.png", "big", lazy)).toBe(variantKey("a.png", "big", eager));
  });

  it("`lazy` only last, once, and never in place of a token", () => {
    expect(parseVariantSpec("cover 10x10 lazy")).toMatchObject({ error: expect.stringContaining("unknown format") });
    expect(parseVariantSpec("cover 10x10 webp lazy q50")).toMatchObject({ error: expect.stringContaining("q50") });
    expect(parseVariantSpec("cover 10x10 webp lazy lazy")).toMatchObject({ error: expect.stringContaining("lazy") });
  });
});
