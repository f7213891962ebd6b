import { describe, expect, it } from "vitest";
import { MAX_UPLOADED_NAME_LENGTH, uploadedFileName } from "../../src/files/uploaded-name.js";

describe("uploadedFileName (Django's rules for client-supplied names)", () => {
  it.each([
    ["photo.png", "photo.png"],
    ["../../../etc/passwd", "passwd"],
    ["..\\..\\..\\windows\\win.ini", "win.ini"],
    ["C:\\Users\\me\\photo.png", "photo.png"],
    ["/absolute/path/x.jpg", "x.jpg"],
    ["..;/x.png", "x.png"],
    ["\\\\server\\share\\a.txt", "a.txt"],
    ["dir/", undefined],
    ["", undefined],
    [".", undefined],
    ["..", undefined],
    ["a/..", undefined],
    ["nul\u0000byte.png", "nulbyte.png"],
    ["tab\there.png", "tabhere.png"],
    ["rtl\u202Egnp.exe", "rtlgnp.exe"],
    ["zero\u200Bwidth.png", "zerowidth.png"],
    ["line\u2028sep.png", "linesep.png"],
    ["no\u00A0break.png", "nobreak.png"],
    ["keeps spaces.png", "keeps spaces.png"],
    ["ｆｕｌｌ.png", "ｆｕｌｌ.png"],
    [".bashrc", ".bashrc"],
  ])("%j → %j", (input, expected) => {
    expect(uploadedFileName(input)).toBe(expected);
  });

  it("undefined stays undefined", () => {
    expect(uploadedFileName(undefined)).toBeUndefined();
  });

  it("cuts names past 255 characters, keeping the extension (UploadedFile._set_name)", () => {
    const long = `${"a".repeat(1000)}.png`;
    const cut = uploadedFileName(long)!;
    expect([...cut]).toHaveLength(MAX_UPLOADED_NAME_LENGTH);
    expect(cut.endsWith(".png")).toBe(true);
    expect(cut).toBe(`${"a".repeat(251)}.png`);
  });

  it("counts code points, as Python does", () => {
    const cut = uploadedFileName(`${"😀".repeat(300)}.txt`)!;
    expect([...cut]).toHaveLength(255);
    expect(cut).toBe(`${"😀".repeat(251)}.txt`);
  });

  it("an extension of its own longer than 255 is cut too", () => {
    const cut = uploadedFileName(`a.${"x".repeat(400)}`)!;
    expect([...cut]).toHaveLength(255);
    expect(cut).toBe(`.${"x".repeat(254)}`);
  });

  it("a long name made only of leading dots and letters has no extension", () => {
    const cut = uploadedFileName(`...${"b".repeat(300)}`)!;
    expect(cut).toBe(`...${"b".repeat(252)}`);
  });
});
