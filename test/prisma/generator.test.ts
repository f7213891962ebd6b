/**
 * The generator end to end: the real `prisma generate` (through scripts/prisma-generate.mjs, as
 * `npm run generate` runs it) on temporary schemas, the module it writes, and the repository's
 * own generated module. All `prisma generate` runs start together in `beforeAll`.
 */
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import ts from "typescript";
import { afterAll, beforeAll, describe, expect, expectTypeOf, it } from "vitest";
import { PrismaS3FilesError } from "../../src/errors.js";
import { FileAnnotationError } from "../../src/prisma/generator/annotation.js";
import { emitModule } from "../../src/prisma/generator/emit.js";
import { JournalModelError, journalModelSource } from "../../src/prisma/generator/journal-model.js";
import {
  buildMetadata,
  type DmmfFieldLike,
  type DmmfModelLike,
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
  datasource = "",
): Promise<Run> {
  const dir = join(tmp, name);
  await mkdir(dir, { recursive: true });
  const schema = `generator files {
  provider = "node --import tsx ${bin}"
  output   = "./out"
  ${generatorConfig}
}

datasource db {
  provider = "${provider}"${datasource}
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
  cover    String? @db.VarChar(191) @map("cover_key")
  /// Scanned pages. @file(keepFiles: true, deleteAfterSeconds: 86400, maxLength: 100, storage: "private")
  scan     String  @db.VarChar(150)
  /// A column that mentions @filename but is no file.
  note     String?
  author   Author? @relation(fields: [authorId], references: [id])
  authorId Int?

  @@map("zines")
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

${journalModelSource("postgresql")}`;

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
let noJournal: Run;
let noJournalMysql: Run;
let badJournal: Run;
let noFiles: Run;
let mapped: Run;

/** A model with a file field, and nothing else. */
const AVATAR = "model User {\n  id Int @id\n  /// @file\n  avatar String?\n}\n";

/** Everything renamed: tables, columns, a schema of its own, the journal's model name. */
const MAPPED_MODELS = `
model User {
  id     Int     @id @map("user_id")
  /// @file
  avatar String? @map("avatar_key")
  name   String? @map("display_name")

  @@map("users")
  @@schema("media")
}

model Journal {
  id        Int      @id @default(autoincrement()) @map("journal_id")
  kind      String
  storage   String
  objectKey String   @map("object_key")
  owner     String?
  notBefore DateTime @default(now()) @map("not_before")
  attempts  Int      @default(0)
  lastError String?
  createdAt DateTime @default(now())
  note      String?

  @@map("file_journal")
  @@schema("public")
}
`;

/** A journal whose fields the runtime could not write. */
const BAD_JOURNAL = `${AVATAR}
model FileJournal {
  id        Int      @id
  kind      String?
  storage   String
  owner     String?
  notBefore DateTime
  attempts  Int      @default(0)
  lastError String?
  createdAt DateTime @default(now())
  tenant    String
}
`;

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), "psf-generator-"));
  await writeFile(join(tmp, "package.json"), '{ "type": "module" }\n');
  [good, bad, single, badConfig, noJournal, noJournalMysql, badJournal, noFiles, mapped] = await Promise.all([
    generate("good", GOOD_MODELS),
    generate("bad", BAD_MODELS),
    generate("single", 'model User {\n  id Int @id\n  /// @file(uplodTo: "avatars/")\n  avatar String?\n}'),
    generate("config", "model User {\n  id Int @id\n}", 'storage = ["public"]'),
    generate("no-journal", AVATAR),
    generate("no-journal-mysql", AVATAR, 'runtime = "none"', "mysql"),
    generate("bad-journal", BAD_JOURNAL),
    generate("no-files", "model Tag {\n  id Int @id\n}"),
    generate(
      "mapped",
      MAPPED_MODELS,
      'runtime = "none"\n  journal = "Journal"',
      "postgresql",
      '\n  schemas  = ["public", "media"]',
    ),
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
    expect(Object.keys(mod.fileFields)).toEqual(["Author", "FileJournal", "Tag", "Zine"]);
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
        dbName: "Author",
        columns: { id: "id", portrait: "portrait" },
      },
      FileJournal: {
        fileFields: {},
        relations: {},
        primaryKey: ["id"],
        dbName: "prisma_s3_files_journal",
        columns: {
          id: "id",
          kind: "kind",
          storage: "storage",
          objectKey: "objectKey",
          owner: "owner",
          notBefore: "notBefore",
          attempts: "attempts",
          lastError: "lastError",
          createdAt: "createdAt",
        },
        journal: { provider: "postgresql" },
      },
      Tag: { fileFields: {}, relations: {}, primaryKey: ["id"], dbName: "Tag", columns: { id: "id" } },
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
        dbName: "zines",
        columns: { id: "id", cover: "cover_key", scan: "scan" },
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
const table: "zines" = fileFields.Zine.dbName;
const column: "cover_key" = fileFields.Zine.columns.cover;
const provider: "postgresql" = fileFields.FileJournal.journal.provider;
const list: true = fileFields.Author.relations.mentees.list;
type NoFiles = keyof FileFieldsMetadata["Tag"]["fileFields"];
const none: [NoFiles] extends [never] ? true : false = true;
// @ts-expect-error the literal type is not widened to string
const wrong: "other" = fileFields.Zine.fileFields.cover.uploadTo;
// @ts-expect-error Tag has no file field "x"
fileFields.Tag.fileFields.x;
export { accept, column, list, none, provider, required, shape, size, table, target, uploadTo, wrong };
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
    expect(badConfig.stderr).toContain(
      'generator files: unknown config key "storage" (known: storages, runtime, journal)',
    );
  });
});

