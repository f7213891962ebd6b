/**
 * Cases come from Django's own test suites and CVE fixes (named per group) and from
 * django-storages' tests; expected strings were checked against Django's Python code run under
 * CPython (posixpath, pathlib, re, datetime.strftime on glibc).
 */
import { describe, expect, it } from "vitest";
import { StorageError, SuspiciousFileOperationError } from "../../src/errors.js";
import {
  alternativeName,
  assertNameFits,
  assertSafeKey,
  generateFilename,
  getAvailableName,
  getValidFilename,
  safeJoin,
  splitExtension,
  strftime,
  truncateUtf8,
  utf8Length,
  validateFileName,
} from "../../src/storage/naming.js";

/** Deterministic stand-in for get_random_string(7): AAAAAAA, BBBBBBB, ... */
function sequence(): () => string {
  let i = 0;
  return () => String.fromCharCode(65 + i++).repeat(7);
}

/** Runs `fn` and returns what Django's assertRaisesMessage would look at. */
function outcome(fn: () => unknown): { ok: unknown } | { error: string; message: string } {
  try {
    return { ok: fn() };
  } catch (e) {
    if (e instanceof SuspiciousFileOperationError) return { error: "suspicious", message: e.message };
    throw e;
  }
}

async function outcomeAsync(fn: () => Promise<unknown>): Promise<{ ok: unknown } | { error: string; message: string }> {
  try {
    return { ok: await fn() };
  } catch (e) {
    if (e instanceof SuspiciousFileOperationError) return { error: "suspicious", message: e.message };
    throw e;
  }
}

const existsIn =
  (...names: string[]) =>
  async (n: string) =>
    names.includes(n);

describe("getValidFilename", () => {
  // tests/utils_tests/test_text.py TestUtilsText.test_get_valid_filename + the function's docstring.
  it.each([
    ["john's portrait in 2004.jpg", "johns_portrait_in_2004.jpg"],
    ["^&'@{}[],$=!-#()%+~_123.txt", "-_123.txt"],
    // tests/file_storage/test_generate_filename.py StorageGenerateFilenameTests.test_valid_names
    ["UnTRIVíAL @fil$ena#me!", "UnTRIVíAL_filename"],
    // tests/file_uploads/tests.py UNICODE_FILENAME
    ["test-0123456789_中文_Orléans.jpg", "test-0123456789_中文_Orléans.jpg"],
  ])("Django: %j -> %j", (input, expected) => {
    expect(getValidFilename(input)).toBe(expected);
  });

  // test_get_valid_filename: "???" and "$.$.$" (would become "..") are SuspiciousFileOperation;
  // test_generate_filename.py adds "", ".", "..".
  it.each(["???", "$.$.$", "", ".", "..", " ", " . "])("Django rejects %j", (input) => {
    const r = outcome(() => getValidFilename(input));
    expect(r).toEqual({ error: "suspicious", message: expect.stringContaining("Could not derive file name from") });
    expect((r as { message: string }).message).toContain(JSON.stringify(input));
  });

  // Python's `(?u)\w` = str.isalnum() or "_"; str.strip() = str.isspace(). Expected values from
  // running Django's get_valid_filename under CPython.
  it.each([
    ["Orle\u0301ans.txt", "Orleans.txt"], // combining acute (Mn) is not \w in Python: dropped
    ["\u0663.txt", "\u0663.txt"], // ARABIC-INDIC DIGIT THREE (Nd)
    ["½ Ⅻ ².txt", "½_Ⅻ_².txt"], // No, Nl, No: numeric, so \w
    ["ǅ.txt", "ǅ.txt"], // Lt
    ["ʰ.txt", "ʰ.txt"], // Lm
    ["𝔘𝔫𝔦.txt", "𝔘𝔫𝔦.txt"], // astral letters stay whole
    ["\u{1F600}.png", ".png"], // emoji (So) dropped
    ["a\u203Fb.txt", "ab.txt"], // UNDERTIE (Pc) is not \w; only "_" is
    ["x\u200By.txt", "xy.txt"], // ZERO WIDTH SPACE (Cf)
    ["x\u00A0y.txt", "xy.txt"], // NBSP is not " ", so removed rather than turned into "_"
    ["tab\there.txt", "tabhere.txt"],
    ["a\u0000b.txt", "ab.txt"],
    ["a/b\\c.txt", "abc.txt"],
    ["   spaced   name  .txt", "spaced___name__.txt"],
    ["\u3000 a b \u3000", "a_b"],
    ["\u001C a.txt", "a.txt"], // Python strips U+001C..U+001F (JS trim() would not)
    ["\u0085 a.txt", "a.txt"], // ... and U+0085
    ["\uFEFF a.txt", "_a.txt"], // but not U+FEFF (JS trim() would), so the space becomes "_"
  ])("Python semantics: %j -> %j", (input, expected) => {
    expect(getValidFilename(input)).toBe(expected);
  });
});

