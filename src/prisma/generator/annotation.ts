/**
 * The `@file` annotation: a `///` comment above a `String` column that declares it a file field.
 *
 * ```prisma
 * /// The user's picture.
 * /// @file(uploadTo: "avatars/%Y/%m/", storage: "public", maxSize: "5MB", accept: ["image/png", "image/*"])
 * avatar String?
 * ```
 *
 * Grammar (whitespace, including line breaks between `///` lines, is allowed between tokens):
 *
 * ```text
 * annotation := "@file" [ "(" [ option { "," option } [ "," ] ] ")" ]
 * option     := identifier ":" value
 * value      := string | number | "true" | "false" | "[" [ value { "," value } [ "," ] ] "]"
 *             | "{" [ identifier ":" value { "," identifier ":" value } [ "," ] ] "}"
 * string     := '"' { any character but '"' and '\' | '\"' | '\\' } '"'
 * number     := JSON number, e.g. 5000000, 1.5, 1e6
 * ```
 *
 * `@file` counts only where it starts a word (at the start of the text or after whitespace) and
 * is not followed by a name character, so `@filename` or `me@file.io` are not annotations. The
 * `(` must follow `@file` immediately, as in Prisma's own attributes.
 *
 * Options (see {@link FileFieldOptions} for the normalized values):
 *
 * | option               | value                                    | default                                 |
 * |----------------------|------------------------------------------|-----------------------------------------|
 * | `uploadTo`           | string, strftime directives allowed      | `""` (the storage's root)               |
 * | `storage`            | string, a storage name                   | `"default"`                             |
 * | `maxSize`            | bytes: number, or string `"5MB"`         | none                                    |
 * | `accept`             | array of `type/subtype` or `type/*`      | none (any type)                         |
 * | `keepFiles`          | boolean                                  | `false`                                 |
 * | `deleteAfterSeconds` | non-negative number                      | `0`                                     |
 * | `maxLength`          | positive integer                         | `n` of `@db.VarChar(n)`/`@db.Char(n)`, else none |
 * | `metadata`           | string, a `Json?` field of the model     | none                                    |
 * | `widthField`         | string, an `Int?` field of the model     | none                                    |
 * | `heightField`        | string, an `Int?` field of the model     | none                                    |
 * | `maxPixels`          | positive integer (width × height)        | 40,000,000 for uploads that are images  |
 * | `variants`           | `{ name: "spec", ... }` (image variants) | none                                    |
 *
 * Size units ({@link parseSize}): decimal `B`, `KB`/`kB`, `MB`, `GB`, `TB` are powers of 1000
 * (`"5MB"` is 5,000,000 bytes), binary `KiB`, `MiB`, `GiB`, `TiB` are powers of 1024 (`"10 MiB"`
 * is 10,485,760 bytes). Units are case-insensitive; a space between number and unit is allowed.
 */
import { PrismaS3FilesError } from "../../errors.js";
import { formatVariantSpec, isVariantName, parseVariantSpec } from "../../files/variants.js";

/** The options of one file field, normalized. */
export interface FileFieldOptions {
  /** Directory pattern (Django's `upload_to`), run through strftime at upload time; `""` = root. */
  uploadTo: string;
  /** Name of the storage holding the objects; `"default"` unless given. */
  storage: string;
  /** Largest accepted upload in bytes; `null`: no limit. */
  maxSize: number | null;
  /** Accepted MIME types (lower case), exact or `type/*`; `null`: any type. */
  accept: string[] | null;
  /** `true`: deleting the row (or clearing the column) leaves the object in the storage. */
  keepFiles: boolean;
  /** Grace period before a replaced or deleted object is removed, in seconds; `0`: right away. */
  deleteAfterSeconds: number;
  /** Longest key the column stores; `null`: no limit known. */
  maxLength: number | null;
  /** A `Json?` field that receives the file's facts (size, type, SHA-256, name, dimensions); `null`: none. */
  metadata: string | null;
  /** An `Int?` field that receives an image's width (Django's `width_field`); `null`: none. */
  widthField: string | null;
  /** An `Int?` field that receives an image's height (Django's `height_field`); `null`: none. */
  heightField: string | null;
  /** Largest image (width × height) accepted; `null`: the default, 40 megapixels. */
  maxPixels: number | null;
  /**
   * Derived images made from each upload, by name: the spec in its canonical text (see
   * `parseVariantSpec`); `null`: none.
   */
  variants: Record<string, string> | null;
}

