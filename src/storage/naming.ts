/**
 * Django's file naming rules, ported to TypeScript.
 *
 * Sources (Django main): `django/utils/text.py` (`get_valid_filename`), `django/core/files/utils.py`
 * (`validate_file_name`), `django/core/files/storage/base.py` (`generate_filename`,
 * `get_available_name`, `get_alternative_name`), `django/db/models/fields/files.py`
 * (`FileField.generate_filename`), plus django-storages' `storages/utils.py` (`safe_join`,
 * `get_available_overwrite_name`). The checks are the ones shaped by CVE-2021-28658, CVE-2021-31542,
 * CVE-2021-45452 and CVE-2024-39330.
 *
 * Path handling follows Django running on a POSIX system (`os.path` is `posixpath` there): only `/`
 * separates path elements unless a function explicitly turns `\` into `/` first, as Django does.
 * {@link assertSafeKey} is our own, stricter check for backends and is not part of Django.
 *
 * Lengths and truncation count Unicode code points, like Python's `len()` and slicing, so that a
 * `maxLength` means the same as Django's `max_length` and no surrogate pair is ever cut in half.
 * Backends' own limits ({@link NameByteLimits}, not in Django) count UTF-8 bytes, as file systems
 * and S3 do, and cut between code points too.
 */

import { randomInt } from "node:crypto";
import { StorageError, SuspiciousFileOperationError } from "../errors.js";
import { strftime } from "./strftime.js";

// Re-exported for the modules that import it from here; it lives in strftime.ts.
export { strftime };

// ---------------------------------------------------------------------------------------------
// Small pieces of Python's str / posixpath / pathlib semantics.
// ---------------------------------------------------------------------------------------------

/** Quote a name for an error message; JSON makes control characters and backslashes visible. */
function q(name: string): string {
  return JSON.stringify(name);
}

/**
 * Python's `str.isspace()` set (what `str.strip()` removes). It differs from JS `trim()`: Python
 * also strips U+001C..U+001F and U+0085 but keeps U+FEFF, which JS would strip.
 */
const PY_WHITESPACE = new Set<number>([
  0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x85, 0xa0, 0x1680, 0x2000, 0x2001, 0x2002, 0x2003,
  0x2004, 0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200a, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000,
]);

/** Python's `str.strip()` with no argument. All whitespace is in the BMP, so code units suffice. */
function pyStrip(s: string): string {
  let start = 0;
  let end = s.length;
  while (start < end && PY_WHITESPACE.has(s.charCodeAt(start))) start++;
  while (end > start && PY_WHITESPACE.has(s.charCodeAt(end - 1))) end--;
  return s.slice(start, end);
}

/**
 * Everything that is NOT in Python's `[-\w.]` for str patterns. Python's `\w` is "`str.isalnum()`
 * or underscore": letters (Lu Ll Lt Lm Lo) and every character with a numeric value (Nd Nl No).
 * Combining marks (Mn Mc Me) and connector punctuation other than `_` are NOT word characters in
 * Python, so a decomposed "e\u0301" keeps only the "e", exactly as Django does.
 */
const NOT_VALID_FILENAME_CHAR = /[^-\p{L}\p{N}_.]/gu;