describe("validateFileName", () => {
  // tests/file_uploads/tests.py CANDIDATE_TRAVERSAL_FILE_NAMES and CANDIDATE_INVALID_FILE_NAMES
  // (CVE-2021-28658, CVE-2021-31542) plus edge cases. Results are Django's validate_file_name on
  // POSIX, where only "/" is a separator unless allow_relative_path turns "\" into "/".
  type R = "ok" | "derive" | "elements" | "traversal";
  const cases: [name: string, plain: R, relative: R][] = [
    ["/tmp/hax0rd.txt", "elements", "traversal"],
    ["C:\\Windows\\hax0rd.txt", "ok", "ok"],
    ["C:/Windows/hax0rd.txt", "elements", "ok"],
    ["\\tmp\\hax0rd.txt", "ok", "traversal"],
    ["/tmp\\hax0rd.txt", "elements", "traversal"],
    ["subdir/hax0rd.txt", "elements", "ok"],
    ["subdir\\hax0rd.txt", "ok", "ok"],
    ["sub/dir\\hax0rd.txt", "elements", "ok"],
    ["../../hax0rd.txt", "elements", "traversal"],
    ["..\\..\\hax0rd.txt", "ok", "traversal"],
    ["../..\\hax0rd.txt", "elements", "traversal"],
    ["..&#x2F;hax0rd.txt", "ok", "ok"],
    ["..&sol;hax0rd.txt", "ok", "ok"],
    ["/tmp/", "derive", "derive"],
    ["c:\\tmp\\", "ok", "ok"],
    ["/tmp/.", "derive", "derive"],
    ["c:\\tmp\\.", "ok", "ok"],
    ["/tmp/..", "derive", "derive"],
    ["c:\\tmp\\..", "ok", "traversal"],
    ["", "derive", "derive"],
    ["..", "derive", "derive"],
    [".", "derive", "derive"],
    ["a/b", "elements", "ok"],
    ["a/../b", "elements", "traversal"],
    ["a\\..\\b", "ok", "traversal"],
    ["./a", "elements", "ok"],
    ["a/./b", "elements", "ok"],
    ["//a", "elements", "traversal"],
    ["a..b", "ok", "ok"],
    ["..a", "ok", "ok"],
    ["a/..b", "elements", "ok"],
    ["x\u0000y", "ok", "ok"], // Django does not look at control characters (see assertSafeKey)
    ["a\nb", "ok", "ok"],
  ];
  const message: Record<Exclude<R, "ok">, (n: string) => string> = {
    derive: (n) => `Could not derive file name from ${JSON.stringify(n)}`,
    elements: (n) => `File name ${JSON.stringify(n)} includes path elements`,
    traversal: (n) => `Detected path traversal attempt in ${JSON.stringify(n)}`,
  };
  const expected = (name: string, r: R) =>
    r === "ok" ? { ok: name } : { error: "suspicious", message: message[r](name) };

  it.each(cases)("%j: plain=%s relative=%s", (name, plain, relative) => {
    expect(outcome(() => validateFileName(name))).toEqual(expected(name, plain));
    expect(outcome(() => validateFileName(name, { allowRelativePath: false }))).toEqual(expected(name, plain));
    expect(outcome(() => validateFileName(name, { allowRelativePath: true }))).toEqual(expected(name, relative));
  });

  // tests/file_storage/test_base.py StorageValidateFileNameTests (CVE-2024-39330).
  it.each(["path/to/../test.file", "/path/to/test.file"])("CVE-2024-39330 name %j is rejected", (name) => {
    expect(() => validateFileName(name, { allowRelativePath: true })).toThrow(
      `Detected path traversal attempt in ${JSON.stringify(name)}`,
    );
  });

  it("throws the package's typed error with a stable code", () => {
    try {
      validateFileName("../x", { allowRelativePath: true });
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(SuspiciousFileOperationError);
      expect((e as SuspiciousFileOperationError).code).toBe("SUSPICIOUS_FILE_OPERATION");
    }
  });
});

describe("assertSafeKey (our stricter addition)", () => {
  it.each([
    "a.txt",
    "dir/sub/a.txt",
    "a..b/c..d",
    "..a/b..",
    ".hidden/.x",
    "media/c:/x.txt",
    "..&#x2F;hax0rd.txt",
    "中文/Orléans.jpg",
  ])("accepts %j", (name) => {
    expect(() => assertSafeKey(name)).not.toThrow();
  });

  // The CVE-2021-28658 candidates that Django on POSIX lets through validate_file_name, and more.
  it.each([
    ["", "empty"],
    ["a\u0000b", "control character"],
    ["a\nb", "control character"],
    ["a\u001Fb", "control character"],
    ["a\u007Fb", "control character"],
    ["/tmp/hax0rd.txt", "absolute"],
    ["\\tmp\\hax0rd.txt", "absolute"],
    ["\\\\server\\share\\x", "absolute"],
    ["C:\\Windows\\hax0rd.txt", "absolute"],
    ["C:/Windows/hax0rd.txt", "absolute"],
    ["c:x.txt", "absolute"],
    ["../x", ".."],
    ["..\\..\\hax0rd.txt", ".."],
    ["a/..", ".."],
    ["a\\..\\b", ".."],
    ["a/./b", 'empty or "." segment'],
    ["a//b", 'empty or "." segment'],
    ["file:///etc/passwd", 'empty or "." segment'],
    ["..", ".."],
  ])("rejects %j (%s)", (name, why) => {
    expect(() => assertSafeKey(name)).toThrow(SuspiciousFileOperationError);
    expect(() => assertSafeKey(name)).toThrow(why === "empty" ? "empty" : JSON.stringify(name));
    expect(() => assertSafeKey(name)).toThrow(why);
  });
});