/** Where an annotation was found, for error messages. */
export interface AnnotationLocation {
  model: string;
  field: string;
}

/**
 * A `@file` annotation is wrong. The message reads `Model.field: problem`; the parts are kept in
 * `model`, `field` and `problem`.
 */
export class FileAnnotationError extends PrismaS3FilesError {
  readonly model: string;
  readonly field: string;
  readonly problem: string;
  constructor(location: AnnotationLocation, problem: string) {
    super("FILE_ANNOTATION", `${location.model}.${location.field}: ${problem}`);
    this.model = location.model;
    this.field = location.field;
    this.problem = problem;
  }
}

/** The option names, in the order they are documented and emitted. */
export const FILE_OPTION_NAMES = [
  "uploadTo",
  "storage",
  "maxSize",
  "accept",
  "keepFiles",
  "deleteAfterSeconds",
  "maxLength",
  "metadata",
  "widthField",
  "heightField",
  "maxPixels",
  "variants",
] as const;

export type FileOptionName = (typeof FILE_OPTION_NAMES)[number];

/** The defaults of every option. */
export function defaultFileFieldOptions(): FileFieldOptions {
  return {
    uploadTo: "",
    storage: "default",
    maxSize: null,
    accept: null,
    keepFiles: false,
    deleteAfterSeconds: 0,
    maxLength: null,
    metadata: null,
    widthField: null,
    heightField: null,
    maxPixels: null,
    variants: null,
  };
}

// ---------------------------------------------------------------------------------------------
// Finding the annotation
// ---------------------------------------------------------------------------------------------

const MARKER = "@file";
const NAME_CHAR = /[A-Za-z0-9_$-]/;

/** Index of the next `@file` token at or after `from`, or -1. */
function findMarker(text: string, from: number): number {
  let i = text.indexOf(MARKER, from);
  while (i !== -1) {
    const before = i === 0 ? "" : text[i - 1]!;
    const after = text[i + MARKER.length] ?? "";
    if ((before === "" || /\s/.test(before)) && !NAME_CHAR.test(after)) return i;
    i = text.indexOf(MARKER, i + 1);
  }
  return -1;
}

/** Whether the documentation text carries a `@file` annotation (well-formed or not). */
export function hasFileAnnotation(documentation: string | null | undefined): boolean {
  return documentation != null && findMarker(documentation, 0) !== -1;
}

// ---------------------------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------------------------

type Value = string | number | boolean | Value[] | ObjectValue;

/** `{ name: value, ... }`, its entries in the order written (a class, so it is told from an array). */
class ObjectValue {
  constructor(readonly entries: [string, Value][]) {}
}

class Syntax extends Error {}

/** A recursive-descent reader over the text after `@file(`. */
class Reader {
  pos: number;
  constructor(
    readonly text: string,
    start: number,
  ) {
    this.pos = start;
  }

  skipSpace(): void {
    while (this.pos < this.text.length && /\s/.test(this.text[this.pos]!)) this.pos++;
  }

  peek(): string {
    return this.text[this.pos] ?? "";
  }

  /** A short excerpt of the text at the current position, for messages. */
  near(): string {
    if (this.pos >= this.text.length) return "at the end of the comment";
    const rest = this.text.slice(this.pos).split("\n")[0]!;
    const excerpt = rest.length > 24 ? `${rest.slice(0, 24)}…` : rest;
    return `at ${JSON.stringify(excerpt)}`;
  }

  fail(what: string): never {
    throw new Syntax(`${what} ${this.near()}`);
  }

  identifier(): string | null {
    const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(this.text.slice(this.pos));
    if (!m) return null;
    this.pos += m[0].length;
    return m[0];
  }

  value(): Value {
    this.skipSpace();
    const c = this.peek();
    if (c === '"') return this.string();
    if (c === "[") return this.array();
    if (c === "{") return this.object();
    if (c === "-" || /[0-9]/.test(c)) return this.number();
    const start = this.pos;
    const word = this.identifier();
    if (word === "true") return true;
    if (word === "false") return false;
    if (word !== null) {
      this.pos = start;
      this.fail(`expected a value but found the bare word ${JSON.stringify(word)} (strings need double quotes)`);
    }
    if (c === "'") this.fail("expected a value: strings need double quotes, not single quotes,");
    if (c === "") this.fail('expected a value, then ")"');
    this.fail("expected a value (a double-quoted string, a number, true, false, [...] or {...})");
  }

