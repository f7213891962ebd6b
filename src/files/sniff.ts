/**
 * What the first bytes of a file really are: magic-number detection in the spirit of the WHATWG
 * MIME Sniffing standard (https://mimesniff.spec.whatwg.org/), used to check an upload against
 * the types a field accepts without trusting the client's file name or `Content-Type`.
 *
 * Detection only ever looks at the bytes given (the first 4 KiB is plenty for every format here)
 * and returns the most specific type it is sure of, or `undefined`. Names follow the IANA
 * registry, or the name browsers and the `mime` package use where there is none; `checkType`
 * treats the common aliases (e.g. `audio/x-wav`) as the same type.
 */

/** How many leading bytes {@link sniffContentType} wants; more are ignored. */
export const SNIFF_BYTES = 4096;

/** `true` when `head` holds `signature` at `offset`; `undefined` entries match any byte. */
function has(head: Uint8Array, signature: readonly (number | undefined)[], offset = 0): boolean {
  if (head.length < offset + signature.length) return false;
  for (let i = 0; i < signature.length; i++) {
    const expected = signature[i];
    if (expected !== undefined && head[offset + i] !== expected) return false;
  }
  return true;
}

/** `true` when `head` holds the ASCII text `text` at `offset` (case-sensitive). */
function hasAscii(head: Uint8Array, text: string, offset = 0): boolean {
  if (head.length < offset + text.length) return false;
  for (let i = 0; i < text.length; i++) {
    if (head[offset + i] !== text.charCodeAt(i)) return false;
  }
  return true;
}

function ascii(head: Uint8Array, start: number, end: number): string {
  let out = "";
  for (let i = start; i < Math.min(end, head.length); i++) out += String.fromCharCode(head[i] ?? 0);
  return out;
}

function u32be(head: Uint8Array, offset: number): number {
  return (
    (((head[offset] ?? 0) << 24) >>> 0) +
    ((head[offset + 1] ?? 0) << 16) +
    ((head[offset + 2] ?? 0) << 8) +
    (head[offset + 3] ?? 0)
  );
}

/** WHATWG "binary data byte": a control byte no text file contains. */
function isBinaryDataByte(byte: number): boolean {
  return byte <= 0x08 || byte === 0x0b || (byte >= 0x0e && byte <= 0x1a) || (byte >= 0x1c && byte <= 0x1f);
}

function containsBinaryData(head: Uint8Array, end = head.length): boolean {
  for (let i = 0; i < Math.min(end, head.length); i++) if (isBinaryDataByte(head[i] ?? 0)) return true;
  return false;
}

/** WHATWG "whitespace byte": TAB, LF, FF, CR, SPACE. */
function isWhitespace(byte: number | undefined): boolean {
  return byte === 0x09 || byte === 0x0a || byte === 0x0c || byte === 0x0d || byte === 0x20;
}

// ---------------------------------------------------------------------------------------------
// Binary formats
// ---------------------------------------------------------------------------------------------