/** Python's `len(s)`: the number of code points. */
function cpLength(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

/** Python's `s[:-n]` for `n > 0`, counting code points. */
function dropLastCodePoints(s: string, n: number): string {
  const cps = Array.from(s);
  return cps.slice(0, Math.max(0, cps.length - n)).join("");
}

/** `posixpath.basename`. */
function posixBasename(p: string): string {
  return p.slice(p.lastIndexOf("/") + 1);
}

/** `posixpath.split`: trailing slashes are removed from the head unless it is all slashes. */
function posixSplit(p: string): [head: string, tail: string] {
  const i = p.lastIndexOf("/") + 1;
  let head = p.slice(0, i);
  const tail = p.slice(i);
  if (head && head !== "/".repeat(head.length)) head = head.replace(/\/+$/, "");
  return [head, tail];
}

/** `posixpath.join`: an absolute component discards everything before it. */
function posixJoin(a: string, ...rest: string[]): string {
  let path = a;
  for (const b of rest) {
    if (b.startsWith("/")) path = b;
    else if (!path || path.endsWith("/")) path += b;
    else path += `/${b}`;
  }
  return path;
}

/** `posixpath.normpath`: collapses `.`, `..` and repeated slashes without touching the filesystem. */
function posixNormpath(path: string): string {
  if (!path) return ".";
  // POSIX keeps exactly two leading slashes but folds three or more into one.
  let initialSlashes = path.startsWith("/") ? 1 : 0;
  if (initialSlashes && path.startsWith("//") && !path.startsWith("///")) initialSlashes = 2;
  const out: string[] = [];
  for (const comp of path.split("/")) {
    if (comp === "" || comp === ".") continue;
    if (comp !== ".." || (!initialSlashes && out.length === 0) || out[out.length - 1] === "..") {
      out.push(comp);
    } else if (out.length > 0) {
      out.pop();
    }
  }
  const joined = "/".repeat(initialSlashes) + out.join("/");
  return joined || ".";
}

/** `".." in pathlib.PurePosixPath(p).parts`: `parts` drops only empty and `.` segments. */
function hasParentSegment(p: string): boolean {
  return p.split("/").includes("..");
}

/** `pathlib.PurePosixPath(p).name`: the last segment that is neither empty nor `.`. */
function pureName(p: string): string {
  const segments = p.split("/").filter((s) => s !== "" && s !== ".");
  return segments[segments.length - 1] ?? "";
}

// ---------------------------------------------------------------------------------------------
// get_valid_filename / validate_file_name
// ---------------------------------------------------------------------------------------------

/**
 * Django's `get_valid_filename`: strip surrounding whitespace (Python's definition), turn spaces
 * into `_`, drop every character outside `[-\w.]` (Python's Unicode `\w`).
 *
 * @example getValidFilename("john's portrait in 2004.jpg") === "johns_portrait_in_2004.jpg"
 * @throws SuspiciousFileOperationError when nothing usable is left (`""`, `.` or `..`).
 */
export function getValidFilename(name: string): string {
  const s = pyStrip(String(name)).replaceAll(" ", "_").replace(NOT_VALID_FILENAME_CHAR, "");
  if (s === "" || s === "." || s === "..") {
    throw new SuspiciousFileOperationError(`Could not derive file name from ${q(name)}`);
  }
  return s;
}

/**
 * Django's `validate_file_name`; returns `name` unchanged when it is acceptable.
 *
 * - The base name (after the last `/`) may not be `""`, `.` or `..`.
 * - With `allowRelativePath`, `\` is read as `/` and the name may be neither absolute nor contain a
 *   `..` segment (CVE-2021-31542).
 * - Without it, the name must be a bare base name: no `/` at all.
 *
 * Like Django on POSIX, this does not look at control characters, and without `allowRelativePath` a
 * backslash is an ordinary character; use {@link assertSafeKey} for those.
 *
 * @throws SuspiciousFileOperationError
 */
export function validateFileName(name: string, opts?: { allowRelativePath?: boolean }): string {
  const base = posixBasename(name);
  if (base === "" || base === "." || base === "..") {
    throw new SuspiciousFileOperationError(`Could not derive file name from ${q(name)}`);
  }
  if (opts?.allowRelativePath) {
    const path = name.replaceAll("\\", "/");
    if (path.startsWith("/") || hasParentSegment(path)) {
      throw new SuspiciousFileOperationError(`Detected path traversal attempt in ${q(name)}`);
    }
  } else if (name !== base) {
    throw new SuspiciousFileOperationError(`File name ${q(name)} includes path elements`);
  }
  return name;
}

/**
 * The normal form every storage addresses a name by: empty and `.` segments dropped
 * (`./a//b.txt` → `a/b.txt`), as Django's and django-storages' `safe_join` do. Names that differ
 * only in those segments are the same object.
 */
export function normalizeName(name: string): string {
  return name
    .split("/")
    .filter((s) => s !== "" && s !== ".")
    .join("/");
}

/**
 * Our stricter check (not in Django), for backends to run on every name before touching storage.
 * Rejects: the empty name; control characters U+0000..U+001F and U+007F (NUL included); absolute
 * names in any convention (`/x`, `\x`, `\\server\share`, `C:\x`, `C:/x`, `C:x`); and any `..`
 * segment, with `/` or `\` as separator. Django leaves these to `get_valid_filename` (which drops
 * control characters from base names) and to the OS path rules of the machine it runs on; an object
 * key has no such OS, and a backslash key may later land on Windows.
 *
 * @throws SuspiciousFileOperationError naming the key.
 */
export function assertSafeKey(name: string): void {
  if (typeof name !== "string" || name === "") {
    throw new SuspiciousFileOperationError(`Unsafe storage key ${q(String(name))}: the name is empty`);
  }
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c <= 0x1f || c === 0x7f) {
      throw new SuspiciousFileOperationError(`Unsafe storage key ${q(name)}: contains a control character`);
    }
  }
  if (name.startsWith("/") || name.startsWith("\\") || /^[A-Za-z]:/.test(name)) {
    throw new SuspiciousFileOperationError(`Unsafe storage key ${q(name)}: absolute paths are not allowed`);
  }
  const segments = name.split(/[\\/]/);
  if (segments.includes("..")) {
    throw new SuspiciousFileOperationError(`Unsafe storage key ${q(name)}: contains a ".." segment`);
  }
  // URL parsers and file systems collapse these, so the key would not be the object a link names.
  if (segments.some((s) => s === "" || s === ".")) {
    throw new SuspiciousFileOperationError(`Unsafe storage key ${q(name)}: contains an empty or "." segment`);
  }
}