describe("strftime", () => {
  // Expected strings from CPython's datetime(2004, 3, 7, 15, 4, 5, 123000).strftime(...) on glibc.
  const d = new Date(Date.UTC(2004, 2, 7, 15, 4, 5, 123));
  it.each([
    ["%Y-%m-%d %H:%M:%S", "2004-03-07 15:04:05"],
    ["%y %j %%", "04 067 %"],
    ["%B %b %A %a %p %I %f", "March Mar Sunday Sun PM 03 123000"],
    ["%c", "Sun Mar  7 15:04:05 2004"],
    ["%x|%X|%D|%F|%T|%r|%R", "03/07/04|15:04:05|03/07/04|2004-03-07|15:04:05|03:04:05 PM|15:04"],
    ["%e|%k|%l|%P|%h|%C", " 7|15| 3|pm|Mar|20"],
    ["%u|%w|%U|%W|%V|%G|%g", "7|0|10|09|10|2004|04"],
    ["%n|%t", "\n|\t"],
    ["%^B|%#b|%-m/%-d|%_H|%0e|%Ey|%Od", "MARCH|MAR|3/7|15|07|04|07"],
    ["%#p|%^p|%#P|%^P|%^a|%#A", "pm|PM|pm|pm|SUN|SUNDAY"],
    ["%_-d|%-_d|%-j|%_j|%-y", "7| 7|67| 67|4"],
    ["%z%Z%:z", ""], // naive datetime.now(): empty
    ["%-%|%^%", "%|%"],
    ["uploads/%Y/%m/%d/", "uploads/2004/03/07/"],
    ["no directives", "no directives"],
    ["", ""],
  ])("%j -> %j", (pattern, expected) => {
    expect(strftime(pattern, d, { utc: true })).toBe(expected);
  });

  // Unknown directives are handed to the C library by CPython; glibc copies them. So do we.
  it.each([
    ["%Q", "%Q"],
    ["%Ea|%Oa", "%Ea|%Oa"],
    ["%3f|%-f", "%3f|%-f"], // CPython only rewrites a bare %f
    ["100%", "100%"],
    ["%", "%"],
    ["%-", "%-"],
    ["%Q%Y", "%Q2004"],
    ["%5d", "%5d"], // deliberate: field widths are not supported (glibc gives "00007")
  ])("verbatim: %j -> %j", (pattern, expected) => {
    expect(strftime(pattern, d, { utc: true })).toBe(expected);
  });

  // ISO weeks, %U/%W and 12-hour clock around year boundaries (CPython on glibc).
  it.each([
    [Date.UTC(2004, 0, 1), "2004-01-4 04 00 00 001 4 Thu 12AM 12 20 04"],
    [Date.UTC(2005, 0, 1), "2004-53-6 04 00 00 001 6 Sat 12AM 12 20 05"],
    [Date.UTC(2005, 0, 2), "2004-53-7 04 01 00 002 0 Sun 12AM 12 20 05"],
    [Date.UTC(2005, 0, 3), "2005-01-1 05 01 01 003 1 Mon 12AM 12 20 05"],
    [Date.UTC(2008, 11, 29), "2009-01-1 09 52 52 364 1 Mon 12AM 12 20 08"],
    [Date.UTC(2009, 11, 31), "2009-53-4 09 52 52 365 4 Thu 12AM 12 20 09"],
    [Date.UTC(2010, 0, 3), "2009-53-7 09 01 00 003 0 Sun 12AM 12 20 10"],
    [Date.UTC(2010, 0, 4), "2010-01-1 10 01 01 004 1 Mon 12AM 12 20 10"],
    [Date.UTC(2012, 11, 31), "2013-01-1 13 53 53 366 1 Mon 12AM 12 20 12"],
    [Date.UTC(2016, 1, 29, 23, 59, 59, 999), "2016-09-1 16 09 09 060 1 Mon 11PM 11 20 16"],
    [Date.UTC(2021, 0, 1), "2020-53-5 20 00 00 001 5 Fri 12AM 12 20 21"],
    [Date.UTC(1999, 11, 31, 12), "1999-52-5 99 52 52 365 5 Fri 12PM 12 19 99"],
  ])("week fields of %d", (ms, expected) => {
    expect(strftime("%G-%V-%u %g %U %W %j %w %a %I%p %l %C %y", new Date(ms), { utc: true })).toBe(expected);
  });

  it("uses local time by default, like Django's datetime.now()", () => {
    const local = new Date(2004, 2, 7, 15, 4, 5, 123);
    expect(strftime("%Y-%m-%d %H:%M:%S.%f %j", local)).toBe("2004-03-07 15:04:05.123000 067");
    expect(strftime("%s", local)).toBe(String(Math.floor(local.getTime() / 1000)));
  });

  it("rejects an invalid Date", () => {
    expect(() => strftime("%Y", new Date(Number.NaN))).toThrow(RangeError);
  });
});