/** ISO base media file format (MP4, QuickTime, 3GP, HEIF/HEIC, AVIF): the `ftyp` box's brands. */
function sniffIsoBmff(head: Uint8Array): string | undefined {
  if (!hasAscii(head, "ftyp", 4) || head.length < 12) return undefined;
  const boxSize = u32be(head, 0);
  if (boxSize < 12 || boxSize % 4 !== 0) return undefined;
  const major = ascii(head, 8, 12);
  const brands = [major];
  for (let offset = 16; offset + 4 <= Math.min(boxSize, head.length); offset += 4)
    brands.push(ascii(head, offset, offset + 4));

  const avif = (b: string) => b === "avif" || b === "avis";
  const heic = (b: string) => ["heic", "heix", "heim", "heis", "hevc", "hevx", "hevm", "hevs"].includes(b);
  const heif = (b: string) => b === "mif1" || b === "msf1" || b === "miaf";
  const mp4 = (b: string) =>
    /^(iso[m2-9]|mp4[12]|mp71|avc1|dash|M4V[ HP]|f4v |MSNV|NDAS|mmp4|XAVC|da[0-3][a-z ])$/.test(b);

  // The major brand says what the file is meant to be; compatible brands refine generic ones.
  if (major === "qt  ") return "video/quicktime";
  if (["M4A ", "M4B ", "M4P ", "F4A ", "F4B "].includes(major)) return "audio/mp4";
  if (major.startsWith("3gp")) return "video/3gpp";
  if (major.startsWith("3g2")) return "video/3gpp2";
  if (avif(major)) return "image/avif";
  if (heic(major)) return "image/heic";
  if (heif(major) || major.startsWith("iso")) {
    if (brands.some(avif)) return "image/avif";
    if (brands.some(heic)) return "image/heic";
    if (heif(major)) return "image/heif";
  }
  if (brands.some(mp4)) return "video/mp4";
  if (brands.includes("qt  ")) return "video/quicktime";
  return undefined;
}

/** EBML (Matroska, WebM): the DocType element (ID 0x4282) names which. */
function sniffEbml(head: Uint8Array): string | undefined {
  if (!has(head, [0x1a, 0x45, 0xdf, 0xa3])) return undefined;
  const end = Math.min(head.length, 64);
  for (let i = 4; i + 1 < end; i++) {
    if (head[i] !== 0x42 || head[i + 1] !== 0x82) continue;
    const text = ascii(head, i + 2, i + 20);
    if (text.includes("webm")) return "video/webm";
    if (text.includes("matroska")) return "video/x-matroska";
  }
  return undefined;
}

/** Ogg: the first packet's codec header says audio or video. */
function sniffOgg(head: Uint8Array): string | undefined {
  if (!has(head, [0x4f, 0x67, 0x67, 0x53, 0x00])) return undefined;
  const text = ascii(head, 0, Math.min(head.length, 512));
  if (text.includes("\x80theora") || text.includes("\x01video\0")) return "video/ogg";
  return "audio/ogg";
}

const MPEG_BITRATES: Record<string, readonly number[]> = {
  // kbit/s by bitrate index, for (MPEG version 1 | 2 and 2.5) × (layer I | II | III).
  "1-1": [0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448],
  "1-2": [0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384],
  "1-3": [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320],
  "2-1": [0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256],
  "2-2": [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160],
  "2-3": [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160],
};
const MPEG_SAMPLE_RATES: Record<number, readonly number[]> = {
  3: [44100, 48000, 32000], // MPEG 1
  2: [22050, 24000, 16000], // MPEG 2
  0: [11025, 12000, 8000], // MPEG 2.5
};

/** Length in bytes of the MPEG audio frame whose header is at `offset`, or `undefined` if none. */
function mpegFrameLength(head: Uint8Array, offset: number): number | undefined {
  if (head.length < offset + 4) return undefined;
  const b1 = head[offset + 1] ?? 0;
  const b2 = head[offset + 2] ?? 0;
  if (head[offset] !== 0xff || (b1 & 0xe0) !== 0xe0) return undefined;
  const version = (b1 >> 3) & 0x03; // 0: 2.5, 1: reserved, 2: 2, 3: 1
  const layerBits = (b1 >> 1) & 0x03; // 0: reserved, 1: III, 2: II, 3: I
  const bitrateIndex = b2 >> 4;
  const rateIndex = (b2 >> 2) & 0x03;
  if (version === 1 || layerBits === 0 || bitrateIndex === 0 || bitrateIndex === 15 || rateIndex === 3)
    return undefined;
  const layer = 4 - layerBits;
  const bitrate = (MPEG_BITRATES[`${version === 3 ? 1 : 2}-${layer}`]?.[bitrateIndex] ?? 0) * 1000;
  const sampleRate = MPEG_SAMPLE_RATES[version]?.[rateIndex] ?? 0;
  if (bitrate === 0 || sampleRate === 0) return undefined;
  const padding = (b2 >> 1) & 0x01;
  if (layer === 1) return (Math.floor((12 * bitrate) / sampleRate) + padding) * 4;
  const factor = layer === 3 && version !== 3 ? 72 : 144;
  return Math.floor((factor * bitrate) / sampleRate) + padding;
}

