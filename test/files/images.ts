/**
 * Image headers built byte by byte, for the dimension reader and the `maxPixels` tests: each is
 * what the format's specification puts first, followed by filler where the pixel data would go.
 */
import { crc32 } from "node:zlib";

function pngChunk(type: string, data: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(type, "latin1"), data]);
  const out = Buffer.alloc(body.length + 8);
  out.writeUInt32BE(data.length, 0);
  body.copy(out, 4);
  out.writeUInt32BE(crc32(body), body.length + 4);
  return out;
}

/** A PNG whose IHDR declares `width` × `height` (a valid chunk with its CRC), then `tail` bytes of filler. */
export function pngHeader(width: number, height: number, tail = 64): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8;
  ihdr[9] = 2;
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk("IHDR", ihdr),
    pngChunk("IDAT", Buffer.alloc(tail, 0x78)),
  ]);
}

/** A JPEG segment: FF marker, 2-byte length (payload + 2), payload. */
function segment(marker: number, payload: Buffer): Buffer {
  const head = Buffer.from([0xff, marker, 0, 0]);
  head.writeUInt16BE(payload.length + 2, 2);
  return Buffer.concat([head, payload]);
}

/** An APP1 EXIF payload whose IFD0 holds one Orientation entry. */
function exif(orientation: number, littleEndian: boolean): Buffer {
  const tiff = Buffer.alloc(8 + 2 + 12 + 4);
  if (littleEndian) {
    tiff.write("II", 0, "latin1");
    tiff.writeUInt16LE(42, 2);
    tiff.writeUInt32LE(8, 4);
    tiff.writeUInt16LE(1, 8);
    tiff.writeUInt16LE(0x0112, 10);
    tiff.writeUInt16LE(3, 12); // SHORT
    tiff.writeUInt32LE(1, 14);
    tiff.writeUInt16LE(orientation, 18);
  } else {
    tiff.write("MM", 0, "latin1");
    tiff.writeUInt16BE(42, 2);
    tiff.writeUInt32BE(8, 4);
    tiff.writeUInt16BE(1, 8);
    tiff.writeUInt16BE(0x0112, 10);
    tiff.writeUInt16BE(3, 12);
    tiff.writeUInt32BE(1, 14);
    tiff.writeUInt16BE(orientation, 18);
  }
  return Buffer.concat([Buffer.from("Exif\0\0", "latin1"), tiff]);
}

/** APP2 segments of `bytes` in all (a segment holds at most 65,533). */
function padding(bytes: number): Buffer[] {
  const out: Buffer[] = [];
  for (let left = bytes; left > 0; left -= 60_000) out.push(segment(0xe2, Buffer.alloc(Math.min(left, 60_000), 0x20)));
  return out;
}

/**
 * A baseline JPEG's header: SOI, JFIF APP0, an optional EXIF APP1 with `orientation`, an
 * optional `padding` bytes of APP2 segments (as an ICC profile would be), SOF0 with `width` × `height`,
 * then the start of a scan.
 */
export function jpegHeader(
  width: number,
  height: number,
  options: { orientation?: number; bigEndianExif?: boolean; padding?: number; sof?: number } = {},
): Buffer {
  const sof = Buffer.alloc(15);
  sof[0] = 8; // precision
  sof.writeUInt16BE(height, 1);
  sof.writeUInt16BE(width, 3);
  sof[5] = 3; // components
  return Buffer.concat([
    Buffer.from([0xff, 0xd8]),
    segment(0xe0, Buffer.from("JFIF\0\x01\x01\0\0\x01\0\x01\0\0", "latin1")),
    ...(options.orientation === undefined
      ? []
      : [segment(0xe1, exif(options.orientation, options.bigEndianExif !== true))]),
    ...padding(options.padding ?? 0),
    segment(options.sof ?? 0xc0, sof),
    segment(0xda, Buffer.alloc(10)),
    Buffer.alloc(64, 0x55),
  ]);
}

export function gifHeader(width: number, height: number): Buffer {
  const out = Buffer.alloc(32);
  out.write("GIF89a", 0, "latin1");
  out.writeUInt16LE(width, 6);
  out.writeUInt16LE(height, 8);
  return out;
}

