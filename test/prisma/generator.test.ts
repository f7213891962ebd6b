/**
 * The generator end to end: the real `prisma generate` (through scripts/prisma-generate.mjs, as
 * `npm run generate` runs it) on temporary schemas, the module it writes, and the repository's
 * own generated module. All `prisma generate` runs start together in `beforeAll`.
 */
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import ts from "typescript";
import { afterAll, beforeAll, describe, expect, expectTypeOf, it } from "vitest";
import { PrismaS3FilesError } from "../../src/errors.js";
import { FileAnnotationError } from "../../src/prisma/generator/annotation.js";
import { emitModule } from "../../src/prisma/generator/emit.js";
import {
  buildMetadata,
  type DmmfFieldLike,
  FileAnnotationErrors,
  readGeneratorConfig,
} from "../../src/prisma/generator/metadata.js";
import type { FileFieldsMetadataShape } from "../../src/prisma/metadata-types.js";
import { fileFields as repoFileFields } from "../generated/files/index.js";
import { type CommandResult, runCommand } from "../harness/run-command.js";

const root = fileURLToPath(new URL("../..", import.meta.url));
const bin = join(root, "src", "bin", "prisma-s3-files.ts");

type Run = CommandResult;
const run = (command: string, args: string[], cwd: string) => runCommand(command, args, { cwd });

let tmp: string;

/** Writes `<tmp>/<name>/schema.prisma` (our generator block + a PostgreSQL datasource + `models`) and runs generate. */
async function generate(
  name: string,
  models: string,
  generatorConfig = 'storages = ["public", "private"]\n  runtime = "none"',
  provider = "postgresql",
): Promise<Run> {
  const dir = join(tmp, name);
  await mkdir(dir, { recursive: true });
  const schema = `generator files {
  provider = "node --import tsx ${bin}"
  output   = "./out"
  ${generatorConfig}
}

datasource db {
  provider = "${provider}"
}

${models}
`;
  await writeFile(join(dir, "schema.prisma"), schema);
  return run(
    process.execPath,
    [join(root, "scripts", "prisma-generate.mjs"), "--schema", join(dir, "schema.prisma")],
    root,
  );
}

const GOOD_MODELS = `
/// Declared first on purpose: the output sorts models by name.
model Zine {
  id       Int     @id
  title    String
  /// Cover art, spread over several comment lines.
  /// @file(
  ///   uploadTo: "zines/%Y/",
  ///   storage: "public",
  ///   maxSize: "10 MiB",
  ///   accept: ["image/*", "application/pdf"],
  /// )
  cover    String? @db.VarChar(191)
  /// Scanned pages. @file(keepFiles: true, deleteAfterSeconds: 86400, maxLength: 100, storage: "private")
  scan     String  @db.VarChar(150)
  /// A column that mentions @filename but is no file.
  note     String?
  author   Author? @relation(fields: [authorId], references: [id])
  authorId Int?
}

model Author {
  id       Int      @id
  /// @file
  portrait String?
  zines    Zine[]
  mentor   Author?  @relation("mentoring", fields: [mentorId], references: [id])
  mentorId Int?
  mentees  Author[] @relation("mentoring")
}

model Tag {
  id Int @id
}
`;

const BAD_MODELS = `
model Doc {
  id      Int      @id
  /// @file
  count   Int?
  /// @file(uploadTo: "names/")
  names   String[]
  /// @file(uplodTo: "x/")
  typo    String?
  /// @file(uploadTo: "x/" storage: "public")
  comma   String?
  /// @file(storage: "privat")
  store   String?
  /// @file(storage: "public")
  /// @file(storage: "private")
  twice   String?
  /// @file(maxLength: 300)
  short   String?  @db.VarChar(255)
  /// @file
  owner   Owner    @relation(fields: [ownerId], references: [id])
  ownerId Int
}

model Owner {
  id   Int   @id
  docs Doc[]
}
`;