/** MP3 (any MPEG audio layer) without an ID3 tag: a valid frame header, and the next if it fits. */
function sniffMpegAudio(head: Uint8Array): string | undefined {
  const length = mpegFrameLength(head, 0);
  if (length === undefined) return undefined;
  // A lone 4-byte match is weak: when the next frame lies within the head, it must be one too.
  if (length + 4 <= head.length && mpegFrameLength(head, length) === undefined) return undefined;
  return "audio/mpeg";
}

/** AAC in ADTS framing: a sync word with layer 0 and a valid sampling-frequency index. */
function sniffAdts(head: Uint8Array): string | undefined {
  if (head.length < 7 || head[0] !== 0xff || ((head[1] ?? 0) & 0xf6) !== 0xf0) return undefined;
  if ((((head[2] ?? 0) >> 2) & 0x0f) > 12) return undefined;
  return "audio/aac";
}

function sniffRiff(head: Uint8Array): string | undefined {
  if (!hasAscii(head, "RIFF")) return undefined;
  if (hasAscii(head, "WEBPVP", 8)) return "image/webp";
  if (hasAscii(head, "WAVE", 8)) return "audio/wav";
  if (hasAscii(head, "AVI ", 8)) return "video/x-msvideo";
  return undefined;
}

/** BMP: "BM", plus a plausible DIB header size so that text starting with "BM" is not a bitmap. */
function sniffBmp(head: Uint8Array): string | undefined {
  if (!hasAscii(head, "BM") || head.length < 18) return undefined;
  const dibSize = (head[14] ?? 0) | ((head[15] ?? 0) << 8) | ((head[16] ?? 0) << 16) | ((head[17] ?? 0) << 24);
  return [12, 16, 40, 52, 56, 64, 108, 124].includes(dibSize) ? "image/bmp" : undefined;
}

function bytesOf(text: string): number[] {
  return Array.from(text, (char) => char.charCodeAt(0));
}

