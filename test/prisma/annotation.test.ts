import { describe, expect, it } from "vitest";
import { PrismaS3FilesError } from "../../src/errors.js";
import {
  defaultFileFieldOptions,
  FileAnnotationError,
  type FileFieldOptions,
  hasFileAnnotation,
  isMimePattern,
  parseFileAnnotation,
  parseSize,
} from "../../src/prisma/generator/annotation.js";

const at = { model: "User", field: "avatar" };

function parse(doc: string | undefined): FileFieldOptions | null {
  return parseFileAnnotation(doc, at);
}

function options(overrides: Partial<FileFieldOptions>): FileFieldOptions {
  return { ...defaultFileFieldOptions(), ...overrides };
}

function errorOf(doc: string): FileAnnotationError {
  try {
    parse(doc);
  } catch (e) {
    if (e instanceof FileAnnotationError) return e;
    throw e;
  }
  throw new Error(`no error for ${JSON.stringify(doc)}`);
}

describe("parseFileAnnotation: no annotation", () => {
  it.each([
    ["undefined", undefined],
    ["empty", ""],
    ["plain text", "The user's picture."],
    ["a longer word", "@filename is not it"],
    ["an e-mail address", "mail me@file.io"],
    ["a word with a hyphen", "@file-name"],
    ["another attribute", "@files(uploadTo: 1)"],
  ])("%s", (_name, doc) => {
    expect(parse(doc)).toBeNull();
    expect(hasFileAnnotation(doc)).toBe(false);
  });
});

describe("parseFileAnnotation: valid forms", () => {
  const cases: [string, string, FileFieldOptions][] = [
    ["bare @file", "@file", options({})],
    ["bare @file in text", "A picture. @file\nmore text", options({})],
    ["empty parentheses", "@file()", options({})],
    ["spaces inside empty parentheses", "@file(  )", options({})],
    ["uploadTo with strftime", '@file(uploadTo: "avatars/%Y/%m/")', options({ uploadTo: "avatars/%Y/%m/" })],
    ["storage", '@file(storage: "public")', options({ storage: "public" })],
    ["maxSize in bytes", "@file(maxSize: 1024)", options({ maxSize: 1024 })],
    ["maxSize as string", '@file(maxSize: "5MB")', options({ maxSize: 5_000_000 })],
    ["maxSize in exponent form", "@file(maxSize: 1e6)", options({ maxSize: 1_000_000 })],
    [
      "accept, normalized to lower case and deduplicated",
      '@file(accept: ["image/PNG", "image/*", "image/png", "*/*", "application/vnd.ms-excel"])',
      options({ accept: ["image/png", "image/*", "*/*", "application/vnd.ms-excel"] }),
    ],
    ["keepFiles", "@file(keepFiles: true)", options({ keepFiles: true })],
    ["keepFiles false", "@file(keepFiles: false)", options({ keepFiles: false })],
    ["deleteAfterSeconds", "@file(deleteAfterSeconds: 3600)", options({ deleteAfterSeconds: 3600 })],
    ["deleteAfterSeconds 0", "@file(deleteAfterSeconds: 0)", options({ deleteAfterSeconds: 0 })],
    ["fractional deleteAfterSeconds", "@file(deleteAfterSeconds: 0.5)", options({ deleteAfterSeconds: 0.5 })],
    ["maxLength", "@file(maxLength: 255)", options({ maxLength: 255 })],
    ["escaped quotes in strings", '@file(uploadTo: "say \\"hi\\"/")', options({ uploadTo: 'say "hi"/' })],
    ["a ) inside a string", '@file(uploadTo: "a)b/")', options({ uploadTo: "a)b/" })],
    ["@file inside a string", '@file(uploadTo: "x/@file/")', options({ uploadTo: "x/@file/" })],
    ["trailing comma", '@file(storage: "s",)', options({ storage: "s" })],
    ["trailing comma in array", '@file(accept: ["image/png",])', options({ accept: ["image/png"] })],
    [
      "every option",
      '@file(uploadTo: "u/", storage: "private", maxSize: "1.5GB", accept: ["video/*"], keepFiles: true, deleteAfterSeconds: 60, maxLength: 200, metadata: "meta", widthField: "w", heightField: "h", maxPixels: 2000000)',
      {
        uploadTo: "u/",
        storage: "private",
        maxSize: 1_500_000_000,
        accept: ["video/*"],
        keepFiles: true,
        deleteAfterSeconds: 60,
        maxLength: 200,
        metadata: "meta",
        widthField: "w",
        heightField: "h",
        maxPixels: 2_000_000,
        variants: null,
      },
    ],
    ["metadata", '@file(metadata: "avatarMeta")', options({ metadata: "avatarMeta" })],
    [
      "widthField and heightField",
      '@file(widthField: "avatarWidth", heightField: "avatarHeight")',
      options({ widthField: "avatarWidth", heightField: "avatarHeight" }),
    ],
    ["maxPixels", "@file(maxPixels: 12000000)", options({ maxPixels: 12_000_000 })],
    [
      "variants, spread over lines, canonical spec text",
      '@file(variants: {\n  thumb: "cover 128x128 webp",\n  card:  "inside   640x480 avif q50",\n})',
      options({ variants: { thumb: "cover 128x128 webp", card: "inside 640x480 avif q50" } }),
    ],
    [
      "surrounded by text on other lines",
      'The user\'s picture, optional.\n@file(uploadTo: "avatars/", storage: "public")\nShown on the profile page.',
      options({ uploadTo: "avatars/", storage: "public" }),
    ],
    [
      "text before and after on the same line",
      'Picture: @file(storage: "public") (shown publicly)',
      options({ storage: "public" }),
    ],
    [
      "spread over several /// lines",
      '@file(\n  uploadTo: "a/",\n  accept: [\n    "image/png",\n    "image/gif"\n  ],\n)',
      options({ uploadTo: "a/", accept: ["image/png", "image/gif"] }),
    ],
    [
      "whitespace around tokens",
      '@file( storage :"x" , keepFiles : true )',
      options({ storage: "x", keepFiles: true }),
    ],
  ];
  it.each(cases)("%s", (_name, doc, expected) => {
    expect(parse(doc)).toEqual(expected);
    expect(hasFileAnnotation(doc)).toBe(true);
  });
});

