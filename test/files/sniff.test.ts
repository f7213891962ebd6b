import { describe, expect, it } from "vitest";
import { matchesAccept, sniffContentType } from "../../src/files/sniff.js";

/** Concatenates parts: strings as Latin-1 (one byte per char), arrays and views as bytes. */
function bytes(...parts: (string | readonly number[] | Uint8Array)[]): Uint8Array {
  return Buffer.concat(
    parts.map((part) => (typeof part === "string" ? Buffer.from(part, "latin1") : Buffer.from(part))),
  );
}
const u32be = (n: number) => [(n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
const u32le = (n: number) => [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff];

/** A real 1×1 RGBA PNG (IHDR, IDAT, IEND with valid CRCs). */
const PNG_1X1 = Buffer.from(
  "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==",
  "base64",
);
/** JPEG: SOI, then an APP0/JFIF segment. */
const JPEG = bytes(
  [0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10],
  "JFIF\0",
  [1, 1, 0, 0, 1, 0, 1, 0, 0],
  [0xff, 0xdb, 0x00, 0x43],
);
/** An ISO-BMFF `ftyp` box with the given major and compatible brands. */
function ftyp(major: string, ...compatible: string[]): Uint8Array {
  return bytes(u32be(16 + 4 * compatible.length), "ftyp", major, [0, 0, 0, 0], ...compatible, u32be(8), "mdat");
}
/** An MPEG-1 Layer III frame header: 128 kbit/s, 44.1 kHz, no padding → frames of 417 bytes. */
const MP3_FRAME = bytes([0xff, 0xfb, 0x90, 0x64], new Uint8Array(413));

const cases: [string, Uint8Array, string | undefined][] = [
  // Images
  ["PNG (1×1)", PNG_1X1, "image/png"],
  ["JPEG (JFIF)", JPEG, "image/jpeg"],
  ["JPEG (Exif)", bytes([0xff, 0xd8, 0xff, 0xe1, 0x00, 0x18], "Exif\0\0"), "image/jpeg"],
  ["GIF87a", bytes("GIF87a", [1, 0, 1, 0, 0x80, 0, 0]), "image/gif"],
  ["GIF89a", bytes("GIF89a", [1, 0, 1, 0, 0x80, 0, 0]), "image/gif"],
  ["WebP (lossy)", bytes("RIFF", u32le(26), "WEBPVP8 ", u32le(14)), "image/webp"],
  ["WebP (lossless)", bytes("RIFF", u32le(26), "WEBPVP8L", u32le(14)), "image/webp"],
  ["AVIF", ftyp("avif", "avif", "mif1", "miaf", "MA1B"), "image/avif"],
  ["AVIF (major mif1)", ftyp("mif1", "mif1", "avif", "miaf"), "image/avif"],
  ["HEIC", ftyp("heic", "mif1", "heic"), "image/heic"],
  ["HEIF (generic)", ftyp("mif1", "mif1", "miaf"), "image/heif"],
  ["BMP", bytes("BM", u32le(58), u32le(0), u32le(54), u32le(40), u32le(1), u32le(1)), "image/bmp"],
  ["ICO", bytes([0, 0, 1, 0, 1, 0, 16, 16, 0, 0, 1, 0, 32, 0]), "image/x-icon"],
  ["TIFF (little-endian)", bytes("II*\0", u32le(8)), "image/tiff"],
  ["TIFF (big-endian)", bytes("MM\0*", u32be(8)), "image/tiff"],
  // Documents and archives
  ["PDF", bytes("%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n"), "application/pdf"],
  ["ZIP", bytes("PK\x03\x04", [0x14, 0, 0, 0, 8, 0]), "application/zip"],
  ["ZIP (empty)", bytes("PK\x05\x06", new Uint8Array(18)), "application/zip"],
  ["GZIP", bytes([0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0, 0x03]), "application/gzip"],
  ["7z", bytes([0x37, 0x7a, 0xbc, 0xaf, 0x27, 0x1c, 0x00, 0x04]), "application/x-7z-compressed"],
  ["RAR 4", bytes("Rar!\x1a\x07\x00", [0xcf, 0x90, 0x73]), "application/vnd.rar"],
  ["RAR 5", bytes("Rar!\x1a\x07\x01\x00", [0x33, 0x92]), "application/vnd.rar"],
  // Audio and video
  ["MP4", ftyp("isom", "isom", "iso2", "avc1", "mp41"), "video/mp4"],
  ["MP4 (mp42)", ftyp("mp42", "mp42", "isom"), "video/mp4"],
  ["QuickTime", ftyp("qt  ", "qt  "), "video/quicktime"],
  ["M4A", ftyp("M4A ", "M4A ", "mp42", "isom"), "audio/mp4"],
  [
    "WebM",
    bytes([0x1a, 0x45, 0xdf, 0xa3, 0x9f, 0x42, 0x86, 0x81, 0x01, 0x42, 0xf7, 0x81, 0x01, 0x42, 0x82, 0x84], "webm"),
    "video/webm",
  ],
  ["Matroska", bytes([0x1a, 0x45, 0xdf, 0xa3, 0xa3, 0x42, 0x82, 0x88], "matroska"), "video/x-matroska"],
  ["MP3 (ID3v2.4)", bytes("ID3", [4, 0, 0, 0, 0, 0, 0x0a]), "audio/mpeg"],
  ["MP3 (frame sync, no tag)", bytes(MP3_FRAME, MP3_FRAME, MP3_FRAME), "audio/mpeg"],
  ["MP3 (single frame)", bytes([0xff, 0xfb, 0x90, 0x64], new Uint8Array(100)), "audio/mpeg"],
  ["OGG Vorbis", bytes("OggS\0\x02", new Uint8Array(20), [1, 30], "\x01vorbis"), "audio/ogg"],
  ["OGG Theora", bytes("OggS\0\x02", new Uint8Array(20), [1, 42], "\x80theora"), "video/ogg"],
  ["WAV", bytes("RIFF", u32le(36), "WAVEfmt ", u32le(16), [1, 0, 1, 0]), "audio/wav"],
  ["FLAC", bytes("fLaC", [0x00, 0x00, 0x00, 0x22], new Uint8Array(8)), "audio/flac"],
  // Fonts
  ["WOFF", bytes("wOFF", [0, 1, 0, 0], u32be(1000)), "font/woff"],
  ["WOFF2", bytes("wOF2", [0, 1, 0, 0], u32be(1000)), "font/woff2"],
  ["TrueType", bytes([0, 1, 0, 0, 0, 12, 0, 128]), "font/ttf"],
  // Executables are named, so that they never pass as anything else.
  ["Windows executable", bytes("MZ", [0x90, 0, 3, 0, 0, 0, 4, 0, 0, 0, 0xff, 0xff]), "application/x-msdownload"],
  ["ELF", bytes("\x7fELF", [2, 1, 1, 0]), "application/x-elf"],
];

describe("sniffContentType: binary signatures", () => {
  it.each(cases)("%s", (_name, head, expected) => {
    expect(sniffContentType(head)).toBe(expected);
  });

  it("only looks at the first 4 KiB", () => {
    const html = bytes("<html>");
    const late = bytes(new Uint8Array(5000).fill(0x41), html);
    expect(sniffContentType(late)).toBe("text/plain");
  });

  it("rejects a second MPEG frame header that is not one", () => {
    // A valid first header whose successor (at byte 417) is garbage: not MP3.
    const broken = bytes([0xff, 0xfb, 0x90, 0x64], new Uint8Array(413), [0x12, 0x34, 0x56, 0x78], new Uint8Array(8));
    expect(sniffContentType(broken)).toBeUndefined();
  });

  it("does not mistake text starting with a signature's letters for that format", () => {
    expect(sniffContentType(bytes("BMW is a car maker, founded in 1916 in Munich."))).toBe("text/plain");
    expect(sniffContentType(bytes("MZ is a postal code prefix, and this is plain text.\n"))).toBe("text/plain");
    expect(sniffContentType(bytes("ID3 tags hold metadata"))).toBe("text/plain");
  });
});

describe("sniffContentType: text", () => {
  it.each([
    ["<!DOCTYPE html>", "<!DOCTYPE html>\n<html><body>hi</body></html>"],
    ["upper case", "<HTML><BODY>hi</BODY></HTML>"],
    ["mixed case doctype", "<!doctype HTML>"],
    ["leading whitespace", " \t\r\n\f<html>"],
    ["UTF-8 BOM", "\xef\xbb\xbf<html>"],
    ["BOM and whitespace", "\xef\xbb\xbf\n  <script>alert(1)</script>"],
    ["<head", "<head><title>x</title></head>"],
    ["<iframe", "<iframe src=x>"],
    ["<h1", "<h1>Title</h1>"],
    ["<div", "<div class=a>"],
    ["<font", "<font size=2>"],
    ["<table", "<table>"],
    ["<a", '<a href="https://example.com">'],
    ["<style", "<style>body{}</style>"],
    ["<title", "<title>x</title>"],
    ["<b", "<b>bold</b>"],
    ["<body", "<body onload=x()>"],
    ["<br", "<br>"],
    ["<p", "<p>para</p>"],
    ["<!-- comment -->", "<!-- comment --><p>hi</p>"],
  ])("text/html: %s", (_name, text) => {
    expect(sniffContentType(bytes(text))).toBe("text/html");
  });

  it("text/html in UTF-16 (by its BOM)", () => {
    expect(sniffContentType(bytes([0xff, 0xfe], Buffer.from("<html><script>x</script>", "utf16le")))).toBe("text/html");
    expect(sniffContentType(bytes([0xfe, 0xff], Buffer.from("<html>", "utf16le").swap16()))).toBe("text/html");
  });

  it.each([
    ["a tag not in the list", "<abbr>x</abbr>"],
    ["a pattern without a tag-terminating byte", "<!--comment-->"],
    ["a pattern at the very end", "<p"],
    ["markup after text", "Hello <script>alert(1)</script>"],
    ["UTF-8 prose", "Grüße aus Köln — ünïcödé ✓\n"],
    ["UTF-16 text (BOM)", bytes([0xff, 0xfe], Buffer.from("plain text", "utf16le"))],
    ["CSV", "id,name\n1,Ada\n2,Grace\n"],
    ["JSON", '{"a": [1, 2, 3]}'],
  ])("text/plain: %s", (_name, text) => {
    expect(sniffContentType(typeof text === "string" ? Buffer.from(text, "utf8") : text)).toBe("text/plain");
  });

  it.each([
    ["bare", '<svg xmlns="http://www.w3.org/2000/svg" width="1" height="1"/>'],
    [
      "with an XML prolog, comment and doctype",
      '<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n<!-- Generator: Adobe Illustrator -->\n' +
        '<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">\n' +
        '<svg version="1.1" xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
    ],
    ["doctype with an internal subset", '<?xml version="1.0"?><!DOCTYPE svg [ <!ENTITY a "b"> ]><svg>'],
    ["UTF-8 BOM and a comment", "\xef\xbb\xbf<!--c--><svg>"],
    ["<!-- comment --> before it (not HTML)", "<!-- made by hand --><svg>"],
  ])("image/svg+xml: %s", (_name, text) => {
    expect(sniffContentType(bytes(text))).toBe("image/svg+xml");
  });

  it("text/xml: an XML prolog before another root", () => {
    expect(sniffContentType(bytes('<?xml version="1.0"?>\n<rss version="2.0"><channel/></rss>'))).toBe("text/xml");
    expect(sniffContentType(bytes('  <?xml version="1.0"?><svgfont/>'))).toBe("text/xml");
  });

  it("binary garbage and empty input: undefined", () => {
    expect(sniffContentType(new Uint8Array(0))).toBeUndefined();
    expect(sniffContentType(bytes([0x13, 0x37, 0x00, 0x42, 0x99, 0x01, 0x02]))).toBeUndefined();
    const noise = new Uint8Array(4096);
    let seed = 42;
    for (let i = 0; i < noise.length; i++) {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      noise[i] = seed >> 16;
    }
    noise[0] = 0x01; // no signature starts with 0x01 0x?? here
    expect(sniffContentType(noise)).toBeUndefined();
  });
});

describe("matchesAccept", () => {
  it.each([
    ["image/png", ["image/png"], true],
    ["IMAGE/PNG", ["image/png"], true],
    ["image/png", ["Image/PNG"], true],
    ["text/plain; charset=utf-8", ["text/plain"], true],
    ["text/plain", ["text/plain; charset=utf-8"], true],
    ["image/png", ["image/*"], true],
    ["image/png", ["*/*"], true],
    ["image/png", ["image/jpeg", "image/gif"], false],
    ["image/png", [], false],
    ["text/png", ["image/*"], false],
    ["image/png", ["image/png2"], false],
    ["image", ["image/*"], false],
    ["", ["*/*"], false],
    ["imagex/png", ["image/*"], false],
  ] as const)("%s in %j → %s", (type, accept, expected) => {
    expect(matchesAccept(type, accept)).toBe(expected);
  });
});