describe("prisma generate and the file journal model", () => {
  it("fails without a journal model when file fields exist, printing the model to paste", () => {
    expect(noJournal.code).not.toBe(0);
    expect(existsSync(join(tmp, "no-journal", "out", "index.ts"))).toBe(false);
    expect(noJournal.stderr).toContain(
      'The schema has file fields (User.avatar) but no file journal model "FileJournal".',
    );
    expect(noJournal.stderr).toContain("Add it with `npx prisma-s3-files init`, or paste this model into the schema:");
    // The model as PostgreSQL takes it, indented, then the migration to run.
    for (const line of journalModelSource("postgresql").trimEnd().split("\n")) {
      expect(noJournal.stderr).toContain(line === "" ? "\n\n" : `    ${line}\n`);
    }
    expect(noJournal.stderr).toContain("then create its table: `npx prisma migrate dev --name file-journal`.");
  });

  it("prints MySQL's form on MySQL: column types whose index fits InnoDB's key limit", () => {
    expect(noJournalMysql.code).not.toBe(0);
    expect(noJournalMysql.stderr).toContain("      storage   String   @db.VarChar(191)\n");
    expect(noJournalMysql.stderr).toContain("      objectKey String   @db.VarChar(1024)\n");
    expect(noJournalMysql.stderr).toContain("      lastError String?  @db.Text\n");
    expect(noJournalMysql.stderr).toContain("      @@index([storage, objectKey(length: 512)])\n");
  });

  it("the printed models are valid schemas on every provider: generate accepts them", async () => {
    const providers = ["postgresql", "mysql", "sqlite"];
    const runs = await Promise.all(
      providers.map((provider) =>
        generate(`journal-${provider}`, `${AVATAR}\n${journalModelSource(provider)}`, 'runtime = "none"', provider),
      ),
    );
    for (const [i, provider] of providers.entries()) {
      expect(runs[i]!.code, runs[i]!.stderr).toBe(0);
      const mod = (await import(pathToFileURL(join(tmp, `journal-${provider}`, "out", "index.ts")).href)) as {
        fileFields: FileFieldsMetadataShape;
      };
      expect(mod.fileFields.FileJournal).toMatchObject({
        dbName: "prisma_s3_files_journal",
        journal: { provider },
      });
      expect(mod.fileFields.User!.journal).toBeUndefined();
    }
  }, 60_000);

  it("checks the journal model's fields, listing every problem", () => {
    expect(badJournal.code).not.toBe(0);
    expect(badJournal.stderr).toContain(
      "The file journal model FileJournal does not have the fields prisma-s3-files writes:",
    );
    for (const problem of [
      "FileJournal.id: needs @default(autoincrement())",
      "FileJournal.kind: must be String, but is String?",
      "FileJournal.objectKey: missing (expected String)",
      "FileJournal.notBefore: needs a default (@default(now()))",
      "FileJournal.tenant: a field of its own must be optional or have a default",
    ]) {
      expect(badJournal.stderr).toContain(problem);
    }
    expect(badJournal.stderr).not.toContain("FileJournal.attempts");
  });

  it("needs no journal model without file fields", () => {
    expect(noFiles.code, noFiles.stderr).toBe(0);
  });

  it("emits table (@@map), schema (@@schema) and column (@map) names; journal = names the journal model", async () => {
    expect(mapped.code, mapped.stderr).toBe(0);
    const mod = (await import(pathToFileURL(join(tmp, "mapped", "out", "index.ts")).href)) as {
      fileFields: FileFieldsMetadataShape;
    };
    expect(mod.fileFields.User).toEqual({
      fileFields: { avatar: expect.objectContaining({ nullable: true }) },
      relations: {},
      primaryKey: ["id"],
      dbName: "users",
      schema: "media",
      // The key and the file columns; not the others.
      columns: { id: "user_id", avatar: "avatar_key" },
    });
    expect(mod.fileFields.Journal).toEqual({
      fileFields: {},
      relations: {},
      primaryKey: ["id"],
      dbName: "file_journal",
      schema: "public",
      // Every scalar field of the journal.
      columns: {
        id: "journal_id",
        kind: "kind",
        storage: "storage",
        objectKey: "object_key",
        owner: "owner",
        notBefore: "not_before",
        attempts: "attempts",
        lastError: "lastError",
        createdAt: "createdAt",
        note: "note",
      },
      journal: { provider: "postgresql" },
    });
  });
});