describe("parseSize", () => {
  it.each([
    ["0", 0],
    ["1", 1],
    ["100B", 100],
    ["512KB", 512_000],
    ["512kb", 512_000],
    ["512 kB", 512_000],
    ["5MB", 5_000_000],
    ["1.5GB", 1_500_000_000],
    ["2TB", 2_000_000_000_000],
    ["1KiB", 1024],
    ["1.5KiB", 1536],
    ["10 MiB", 10 * 1024 * 1024],
    ["10mib", 10 * 1024 * 1024],
    ["1GiB", 2 ** 30],
    ["0.5TiB", 2 ** 39],
    ["0.001KB", 1],
    [" 3 MB ", 3_000_000],
  ])("%s is %d bytes", (text, bytes) => {
    expect(parseSize(text)).toBe(bytes);
  });

  it.each([
    ["", "malformed size"],
    ["MB", "malformed size"],
    ["-1MB", "malformed size"],
    ["1.MB", "malformed size"],
    ["5 M B", "malformed size"],
    ["5XB", 'unknown size unit "XB"'],
    ["5Mb/s", "malformed size"],
    ["1.5B", "not a whole number of bytes"],
    ["0.1KiB", "not a whole number of bytes"],
    ["99999999TB", "too large"],
  ])("%j is refused (%s)", (text, message) => {
    const result = parseSize(text);
    expect(typeof result).toBe("object");
    expect((result as { error: string }).error).toContain(message);
  });
});

describe("isMimePattern", () => {
  it.each([
    "image/png",
    "image/*",
    "*/*",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "IMAGE/PNG",
  ])("%s is valid", (p) => expect(isMimePattern(p)).toBe(true));
  it.each(["image", "image/", "/png", "*/png", "image/png; charset=x", "image/png ", "im age/png", "image/**", "*"])(
    "%j is not",
    (p) => expect(isMimePattern(p)).toBe(false),
  );
});