  string(): string {
    const start = this.pos;
    this.pos++; // opening quote
    let out = "";
    for (;;) {
      const c = this.text[this.pos];
      if (c === undefined || c === "\n") {
        this.pos = start;
        this.fail("unterminated string");
      }
      if (c === '"') {
        this.pos++;
        return out;
      }
      if (c === "\\") {
        const next = this.text[this.pos + 1];
        if (next === '"' || next === "\\") {
          out += next;
          this.pos += 2;
          continue;
        }
        this.fail('unsupported escape in string (only \\" and \\\\ are allowed)');
      }
      out += c;
      this.pos++;
    }
  }

  number(): number {
    const m = /^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/.exec(this.text.slice(this.pos));
    const after = m ? (this.text[this.pos + m[0].length] ?? "") : "";
    if (!m || /[A-Za-z0-9_.]/.test(after)) this.fail('malformed number (sizes with units need quotes, as in "5MB")');
    this.pos += m[0].length;
    return Number(m[0]);
  }

  array(): Value[] {
    this.pos++; // [
    const items: Value[] = [];
    for (;;) {
      this.skipSpace();
      if (this.peek() === "]") {
        this.pos++;
        return items;
      }
      items.push(this.value());
      this.skipSpace();
      const c = this.peek();
      if (c === ",") {
        this.pos++;
        continue;
      }
      if (c === "]") continue;
      this.fail('expected "," or "]" in array');
    }
  }

  object(): ObjectValue {
    this.pos++; // {
    const entries: [string, Value][] = [];
    for (;;) {
      this.skipSpace();
      if (this.peek() === "}") {
        this.pos++;
        return new ObjectValue(entries);
      }
      const name = this.identifier();
      if (name === null) this.fail("expected a name in {...}");
      if (entries.some(([n]) => n === name)) this.fail(`${JSON.stringify(name)} is given twice in {...}`);
      this.skipSpace();
      if (this.peek() !== ":") this.fail(`expected ":" after ${JSON.stringify(name)}`);
      this.pos++;
      entries.push([name, this.value()]);
      this.skipSpace();
      const c = this.peek();
      if (c === ",") {
        this.pos++;
        continue;
      }
      if (c === "}") continue;
      this.fail('expected "," or "}" in {...}');
    }
  }
}

function describe(value: Value): string {
  if (Array.isArray(value)) return "an array";
  if (value instanceof ObjectValue) return "an object";
  if (typeof value === "string") return `the string ${JSON.stringify(value)}`;
  return `${typeof value} ${String(value)}`;
}

// ---------------------------------------------------------------------------------------------
// Sizes and MIME types
// ---------------------------------------------------------------------------------------------

const SIZE_UNITS: Record<string, bigint> = {
  b: 1n,
  kb: 10n ** 3n,
  mb: 10n ** 6n,
  gb: 10n ** 9n,
  tb: 10n ** 12n,
  kib: 1n << 10n,
  mib: 1n << 20n,
  gib: 1n << 30n,
  tib: 1n << 40n,
};

/**
 * Bytes in a size string: a decimal number, optional whitespace, an optional unit. Decimal units
 * (`KB`, `MB`, `GB`, `TB`) are powers of 1000, binary units (`KiB`, `MiB`, `GiB`, `TiB`) powers of
 * 1024, case-insensitive; no unit means bytes. Exact (no floating-point rounding): `"1.5GB"` is
 * 1,500,000,000 and `"1.5KiB"` 1536. Returns an error message for anything else, for sizes that
 * are not a whole number of bytes, and for sizes beyond `Number.MAX_SAFE_INTEGER`.
 */
export function parseSize(text: string): number | { error: string } {
  const m = /^\s*([0-9]+)(?:\.([0-9]+))?\s*([A-Za-z]*)\s*$/.exec(text);
  if (!m) {
    return { error: `malformed size ${JSON.stringify(text)} (expected e.g. "512KB", "5MB", "1.5GB" or "10 MiB")` };
  }
  const unitName = m[3]!.toLowerCase() || "b";
  const unit = SIZE_UNITS[unitName];
  if (unit === undefined) {
    return {
      error: `unknown size unit ${JSON.stringify(m[3])} in ${JSON.stringify(text)} (known: B, KB, MB, GB, TB = powers of 1000; KiB, MiB, GiB, TiB = powers of 1024)`,
    };
  }
  const fraction = m[2] ?? "";
  const scaled = BigInt(m[1]! + fraction) * unit;
  const divisor = 10n ** BigInt(fraction.length);
  if (scaled % divisor !== 0n) {
    return { error: `size ${JSON.stringify(text)} is not a whole number of bytes` };
  }
  const bytes = scaled / divisor;
  if (bytes > BigInt(Number.MAX_SAFE_INTEGER)) return { error: `size ${JSON.stringify(text)} is too large` };
  return Number(bytes);
}