// ---------------------------------------------------------------------------------------------
// generate_filename
// ---------------------------------------------------------------------------------------------

/**
 * Where uploads go (Django's `upload_to`): a directory pattern run through {@link strftime} and
 * joined with the file name, or a function returning the whole name (`record` is the model row,
 * Django's `instance`; note the argument order differs from Django's `(instance, filename)`).
 */
export type UploadTo = string | ((filename: string, record?: unknown) => string);

/**
 * Django's `FileField.generate_filename` followed by `Storage.generate_filename`:
 *
 * 1. `uploadTo` string: `strftime(uploadTo, now)` posix-joined with `filename`; function: its result.
 * 2. `validateFileName(name, { allowRelativePath: true })` (CVE-2021-31542).
 * 3. `\` becomes `/`; a `..` segment in the directory part is rejected.
 * 4. The base name goes through `getValidName` (default {@link getValidFilename}); the joined
 *    result is normalised (`posixpath.normpath`).
 * 5. The result is validated again with `allowRelativePath`, as Django's `Storage.save()` does
 *    before anything else (CVE-2024-39330), so a custom `getValidName` cannot smuggle `..` or an
 *    absolute path through.
 *
 * @throws SuspiciousFileOperationError
 */
export function generateFilename(
  filename: string,
  opts: { uploadTo?: UploadTo; record?: unknown; now?: Date; getValidName?: (n: string) => string },
): string {
  const uploadTo = opts.uploadTo ?? "";
  let name: string;
  if (typeof uploadTo === "function") {
    name = uploadTo(filename, opts.record);
    if (typeof name !== "string") {
      throw new TypeError(`uploadTo must return a string, got ${typeof name}`);
    }
  } else {
    name = posixJoin(strftime(uploadTo, opts.now ?? new Date()), filename);
  }
  validateFileName(name, { allowRelativePath: true });

  // Storage.generate_filename: from here on paths are "/"-separated.
  name = name.replaceAll("\\", "/");
  const [dirname, base] = posixSplit(name);
  if (hasParentSegment(dirname)) {
    throw new SuspiciousFileOperationError(`Detected path traversal attempt in ${q(dirname)}`);
  }
  const getValidName = opts.getValidName ?? getValidFilename;
  const result = posixNormpath(posixJoin(dirname, getValidName(base)));
  return validateFileName(result, { allowRelativePath: true });
}

// ---------------------------------------------------------------------------------------------
// Byte limits of backends (not in Django)
// ---------------------------------------------------------------------------------------------

/**
 * What a backend can store, in UTF-8 bytes (not in Django: Django's `max_length` counts
 * characters, file systems and S3 count bytes, and 255 characters can be 1020 bytes).
 */
export interface NameByteLimits {
  /**
   * Longest path segment: each directory and the file name (ext4/APFS `NAME_MAX` 255, MinIO 255).
   * `undefined` or `Infinity`: no limit.
   */
  maxSegmentBytes?: number | undefined;
  /** Longest whole name (S3: 1024 bytes per key, minus the storage's `location/`). `undefined`: no limit. */
  maxNameBytes?: number | undefined;
}