/** Fixed signatures at offset 0, most specific first. */
const SIGNATURES: readonly { type: string; bytes: readonly (number | undefined)[] }[] = [
  // Images
  { type: "image/png", bytes: [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a] },
  { type: "image/jpeg", bytes: [0xff, 0xd8, 0xff] },
  { type: "image/gif", bytes: [0x47, 0x49, 0x46, 0x38, 0x37, 0x61] }, // GIF87a
  { type: "image/gif", bytes: [0x47, 0x49, 0x46, 0x38, 0x39, 0x61] }, // GIF89a
  { type: "image/x-icon", bytes: [0x00, 0x00, 0x01, 0x00] }, // ICO
  { type: "image/x-icon", bytes: [0x00, 0x00, 0x02, 0x00] }, // CUR
  { type: "image/tiff", bytes: [0x49, 0x49, 0x2a, 0x00] }, // little-endian
  { type: "image/tiff", bytes: [0x4d, 0x4d, 0x00, 0x2a] }, // big-endian
  { type: "image/tiff", bytes: [0x49, 0x49, 0x2b, 0x00] }, // BigTIFF
  { type: "image/tiff", bytes: [0x4d, 0x4d, 0x00, 0x2b] },
  { type: "image/jxl", bytes: [0xff, 0x0a] },
  { type: "image/jxl", bytes: [0x00, 0x00, 0x00, 0x0c, 0x4a, 0x58, 0x4c, 0x20, 0x0d, 0x0a, 0x87, 0x0a] },
  { type: "image/jp2", bytes: [0x00, 0x00, 0x00, 0x0c, 0x6a, 0x50, 0x20, 0x20, 0x0d, 0x0a, 0x87, 0x0a] },
  { type: "image/vnd.adobe.photoshop", bytes: [0x38, 0x42, 0x50, 0x53, 0x00, 0x01] }, // 8BPS v1
  // Documents
  { type: "application/pdf", bytes: [0x25, 0x50, 0x44, 0x46, 0x2d] }, // %PDF-
  { type: "application/postscript", bytes: bytesOf("%!PS-Adobe-") },
  // Archives and compression
  { type: "application/zip", bytes: [0x50, 0x4b, 0x03, 0x04] },
  { type: "application/zip", bytes: [0x50, 0x4b, 0x05, 0x06] }, // empty archive
  { type: "application/zip", bytes: [0x50, 0x4b, 0x07, 0x08] }, // spanned archive
  { type: "application/gzip", bytes: [0x1f, 0x8b, 0x08] },
  { type: "application/x-7z-compressed", bytes: [0x37, 0x7a, 0xbc, 0xaf, 0x27, 0x1c] },
  { type: "application/vnd.rar", bytes: [0x52, 0x61, 0x72, 0x21, 0x1a, 0x07, 0x00] }, // RAR 1.5–4
  { type: "application/vnd.rar", bytes: [0x52, 0x61, 0x72, 0x21, 0x1a, 0x07, 0x01, 0x00] }, // RAR 5
  { type: "application/x-xz", bytes: [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00] },
  { type: "application/zstd", bytes: [0x28, 0xb5, 0x2f, 0xfd] },
  { type: "application/vnd.sqlite3", bytes: bytesOf("SQLite format 3\0") },
  // Audio and video
  { type: "audio/flac", bytes: [0x66, 0x4c, 0x61, 0x43] }, // fLaC
  { type: "audio/midi", bytes: [0x4d, 0x54, 0x68, 0x64, 0x00, 0x00, 0x00, 0x06] },
  { type: "video/x-flv", bytes: [0x46, 0x4c, 0x56, 0x01] },
  { type: "video/mpeg", bytes: [0x00, 0x00, 0x01, 0xba] },
  // Fonts
  { type: "font/woff", bytes: [0x77, 0x4f, 0x46, 0x46] }, // wOFF
  { type: "font/woff2", bytes: [0x77, 0x4f, 0x46, 0x32] }, // wOF2
  { type: "font/collection", bytes: [0x74, 0x74, 0x63, 0x66, 0x00] }, // ttcf
  { type: "font/otf", bytes: [0x4f, 0x54, 0x54, 0x4f, 0x00] }, // OTTO + numTables < 256
  { type: "font/ttf", bytes: [0x00, 0x01, 0x00, 0x00, 0x00] }, // sfnt 1.0 + numTables < 256
  // Executables: not acceptable as anything else, so name them.
  { type: "application/wasm", bytes: [0x00, 0x61, 0x73, 0x6d] },
  { type: "application/x-elf", bytes: [0x7f, 0x45, 0x4c, 0x46] },
  { type: "application/x-mach-binary", bytes: [0xfe, 0xed, 0xfa, 0xce] },
  { type: "application/x-mach-binary", bytes: [0xfe, 0xed, 0xfa, 0xcf] },
  { type: "application/x-mach-binary", bytes: [0xce, 0xfa, 0xed, 0xfe] },
  { type: "application/x-mach-binary", bytes: [0xcf, 0xfa, 0xed, 0xfe] },
];