function riff(chunk: string, data: Buffer): Buffer {
  const head = Buffer.alloc(20);
  head.write("RIFF", 0, "latin1");
  head.writeUInt32LE(data.length + 12, 4);
  head.write("WEBP", 8, "latin1");
  head.write(chunk, 12, "latin1");
  head.writeUInt32LE(data.length, 16);
  return Buffer.concat([head, data]);
}

/** WebP, lossy (`VP8 `), lossless (`VP8L`) or extended (`VP8X`). */
export function webpHeader(kind: "VP8 " | "VP8L" | "VP8X", width: number, height: number): Buffer {
  if (kind === "VP8X") {
    const data = Buffer.alloc(10);
    data.writeUIntLE(width - 1, 4, 3);
    data.writeUIntLE(height - 1, 7, 3);
    return riff("VP8X", Buffer.concat([data, Buffer.alloc(32)]));
  }
  if (kind === "VP8L") {
    const data = Buffer.alloc(5 + 32);
    data[0] = 0x2f;
    const bits = (width - 1) | ((height - 1) << 14);
    data.writeUInt32LE(bits >>> 0, 1);
    return riff("VP8L", data);
  }
  const data = Buffer.alloc(10 + 32);
  data.set([0x9d, 0x01, 0x2a], 3); // after the 3-byte frame tag
  data.writeUInt16LE(width, 6);
  data.writeUInt16LE(height, 8);
  return riff("VP8 ", data);
}

/** BMP with a BITMAPINFOHEADER; a negative height is a top-down bitmap. */
export function bmpHeader(width: number, height: number): Buffer {
  const out = Buffer.alloc(54 + 16);
  out.write("BM", 0, "latin1");
  out.writeUInt32LE(out.length, 2);
  out.writeUInt32LE(54, 10);
  out.writeUInt32LE(40, 14);
  out.writeInt32LE(width, 18);
  out.writeInt32LE(height, 22);
  out.writeUInt16LE(1, 26);
  out.writeUInt16LE(24, 28);
  return out;
}

function box(type: string, ...content: Buffer[]): Buffer {
  const body = Buffer.concat(content);
  const head = Buffer.alloc(8);
  head.writeUInt32BE(body.length + 8, 0);
  head.write(type, 4, "latin1");
  return Buffer.concat([head, body]);
}

function fullBox(type: string, version: number, flags: number, ...content: Buffer[]): Buffer {
  const vf = Buffer.alloc(4);
  vf.writeUInt32BE(((version << 24) | flags) >>> 0, 0);
  return box(type, vf, ...content);
}

function ispe(width: number, height: number): Buffer {
  const data = Buffer.alloc(8);
  data.writeUInt32BE(width, 0);
  data.writeUInt32BE(height, 4);
  return fullBox("ispe", 0, 0, data);
}

/**
 * An AVIF's boxes up to its item properties: `ftyp`, then `meta` with `pitm` (primary item 1),
 * `ipco` holding a 64 × 64 thumbnail `ispe` (property 1), the primary's `ispe` (property 2) and,
 * with `rotate`, an `irot` of a quarter turn (property 3); `ipma` ties item 2 (the thumbnail) to
 * property 1 and item 1 to the others. Then the start of `mdat`.
 */
export function avifHeader(width: number, height: number, options: { rotate?: boolean; pitm?: boolean } = {}): Buffer {
  const ftyp = box("ftyp", Buffer.from("avif\0\0\0\0avifmif1miaf", "latin1"));
  const pitm = fullBox("pitm", 0, 0, Buffer.from([0, 1]));
  const properties = [ispe(64, 64), ispe(width, height)];
  if (options.rotate) properties.push(box("irot", Buffer.from([1])));
  const primary = options.rotate ? [0x82, 0x03] : [0x82];
  const ipma = fullBox("ipma", 0, 0, Buffer.from([0, 0, 0, 2, 0, 1, primary.length, ...primary, 0, 2, 1, 0x81]));
  const iprp = box("iprp", box("ipco", ...properties), ipma);
  const hdlr = fullBox("hdlr", 0, 0, Buffer.from("\0\0\0\0pict\0\0\0\0\0\0\0\0\0\0\0\0\0", "latin1"));
  const meta = fullBox("meta", 0, 0, hdlr, ...(options.pitm === false ? [] : [pitm]), iprp);
  return Buffer.concat([ftyp, meta, box("mdat", Buffer.alloc(32, 0x11))]);
}