// RFC 6838 restricted-name: 1-127 chars, first alphanumeric.
const MIME_NAME = "[a-z0-9][a-z0-9!#$&^_.+-]{0,126}";
const MIME_PATTERN = new RegExp(`^(?:\\*/\\*|${MIME_NAME}/\\*|${MIME_NAME}/${MIME_NAME})$`);

/** Whether `pattern` is a MIME type (`image/png`), a wildcard (`image/*`) or `*` + `/*`. Case-insensitive. */
export function isMimePattern(pattern: string): boolean {
  return MIME_PATTERN.test(pattern.toLowerCase());
}

// ---------------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------------

function checkUploadTo(value: string): string | null {
  // Checked again at upload time; catching it here names the field at generate time.
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c <= 0x1f || c === 0x7f) return "uploadTo contains a control character";
  }
  if (value.startsWith("/") || value.startsWith("\\") || /^[A-Za-z]:/.test(value)) {
    return `uploadTo ${JSON.stringify(value)} must be relative (no leading "/")`;
  }
  if (value.includes("\\")) return `uploadTo ${JSON.stringify(value)} must use "/" as separator, not "\\"`;
  if (value.split("/").includes("..")) return `uploadTo ${JSON.stringify(value)} must not contain a ".." segment`;
  return null;
}

/** Applies one option's value to `options`; returns an error message for a bad value. */
function applyOption(options: FileFieldOptions, name: FileOptionName, value: Value): string | null {
  const expected = (type: string) => `${name} must be ${type}, got ${describe(value)}`;
  switch (name) {
    case "uploadTo": {
      if (typeof value !== "string") return expected("a string");
      const problem = checkUploadTo(value);
      if (problem) return problem;
      options.uploadTo = value;
      return null;
    }
    case "storage": {
      if (typeof value !== "string") return expected("a string");
      if (!/^[A-Za-z0-9_.-]+$/.test(value)) {
        return `storage name ${JSON.stringify(value)} must be non-empty and use only letters, digits, "_", "-" and "."`;
      }
      options.storage = value;
      return null;
    }
    case "maxSize": {
      if (typeof value === "number") {
        if (!Number.isSafeInteger(value) || value <= 0) {
          return `maxSize must be a positive whole number of bytes, got ${value}`;
        }
        options.maxSize = value;
        return null;
      }
      if (typeof value !== "string") return expected('a number of bytes or a size string like "5MB"');
      const bytes = parseSize(value);
      if (typeof bytes !== "number") return `maxSize: ${bytes.error}`;
      if (bytes <= 0) return `maxSize must be positive, got ${JSON.stringify(value)}`;
      options.maxSize = bytes;
      return null;
    }
    case "accept": {
      if (!Array.isArray(value)) return expected('an array of MIME types like ["image/png", "image/*"]');
      if (value.length === 0) return "accept must list at least one MIME type (leave it out to accept any type)";
      const types: string[] = [];
      for (const item of value) {
        if (typeof item !== "string") return `accept must contain only strings, got ${describe(item)}`;
        if (!isMimePattern(item)) {
          return `accept: ${JSON.stringify(item)} is not a MIME type or pattern (expected "type/subtype" or "type/*", without parameters)`;
        }
        const normalized = item.toLowerCase();
        if (!types.includes(normalized)) types.push(normalized);
      }
      options.accept = types;
      return null;
    }
    case "keepFiles": {
      if (typeof value !== "boolean") return expected("true or false");
      options.keepFiles = value;
      return null;
    }
    case "deleteAfterSeconds": {
      if (typeof value !== "number") return expected("a number of seconds");
      if (!Number.isFinite(value) || value < 0) return `deleteAfterSeconds must not be negative, got ${value}`;
      options.deleteAfterSeconds = value;
      return null;
    }
    case "maxLength": {
      if (typeof value !== "number") return expected("a positive integer");
      if (!Number.isSafeInteger(value) || value <= 0) return `maxLength must be a positive integer, got ${value}`;
      options.maxLength = value;
      return null;
    }
    case "metadata":
    case "widthField":
    case "heightField": {
      if (typeof value !== "string") return expected("the name of a field of the model, in double quotes");
      if (!/^[A-Za-z][A-Za-z0-9_]*$/.test(value)) return `${name}: ${JSON.stringify(value)} is not a field name`;
      options[name] = value;
      return null;
    }
    case "maxPixels": {
      if (typeof value !== "number") return expected("a positive integer (width × height)");
      if (!Number.isSafeInteger(value) || value <= 0) return `maxPixels must be a positive integer, got ${value}`;
      options.maxPixels = value;
      return null;
    }
    case "variants": {
      if (!(value instanceof ObjectValue))
        return expected('an object of named specs, e.g. { thumb: "cover 128x128 webp" }');
      if (value.entries.length === 0) return "variants must name at least one variant";
      const variants: Record<string, string> = {};
      for (const [variant, spec] of value.entries) {
        if (!isVariantName(variant)) {
          return `variants: ${JSON.stringify(variant)} is not a variant name (a letter, then letters, digits or "_", at most 32)`;
        }
        if (typeof spec !== "string")
          return `variants.${variant} must be a spec in double quotes, got ${describe(spec)}`;
        const parsed = parseVariantSpec(spec);
        if ("error" in parsed) return `variants.${variant}: ${parsed.error}`;
        variants[variant] = formatVariantSpec(parsed);
      }
      options.variants = variants;
      return null;
    }
  }
}