/** The error code of a name a backend cannot store because it is too long. */
export const NAME_TOO_LONG = "NAME_TOO_LONG";

/** Bytes of `s` in UTF-8; a lone surrogate counts as the 3 bytes of the U+FFFD it is sent as. */
export function utf8Length(s: string): number {
  return Buffer.byteLength(s, "utf8");
}

function codePointBytes(cp: number): number {
  return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
}

/**
 * The longest prefix of `s` that is at most `maxBytes` UTF-8 bytes, cut between code points:
 * never half a multibyte character (or half a surrogate pair).
 */
export function truncateUtf8(s: string, maxBytes: number): string {
  let bytes = 0;
  let end = 0;
  for (const ch of s) {
    bytes += codePointBytes(ch.codePointAt(0) as number);
    if (bytes > maxBytes) break;
    end += ch.length;
  }
  return s.slice(0, end);
}

/** A long name shortened for an error message (keys may be thousands of characters). */
function preview(name: string): string {
  const cps = Array.from(name);
  return cps.length <= 80 ? q(name) : `${q(cps.slice(0, 60).join(""))}… (${cps.length} characters)`;
}

function nameTooLong(name: string, message: string): StorageError {
  return new StorageError(`Cannot store ${preview(name)}: ${message}`, { fileName: name, code: NAME_TOO_LONG });
}

function limitOf(limit: number | undefined): number {
  return limit === undefined ? Number.POSITIVE_INFINITY : limit;
}

/**
 * The bytes left for the file name of `dirName/…`: refuses a directory segment over
 * `maxSegmentBytes`, or a directory that leaves no room under `maxNameBytes`.
 */
function fileNameBudget(original: string, dirName: string, limits: NameByteLimits): number {
  const maxSegment = limitOf(limits.maxSegmentBytes);
  const maxName = limitOf(limits.maxNameBytes);
  if (Number.isFinite(maxSegment)) {
    for (const segment of dirName.split("/")) {
      const bytes = utf8Length(segment);
      if (bytes > maxSegment) {
        throw nameTooLong(
          original,
          `its directory segment ${preview(segment)} is ${bytes} bytes, too long for this storage's limit of ${maxSegment} bytes per path segment`,
        );
      }
    }
  }
  const prefix = utf8Length(posixJoin(dirName, ""));
  if (prefix >= maxName) {
    throw nameTooLong(
      original,
      `its directory is ${prefix} bytes with its "/", too long to leave room for a file name within this storage's limit of ${maxName} bytes per name`,
    );
  }
  return Math.min(maxSegment, maxName - prefix);
}

/**
 * Throws {@link StorageError} (code `NAME_TOO_LONG`) when `name` has a segment over
 * `maxSegmentBytes` or is over `maxNameBytes`; for names that are used as given (a presigned
 * upload's key), where {@link getAvailableName} cannot shorten anything.
 */
export function assertNameFits(name: string, limits: NameByteLimits): void {
  const [dirName, fileName] = posixSplit(String(name));
  const budget = fileNameBudget(name, dirName, limits);
  const bytes = utf8Length(fileName);
  if (bytes <= budget) return;
  throw nameTooLong(
    name,
    bytes > limitOf(limits.maxSegmentBytes)
      ? `its file name is ${bytes} bytes, too long for this storage's limit of ${limits.maxSegmentBytes} bytes per path segment`
      : `it is ${utf8Length(name)} bytes, too long for this storage's limit of ${limits.maxNameBytes} bytes per name`,
  );
}

// ---------------------------------------------------------------------------------------------
// get_available_name
// ---------------------------------------------------------------------------------------------

/**
 * The extension Django main uses when it has to rename a file: ALL suffixes
 * (`"".join(PurePath(name).suffixes)`), so `a.tar.gz` gives `{ root: "a", ext: ".tar.gz" }`.
 * Leading dots never start a suffix (`.bashrc` has none), and a trailing dot is a suffix of its
 * own (`a.` gives `{ root: "a", ext: "." }`), as in CPython 3.14's `PurePath.suffixes`; CPython
 * 3.12/3.13 return no suffixes at all for names ending in a dot. Only the last path segment counts.
 */
