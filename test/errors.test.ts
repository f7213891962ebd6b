/**
 * `ErrorCode` covers every code the sources throw: each `new PrismaS3FilesError("…")`,
 * `super("…")` of a subclass and `code: …` given to one, read from the source text.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, expectTypeOf, it } from "vitest";
import { ERROR_CODES, type ErrorCode, PrismaS3FilesError } from "../src/entries/index.js";

const SRC = join(import.meta.dirname, "..", "src");

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return path.endsWith("browser") ? [] : sources(path); // the browser half has its own union
    return path.endsWith(".ts") ? [path] : [];
  });
}

/** Codes in the sources: literals in the throwing positions, and constants given as `code:`. */
function thrownCodes(): Map<string, string[]> {
  const found = new Map<string, string[]>();
  const add = (code: string, file: string) => found.set(code, [...(found.get(code) ?? []), file]);
  const texts = sources(SRC).map((file) => ({ file, text: readFileSync(file, "utf8") }));
  const constants = new Map<string, string>();
  for (const { text } of texts) {
    for (const m of text.matchAll(/\bconst ([A-Z][A-Z0-9_]*) = "([A-Z][A-Z0-9_]*)"/g)) constants.set(m[1]!, m[2]!);
  }
  for (const { file, text } of texts) {
    const where = file.slice(SRC.length + 1);
    for (const m of text.matchAll(/\b(?:new PrismaS3FilesError|super)\(\s*"([A-Z][A-Z0-9_]*)"/g)) add(m[1]!, where);
    for (const line of text.split("\n")) {
      // Node-style errors made for streams (`Object.assign(new Error(...), { code })`) are not ours.
      if (line.includes("new Error(")) continue;
      for (const m of line.matchAll(/\bcode: "([A-Z][A-Z0-9_]*)"/g)) add(m[1]!, where);
    }
    for (const m of text.matchAll(/\bcode: ([A-Z][A-Z0-9_]*)\b/g)) {
      const value = constants.get(m[1]!);
      if (value === undefined) throw new Error(`${where}: code: ${m[1]} is not a string constant the test can read`);
      add(value, where);
    }
  }
  return found;
}

describe("ErrorCode", () => {
  it("lists every code the sources throw", () => {
    const thrown = thrownCodes();
    // The scan finds what it should (so that an empty result cannot pass).
    expect(thrown.size).toBeGreaterThanOrEqual(25);
    expect(thrown.get("FILE_NOT_FOUND")).toContain("errors.ts");
    expect(thrown.get("NAME_TOO_LONG")).toContain("storage/naming.ts");
    const missing = [...thrown].filter(([code]) => !(ERROR_CODES as readonly string[]).includes(code));
    expect(missing).toEqual([]);
  });

  it("is the type of PrismaS3FilesError.code, and the list has no duplicates", () => {
    expectTypeOf<PrismaS3FilesError["code"]>().toEqualTypeOf<ErrorCode>();
    expect(new Set(ERROR_CODES).size).toBe(ERROR_CODES.length);
    expect(new PrismaS3FilesError("CONFIGURATION", "x").code).toBe("CONFIGURATION");
  });
});