describe("generateFilename", () => {
  const now = new Date(2004, 2, 7, 15, 4, 5, 123);
  const traversal = (n: string) => `Detected path traversal attempt in ${JSON.stringify(n)}`;
  const derive = (n: string) => `Could not derive file name from ${JSON.stringify(n)}`;

  // test_generate_filename.py GenerateFilenameStorageTests.test_filefield_dangerous_filename
  it.each([
    ["..", "some/folder/.."],
    [".", "some/folder/."],
    ["", "some/folder/"],
    ["???", "???"],
    ["$.$.$", "$.$.$"],
  ])("test_filefield_dangerous_filename: %j", (fileName, msgName) => {
    expect(() => generateFilename(fileName, { uploadTo: "some/folder/" })).toThrow(derive(msgName));
  });

  it("test_filefield_dangerous_filename_dot_segments", () => {
    expect(() => generateFilename("../path", { uploadTo: "some/folder/" })).toThrow(traversal("some/folder/../path"));
  });

  it.each(["/tmp/path", "/tmp/../path"])("test_filefield_generate_filename_absolute_path: %j", (fileName) => {
    expect(() => generateFilename(fileName, { uploadTo: "some/folder/" })).toThrow(traversal(fileName));
  });

  it("test_filefield_generate_filename / _with_upload_to", () => {
    expect(generateFilename("test with space.txt", { uploadTo: "some/folder/" })).toBe(
      "some/folder/test_with_space.txt",
    );
    expect(generateFilename("test with space.txt", { uploadTo: (f) => `some/folder/${f}` })).toBe(
      "some/folder/test_with_space.txt",
    );
  });

  it.each([
    "/tmp/.",
    "/tmp/..",
    "/tmp/../path",
    "/tmp/path",
    "some/folder/",
    "some/folder/.",
    "some/folder/..",
    "some/folder/???",
    "some/folder/$.$.$",
    "some/../test.txt",
    "",
  ])("test_filefield_generate_filename_upload_to_overrides_dangerous_filename: %j", (fileName) => {
    expect(generateFilename(fileName, { uploadTo: () => "test.txt" })).toBe("test.txt");
  });

  it.each(["path", "../path", "???", "$.$.$"])(
    "test_filefield_generate_filename_upload_to_absolute_path: %j",
    (fileName) => {
      expect(() => generateFilename(fileName, { uploadTo: (f) => `/tmp/${f}` })).toThrow(traversal(`/tmp/${fileName}`));
    },
  );

  it.each(["..", ".", ""])("test_filefield_generate_filename_upload_to_dangerous_filename: %j", (fileName) => {
    expect(() => generateFilename(fileName, { uploadTo: (f) => `/tmp/${f}` })).toThrow(derive(`/tmp/${fileName}`));
  });

  // StorageGenerateFilenameTests.test_valid_names, through an upload_to that returns the name.
  const valid = "UnTRIVíAL_filename";
  const raw = "UnTRIVíAL @fil$ena#me!";
  it.each([
    [raw, valid],
    [`././././././${raw}`, valid],
    [`some/path/${raw}`, `some/path/${valid}`],
    [`some/./path/./${raw}`, `some/path/${valid}`],
    [`././some/././path/./${raw}`, `some/path/${valid}`],
    [`.\\.\\.\\.\\.\\.\\${raw}`, valid],
    [`some\\path\\${raw}`, `some/path/${valid}`],
    [`some\\.\\path\\.\\${raw}`, `some/path/${valid}`],
    [`.\\.\\some\\.\\.\\path\\.\\${raw}`, `some/path/${valid}`],
  ])("test_valid_names: %j -> %j", (name, expected) => {
    expect(generateFilename(name, { uploadTo: (f) => f })).toBe(expected);
  });

  // GenerateFilenameStorageTests.test_storage_dangerous_paths(_dir_name): Storage.generate_filename
  // rejects these. Through the FileField path the first validate_file_name rejects some of them
  // earlier and with another message; all are rejected.
  it.each([
    "/tmp/..",
    "\\tmp\\..",
    "/tmp/.",
    "\\tmp\\.",
    "..",
    ".",
    "",
    "../path",
    "..\\path",
    "tmp/../path",
    "tmp\\..\\path",
    "/tmp/../path",
    "\\tmp\\..\\path",
  ])("test_storage_dangerous_paths: %j is rejected", (name) => {
    expect(() => generateFilename(name, { uploadTo: (f) => f })).toThrow(SuspiciousFileOperationError);
    expect(() => generateFilename(name, {})).toThrow(SuspiciousFileOperationError);
  });

  it("string upload_to goes through strftime(now) and posixpath.join", () => {
    expect(generateFilename("photo 1.JPG", { uploadTo: "uploads/%Y/%m/%d", now })).toBe(
      "uploads/2004/03/07/photo_1.JPG",
    );
    expect(generateFilename("a\\b\\c d.txt", { uploadTo: "uploads/%Y/%m/%d/", now })).toBe(
      "uploads/2004/03/07/a/b/c_d.txt",
    );
    expect(generateFilename("f.txt", { uploadTo: "%Y%m%d%H%M%S", now })).toBe("20040307150405/f.txt");
    expect(generateFilename("x y.txt", { uploadTo: "a/./b//", now })).toBe("a/b/x_y.txt");
    expect(generateFilename("x.txt", {})).toBe("x.txt");
    expect(generateFilename("./x.txt", {})).toBe("x.txt");
    expect(generateFilename("sub/dir/f.txt", { uploadTo: "a" })).toBe("a/sub/dir/f.txt");
    expect(generateFilename("\\\\server\\share\\f.txt", { uploadTo: "a" })).toBe("a/server/share/f.txt");
    // Django on POSIX keeps a drive-letter-looking directory; assertSafeKey is not involved here.
    expect(generateFilename("c:\\tmp\\f.txt", { uploadTo: "a" })).toBe("a/c:/tmp/f.txt");
  });

  it.each([
    ["sub\\..\\f.txt", "a", "a/sub\\..\\f.txt"],
    ["f", "//x", "//x/f"],
    ["f", "a/b/..", "a/b/../f"],
  ])("traversal via file name or upload_to: %j in %j", (fileName, uploadTo, msgName) => {
    expect(() => generateFilename(fileName, { uploadTo })).toThrow(traversal(msgName));
  });

  it("defaults `now` to the current time", () => {
    const before = strftime("%Y", new Date());
    const name = generateFilename("f.txt", { uploadTo: "%Y" });
    expect([before, strftime("%Y", new Date())].map((y) => `${y}/f.txt`)).toContain(name);
  });

  it("passes the record to an upload_to function", () => {
    const record = { id: 42 };
    expect(generateFilename("a.png", { uploadTo: (f, r) => `users/${(r as { id: number }).id}/${f}`, record })).toBe(
      "users/42/a.png",
    );
  });

  // tests/file_storage/tests.py FileFieldStorageTests.test_custom_valid_name_callable_upload_to
  it("uses a custom getValidName for the base name only", () => {
    expect(generateFilename("random_file", { uploadTo: (f) => `123/${f}`, getValidName: (n) => `${n}_valid` })).toBe(
      "123/random_file_valid",
    );
  });

  // CVE-2024-39330: Django's Storage.generate_filename would return "../evil" or "." here and only
  // Storage.save()'s validation catches it; our pipeline validates the result itself.
  it.each([
    ["../../evil", traversal("../evil")],
    ["..", derive(".")],
    ["/etc/passwd", traversal("/etc/passwd")],
  ])("validates the final name when getValidName returns %j", (bad, msg) => {
    expect(() => generateFilename("f", { uploadTo: "x", getValidName: () => bad })).toThrow(msg);
  });

  it("a custom getValidName may still rename inside the directory", () => {
    expect(generateFilename("f", { uploadTo: "x/y", getValidName: () => "../g" })).toBe("x/g");
  });

  it("rejects a non-string upload_to result", () => {
    expect(() => generateFilename("f", { uploadTo: (() => 1) as unknown as () => string })).toThrow(TypeError);
  });
});