export function splitExtension(fileName: string): { root: string; ext: string } {
  const name = pureName(fileName).replace(/^\.+/, "");
  const dot = name.indexOf(".");
  const ext = dot === -1 ? "" : name.slice(dot);
  const root = ext !== "" && fileName.endsWith(ext) ? fileName.slice(0, fileName.length - ext.length) : fileName;
  return { root, ext };
}

const ALPHANUMERIC = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/** Django's `get_random_string(7)`: 7 characters of `[a-zA-Z0-9]` from a CSPRNG, without bias. */
function randomSuffix(): string {
  let s = "";
  for (let i = 0; i < 7; i++) s += ALPHANUMERIC[randomInt(ALPHANUMERIC.length)];
  return s;
}

/**
 * Django's `get_alternative_name`: `${root}_${7 random [a-zA-Z0-9]}${ext}`.
 * @param random replaces the 7-character generator (tests); defaults to `node:crypto`.
 */
export function alternativeName(fileRoot: string, fileExt: string, random: () => string = randomSuffix): string {
  return `${fileRoot}_${random()}${fileExt}`;
}

/**
 * Guard against a broken `exists` (always `true`) or `random` (constant): Django loops forever;
 * we give up after this many candidates. With 62^7 suffixes a real store never gets close.
 */
const MAX_ATTEMPTS = 100;

/** What an alternative name adds to its root: `_` and 7 random characters (ASCII, 8 bytes). */
const ALTERNATIVE_BYTES = 8;

/**
 * Django's `Storage.get_available_name`: returns `name` if it is free and fits `maxLength`, else
 * `dir/root_XXXXXXX.ext` candidates (`ext` = all suffixes, see {@link splitExtension}) until one is
 * free, cutting the root by the overflow when a candidate is too long.
 *
 * Before the loop: `\` becomes `/`, a `..` segment in the directory is rejected, and the base name
 * goes through {@link validateFileName}. A `maxLength` of `0` behaves as in Django (no limit for the
 * first check; any rename then fails).
 *
 * With `overwrite: true`, `exists` is never called and the name is only shortened to fit
 * `maxLength` (root cut, extension kept, no random part): Django's
 * `FileSystemStorage(allow_overwrite=True)` and django-storages' `get_available_overwrite_name`
 * (which, unlike Django main, keeps only the last suffix).
 *
 * Byte limits of the backend (`maxSegmentBytes`, `maxNameBytes`; not in Django) apply before
 * `exists` is first asked: a directory segment over the limit, or a directory that leaves no room
 * for a file name, is refused; a file name over what is left has its root cut (between code
 * points, the extension kept) to fit, without a random part; candidates cut their root further
 * so `_XXXXXXX` fits too. An extension too long to leave room for one character and `_XXXXXXX`
 * is not kept as one: only its last suffix is, or none (then the whole name is the root).
 *
 * @throws SuspiciousFileOperationError for traversal, an invalid base name, or when the whole root
 *   would have to be cut to fit `maxLength`.
 * @throws StorageError (code `NAME_TOO_LONG`) when a byte limit cannot be met by cutting the root.
 * @throws StorageError (code `NO_AVAILABLE_NAME`) after 100 taken candidates; not in Django.
 */