function sniffBinary(head: Uint8Array): string | undefined {
  for (const { type, bytes } of SIGNATURES) if (has(head, bytes)) return type;
  if (hasAscii(head, "ID3") && (head[3] ?? 0) >= 2 && (head[3] ?? 0) <= 4 && head[4] !== 0xff) return "audio/mpeg";
  if (hasAscii(head, "FORM") && (hasAscii(head, "AIFF", 8) || hasAscii(head, "AIFC", 8))) return "audio/aiff";
  if (
    has(head, [0x42, 0x5a, 0x68]) &&
    (head[3] ?? 0) >= 0x31 &&
    (head[3] ?? 0) <= 0x39 &&
    hasAscii(head, "1AY&SY", 4)
  ) {
    return "application/x-bzip2";
  }
  if (hasAscii(head, "ustar", 257)) return "application/x-tar";
  if (has(head, [0xca, 0xfe, 0xba, 0xbe]) && head.length >= 8) {
    // Java class files and Mach-O universal binaries share a magic: a class file's major version
    // (≥ 45) sits where a universal binary keeps its (small) architecture count.
    return u32be(head, 4) >= 45 ? "application/java-vm" : "application/x-mach-binary";
  }
  // DOS/Windows executables: "MZ" then a header full of control bytes (so text starting "MZ" is text).
  if (hasAscii(head, "MZ") && containsBinaryData(head, 64)) return "application/x-msdownload";
  return (
    sniffRiff(head) ??
    sniffIsoBmff(head) ??
    sniffEbml(head) ??
    sniffOgg(head) ??
    sniffBmp(head) ??
    sniffMpegAudio(head) ??
    sniffAdts(head)
  );
}

// ---------------------------------------------------------------------------------------------
// Text: HTML, XML, SVG, plain text
// ---------------------------------------------------------------------------------------------

/** WHATWG's "text/html" patterns; each must be followed by a tag-terminating byte. */
const HTML_PATTERNS = [
  "<!DOCTYPE HTML",
  "<HTML",
  "<HEAD",
  "<SCRIPT",
  "<IFRAME",
  "<H1",
  "<DIV",
  "<FONT",
  "<TABLE",
  "<A",
  "<STYLE",
  "<TITLE",
  "<B",
  "<BODY",
  "<BR",
  "<P",
  "<!--",
];

/** ASCII case-insensitive match of `pattern` (given in upper case) at `offset`. */
function matchesCi(text: Uint8Array, pattern: string, offset: number): boolean {
  if (text.length < offset + pattern.length) return false;
  for (let i = 0; i < pattern.length; i++) {
    const expected = pattern.charCodeAt(i);
    let byte = text[offset + i] ?? 0;
    if (expected >= 0x41 && expected <= 0x5a) byte &= 0xdf; // fold a–z to A–Z
    if (byte !== expected) return false;
  }
  return true;
}

function indexOfAscii(text: Uint8Array, needle: string, from: number): number {
  outer: for (let i = from; i + needle.length <= text.length; i++) {
    for (let j = 0; j < needle.length; j++) if (text[i + j] !== needle.charCodeAt(j)) continue outer;
    return i;
  }
  return -1;
}

function skipWhitespace(text: Uint8Array, offset: number): number {
  while (offset < text.length && isWhitespace(text[offset])) offset++;
  return offset;
}

/**
 * Whether the document's root element is `<svg`, skipping what may precede it in XML: the
 * declaration and other processing instructions, comments and a doctype (with an internal subset).
 */
function isSvg(text: Uint8Array, offset: number): boolean {
  for (let i = skipWhitespace(text, offset); i < text.length; i = skipWhitespace(text, i)) {
    if (matchesCi(text, "<SVG", i)) {
      const next = text[i + 4];
      return next === undefined || isWhitespace(next) || next === 0x3e || next === 0x2f; // ws, ">", "/"
    }
    let end: number;
    if (matchesCi(text, "<?", i)) end = indexOfAscii(text, "?>", i + 2) + 2;
    else if (matchesCi(text, "<!--", i)) end = indexOfAscii(text, "-->", i + 4) + 3;
    else if (matchesCi(text, "<!DOCTYPE", i)) {
      const subset = indexOfAscii(text, "[", i);
      const close = indexOfAscii(text, ">", i);
      end = subset !== -1 && subset < close ? indexOfAscii(text, "]", subset) : i;
      end = end === -1 ? -1 : indexOfAscii(text, ">", end) + 1;
    } else return false;
    if (end <= 0) return false; // unterminated within the head
    i = end;
  }
  return false;
}

