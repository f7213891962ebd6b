/**
 * Image dimensions read from the first bytes of a file, without decoding it (and without sharp):
 * the header fields of PNG, JPEG, GIF, WebP, AVIF/HEIF and BMP. Used to fill a file field's
 * `width`/`height` and to refuse decompression bombs (`maxPixels`) before any byte is stored.
 *
 * What is reported is the size the image is **displayed** at: a JPEG whose EXIF orientation is
 * 5–8 (a quarter turn) and an AVIF/HEIF whose `irot` box turns it a quarter have their width and
 * height swapped, as browsers show them (`naturalWidth`) and as image libraries apply them.
 *
 * A header that is absent from the bytes given (a JPEG whose frame header lies past them, an
 * AVIF whose `meta` box follows the media data), or that contradicts itself (a PNG without its
 * `IHDR`, a zero width, a JPEG whose scan starts before any frame header), yields `undefined`:
 * no dimensions, no crash. Such a file cannot be decoded either; whatever decodes it later must
 * check its size again.
 */
import { sniffContentType } from "./sniff.js";

/**
 * How many leading bytes an upload is peeked for: its type (the first 4 KiB) and its image
 * header, which in a JPEG follows the EXIF and colour-profile segments.
 */
export const IMAGE_HEAD_BYTES = 64 * 1024;

/** An image's size in pixels, as displayed (orientation applied). */
export interface ImageDimensions {
  width: number;
  height: number;
}

const u16be = (b: Uint8Array, o: number) => ((b[o] ?? 0) << 8) | (b[o + 1] ?? 0);
const u16le = (b: Uint8Array, o: number) => (b[o] ?? 0) | ((b[o + 1] ?? 0) << 8);
const u24le = (b: Uint8Array, o: number) => (b[o] ?? 0) | ((b[o + 1] ?? 0) << 8) | ((b[o + 2] ?? 0) << 16);
const u32be = (b: Uint8Array, o: number) =>
  (((b[o] ?? 0) << 24) >>> 0) + ((b[o + 1] ?? 0) << 16) + ((b[o + 2] ?? 0) << 8) + (b[o + 3] ?? 0);
const u32le = (b: Uint8Array, o: number) =>
  (b[o] ?? 0) + ((b[o + 1] ?? 0) << 8) + ((b[o + 2] ?? 0) << 16) + (((b[o + 3] ?? 0) << 24) >>> 0);
const i32le = (b: Uint8Array, o: number) => u32le(b, o) | 0;

function fourcc(b: Uint8Array, o: number): string {
  return String.fromCharCode(b[o] ?? 0, b[o + 1] ?? 0, b[o + 2] ?? 0, b[o + 3] ?? 0);
}

/** Both positive: a header with a zero (or negative) side is corrupt. */
function sized(width: number, height: number): ImageDimensions | undefined {
  return width > 0 && height > 0 ? { width, height } : undefined;
}

function swapped(d: ImageDimensions | undefined, swap: boolean): ImageDimensions | undefined {
  return d && swap ? { width: d.height, height: d.width } : d;
}

// ---------------------------------------------------------------------------------------------
// PNG, GIF, BMP, WebP: fixed offsets
// ---------------------------------------------------------------------------------------------

function png(b: Uint8Array): ImageDimensions | undefined {
  let offset = 8;
  // Apple's "CgBI" PNGs carry one chunk before IHDR.
  if (fourcc(b, offset + 4) === "CgBI") offset += 12 + u32be(b, offset);
  if (b.length < offset + 16 || fourcc(b, offset + 4) !== "IHDR" || u32be(b, offset) !== 13) return undefined;
  const width = u32be(b, offset + 8);
  const height = u32be(b, offset + 12);
  // The PNG specification caps each side at 2^31 - 1.
  if (width > 0x7fffffff || height > 0x7fffffff) return undefined;
  return sized(width, height);
}

function gif(b: Uint8Array): ImageDimensions | undefined {
  if (b.length < 10) return undefined;
  return sized(u16le(b, 6), u16le(b, 8));
}

function bmp(b: Uint8Array): ImageDimensions | undefined {
  const dibSize = u32le(b, 14);
  if (dibSize === 12) return b.length < 22 ? undefined : sized(u16le(b, 18), u16le(b, 20));
  if (b.length < 26) return undefined;
  // A negative height is a top-down bitmap.
  return sized(i32le(b, 18), Math.abs(i32le(b, 22)));
}