describe("parseFileAnnotation: errors name the model, the field and the problem", () => {
  const cases: [string, string, string][] = [
    [
      "unknown option",
      '@file(uplodTo: "x")',
      'User.avatar: unknown option "uplodTo" in @file(...) (known: uploadTo, storage, maxSize, accept, keepFiles, deleteAfterSeconds, maxLength, metadata, widthField, heightField, maxPixels, variants)',
    ],
    [
      "duplicate option",
      '@file(storage: "a", storage: "b")',
      'User.avatar: option "storage" is given twice in @file(...)',
    ],
    ["uploadTo not a string", "@file(uploadTo: 1)", "User.avatar: uploadTo must be a string, got number 1"],
    ["storage not a string", "@file(storage: true)", "User.avatar: storage must be a string, got boolean true"],
    ["empty storage name", '@file(storage: "")', 'User.avatar: storage name "" must be non-empty'],
    [
      "storage name with a space",
      '@file(storage: "my store")',
      'User.avatar: storage name "my store" must be non-empty',
    ],
    [
      "maxSize array",
      "@file(maxSize: [1])",
      'User.avatar: maxSize must be a number of bytes or a size string like "5MB", got an array',
    ],
    ["maxSize bad unit", '@file(maxSize: "5 parsecs")', 'User.avatar: maxSize: unknown size unit "parsecs"'],
    ["maxSize malformed", '@file(maxSize: "big")', 'User.avatar: maxSize: malformed size "big"'],
    ["maxSize zero", "@file(maxSize: 0)", "User.avatar: maxSize must be a positive whole number of bytes, got 0"],
    ["maxSize zero string", '@file(maxSize: "0MB")', 'User.avatar: maxSize must be positive, got "0MB"'],
    ["maxSize negative", "@file(maxSize: -5)", "User.avatar: maxSize must be a positive whole number of bytes, got -5"],
    [
      "maxSize fractional",
      "@file(maxSize: 1.5)",
      "User.avatar: maxSize must be a positive whole number of bytes, got 1.5",
    ],
    ["maxSize unquoted unit", "@file(maxSize: 5MB)", "User.avatar: malformed @file(...): malformed number"],
    [
      "accept not an array",
      '@file(accept: "image/png")',
      'User.avatar: accept must be an array of MIME types like ["image/png", "image/*"], got the string "image/png"',
    ],
    ["accept empty", "@file(accept: [])", "User.avatar: accept must list at least one MIME type"],
    ["accept with a number", "@file(accept: [1])", "User.avatar: accept must contain only strings, got number 1"],
    ["accept bad type", '@file(accept: ["png"])', 'User.avatar: accept: "png" is not a MIME type or pattern'],
    [
      "accept with parameters",
      '@file(accept: ["text/plain; charset=utf-8"])',
      'User.avatar: accept: "text/plain; charset=utf-8" is not a MIME type',
    ],
    [
      "keepFiles not boolean",
      '@file(keepFiles: "yes")',
      'User.avatar: keepFiles must be true or false, got the string "yes"',
    ],
    [
      "deleteAfterSeconds string",
      '@file(deleteAfterSeconds: "1h")',
      'User.avatar: deleteAfterSeconds must be a number of seconds, got the string "1h"',
    ],
    [
      "deleteAfterSeconds negative",
      "@file(deleteAfterSeconds: -1)",
      "User.avatar: deleteAfterSeconds must not be negative, got -1",
    ],
    ["maxLength zero", "@file(maxLength: 0)", "User.avatar: maxLength must be a positive integer, got 0"],
    ["maxLength fractional", "@file(maxLength: 10.5)", "User.avatar: maxLength must be a positive integer, got 10.5"],
    [
      "maxLength string",
      '@file(maxLength: "10")',
      'User.avatar: maxLength must be a positive integer, got the string "10"',
    ],
    ["maxPixels zero", "@file(maxPixels: 0)", "User.avatar: maxPixels must be a positive integer, got 0"],
    [
      "variants not an object",
      '@file(variants: ["cover 1x1 webp"])',
      'User.avatar: variants must be an object of named specs, e.g. { thumb: "cover 128x128 webp" }, got an array',
    ],
    ["variants empty", "@file(variants: {})", "User.avatar: variants must name at least one variant"],
    [
      "variant spec not a string",
      "@file(variants: { thumb: 128 })",
      "User.avatar: variants.thumb must be a spec in double quotes, got number 128",
    ],
    [
      "variant name twice",
      '@file(variants: { a: "cover 1x1 webp", a: "cover 2x2 webp" })',
      'User.avatar: malformed @file(...): "a" is given twice in {...}',
    ],
    ["variant spec malformed", '@file(variants: { thumb: "squash 128x128 webp" })', "User.avatar: variants.thumb: "],
    [
      "maxPixels string",
      '@file(maxPixels: "40MP")',
      'User.avatar: maxPixels must be a positive integer (width × height), got the string "40MP"',
    ],
    [
      "metadata not a string",
      "@file(metadata: true)",
      "User.avatar: metadata must be the name of a field of the model, in double quotes, got boolean true",
    ],
    ["widthField not a name", '@file(widthField: "a-b")', 'User.avatar: widthField: "a-b" is not a field name'],
    ["absolute uploadTo", '@file(uploadTo: "/abs/")', 'User.avatar: uploadTo "/abs/" must be relative'],
    [
      "uploadTo with ..",
      '@file(uploadTo: "a/../b/")',
      'User.avatar: uploadTo "a/../b/" must not contain a ".." segment',
    ],
    [
      "uploadTo with backslash",
      '@file(uploadTo: "a\\\\b")',
      'User.avatar: uploadTo "a\\\\b" must use "/" as separator',
    ],
    [
      "uploadTo with a control character",
      '@file(uploadTo: "a\tb/")',
      "User.avatar: uploadTo contains a control character",
    ],
    [
      "missing closing parenthesis",
      '@file(uploadTo: "x"',
      'User.avatar: malformed @file(...): missing ")" at the end of the comment',
    ],
    [
      "missing closing parenthesis after comma",
      '@file(uploadTo: "x",',
      'User.avatar: malformed @file(...): missing ")"',
    ],
    [
      "missing colon",
      '@file(uploadTo "x")',
      'User.avatar: malformed @file(...): expected ":" after option "uploadTo" at "\\"x\\")"',
    ],
    [
      "missing comma",
      '@file(uploadTo: "x" storage: "y")',
      'User.avatar: malformed @file(...): expected "," or ")" after a value at "storage: \\"y\\")"',
    ],
    [
      "unquoted string",
      "@file(storage: public)",
      'User.avatar: malformed @file(...): expected a value but found the bare word "public" (strings need double quotes)',
    ],
    [
      "single quotes",
      "@file(storage: 'public')",
      "User.avatar: malformed @file(...): expected a value: strings need double quotes",
    ],
    ["unterminated string", '@file(uploadTo: "x)', "User.avatar: malformed @file(...): unterminated string"],
    ["string across lines", '@file(uploadTo: "x\n")', "User.avatar: malformed @file(...): unterminated string"],
    ["unknown escape", '@file(uploadTo: "a\\nb")', "User.avatar: malformed @file(...): unsupported escape in string"],
    ["missing value", "@file(storage: )", "User.avatar: malformed @file(...): expected a value"],
    ["option name expected", '@file("x")', "User.avatar: malformed @file(...): expected an option name"],
    [
      "unclosed array",
      '@file(accept: ["image/png" "image/gif"])',
      'User.avatar: malformed @file(...): expected "," or "]" in array',
    ],
    [
      "space before the parenthesis",
      '@file (storage: "x")',
      'User.avatar: malformed @file(...): no space is allowed between "@file" and "("',
    ],
    ["two annotations", '@file(storage: "a")\n@file(storage: "b")', "User.avatar: more than one @file annotation"],
    ["two bare annotations", "@file @file", "User.avatar: more than one @file annotation"],
    [
      "a bare and a full annotation",
      '@file\nsome text\n@file(uploadTo: "x/")',
      "User.avatar: more than one @file annotation",
    ],
  ];
  it.each(cases)("%s", (_name, doc, message) => {
    const error = errorOf(doc);
    expect(error.message.startsWith(message), `${error.message}\n  should start with\n${message}`).toBe(true);
    expect(error).toBeInstanceOf(PrismaS3FilesError);
    expect(error.code).toBe("FILE_ANNOTATION");
    expect(error.name).toBe("FileAnnotationError");
    expect(error.model).toBe("User");
    expect(error.field).toBe("avatar");
    expect(error.message).toBe(`User.avatar: ${error.problem}`);
  });

  it("names the model and field it is given", () => {
    expect(() => parseFileAnnotation("@file(x: 1)", { model: "Post", field: "cover" })).toThrow(
      /^Post\.cover: unknown option "x"/,
    );
  });
});