let good: Run;
let bad: Run;
let single: Run;
let badConfig: Run;

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), "psf-generator-"));
  await writeFile(join(tmp, "package.json"), '{ "type": "module" }\n');
  [good, bad, single, badConfig] = await Promise.all([
    generate("good", GOOD_MODELS),
    generate("bad", BAD_MODELS),
    generate("single", 'model User {\n  id Int @id\n  /// @file(uplodTo: "avatars/")\n  avatar String?\n}'),
    generate("config", "model User {\n  id Int @id\n}", 'storage = ["public"]'),
  ]);
}, 60_000);

afterAll(async () => {
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

describe("prisma generate with a good schema", () => {
  it("exits 0 and reports the generator", () => {
    expect(good.code, good.stderr).toBe(0);
    expect(good.stdout).toContain("Generated prisma-s3-files file fields");
  });

  it("writes the metadata of every model, sorted", async () => {
    const mod = (await import(pathToFileURL(join(tmp, "good", "out", "index.ts")).href)) as {
      fileFields: FileFieldsMetadataShape;
    };
    expect(Object.keys(mod.fileFields)).toEqual(["Author", "Tag", "Zine"]);
    expect(mod.fileFields).toEqual({
      Author: {
        fileFields: {
          portrait: {
            uploadTo: "",
            storage: "default",
            maxSize: null,
            accept: null,
            keepFiles: false,
            deleteAfterSeconds: 0,
            maxLength: null,
            nullable: true,
          },
        },
        relations: {
          zines: { model: "Zine", list: true },
          mentor: { model: "Author", list: false },
          mentees: { model: "Author", list: true },
        },
        primaryKey: ["id"],
      },
      Tag: { fileFields: {}, relations: {}, primaryKey: ["id"] },
      Zine: {
        fileFields: {
          cover: {
            uploadTo: "zines/%Y/",
            storage: "public",
            maxSize: 10 * 1024 * 1024,
            accept: ["image/*", "application/pdf"],
            keepFiles: false,
            deleteAfterSeconds: 0,
            maxLength: 191,
            nullable: true,
          },
          scan: {
            uploadTo: "",
            storage: "private",
            maxSize: null,
            accept: null,
            keepFiles: true,
            deleteAfterSeconds: 86400,
            maxLength: 100,
            nullable: false,
          },
        },
        relations: { author: { model: "Author", list: false } },
        primaryKey: ["id"],
      },
    });
  });

  it("writes a deterministic, self-contained module with a generated-file header", async () => {
    const source = await readFile(join(tmp, "good", "out", "index.ts"), "utf8");
    expect(source.startsWith("// Generated by prisma-s3-files")).toBe(true);
    expect(source).not.toMatch(/^import /m);
    expect(source).not.toContain(tmp); // no absolute paths
    expect(source).toContain("} as const satisfies FileFieldsMetadataShape;");
    expect(source).toContain("export type FileFieldsMetadata = typeof fileFields;");
  });

  it("typechecks, with literal types, and fits FileFieldsMetadataShape", async () => {
    const dir = join(tmp, "good");
    const typesPath = relative(dir, join(root, "src", "prisma", "metadata-types.js"))
      .split("\\")
      .join("/");
    const check = `import { fileFields, type FileFieldsMetadata } from "./out/index.js";
import type { FileFieldsMetadataShape } from "${typesPath}";
const shape: FileFieldsMetadataShape = fileFields;
const uploadTo: "zines/%Y/" = fileFields.Zine.fileFields.cover.uploadTo;
const required: false = fileFields.Zine.fileFields.scan.nullable;
const size: 10485760 = fileFields.Zine.fileFields.cover.maxSize;
const accept: readonly ["image/*", "application/pdf"] = fileFields.Zine.fileFields.cover.accept;
const target: "Author" = fileFields.Author.relations.mentees.model;
const list: true = fileFields.Author.relations.mentees.list;
type NoFiles = keyof FileFieldsMetadata["Tag"]["fileFields"];
const none: [NoFiles] extends [never] ? true : false = true;
// @ts-expect-error the literal type is not widened to string
const wrong: "other" = fileFields.Zine.fileFields.cover.uploadTo;
// @ts-expect-error Tag has no file field "x"
fileFields.Tag.fileFields.x;
export { accept, list, none, required, shape, size, target, uploadTo, wrong };
`;
    const checkFile = join(dir, "check.ts");
    await writeFile(checkFile, check);
    const program = ts.createProgram([checkFile], {
      strict: true,
      noUncheckedIndexedAccess: true,
      noEmit: true,
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      types: [],
      skipLibCheck: true,
    });
    const diagnostics = ts
      .getPreEmitDiagnostics(program)
      .map((d) => ts.flattenDiagnosticMessageText(d.messageText, "\n"));
    expect(diagnostics).toEqual([]);
  }, 30_000);
});

describe("prisma generate with bad annotations", () => {
  it("exits non-zero without writing the module", () => {
    expect(bad.code).not.toBe(0);
    expect(existsSync(join(tmp, "bad", "out", "index.ts"))).toBe(false);
  });

  it.each([
    [
      "a non-String column",
      "Doc.count: @file needs a String or String? column holding the object key, but the field is Int?",
    ],
    [
      "a String[] column",
      "Doc.names: @file needs a String or String? column holding the object key, but the field is String[]",
    ],
    [
      "a relation field",
      "Doc.owner: @file needs a String or String? column holding the object key, but the field is Owner",
    ],
    ["an unknown option", 'Doc.typo: unknown option "uplodTo" in @file(...) (known: uploadTo, storage,'],
    ["a malformed annotation", 'Doc.comma: malformed @file(...): expected "," or ")" after a value'],
    [
      "an unknown storage",
      'Doc.store: unknown storage "privat" (the generator\'s storages: "default", "public", "private")',
    ],
    ["two annotations", "Doc.twice: more than one @file annotation"],
    ["maxLength longer than the column", "Doc.short: maxLength 300 exceeds the column's length (@db.VarChar(255))"],
  ])("stderr names %s", (_what, message) => {
    expect(bad.stderr).toContain(message);
  });

  it("lists every problem at once", () => {
    expect(bad.stderr).toContain("8 problems with @file annotations:");
  });

  it("reports a single problem on its own", () => {
    expect(single.code).not.toBe(0);
    expect(single.stderr).toContain('User.avatar: unknown option "uplodTo" in @file(...)');
    expect(single.stderr).not.toContain("problems with @file annotations");
  });

  it("refuses an unknown generator config key", () => {
    expect(badConfig.code).not.toBe(0);
    expect(badConfig.stderr).toContain('generator files: unknown config key "storage" (known: storages, runtime)');
  });
});

describe("the repository's generated module (npm run generate)", () => {
  it("declares User, Post and Attachment file columns with their storages", () => {
    const { User, Post, Attachment } = repoFileFields;
    expect(User.fileFields.avatar).toEqual({
      uploadTo: "avatars/%Y/%m/",
      storage: "default",
      maxSize: 5_000_000,
      accept: ["image/png", "image/jpeg", "image/webp"],
      keepFiles: false,
      deleteAfterSeconds: 0,
      maxLength: null,
      nullable: true,
    });
    expect(User.fileFields.badge).toMatchObject({ uploadTo: "badges/", storage: "private", nullable: false });
    expect(Post.fileFields.cover).toMatchObject({ uploadTo: "posts/covers/%Y/", storage: "default", nullable: true });
    expect(Attachment.fileFields.original).toMatchObject({ storage: "private", nullable: false });
    expect(Attachment.fileFields.preview).toMatchObject({ storage: "public", nullable: true });
    expect(Object.keys(User.fileFields)).toEqual(["avatar", "badge"]);
  });

  it("maps the relations", () => {
    // `onDelete: Cascade` on Post.author and Attachment.post: deleting a user or a post cascades.
    expect(repoFileFields.User.relations).toEqual({ posts: { model: "Post", list: true, cascade: true } });
    expect(repoFileFields.Post.relations).toEqual({
      author: { model: "User", list: false },
      attachments: { model: "Attachment", list: true, cascade: true },
    });
    expect(repoFileFields.Attachment.relations).toEqual({ post: { model: "Post", list: false } });
  });

  it("has literal types (checked by tsc)", () => {
    const shape: FileFieldsMetadataShape = repoFileFields;
    expect(shape).toBe(repoFileFields);
    expectTypeOf(repoFileFields.User.fileFields.badge.nullable).toEqualTypeOf<false>();
    expectTypeOf(repoFileFields.User.fileFields.avatar.nullable).toEqualTypeOf<true>();
    expectTypeOf(repoFileFields.Attachment.fileFields.preview.storage).toEqualTypeOf<"public">();
    expectTypeOf(repoFileFields.User.relations.posts).toEqualTypeOf<{
      readonly model: "Post";
      readonly list: true;
      readonly cascade: true;
    }>();
  });
});

describe("buildMetadata and emitModule", () => {
  const field = (f: Partial<DmmfFieldLike> & { name: string }): DmmfFieldLike => ({
    kind: "scalar",
    type: "String",
    isList: false,
    isRequired: false,
    ...f,
  });

  it("takes a plain String's length from the provider: VARCHAR(191) on MySQL, none on PostgreSQL and SQLite", async () => {
    const models = "model U {\n  id Int @id\n  /// @file\n  a String?\n  /// @file(maxLength: 100)\n  b String?\n}";
    const runs = await Promise.all(
      ["mysql", "postgresql", "sqlite"].map((provider) =>
        generate(`provider-${provider}`, models, 'runtime = "none"', provider),
      ),
    );
    const lengths = [];
    for (const [i, provider] of ["mysql", "postgresql", "sqlite"].entries()) {
      expect(runs[i]!.code, runs[i]!.stderr).toBe(0);
      const mod = (await import(pathToFileURL(join(tmp, `provider-${provider}`, "out", "index.ts")).href)) as {
        fileFields: FileFieldsMetadataShape;
      };
      const f = mod.fileFields.U!.fileFields;
      lengths.push([provider, f.a!.maxLength, f.b!.maxLength]);
    }
    expect(lengths).toEqual([
      ["mysql", 191, 100],
      ["postgresql", null, 100],
      ["sqlite", null, 100],
    ]);
    // More than the column holds is refused, naming the column's type.
    const tooLong = await generate(
      "provider-mysql-long",
      "model U {\n  id Int @id\n  /// @file(maxLength: 300)\n  a String?\n}",
      'runtime = "none"',
      "mysql",
    );
    expect(tooLong.code).not.toBe(0);
    expect(tooLong.stderr).toContain("U.a: maxLength 300 exceeds the column's length (String on mysql: VARCHAR(191))");
  }, 60_000);

  it("takes maxLength from VarChar/Char, not from NVarChar(Max) or Text", () => {
    const meta = buildMetadata({
      models: [
        {
          name: "M",
          fields: [
            field({ name: "a", documentation: "@file", nativeType: ["VarChar", ["64"]] }),
            field({ name: "b", documentation: "@file", nativeType: ["Char", ["32"]] }),
            field({ name: "c", documentation: "@file", nativeType: ["NVarChar", ["Max"]] }),
            field({ name: "d", documentation: "@file", nativeType: ["Text", []] }),
            field({ name: "e", documentation: "@file(maxLength: 10)", nativeType: ["VarChar", ["64"]] }),
          ],
        },
      ],
    });
    const f = meta.M!.fileFields;
    expect([f.a, f.b, f.c, f.d, f.e].map((x) => x?.maxLength)).toEqual([64, 32, null, null, 10]);
  });

  it("marks relations that deletes cascade to: onDelete Cascade on the other side, not SetNull or none", () => {
    const rel = (name: string, type: string, relationName: string, extra: Partial<DmmfFieldLike> = {}) =>
      field({ name, kind: "object", type, relationName, ...extra });
    const meta = buildMetadata({
      models: [
        {
          name: "Parent",
          fields: [
            rel("cascaded", "Child", "c", { isList: true }),
            rel("nulled", "Other", "n", { isList: true }),
            rel("plain", "Third", "p", { isList: true }),
          ],
        },
        { name: "Child", fields: [rel("parent", "Parent", "c", { relationOnDelete: "Cascade" })] },
        { name: "Other", fields: [rel("parent", "Parent", "n", { relationOnDelete: "SetNull" })] },
        { name: "Third", fields: [rel("parent", "Parent", "p")] },
        {
          name: "Node",
          fields: [
            rel("parent", "Node", "tree", { relationOnDelete: "Cascade" }),
            rel("children", "Node", "tree", { isList: true }),
          ],
        },
      ],
    });
    expect(meta.Parent!.relations).toEqual({
      cascaded: { model: "Child", list: true, cascade: true },
      nulled: { model: "Other", list: true },
      plain: { model: "Third", list: true },
    });
    expect(meta.Child!.relations).toEqual({ parent: { model: "Parent", list: false } });
    expect(meta.Node!.relations).toEqual({
      parent: { model: "Node", list: false },
      children: { model: "Node", list: true, cascade: true },
    });
    expect(emitModule(meta, { runtime: "none" })).toContain('children: { model: "Node", list: true, cascade: true }');
  });

  it("does not check storage names when the generator lists none", () => {
    const meta = buildMetadata({
      models: [{ name: "M", fields: [field({ name: "a", documentation: '@file(storage: "any")' })] }],
    });
    expect(meta.M!.fileFields.a!.storage).toBe("any");
  });

  it("refuses @file on a composite type and skips composite-type relations", () => {
    const datamodel = {
      models: [
        {
          name: "M",
          fields: [field({ name: "address", kind: "object", type: "Address" })],
        },
      ],
      types: [{ name: "Address", fields: [field({ name: "photo", documentation: "@file" })] }],
    };
    expect(() => buildMetadata(datamodel)).toThrow(
      "Address.photo: @file is not supported on fields of composite types; declare the column on a model",
    );
    expect(buildMetadata({ models: datamodel.models }).M!.relations).toEqual({});
  });

  it("throws one FileAnnotationError or a FileAnnotationErrors listing them", () => {
    const one = { models: [{ name: "M", fields: [field({ name: "a", documentation: "@file(x: 1)" })] }] };
    expect(() => buildMetadata(one)).toThrow(FileAnnotationError);
    const two = {
      models: [
        {
          name: "M",
          fields: [
            field({ name: "a", documentation: "@file(x: 1)" }),
            field({ name: "b", type: "Int", documentation: "@file" }),
          ],
        },
      ],
    };
    try {
      buildMetadata(two);
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(FileAnnotationErrors);
      expect((e as FileAnnotationErrors).errors.map((x) => `${x.model}.${x.field}`)).toEqual(["M.a", "M.b"]);
    }
  });

  it("reads the generator config", () => {
    expect(readGeneratorConfig({})).toEqual({});
    expect(readGeneratorConfig({ storages: ["a", "b"] })).toEqual({ storages: ["a", "b"] });
    expect(readGeneratorConfig({ storages: "a" })).toEqual({ storages: ["a"] });
    expect(() => readGeneratorConfig({ storages: ["a b"] })).toThrow(PrismaS3FilesError);
    expect(() => readGeneratorConfig({ storagez: ["a"] }, "gen")).toThrow(
      'generator gen: unknown config key "storagez" (known: storages, runtime)',
    );
  });

  it("emits the same text for the same metadata, quoting odd names", () => {
    const meta = buildMetadata({
      models: [
        { name: "B", fields: [] },
        { name: "A", fields: [field({ name: "a-b", documentation: "@file" })] },
      ],
    });
    const source = emitModule(meta);
    expect(emitModule(meta)).toBe(source);
    expect(source.indexOf("  A: {")).toBeLessThan(source.indexOf("  B: {"));
    expect(source).toContain('"a-b": {');
    expect(source).toContain("  B: {\n    fileFields: {},\n    relations: {},\n    primaryKey: [],\n  },");
  });
});

describe("the prisma-s3-files bin as a CLI", () => {
  it("refuses an unknown command", async () => {
    const result = await run(process.execPath, ["--import", "tsx", bin, "frobnicate"], root);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('prisma-s3-files: unknown command "frobnicate"');
  });

  it("prints help", async () => {
    const result = await run(process.execPath, ["--import", "tsx", bin, "help"], root);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain("Usage: prisma-s3-files <command>");
  });
});