describe("splitExtension", () => {
  // Django main: file_ext = "".join(PurePath(file_name).suffixes); file_root = removesuffix(file_ext).
  it.each([
    ["a.tar.gz", "a", ".tar.gz"],
    ["multiple_files_many_extensions.tar.gz", "multiple_files_many_extensions", ".tar.gz"],
    ["filename.ext", "filename", ".ext"],
    [".bashrc", ".bashrc", ""],
    [".test", ".test", ""],
    ["test", "test", ""],
    ["..a", "..a", ""],
    ["...", "...", ""],
    [".a.b", ".a", ".b"],
    ["..a.b", "..a", ".b"],
    ["a..b", "a", "..b"],
    ["a...b", "a", "...b"],
    ["v1.2.3", "v1", ".2.3"],
    ["x.7z.001", "x", ".7z.001"],
    ["a.b c", "a", ".b c"],
    // CPython 3.14: a trailing dot is a suffix (3.12/3.13 would give no suffixes at all).
    ["a.", "a", "."],
    ["a.b.", "a", ".b."],
    ["dir.x/file", "dir.x/file", ""],
    ["dir/a.tar.gz", "dir/a", ".tar.gz"],
  ])("%j -> root %j ext %j", (name, root, ext) => {
    expect(splitExtension(name)).toEqual({ root, ext });
  });
});

describe("alternativeName", () => {
  it("is root_XXXXXXX + ext (get_alternative_name)", () => {
    expect(alternativeName("photo", ".tar.gz", () => "AbC1234")).toBe("photo_AbC1234.tar.gz");
    expect(alternativeName(".test", "", () => "zzzzzzz")).toBe(".test_zzzzzzz");
  });

  it("defaults to 7 random alphanumerics from crypto (FILE_SUFFIX_REGEX)", () => {
    const names = new Set(Array.from({ length: 50 }, () => alternativeName("f", ".txt")));
    for (const n of names) expect(n).toMatch(/^f_[A-Za-z0-9]{7}\.txt$/);
    expect(names.size).toBeGreaterThan(45);
  });
});