function isOptionName(name: string): name is FileOptionName {
  return (FILE_OPTION_NAMES as readonly string[]).includes(name);
}

/**
 * Reads the `@file` annotation out of a field's documentation (its `///` lines joined by `"\n"`;
 * other text may surround the annotation). Returns `null` when there is none, the normalized
 * options otherwise (`maxLength` stays `null` unless given: the native type's length is applied
 * by the caller, which knows the column).
 *
 * @throws FileAnnotationError for malformed text, unknown or repeated options, wrong value types
 * and two annotations on one field; the message names `model.field` and the problem.
 */
export function parseFileAnnotation(
  documentation: string | null | undefined,
  location: AnnotationLocation,
): FileFieldOptions | null {
  if (documentation == null) return null;
  const start = findMarker(documentation, 0);
  if (start === -1) return null;
  const options = defaultFileFieldOptions();
  const error = (problem: string) => new FileAnnotationError(location, problem);

  let end = start + MARKER.length;
  if (documentation[end] === "(") {
    const reader: Reader = new Reader(documentation, end + 1);
    const seen = new Set<string>();
    try {
      for (;;) {
        reader.skipSpace();
        if (reader.peek() === ")") {
          reader.pos++;
          break;
        }
        const key = reader.identifier();
        if (key === null) {
          if (reader.peek() === "") reader.fail('missing ")"');
          reader.fail("expected an option name");
        }
        if (!isOptionName(key)) {
          throw error(`unknown option ${JSON.stringify(key)} in @file(...) (known: ${FILE_OPTION_NAMES.join(", ")})`);
        }
        if (seen.has(key)) throw error(`option ${JSON.stringify(key)} is given twice in @file(...)`);
        seen.add(key);
        reader.skipSpace();
        if (reader.peek() !== ":") reader.fail(`expected ":" after option ${JSON.stringify(key)}`);
        reader.pos++;
        const value = reader.value();
        const problem = applyOption(options, key, value);
        if (problem !== null) throw error(problem);
        reader.skipSpace();
        const c = reader.peek();
        if (c === ",") {
          reader.pos++;
          continue;
        }
        if (c === ")") continue;
        if (c === "") reader.fail('missing ")"');
        reader.fail('expected "," or ")" after a value');
      }
    } catch (e) {
      if (e instanceof Syntax) throw error(`malformed @file(...): ${e.message}`);
      throw e;
    }
    end = reader.pos;
  } else if (/^[ \t]+\(/.test(documentation.slice(end))) {
    throw error('malformed @file(...): no space is allowed between "@file" and "("');
  }

  const second = findMarker(documentation, end);
  if (second !== -1) {
    throw error("more than one @file annotation (a field takes exactly one; merge their options)");
  }
  return options;
}