function webp(b: Uint8Array): ImageDimensions | undefined {
  const chunk = fourcc(b, 12);
  if (chunk === "VP8X") {
    if (b.length < 30) return undefined;
    return sized(u24le(b, 24) + 1, u24le(b, 27) + 1);
  }
  if (chunk === "VP8L") {
    if (b.length < 25 || b[20] !== 0x2f) return undefined;
    const b0 = b[21] ?? 0;
    const b1 = b[22] ?? 0;
    const b2 = b[23] ?? 0;
    const b3 = b[24] ?? 0;
    return sized(1 + (((b1 & 0x3f) << 8) | b0), 1 + (((b3 & 0x0f) << 10) | (b2 << 2) | ((b1 & 0xc0) >> 6)));
  }
  if (chunk === "VP8 ") {
    // A key frame's start code, then 14-bit width and height (the top 2 bits are scaling).
    if (b.length < 30 || b[23] !== 0x9d || b[24] !== 0x01 || b[25] !== 0x2a) return undefined;
    return sized(u16le(b, 26) & 0x3fff, u16le(b, 28) & 0x3fff);
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// JPEG: walk the markers to the frame header (SOFn); EXIF orientation on the way
// ---------------------------------------------------------------------------------------------

/** SOF0–SOF15 except DHT (C4), JPG (C8) and DAC (CC). */
function isStartOfFrame(marker: number): boolean {
  return marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc;
}

/** The EXIF orientation (1–8) in an APP1 segment's payload, or `undefined`. */
function exifOrientation(b: Uint8Array, start: number, end: number): number | undefined {
  if (fourcc(b, start) !== "Exif" || b[start + 4] !== 0 || b[start + 5] !== 0) return undefined;
  const tiff = start + 6;
  const little = b[tiff] === 0x49 && b[tiff + 1] === 0x49;
  if (!little && !(b[tiff] === 0x4d && b[tiff + 1] === 0x4d)) return undefined;
  const r16 = little ? u16le : u16be;
  const r32 = little ? u32le : u32be;
  if (r16(b, tiff + 2) !== 42) return undefined;
  const ifd = tiff + r32(b, tiff + 4);
  if (ifd + 2 > end) return undefined;
  const count = r16(b, ifd);
  for (let i = 0; i < count; i++) {
    const entry = ifd + 2 + i * 12;
    if (entry + 12 > end) return undefined;
    if (r16(b, entry) === 0x0112) {
      const value = r16(b, entry + 8);
      return value >= 1 && value <= 8 ? value : undefined;
    }
  }
  return undefined;
}

function jpeg(b: Uint8Array): ImageDimensions | undefined {
  let orientation: number | undefined;
  let p = 2;
  while (p < b.length) {
    if (b[p] !== 0xff) return undefined; // not at a marker: corrupt
    while (b[p] === 0xff) p++; // fill bytes
    const marker = b[p];
    if (marker === undefined) return undefined;
    p++;
    // Markers without a segment: TEM, RSTn, SOI, EOI.
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd8)) continue;
    if (marker === 0xd9 || marker === 0xda) return undefined; // the image ends or its scan starts before any frame header
    if (p + 2 > b.length) return undefined;
    const length = u16be(b, p);
    if (length < 2) return undefined;
    if (isStartOfFrame(marker)) {
      if (p + 7 > b.length) return undefined;
      // A zero height is defined later by a DNL marker: unknown here.
      const frame = sized(u16be(b, p + 5), u16be(b, p + 3));
      return swapped(frame, orientation !== undefined && orientation >= 5);
    }
    if (marker === 0xe1 && orientation === undefined) {
      orientation = exifOrientation(b, p + 2, Math.min(b.length, p + length));
    }
    p += length;
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// AVIF / HEIF: the primary item's `ispe` property (and its `irot`) in the `meta` box
// ---------------------------------------------------------------------------------------------

interface Box {
  type: string;
  /** Where the box's content starts (after its header). */
  start: number;
  /** Where the box ends (clipped to the bytes given). */
  end: number;
}

/** The boxes between `start` and `end`; stops at a malformed or truncated header. */
function boxes(b: Uint8Array, start: number, end: number): Box[] {
  const out: Box[] = [];
  let p = start;
  while (p + 8 <= end) {
    let size = u32be(b, p);
    const type = fourcc(b, p + 4);
    let header = 8;
    if (size === 1) {
      if (p + 16 > end) break;
      const high = u32be(b, p + 8);
      size = high > 0 ? Number.POSITIVE_INFINITY : u32be(b, p + 12);
      header = 16;
    } else if (size === 0) {
      size = Number.POSITIVE_INFINITY; // to the end of the file
    }
    if (size < header) break;
    out.push({ type, start: p + header, end: Math.min(end, p + size) });
    if (!Number.isFinite(size)) break;
    p += size;
  }
  return out;
}

function heif(b: Uint8Array): ImageDimensions | undefined {
  const meta = boxes(b, 0, b.length).find((box) => box.type === "meta");
  if (!meta) return undefined;
  // `meta` is a full box: version and flags first.
  const children = boxes(b, meta.start + 4, meta.end);
  let primary: number | undefined;
  const pitm = children.find((box) => box.type === "pitm");
  if (pitm) primary = b[pitm.start] === 0 ? u16be(b, pitm.start + 4) : u32be(b, pitm.start + 4);
  const iprp = children.find((box) => box.type === "iprp");
  if (!iprp) return undefined;
  const inside = boxes(b, iprp.start, iprp.end);
  const ipco = inside.find((box) => box.type === "ipco");
  if (!ipco) return undefined;
  /** Properties by their 1-based index in `ipco`. */
  const properties = boxes(b, ipco.start, ipco.end);
  const ispeOf = (box: Box | undefined): ImageDimensions | undefined =>
    box?.type === "ispe" && box.start + 12 <= box.end
      ? sized(u32be(b, box.start + 4), u32be(b, box.start + 8))
      : undefined;

  // The primary item's associations (ipma): its ispe and irot.
  const associated: number[] = [];
  for (const ipma of inside.filter((box) => box.type === "ipma")) {
    const version = b[ipma.start] ?? 0;
    const wide = ((b[ipma.start + 3] ?? 0) & 1) === 1;
    let p = ipma.start + 8;
    const count = u32be(b, ipma.start + 4);
    for (let i = 0; i < count && p < ipma.end; i++) {
      const item = version < 1 ? u16be(b, p) : u32be(b, p);
      p += version < 1 ? 2 : 4;
      const n = b[p] ?? 0;
      p += 1;
      for (let j = 0; j < n; j++) {
        const index = wide ? u16be(b, p) & 0x7fff : (b[p] ?? 0) & 0x7f;
        p += wide ? 2 : 1;
        if (item === primary) associated.push(index);
      }
    }
  }
  let size: ImageDimensions | undefined;
  let quarterTurn = false;
  for (const index of associated) {
    const box = properties[index - 1];
    if (box?.type === "ispe") size ??= ispeOf(box);
    if (box?.type === "irot" && box.start < box.end) quarterTurn = ((b[box.start] ?? 0) & 1) === 1;
  }
  if (size) return swapped(size, quarterTurn);
  // No association read (no pitm, or a truncated ipma): the largest ispe, the safe choice for a pixel limit.
  let largest: ImageDimensions | undefined;
  for (const box of properties) {
    const d = ispeOf(box);
    if (d && (!largest || d.width * d.height > largest.width * largest.height)) largest = d;
  }
  return largest;
}

// ---------------------------------------------------------------------------------------------

/**
 * The dimensions the header at the start of `head` declares, as displayed (see the module's
 * documentation), for PNG, JPEG, GIF, WebP, AVIF/HEIF/HEIC and BMP; `undefined` for other
 * types and for headers that are absent from `head` or corrupt. `type` is the sniffed type when
 * the caller has it (else `head` is sniffed). Never throws.
 */
export function readImageDimensions(head: Uint8Array, type?: string): ImageDimensions | undefined {
  const detected = type ?? sniffContentType(head);
  try {
    switch (detected) {
      case "image/png":
        return png(head);
      case "image/jpeg":
        return jpeg(head);
      case "image/gif":
        return gif(head);
      case "image/webp":
        return webp(head);
      case "image/avif":
      case "image/heic":
      case "image/heif":
        return heif(head);
      case "image/bmp":
        return bmp(head);
      default:
        return undefined;
    }
  } catch {
    // The readers bound every offset; this guards the promise that a header never fails an upload.
    return undefined;
  }
}