describe("getAvailableName", () => {
  // tests/file_storage/tests.py FileFieldStorageTests.test_duplicate_filename (Django main: the
  // random part goes before ALL suffixes).
  it.each([
    ["tests/multiple_files.txt", "tests/multiple_files_AAAAAAA.txt"],
    ["tests/multiple_files_many_extensions.tar.gz", "tests/multiple_files_many_extensions_AAAAAAA.tar.gz"],
    // FileStoragePathParsing.test_directory_with_dot and test_first_character_dot
    ["dotted.path/test", "dotted.path/test_AAAAAAA"],
    ["dotted.path/.test", "dotted.path/.test_AAAAAAA"],
    ["a.", "a_AAAAAAA."],
    ["v1.2.3", "v1_AAAAAAA.2.3"],
    ["./x.txt", "./x_AAAAAAA.txt"],
    ["a//b/x.txt", "a//b/x_AAAAAAA.txt"],
  ])("test_duplicate_filename: %j taken -> %j", async (name, expected) => {
    await expect(getAvailableName(name, { exists: existsIn(name), random: sequence() })).resolves.toBe(expected);
  });

  it("returns a free name unchanged and asks `exists` once", async () => {
    const asked: string[] = [];
    const exists = async (n: string) => {
      asked.push(n);
      return false;
    };
    await expect(getAvailableName("tests/free.txt", { exists })).resolves.toBe("tests/free.txt");
    expect(asked).toEqual(["tests/free.txt"]);
  });

  it("keeps drawing until a candidate is free", async () => {
    const asked: string[] = [];
    const taken = ["pic.jpg", "pic_AAAAAAA.jpg", "pic_BBBBBBB.jpg"];
    const exists = async (n: string) => {
      asked.push(n);
      return taken.includes(n);
    };
    await expect(getAvailableName("pic.jpg", { exists, random: sequence() })).resolves.toBe("pic_CCCCCCC.jpg");
    expect(asked).toEqual([...taken, "pic_CCCCCCC.jpg"]);
  });

  it("uses crypto randomness by default", async () => {
    await expect(getAvailableName("a/x.txt", { exists: existsIn("a/x.txt") })).resolves.toMatch(
      /^a\/x_[A-Za-z0-9]{7}\.txt$/,
    );
  });

  // FileFieldStorageTests.test_file_truncation: FileField(upload_to="tests", max_length=20).
  it("test_file_truncation: cuts the root by the overflow", async () => {
    await expect(
      getAvailableName("tests/filename.ext", {
        exists: existsIn("tests/filename.ext"),
        maxLength: 20,
        random: sequence(),
      }),
    ).resolves.toBe("tests/fi_BBBBBBB.ext");
  });

  it("test_file_truncation: an emptied root is SuspiciousFileOperation naming name and maxLength", async () => {
    const r = await outcomeAsync(() =>
      getAvailableName("tests/short.longext", {
        exists: existsIn("tests/short.longext"),
        maxLength: 20,
        random: sequence(),
      }),
    );
    expect(r).toEqual({
      error: "suspicious",
      message: expect.stringContaining("Storage can not find an available filename"),
    });
    const { message } = r as { message: string };
    expect(message).toContain('"tests/short.longext"');
    expect(message).toContain("maxLength 20");
    expect(message).toContain('"tests/short_AAAAAAA.longext"');
  });

  // Same loop, other lengths (expected values from Django's get_available_name under CPython).
  it.each([
    // Too long but free: Django still renames (and here cannot fit the 7-char suffix).
    ["abcdefghij.txt", [], 10, { error: true }],
    [`${"a".repeat(30)}.txt`, [], 30, `${"a".repeat(18)}_BBBBBBB.txt`],
    [
      "uploads/2004/03/07/verylongname.tar.gz",
      ["uploads/2004/03/07/verylongname.tar.gz"],
      40,
      "uploads/2004/03/07/verylo_BBBBBBB.tar.gz",
    ],
    ["dir/archive.tar.gz", ["dir/archive.tar.gz"], 26, "dir/archive_AAAAAAA.tar.gz"],
    ["dir/archive.tar.gz", ["dir/archive.tar.gz"], 15, { error: true }],
    // Lengths are code points, like Python's len(): 13 code points fit in 15 (18 UTF-16 units).
    ["dir/😀😀😀😀😀.txt", [], 15, "dir/😀😀😀😀😀.txt"],
    ["dir/😀😀😀😀😀.txt", ["dir/😀😀😀😀😀.txt"], 20, "dir/😀😀😀😀_BBBBBBB.txt"],
    // max_length=0 is falsy in Django's check but not None in the loop.
    ["x.txt", [], 0, "x.txt"],
    ["x.txt", ["x.txt"], 0, { error: true }],
  ] as const)("%j taken=%j maxLength=%j -> %j", async (name, taken, maxLength, expected) => {
    const r = await outcomeAsync(() =>
      getAvailableName(name, { exists: existsIn(...taken), maxLength, random: sequence() }),
    );
    if (typeof expected === "string") expect(r).toEqual({ ok: expected });
    else expect(r).toEqual({ error: "suspicious", message: expect.stringContaining("can not find an available") });
  });

  it("turns backslashes into slashes first", async () => {
    await expect(getAvailableName("a\\b\\c.txt", { exists: existsIn() })).resolves.toBe("a/b/c.txt");
    await expect(getAvailableName("a\\b\\c.txt", { exists: existsIn("a/b/c.txt"), random: sequence() })).resolves.toBe(
      "a/b/c_AAAAAAA.txt",
    );
  });

  // test_generate_filename.py test_storage_dangerous_paths, with and without allow_overwrite.
  it.each([
    ["/tmp/..", ".."],
    ["\\tmp\\..", ".."],
    ["/tmp/.", "."],
    ["\\tmp\\.", "."],
    ["..", ".."],
    [".", "."],
    ["", ""],
  ])("test_storage_dangerous_paths: %j", async (name, base) => {
    for (const overwrite of [false, true]) {
      await expect(getAvailableName(name, { exists: existsIn(), overwrite })).rejects.toThrow(
        `Could not derive file name from ${JSON.stringify(base)}`,
      );
    }
  });

  // test_generate_filename.py test_storage_dangerous_paths_dir_name, with and without overwrite.
  it.each([
    ["../path", ".."],
    ["..\\path", ".."],
    ["tmp/../path", "tmp/.."],
    ["tmp\\..\\path", "tmp/.."],
    ["/tmp/../path", "/tmp/.."],
    ["\\tmp\\..\\path", "/tmp/.."],
  ])("test_storage_dangerous_paths_dir_name: %j", async (name, dir) => {
    for (const overwrite of [false, true]) {
      const r = await outcomeAsync(() => getAvailableName(name, { exists: existsIn(), overwrite }));
      expect(r).toEqual({ error: "suspicious", message: `Detected path traversal attempt in ${JSON.stringify(dir)}` });
    }
  });

  // django-storages tests/test_utils.py TestGetAvailableOverwriteName (S3 file_overwrite=True).
  describe("overwrite", () => {
    const neverCalled = async () => {
      throw new Error("exists() must not be called when overwriting");
    };
    it.each([
      ["superlong/file/with/path.txt", undefined, "superlong/file/with/path.txt"], // test_maxlength_is_none
      ["parent/child.txt", 16, "parent/child.txt"], // test_maxlength_equals_name
      ["parent/child.txt", 17, "parent/child.txt"], // test_maxlength_is_greater_than_name
      ["parent/child.txt", 15, "parent/chil.txt"], // test_maxlength_less_than_name
      // Django main FileSystemStorage(allow_overwrite=True) keeps all suffixes (django-storages'
      // splitext would give "dir/archive..gz").
      ["dir/archive.tar.gz", 15, "dir/arch.tar.gz"],
    ])("%j maxLength=%j -> %j", async (name, maxLength, expected) => {
      await expect(getAvailableName(name, { exists: neverCalled, overwrite: true, maxLength })).resolves.toBe(expected);
    });

    it("test_truncates_away_filename_raises", async () => {
      await expect(
        getAvailableName("parent/child.txt", { exists: neverCalled, overwrite: true, maxLength: 11 }),
      ).rejects.toThrow(SuspiciousFileOperationError);
    });

    it("test_suspicious_file", async () => {
      await expect(
        getAvailableName("superlong/file/with/../path.txt", { exists: neverCalled, overwrite: true, maxLength: 50 }),
      ).rejects.toThrow('Detected path traversal attempt in "superlong/file/with/.."');
    });
  });

  it("gives up after 100 taken candidates instead of looping forever (not in Django)", async () => {
    let calls = 0;
    const exists = async () => {
      calls++;
      return true;
    };
    const err = await getAvailableName("f.txt", { exists, random: () => "AAAAAAA" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StorageError);
    expect((err as StorageError).code).toBe("NO_AVAILABLE_NAME");
    expect(calls).toBe(101);
  });

  it("propagates errors from exists()", async () => {
    const boom = new Error("network down");
    await expect(getAvailableName("f.txt", { exists: () => Promise.reject(boom) })).rejects.toBe(boom);
  });
});

describe("byte limits of backends (not in Django)", () => {
  /** Records what `exists` was asked; `taken` names answer true. */
  function recorder(...taken: string[]) {
    const asked: string[] = [];
    return {
      asked,
      exists: async (n: string) => {
        asked.push(n);
        return taken.includes(n);
      },
    };
  }
  const neverAsked = async (n: string): Promise<boolean> => {
    throw new Error(`exists(${JSON.stringify(n)}) must not be called`);
  };
  async function tooLong(run: () => Promise<unknown>): Promise<string> {
    const error = await run().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(StorageError);
    expect((error as StorageError).code).toBe("NAME_TOO_LONG");
    return (error as Error).message;
  }

  it("utf8Length counts UTF-8 bytes; a lone surrogate as the 3 bytes of U+FFFD", () => {
    expect(["a", "é", "€", "😀", "\uD83D", "aé€😀"].map(utf8Length)).toEqual([1, 2, 3, 4, 3, 10]);
  });

  it.each([
    ["aé€😀", 10, "aé€😀"],
    ["aé€😀", 9, "aé€"],
    ["aé€😀", 6, "aé€"],
    ["aé€😀", 5, "aé"],
    ["aé€😀", 2, "a"],
    ["😀😀", 7, "😀"],
    ["é", 1, ""],
    ["abc", 0, ""],
  ])("truncateUtf8(%j, %j) cuts between code points: %j", (s, max, expected) => {
    expect(truncateUtf8(s, max)).toBe(expected);
  });

  it.each([
    // [name, maxSegmentBytes, expected]: the root is cut, all suffixes kept.
    [`dir/${"a".repeat(30)}.txt`, 20, `dir/${"a".repeat(16)}.txt`],
    [`dir/${"é".repeat(30)}.tar.gz`, 20, `dir/${"é".repeat(6)}.tar.gz`],
    [`${"😀".repeat(10)}.png`, 21, `${"😀".repeat(4)}.png`],
    [`${"😀".repeat(10)}.png`, 23, `${"😀".repeat(4)}.png`],
    // An extension with no room for a character and `_XXXXXXX`: only the last suffix stays...
    [`x.${"y".repeat(30)}.gz`, 20, `x.${"y".repeat(15)}.gz`],
    // ...or none, and the whole name is the root.
    [`a.${"b".repeat(30)}`, 20, `a.${"b".repeat(18)}`],
    // Fits: unchanged.
    [`dir/${"é".repeat(8)}.txt`, 20, `dir/${"é".repeat(8)}.txt`],
  ])("%j with maxSegmentBytes %j: %j, the only name `exists` is asked", async (name, max, expected) => {
    const r = recorder();
    await expect(getAvailableName(name, { exists: r.exists, maxSegmentBytes: max })).resolves.toBe(expected);
    expect(r.asked).toEqual([expected]);
  });

  it("a taken cut name: the alternative's root is cut by the bytes `_XXXXXXX` adds", async () => {
    const r = recorder(`${"é".repeat(8)}.txt`);
    const name = await getAvailableName(`${"é".repeat(30)}.txt`, {
      exists: r.exists,
      maxSegmentBytes: 20,
      random: sequence(),
    });
    // The first candidate with 8 × é overflows by 8 bytes: 4 × é go, and a new random part is drawn.
    expect(name).toBe(`${"é".repeat(4)}_BBBBBBB.txt`);
    expect(utf8Length(name)).toBe(20);
    expect(r.asked).toEqual([`${"é".repeat(8)}.txt`, name]);
  });

  it("with overwrite: cut the same way, no random part, `exists` never asked", async () => {
    await expect(
      getAvailableName(`d/${"é".repeat(30)}.txt`, { exists: neverAsked, overwrite: true, maxSegmentBytes: 20 }),
    ).resolves.toBe(`d/${"é".repeat(8)}.txt`);
  });

  it("a directory segment over the limit is refused before `exists`, naming its bytes and the limit", async () => {
    const message = await tooLong(() =>
      getAvailableName(`ok/${"é".repeat(11)}/x.txt`, { exists: neverAsked, maxSegmentBytes: 21 }),
    );
    expect(message).toContain(`its directory segment "${"é".repeat(11)}" is 22 bytes`);
    expect(message).toContain("limit of 21 bytes per path segment");
    // Also with overwrite, and for a long directory under a name limit.
    await tooLong(() =>
      getAvailableName(`${"d".repeat(22)}/x.txt`, { exists: neverAsked, overwrite: true, maxSegmentBytes: 21 }),
    );
  });

  it("maxNameBytes: the file name gets what the directory leaves; a directory leaving nothing is refused", async () => {
    // "dir/" is 4 bytes: 26 left under 30.
    await expect(getAvailableName(`dir/${"a".repeat(40)}.txt`, { exists: existsIn(), maxNameBytes: 30 })).resolves.toBe(
      `dir/${"a".repeat(22)}.txt`,
    );
    // Both limits: the smaller wins.
    await expect(
      getAvailableName(`dir/${"a".repeat(40)}.txt`, { exists: existsIn(), maxNameBytes: 30, maxSegmentBytes: 14 }),
    ).resolves.toBe(`dir/${"a".repeat(10)}.txt`);
    const message = await tooLong(() =>
      getAvailableName(`${"d".repeat(29)}/x.txt`, { exists: neverAsked, maxNameBytes: 30 }),
    );
    expect(message).toContain("its directory is 30 bytes");
    expect(message).toContain("limit of 30 bytes per name");
  });

  it("too little room to cut into: a long name is refused, a short free one kept, a short taken one refused", async () => {
    // "dir/" leaves 6 bytes: no room for a character and `_XXXXXXX`.
    const opts = { maxNameBytes: 10 };
    const long = await tooLong(() => getAvailableName("dir/abcdefgh.txt", { exists: neverAsked, ...opts }));
    expect(long).toContain("its file name is 12 bytes, too long for the 6 bytes its directory leaves");
    await expect(getAvailableName("dir/ab.txt", { exists: existsIn(), ...opts })).resolves.toBe("dir/ab.txt");
    const taken = await tooLong(() =>
      getAvailableName("dir/ab.txt", { exists: existsIn("dir/ab.txt"), random: sequence(), ...opts }),
    );
    expect(taken).toContain("every alternative name is too long");
  });

  it("no limits, or Infinity: Django's behaviour unchanged", async () => {
    const name = `dir/${"é".repeat(600)}.txt`;
    await expect(getAvailableName(name, { exists: existsIn() })).resolves.toBe(name);
    await expect(
      getAvailableName(name, { exists: existsIn(), maxSegmentBytes: Number.POSITIVE_INFINITY }),
    ).resolves.toBe(name);
  });

  it("assertNameFits: checks a name used as given, segment by segment and as a whole", async () => {
    expect(() => assertNameFits("dir/a.txt", { maxSegmentBytes: 5, maxNameBytes: 9 })).not.toThrow();
    await tooLong(async () => assertNameFits("dir/ab.txt", { maxSegmentBytes: 5 }));
    await tooLong(async () => assertNameFits("dir/a.txt", { maxNameBytes: 8 }));
    await tooLong(async () => assertNameFits("dirtyy/a.txt", { maxSegmentBytes: 5 }));
    expect(() => assertNameFits(`${"é".repeat(500)}/x`, {})).not.toThrow();
  });
});

describe("safeJoin", () => {
  // django-storages tests/test_utils.py SafeJoinTest.
  it.each([
    [["", "path/to/somewhere", "other", "path/to/somewhere"], "path/to/somewhere/other/path/to/somewhere"], // test_normal
    [["", "path/./somewhere/../other", "..", ".", "to/./somewhere"], "path/to/somewhere"], // test_with_dot
    [["", "."], ""], // test_with_only_dot
    [["base_url", "path/to/somewhere"], "base_url/path/to/somewhere"], // test_base_url
    [["base_url/", "path/to/somewhere"], "base_url/path/to/somewhere"], // test_base_url_with_slash
    [["base_url/", "path/to/somewhere/"], "base_url/path/to/somewhere/"], // test_trailing_slash
    [["base_url/", "path/to/", "somewhere/"], "base_url/path/to/somewhere/"], // test_trailing_slash_multi
    [["base_url", "2017-05-19T14:45:37.123456"], "base_url/2017-05-19T14:45:37.123456"], // test_datetime_isoformat
    [["base_url", ""], "base_url/"], // test_join_empty_string
    [["base_url", "."], "base_url/"], // test_with_base_url_and_dot
    [["base_url", ".", "path/to/", "."], "base_url/path/to/"], // test_with_base_url_and_dot_and_path_and_slash
    [[""], ""], // test_join_nothing
    [["base_url"], "base_url/"], // test_with_base_url_join_nothing
    [["media", "a/../b.txt"], "media/b.txt"],
    [["", "../../etc/passwd"], "etc/passwd"], // no base: ".." cannot climb above the bucket root
  ])("%j -> %j", (args, expected) => {
    const [base, ...paths] = args as [string, ...string[]];
    expect(safeJoin(base, ...paths)).toBe(expected);
  });

  // test_suspicious_operation
  it.each([
    ["base", "../../../../../../../etc/passwd"],
    ["base", "/etc/passwd"],
    ["base", ".."],
    ["base", "../basement/x"],
    ["media/a", "../b/x"],
  ])("%j + %j leaves the base", (base, path) => {
    expect(() => safeJoin(base, path)).toThrow(SuspiciousFileOperationError);
    expect(() => safeJoin(base, path)).toThrow(JSON.stringify(base));
  });
});