describe("prisma generate and metadata columns (@file(metadata, widthField, heightField, maxPixels))", () => {
  let goodMeta: Run;
  let badMeta: Run;
  beforeAll(async () => {
    [goodMeta, badMeta] = await Promise.all([
      generate(
        "metadata-good",
        `model Photo {
  id          Int     @id
  /// @file(metadata: "imageMeta", widthField: "imageWidth", heightField: "imageHeight", maxPixels: 12000000)
  image       String?
  imageMeta   Json?
  imageWidth  Int?    @map("image_width")
  imageHeight Int?
  /// @file
  plain       String?
}

${journalModelSource("postgresql")}`,
      ),
      generate(
        "metadata-bad",
        `model Doc {
  id       Int      @id
  /// @file(metadata: "missing")
  a        String?
  /// @file(widthField: "title")
  b        String?
  title    String?
  /// @file(metadata: "required")
  c        String?
  required Json
  /// @file(heightField: "sizes")
  d        String?
  sizes    Int[]
  /// @file(widthField: "w", heightField: "w")
  e        String?
  w        Int?
  /// @file(metadata: "shared")
  f        String?
  /// @file(metadata: "shared")
  g        String?
  shared   Json?
  /// @file(metadata: "f")
  h        String?
  /// @file(metadata: "i")
  i        String?
}

${journalModelSource("postgresql")}`,
      ),
    ]);
  }, 60_000);

  it("emits the options that are set, and nothing new for fields without them", async () => {
    expect(goodMeta.code, goodMeta.stderr).toBe(0);
    const mod = (await import(pathToFileURL(join(tmp, "metadata-good", "out", "index.ts")).href)) as {
      fileFields: FileFieldsMetadataShape;
    };
    const { image, plain } = mod.fileFields.Photo!.fileFields;
    expect(image).toMatchObject({
      metadata: "imageMeta",
      widthField: "imageWidth",
      heightField: "imageHeight",
      maxPixels: 12_000_000,
    });
    expect(Object.keys(plain!)).toEqual([
      "uploadTo",
      "storage",
      "maxSize",
      "accept",
      "keepFiles",
      "deleteAfterSeconds",
      "maxLength",
      "nullable",
    ]);
  });

  it.each([
    ["a missing column", 'Doc.a: metadata: the model has no field "missing" (add `missing Json?`)'],
    [
      "a column of another type",
      "Doc.b: widthField: title must be Int? (optional: a copied or cleared file has none), but it is String?",
    ],
    [
      "a required column",
      "Doc.c: metadata: required must be Json? (optional: a copied or cleared file has none), but it is Json",
    ],
    [
      "a list column",
      "Doc.d: heightField: sizes must be Int? (optional: a copied or cleared file has none), but it is Int[]",
    ],
    ["width and height in one column", 'Doc.e: widthField and heightField name the same field "w"'],
    [
      "a column two file fields fill",
      "Doc.g: shared already receives the metadata of f: each file field needs columns of its own",
    ],
    ["a file field", "Doc.h: metadata: f is a file field; name a Json? field"],
    ["the file field itself", "Doc.i: metadata names the file field itself; name a Json? field"],
  ])("fails generate on %s, naming the field", (_what, message) => {
    expect(badMeta.code).not.toBe(0);
    expect(badMeta.stderr).toContain(message);
  });

  it("lists every problem at once", () => {
    expect(badMeta.stderr).toContain("8 problems with @file annotations:");
    expect(existsSync(join(tmp, "metadata-bad", "out", "index.ts"))).toBe(false);
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

  it("has the journal model, and table and column names", () => {
    expect(repoFileFields.FileJournal).toMatchObject({
      fileFields: {},
      primaryKey: ["id"],
      dbName: "prisma_s3_files_journal",
      journal: { provider: "postgresql" },
    });
    expect(repoFileFields.User.dbName).toBe("User");
    expect(repoFileFields.User.columns).toEqual({ id: "id", avatar: "avatar", badge: "badge" });
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
        generate(`provider-${provider}`, `${models}\n${journalModelSource(provider)}`, 'runtime = "none"', provider),
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
    const meta = buildMetadata(
      {
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
      },
      { requireJournal: false },
    );
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
    const meta = buildMetadata(
      { models: [{ name: "M", fields: [field({ name: "a", documentation: '@file(storage: "any")' })] }] },
      { requireJournal: false },
    );
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
      'generator gen: unknown config key "storagez" (known: storages, runtime, journal)',
    );
    expect(readGeneratorConfig({ journal: "Journal", runtime: "none" })).toEqual({
      journal: "Journal",
      runtime: "none",
    });
    expect(() => readGeneratorConfig({ journal: "file journal" }, "gen")).toThrow(
      'generator gen: journal must be a model name, got "file journal"',
    );
  });

  it("emits the same text for the same metadata, quoting odd names", () => {
    const meta = buildMetadata(
      {
        models: [
          { name: "B", fields: [] },
          { name: "A", fields: [field({ name: "a-b", documentation: "@file" })] },
        ],
      },
      { requireJournal: false },
    );
    const source = emitModule(meta);
    expect(emitModule(meta)).toBe(source);
    expect(source.indexOf("  A: {")).toBeLessThan(source.indexOf("  B: {"));
    expect(source).toContain('"a-b": {');
    expect(source).toContain(
      '  B: {\n    fileFields: {},\n    relations: {},\n    primaryKey: [],\n    dbName: "B",\n    columns: {},\n  },',
    );
    expect(source).toContain('    columns: {\n      "a-b": "a-b",\n    },');
    // Hand-written metadata (no dbName, columns, journal) emits as before.
    expect(emitModule({ C: { fileFields: {}, relations: {}, primaryKey: ["id"] } })).toContain(
      '  C: {\n    fileFields: {},\n    relations: {},\n    primaryKey: ["id"],\n  },',
    );
  });
});

describe("buildMetadata and the journal model", () => {
  const scalar = (name: string, type: string, extra: Partial<DmmfFieldLike> = {}): DmmfFieldLike => ({
    name,
    kind: "scalar",
    type,
    isList: false,
    isRequired: true,
    hasDefaultValue: false,
    ...extra,
  });
  const now = { hasDefaultValue: true, default: { name: "now", args: [] } };
  /** The journal model as the DMMF describes it. */
  const journal = (name = "FileJournal", changes: Record<string, Partial<DmmfFieldLike>> = {}): DmmfModelLike => ({
    name,
    dbName: "prisma_s3_files_journal",
    fields: [
      scalar("id", "BigInt", { isId: true, hasDefaultValue: true, default: { name: "autoincrement", args: [] } }),
      scalar("kind", "String"),
      scalar("storage", "String"),
      scalar("objectKey", "String"),
      scalar("owner", "String", { isRequired: false }),
      scalar("notBefore", "DateTime", now),
      scalar("attempts", "Int", { hasDefaultValue: true, default: 0 }),
      scalar("lastError", "String", { isRequired: false }),
      scalar("createdAt", "DateTime", now),
    ].map((f) => ({ ...f, ...changes[f.name] })),
  });
  const user: DmmfModelLike = {
    name: "User",
    fields: [scalar("id", "Int", { isId: true }), scalar("avatar", "String", { documentation: "@file" })],
  };

  it("marks the journal model with the provider and all its columns", () => {
    const meta = buildMetadata({ models: [user, journal()] }, { provider: "postgresql" });
    expect(meta.FileJournal!.journal).toEqual({ provider: "postgresql" });
    expect(Object.keys(meta.FileJournal!.columns!)).toHaveLength(9);
    expect(meta.User!.journal).toBeUndefined();
    expect(meta.User!.dbName).toBe("User");
    expect(meta.User!.schema).toBeUndefined();
  });

  it("throws JournalModelError (JOURNAL_MODEL) without it, unless told not to require it", () => {
    try {
      buildMetadata({ models: [user] }, { provider: "sqlite" });
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(JournalModelError);
      expect(e).toBeInstanceOf(PrismaS3FilesError);
      expect((e as JournalModelError).code).toBe("JOURNAL_MODEL");
      expect((e as JournalModelError).model).toBe("FileJournal");
      expect((e as Error).message).toContain("    model FileJournal {\n");
      expect((e as Error).message).toContain("      storage   String\n");
    }
    expect(() => buildMetadata({ models: [user, journal()] }, { journal: "Journal" })).toThrow(
      'no file journal model "Journal"',
    );
    expect(buildMetadata({ models: [user] }, { requireJournal: false }).User!.fileFields.avatar).toBeDefined();
    expect(buildMetadata({ models: [user, journal("Journal")] }, { journal: "Journal" }).Journal!.journal).toEqual({
      provider: "unknown",
    });
  });

  it("accepts an Int id and fields of its own that are optional or defaulted", () => {
    const model = journal("FileJournal", { id: { type: "Int" } });
    const extended = {
      ...model,
      fields: [
        ...model.fields,
        scalar("note", "String", { isRequired: false }),
        scalar("n", "Int", { hasDefaultValue: true }),
      ],
    };
    expect(() => buildMetadata({ models: [user, extended] })).not.toThrow();
  });

  it("refuses a wrong id, a file field on the journal, and an objectKey shorter than a file column", () => {
    const compound = { ...journal("FileJournal", { id: { isId: false } }), primaryKey: { fields: ["id", "kind"] } };
    expect(() => buildMetadata({ models: [user, compound] })).toThrow("FileJournal.id: must be the primary key (@id)");
    const withFile = journal("FileJournal", { lastError: { documentation: "@file" } });
    expect(() => buildMetadata({ models: [user, withFile] })).toThrow(
      "FileJournal.lastError: the journal model has no file fields; remove its @file annotation",
    );
    const mysqlUser: DmmfModelLike = {
      name: "User",
      fields: [
        scalar("id", "Int", { isId: true }),
        scalar("avatar", "String", { documentation: "@file", nativeType: ["VarChar", ["2048"]] }),
      ],
    };
    const short = journal("FileJournal", { objectKey: { nativeType: ["VarChar", ["1024"]] } });
    expect(() => buildMetadata({ models: [mysqlUser, short] }, { provider: "mysql" })).toThrow(
      "FileJournal.objectKey: holds 1024 characters, but User.avatar holds keys of up to 2048; make objectKey at least as long",
    );
    // MySQL's plain String (VARCHAR(191)) keys fit the 1024 of the printed model.
    const plainUser: DmmfModelLike = {
      ...mysqlUser,
      fields: [scalar("id", "Int", { isId: true }), scalar("avatar", "String", { documentation: "@file" })],
    };
    expect(() => buildMetadata({ models: [plainUser, short] }, { provider: "mysql" })).not.toThrow();
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

describe("prisma generate and image variants (@file(variants))", () => {
  const models = `model Photo {
  id      Int     @id
  /// @file(uploadTo: "p/", variants: { thumb: "cover  128x128 webp", card: "inside 640x640 avif q50", big: "inside 2048x2048  webp noenlarge lazy" })
  picture String?
}

${journalModelSource("postgresql")}`;
  let withSharp: Run;
  let withoutSharp: Run;
  beforeAll(async () => {
    // sharp resolves from the schema's folder upwards: linked into one project, absent from the other.
    await mkdir(join(tmp, "variants-sharp", "node_modules"), { recursive: true });
    await symlink(join(root, "node_modules", "sharp"), join(tmp, "variants-sharp", "node_modules", "sharp"), "dir");
    [withSharp, withoutSharp] = await Promise.all([
      generate("variants-sharp", models),
      generate("variants-nosharp", models),
    ]);
  }, 60_000);

  it("emits each variant's canonical spec text", async () => {
    expect(withSharp.code, withSharp.stderr).toBe(0);
    const source = await readFile(join(tmp, "variants-sharp", "out", "index.ts"), "utf8");
    expect(source).toContain(
      '        variants: {\n          thumb: "cover 128x128 webp",\n          card: "inside 640x640 avif q50",\n          big: "inside 2048x2048 webp noenlarge lazy",\n        },\n',
    );
    const mod = (await import(pathToFileURL(join(tmp, "variants-sharp", "out", "index.ts")).href)) as {
      fileFields: FileFieldsMetadataShape;
    };
    expect(mod.fileFields.Photo!.fileFields.picture!.variants).toEqual({
      thumb: "cover 128x128 webp",
      card: "inside 640x640 avif q50",
      big: "inside 2048x2048 webp noenlarge lazy",
    });
  });

  it("fails at generate time, naming sharp, where the project cannot resolve it", () => {
    expect(withoutSharp.code).not.toBe(0);
    expect(withoutSharp.stdout + withoutSharp.stderr).toContain(
      "Photo.picture declares image variants, which need the optional package sharp: npm install sharp",
    );
    expect(existsSync(join(tmp, "variants-nosharp", "out", "index.ts"))).toBe(false);
  });
});