/**
 * The head as text for markup detection: without a UTF-8 BOM, and UTF-16 (by its BOM) folded to
 * one byte per code unit, non-ASCII code units becoming 0x80. `bom` tells whether there was one.
 */
function asciiView(head: Uint8Array): { text: Uint8Array; bom: boolean } {
  if (has(head, [0xef, 0xbb, 0xbf])) return { text: head.subarray(3), bom: true };
  const littleEndian = has(head, [0xff, 0xfe]);
  if (littleEndian || has(head, [0xfe, 0xff])) {
    const units = Math.floor((head.length - 2) / 2);
    const text = new Uint8Array(units);
    for (let i = 0; i < units; i++) {
      const a = head[2 + 2 * i] ?? 0;
      const b = head[3 + 2 * i] ?? 0;
      const unit = littleEndian ? a | (b << 8) : (a << 8) | b;
      text[i] = Math.min(unit, 0x80);
    }
    return { text, bom: true };
  }
  return { text: head, bom: false };
}

function sniffText(head: Uint8Array): string | undefined {
  const { text, bom } = asciiView(head);
  const start = skipWhitespace(text, 0);
  // SVG before HTML: "<!-- c --><svg>" matches WHATWG's "<!--" HTML pattern too.
  if (isSvg(text, start)) return "image/svg+xml";
  for (const pattern of HTML_PATTERNS) {
    if (!matchesCi(text, pattern, start)) continue;
    const terminator = text[start + pattern.length];
    if (terminator === 0x20 || terminator === 0x3e) return "text/html";
  }
  if (hasAscii(text, "<?xml", start)) return "text/xml";
  if (bom || !containsBinaryData(head)) return "text/plain";
  return undefined;
}

/**
 * The content type the first bytes of a file show, or `undefined` when they match nothing known
 * (or are empty). Binary signatures are tried first; then markup (`text/html` by the WHATWG
 * patterns, `image/svg+xml`, `text/xml`), then `text/plain` when no byte is a WHATWG binary data
 * byte or the bytes start with a UTF-8/UTF-16 BOM.
 *
 * Only the first {@link SNIFF_BYTES} bytes are looked at.
 */
export function sniffContentType(head: Uint8Array): string | undefined {
  if (head.length === 0) return undefined;
  if (head.length > SNIFF_BYTES) head = head.subarray(0, SNIFF_BYTES);
  // A byte order mark means text (as in WHATWG's table), even where FF FE could start an MPEG frame.
  if (has(head, [0xef, 0xbb, 0xbf]) || has(head, [0xff, 0xfe]) || has(head, [0xfe, 0xff])) return sniffText(head);
  return sniffBinary(head) ?? sniffText(head);
}

/** The type's essence: lower case, without parameters (`; charset=…`) or surrounding space. */
export function mimeEssence(type: string): string {
  const semicolon = type.indexOf(";");
  return (semicolon === -1 ? type : type.slice(0, semicolon)).trim().toLowerCase();
}

/**
 * Whether `type` is one `accept` allows: an exact match (case-insensitive, parameters such as
 * `; charset=utf-8` ignored on either side), a `type/*` pattern for its top-level type, or the
 * any-type pattern (star, slash, star).
 */
export function matchesAccept(type: string, accept: readonly string[]): boolean {
  const essence = mimeEssence(type);
  const slash = essence.indexOf("/");
  if (slash <= 0 || slash === essence.length - 1) return false;
  const top = essence.slice(0, slash);
  return accept.some((entry) => {
    const pattern = mimeEssence(entry);
    return pattern === "*/*" || pattern === essence || pattern === `${top}/*`;
  });
}