export async function getAvailableName(
  name: string,
  opts: {
    exists: (name: string) => Promise<boolean>;
    maxLength?: number;
    overwrite?: boolean;
    random?: () => string;
  } & NameByteLimits,
): Promise<string> {
  const original = name;
  const { exists, maxLength, overwrite = false, random } = opts;
  name = String(name).replaceAll("\\", "/");
  const [dirName, fileName] = posixSplit(name);
  if (hasParentSegment(dirName)) {
    throw new SuspiciousFileOperationError(`Detected path traversal attempt in ${q(dirName)}`);
  }
  validateFileName(fileName);
  let { root, ext } = splitExtension(fileName);

  // The backend's byte limits, checked and met before the storage is asked anything.
  const budget = fileNameBudget(original, dirName, opts);
  const limited = Number.isFinite(budget);
  if (limited) {
    const roomFor = (r: string, e: string) =>
      codePointBytes(r.codePointAt(0) as number) + ALTERNATIVE_BYTES + utf8Length(e) <= budget;
    if (!roomFor(root, ext)) {
      // Keep what can stay an extension: the last suffix, else none.
      const last = ext.slice(ext.lastIndexOf("."));
      const e = roomFor(fileName.slice(0, fileName.length - last.length), last) ? last : "";
      root = fileName.slice(0, fileName.length - e.length);
      ext = e;
    }
    const bytes = utf8Length(fileName);
    if (bytes > budget) {
      if (!roomFor(root, ext)) {
        throw nameTooLong(
          original,
          budget < limitOf(opts.maxSegmentBytes)
            ? `its file name is ${bytes} bytes, too long for the ${budget} bytes its directory leaves within this storage's limit of ${opts.maxNameBytes} bytes per name, and cannot be cut to fit`
            : `its file name is ${bytes} bytes, too long for this storage's limit of ${budget} bytes per path segment, and cannot be cut to fit`,
        );
      }
      root = truncateUtf8(root, budget - utf8Length(ext));
      name = posixJoin(dirName, `${root}${ext}`);
    }
  }

  // `max_length and len(name) > max_length`: 0 and undefined both mean "no limit" here.
  const tooLong = (n: string) =>
    (Boolean(maxLength) && cpLength(n) > (maxLength as number)) || (limited && utf8Length(posixBasename(n)) > budget);
  const isAvailable = async (n: string) => (overwrite ? !tooLong(n) : !tooLong(n) && !(await exists(n)));
  // FileSystemStorage(allow_overwrite=True).get_alternative_name keeps the name as it is.
  const alternative = (r: string) => (overwrite ? `${r}${ext}` : alternativeName(r, ext, random));

  let attempts = 0;
  while (!(await isAvailable(name))) {
    if (++attempts > MAX_ATTEMPTS) {
      throw new StorageError(`No available name for ${q(original)} after ${MAX_ATTEMPTS} candidates`, {
        fileName: original,
        code: "NO_AVAILABLE_NAME",
      });
    }
    name = posixJoin(dirName, alternative(root));
    if (maxLength !== undefined) {
      const truncation = cpLength(name) - maxLength;
      if (truncation > 0) {
        root = dropLastCodePoints(root, truncation);
        if (!root) {
          throw new SuspiciousFileOperationError(
            `Storage can not find an available filename for ${q(original)} within maxLength ${maxLength} ` +
              `(last candidate ${q(name)}). Please make sure that the corresponding file field allows a ` +
              "sufficient maxLength.",
          );
        }
        name = posixJoin(dirName, alternative(root));
      }
    }
    if (limited) {
      const overflow = utf8Length(posixBasename(name)) - budget;
      if (overflow > 0) {
        root = truncateUtf8(root, utf8Length(root) - overflow);
        if (!root) {
          throw nameTooLong(
            original,
            `every alternative name is too long for the ${budget} bytes this storage's limits leave for its file name (last candidate ${preview(name)})`,
          );
        }
        name = posixJoin(dirName, alternative(root));
      }
    }
  }
  return name;
}

// ---------------------------------------------------------------------------------------------
// safe_join
// ---------------------------------------------------------------------------------------------

/**
 * django-storages' `safe_join` for object keys: joins `paths` onto `base` with posix rules,
 * normalises `.`/`..`, keeps a trailing `/` of the last component, and returns the key without
 * leading slashes. The result must stay under `base`.
 *
 * @example safeJoin("media", "a/../b.txt") === "media/b.txt"
 * @throws SuspiciousFileOperationError when the joined path leaves `base` (django-storages raises
 *   `ValueError`, which its S3 backend turns into `SuspiciousOperation`).
 */
export function safeJoin(base: string, ...paths: string[]): string {
  const basePath = base.replace(/\/+$/, "");
  let finalPath = `${basePath}/`;
  for (const path of paths) {
    let next = posixNormpath(posixJoin(finalPath, path));
    // normpath() drops the trailing "/"; put it back for directories and no-op components.
    if (path.endsWith("/") || `${next}/` === finalPath) next += "/";
    finalPath = next;
  }
  if (finalPath === basePath) finalPath += "/";
  if (!finalPath.startsWith(basePath) || finalPath[basePath.length] !== "/") {
    throw new SuspiciousFileOperationError(
      `The joined path ${q(finalPath)} is located outside of the base path ${q(base)}`,
    );
  }
  return finalPath.replace(/^\/+/, "");
}
