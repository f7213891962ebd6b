/**
 * The package as npm publishes it, used the way the README tells a new user to: `npm pack` (whose
 * `prepack` builds `dist/`), the tarball's file list and dependencies, then a fresh app in a
 * temporary directory with the tarball and its peers installed, the README's schema (plus the
 * journal model its `npx prisma-s3-files init` line adds) generated with
 * `provider = "prisma-s3-files"`, a Quickstart module typechecked under `strict` and run
 * against this run's PostgreSQL and S3, and the README's sweep config run by the bin.
 *
 * The app's runtime dependencies (the README's first install line) are installed by npm from the
 * tarball with the versions this repository locks. Its dev tools (the second line: prisma, tsx,
 * typescript, @types/node) are linked from this repository's node_modules, which keeps the test
 * within its time budget; they are the same packages at the same versions.
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { builtinModules } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { pathToFileURL } from "node:url";
import { promisify } from "node:util";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { runCommand } from "../harness/run-command.js";
import { createBucket, emptyAndDeleteBucket } from "../harness/s3.js";

const ROOT = join(import.meta.dirname, "..", "..");
const README = readFileSync(join(ROOT, "README.md"), "utf8");
const PKG = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as {
  name: string;
  main: string;
  types: string;
  bin: Record<string, string>;
  exports: Record<string, string | { types: string; import: string }>;
  dependencies: Record<string, string>;
  peerDependencies: Record<string, string>;
};
const run = promisify(execFile);
const JOURNAL_MIGRATION = join(ROOT, "prisma", "migrations", "20261207000000_file_journal", "migration.sql");

/** Runs a command to its end; never rejects on a non-zero exit (the test asserts the code). */
const sh = runCommand;

/** A fenced block of the README: the first of `lang` whose text matches `test`. */
function readmeBlock(lang: string, test: (text: string) => boolean): string {
  const blocks = [...README.matchAll(/^```(\w+)\n([\s\S]*?)^```$/gm)].filter((m) => m[1] === lang).map((m) => m[2]!);
  const block = blocks.find(test);
  if (block === undefined) throw new Error(`README has no \`\`\`${lang} block like that`);
  return block;
}

/** Installed version of a package in this repository (the lockfile's). */
function lockedVersion(name: string): string {
  return (JSON.parse(readFileSync(join(ROOT, "node_modules", name, "package.json"), "utf8")) as { version: string })
    .version;
}

/** Package names of `npm install` lines (flags dropped). */
function installed(line: string): string[] {
  return line
    .trim()
    .split(/\s+/)
    .slice(2)
    .filter((word) => !word.startsWith("-"));
}

/** Bare module specifiers imported by JavaScript or declaration files, reduced to package names. */
function importedPackages(files: string[]): Set<string> {
  const names = new Set<string>();
  const pattern = /^(?:import|export)\b[^;]*?from "([^"]+)";$|^import "([^"]+)";$|\bimport\("([^"]+)"\)/gm;
  for (const file of files) {
    for (const m of readFileSync(file, "utf8").matchAll(pattern)) {
      const spec = (m[1] ?? m[2] ?? m[3])!;
      if (spec.startsWith(".") || spec.startsWith("node:") || builtinModules.includes(spec)) continue;
      const parts = spec.split("/");
      names.add(spec.startsWith("@") ? `${parts[0]}/${parts[1]}` : parts[0]!);
    }
  }
  return names;
}

function walk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)],
  );
}

let work: string;
let tarball: string;
let packedFiles: string[];

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "psf-publish-"));
  // As `npm publish` would: prepack builds dist/ from a clean slate.
  const { stdout } = await run("npm", ["pack", "--json", "--pack-destination", work], {
    cwd: ROOT,
    maxBuffer: 16 * 1024 * 1024,
  });
  const [pack] = JSON.parse(stdout.slice(stdout.indexOf("["))) as { filename: string; files: { path: string }[] }[];
  tarball = join(work, pack!.filename);
  packedFiles = pack!.files.map((f) => f.path).sort();
}, 180_000);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe("the tarball", () => {
  it("holds the entry points, their types, the bin and the license; no tests, sources or source maps", () => {
    const targets = [
      PKG.main,
      PKG.types,
      ...Object.values(PKG.bin),
      ...Object.values(PKG.exports).flatMap((e) => (typeof e === "string" ? [e] : [e.types, e.import])),
    ].map((p) => p.replace(/^\.\//, ""));
    for (const target of targets) expect(packedFiles, target).toContain(target);
    for (const entry of ["index", "s3", "storage", "naming", "generator"]) {
      expect(packedFiles).toContain(`dist/entries/${entry}.js`);
      expect(packedFiles).toContain(`dist/entries/${entry}.d.ts`);
    }
    expect(packedFiles).toContain("dist/browser/index.js");
    expect(packedFiles).toContain("LICENSE");
    expect(packedFiles).toContain("README.md");
    // Maps would point at ../src/*.ts, which is not shipped.
    expect(packedFiles.filter((f) => f.endsWith(".map"))).toEqual([]);
    expect(packedFiles.filter((f) => /(^|\/)(src|test|bench|examples|scripts)\//.test(f))).toEqual([]);
    expect(packedFiles.filter((f) => /\.test(-d)?\.|\.tsbuildinfo$/.test(f))).toEqual([]);
    expect(packedFiles.filter((f) => !/^(dist\/|package\.json$|README\.md$|LICENSE$)/.test(f))).toEqual([]);
    // The repository's internal barrel is not an entry point.
    expect(packedFiles).not.toContain("dist/index.js");
    expect(readFileSync(join(ROOT, Object.values(PKG.bin)[0]!), "utf8")).toMatch(/^#!\/usr\/bin\/env node\n/);
  });

  it("declares exactly the dependencies its code imports", () => {
    const dist = walk(join(ROOT, "dist"));
    const runtime = importedPackages(dist.filter((f) => f.endsWith(".js")));
    const types = importedPackages(dist.filter((f) => f.endsWith(".d.ts")));
    const peers = new Set(Object.keys(PKG.peerDependencies));
    // What runtime code imports is a dependency or a peer; so is what the shipped types import.
    expect([...runtime, ...types].filter((n) => !(n in PKG.dependencies) && !peers.has(n))).toEqual([]);
    // And every dependency is imported by something shipped.
    const used = new Set([...runtime, ...types]);
    expect(Object.keys(PKG.dependencies).filter((n) => !used.has(n))).toEqual([]);
    expect(runtime.size).toBeGreaterThanOrEqual(5);
  });
});

describe("a fresh app with the tarball installed", () => {
  const s3 = inject("s3");
  const app = () => join(work, "app");
  const prefix = `consumer-${randomBytes(4).toString("hex")}`;
  const bucket = `psf-consumer-${randomBytes(4).toString("hex")}`;
  let databaseUrl: string;
  let database: string;
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    const [runtimeLine, devLine] = readmeBlock("sh", (t) => t.startsWith("npm install prisma-s3-files"))
      .trim()
      .split("\n");
    const runtimeDeps = installed(runtimeLine!).filter((n) => n !== PKG.name);
    const devDeps = installed(devLine!);
    mkdirSync(join(app(), "prisma"), { recursive: true });
    mkdirSync(join(app(), "src"), { recursive: true });
    writeFileSync(
      join(app(), "package.json"),
      `${JSON.stringify({ name: "consumer", private: true, type: "module", scripts: { generate: "prisma generate" } }, null, 2)}\n`,
    );
    const install = await sh(
      "npm",
      [
        "install",
        "--prefer-offline",
        "--no-audit",
        "--no-fund",
        "--ignore-scripts",
        tarball,
        ...runtimeDeps.map((n) => `${n}@${lockedVersion(n)}`),
      ],
      { cwd: app() },
    );
    expect(install.code, install.stderr).toBe(0);
    for (const name of devDeps) {
      const to = join(app(), "node_modules", name);
      mkdirSync(dirname(to), { recursive: true });
      // One may be there already, as a dependency of a runtime package.
      if (!existsSync(to)) symlinkSync(join(ROOT, "node_modules", name), to);
    }
    for (const [bin, target] of [
      ["prisma", "prisma/build/index.js"],
      ["tsc", "typescript/bin/tsc"],
      ["tsx", "tsx/dist/cli.mjs"],
    ] as const) {
      symlinkSync(
        relative(join(app(), "node_modules", ".bin"), join(app(), "node_modules", target)),
        join(app(), "node_modules", ".bin", bin),
      );
    }

    // A database of its own: the README's `User` is not the test schema's.
    database = `psf_consumer_${randomBytes(4).toString("hex")}`;
    const admin = new pg.Client({ connectionString: inject("databaseUrl") });
    await admin.connect();
    try {
      await admin.query(`CREATE DATABASE ${database}`);
    } finally {
      await admin.end();
    }
    const url = new URL(inject("databaseUrl"));
    url.pathname = `/${database}`;
    databaseUrl = url.href;
    const db = new pg.Client({ connectionString: databaseUrl });
    await db.connect();
    try {
      // What `prisma migrate` would create for the README's model and the journal model `init`
      // adds (the schema engine is not available here): the repository's committed migration
      // of the same journal model.
      await db.query(`CREATE TABLE "User" ("id" SERIAL PRIMARY KEY, "avatar" TEXT, "idCard" TEXT NOT NULL)`);
      await db.query(readFileSync(JOURNAL_MIGRATION, "utf8"));
    } finally {
      await db.end();
    }
    await createBucket(s3, bucket);
    env = {
      ...process.env,
      DATABASE_URL: databaseUrl,
      S3_ENDPOINT: s3.endpoint,
      S3_REGION: s3.region,
      S3_BUCKET: bucket,
      S3_FORCE_PATH_STYLE: String(s3.forcePathStyle),
      S3_ACCESS_KEY_ID: s3.accessKeyId,
      S3_SECRET_ACCESS_KEY: s3.secretAccessKey,
      CONSUMER_PREFIX: prefix,
      // Prisma cannot download its schema engine here; generate never runs it (see scripts/prisma-generate.mjs).
      PRISMA_SCHEMA_ENGINE_BINARY: process.execPath,
      PRISMA_HIDE_UPDATE_MESSAGE: "1",
      NODE_OPTIONS: "",
    };
  }, 180_000);

  afterAll(async () => {
    if (database) {
      const admin = new pg.Client({ connectionString: inject("databaseUrl") });
      await admin.connect();
      await admin.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`).finally(() => admin.end());
    }
    await emptyAndDeleteBucket(s3, bucket).catch(() => {});
  });

  it("generates, typechecks and runs the Quickstart; the README's sweep config works verbatim", async () => {
    // 1. The README's schema, verbatim; the journal model added by the README's `init` line (the
    //    packed bin); then `prisma generate` in an npm script.
    writeFileSync(
      join(app(), "prisma", "schema.prisma"),
      readmeBlock("prisma", (t) => t.includes('provider = "prisma-s3-files"')),
    );
    const initLine = readmeBlock("sh", (t) => t.startsWith("npx prisma-s3-files init"))
      .split("\n")[0]!
      .replace(/#.*$/, "")
      .trim()
      .split(/\s+/);
    expect(initLine).toEqual(["npx", "prisma-s3-files", "init"]);
    const init = await sh(initLine[0]!, initLine.slice(1), { cwd: app(), env });
    expect(init.code, init.stderr).toBe(0);
    expect(init.stdout).toContain("Added the file journal model FileJournal");
    expect(readFileSync(join(app(), "prisma", "schema.prisma"), "utf8")).toContain("model FileJournal {");
    const generate = await sh("npm", ["run", "--silent", "generate"], { cwd: app(), env });
    expect(generate.code, generate.stdout + generate.stderr).toBe(0);
    expect(readdirSync(join(app(), "src", "generated", "files"))).toEqual(["index.ts"]);

    // 2. The Quickstart's client module (the README's, with this run's services for the session's options).
    writeFileSync(join(app(), "src", "db.ts"), DB_MODULE);
    writeFileSync(join(app(), "src", "quickstart.ts"), QUICKSTART);
    writeFileSync(join(app(), "tsconfig.json"), TSCONFIG);
    // The typecheck and the run are independent: run them side by side (the time budget).
    const bin = (name: string) => join(app(), "node_modules", ".bin", name);
    const [typecheck, quickstart] = await Promise.all([
      sh(bin("tsc"), ["-p", "tsconfig.json"], { cwd: app(), env }),
      sh(bin("tsx"), ["src/quickstart.ts"], { cwd: app(), env }),
    ]);
    expect(typecheck.code, typecheck.stdout + typecheck.stderr).toBe(0);
    expect(quickstart.code, quickstart.stderr).toBe(0);
    const result = JSON.parse(quickstart.stdout.trim().split("\n").at(-1)!) as Record<string, unknown>;
    expect(result).toMatchObject({
      avatarKey: expect.stringMatching(/^avatars\/\d{4}\/\d{2}\/me\.png$/),
      idCardKey: expect.stringMatching(/^ids\/id\.pdf$/),
      fetchedStatus: 200,
      fetchedType: "image/png",
      fetchedBytesMatch: true,
      replacedKey: expect.stringMatching(/^avatars\/\d{4}\/\d{2}\/new\.png$/),
      oldExistsAfterReplace: false,
      avatarAfterDelete: null,
      replacedExistsAfterDelete: false,
      idCardExists: true,
      json: expect.stringMatching(/"idCard":"ids\/id\.pdf"/),
    });

    // 3. The README's config, verbatim, found by its default name; the bin as the README runs it.
    writeFileSync(
      join(app(), "prisma-s3-files.config.ts"),
      readmeBlock("ts", (t) => t.startsWith("// prisma-s3-files.config.ts")),
    );
    const dry = await sh("npx", ["prisma-s3-files", "sweep", "--dry-run", "--older-than", "0"], { cwd: app(), env });
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toMatch(/^Would delete 1 object:$/m);
    expect(dry.stdout).toMatch(/^ {2}default {2}avatars\/orphan\.png$/m);
    const sweep = await sh("npx", ["prisma-s3-files", "sweep", "--yes", "--older-than", "0"], { cwd: app(), env });
    expect(sweep.code, sweep.stderr).toBe(0);
    expect(sweep.stdout).toMatch(/^Deleted 1 object\.$/m);
  }, 180_000);

  it("the root, /storage, /naming, /generator and /browser load no @aws-sdk module; /s3 does", async () => {
    writeFileSync(join(app(), "no-aws-hooks.mjs"), NO_AWS_HOOKS);
    writeFileSync(join(app(), "filesystem-app.mjs"), FILESYSTEM_APP);
    const hooks = pathToFileURL(join(app(), "no-aws-hooks.mjs")).href;
    const register = `data:text/javascript,import{register}from"node:module";register(${JSON.stringify(hooks)})`;
    const fsApp = await sh(process.execPath, ["--import", register, "filesystem-app.mjs"], { cwd: app(), env });
    expect(fsApp.code, fsApp.stderr).toBe(0);
    expect(JSON.parse(fsApp.stdout)).toEqual({
      stored: "uploads/a.txt",
      text: "hello",
      extension: "function",
      conformanceTests: true,
    });
    // The hooks do refuse the SDK: the S3 entry point fails under them.
    const s3Entry = await sh(
      process.execPath,
      ["--import", register, "--input-type=module", "-e", 'await import("prisma-s3-files/s3")'],
      { cwd: app(), env },
    );
    expect(s3Entry.code).not.toBe(0);
    // Which SDK package is refused first depends on the order the loader resolves the entry's imports.
    expect(s3Entry.stderr).toMatch(/refused @aws-sdk\/(client-s3|credential-providers|cloudfront-signer)\b/);
  }, 60_000);
});

const TSCONFIG = `${JSON.stringify(
  {
    compilerOptions: {
      target: "ES2022",
      module: "NodeNext",
      moduleResolution: "NodeNext",
      strict: true,
      noEmit: true,
      skipLibCheck: true,
      types: ["node"],
    },
    include: ["src", "prisma-s3-files.config.ts"],
  },
  null,
  2,
)}\n`;

/** The README's `src/db.ts`, with the session pointed at this run's S3. */
const DB_MODULE = `import { PrismaPg } from "@prisma/adapter-pg";
import { s3Files } from "./generated/files/index.js";
import { PrismaClient } from "./generated/prisma/client.js";
import { createSession, S3Storage } from "prisma-s3-files/s3";

const env = process.env;
export const session = createSession({
  region: env.S3_REGION,
  bucket: env.S3_BUCKET,
  endpoint: env.S3_ENDPOINT,
  forcePathStyle: env.S3_FORCE_PATH_STYLE === "true",
  credentials: { accessKeyId: env.S3_ACCESS_KEY_ID!, secretAccessKey: env.S3_SECRET_ACCESS_KEY! },
  checksums: "when_required",
});
export const storages = {
  public: new S3Storage({ session, location: "public", querystringAuth: false }),
  private: new S3Storage({ session, location: "private", querystringExpire: 300 }),
};
export const prisma = new PrismaClient({ adapter: new PrismaPg({ connectionString: process.env.DATABASE_URL }) })
  .$extends(s3Files(session, { storages }));
`;

/** Steps 3 of the Quickstart: create with uploads, read through url(), replace, delete. */
const QUICKSTART = `import { FieldFile, upload } from "prisma-s3-files";
import { S3Storage } from "prisma-s3-files/s3";
import { prisma, session, storages } from "./db.js";

const PNG = Buffer.from(
  "89504e470d0a1a0a0000000d4948445200000001000000010806000000" +
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082",
  "hex",
);

const user = await prisma.user.create({
  data: {
    idCard: upload(new File(["%PDF-1.4\\n"], "id.pdf", { type: "application/pdf" })),
    avatar: upload(new File([PNG], "me.png", { type: "image/png" })),
  },
});
const avatar: FieldFile | null = user.avatar;
const idCard: FieldFile = user.idCard;
if (!avatar) throw new Error("no avatar");
const response = await fetch(await avatar.url());
const fetched = Buffer.from(await response.arrayBuffer());

const defaultStorage = new S3Storage({ session });
const oldKey = avatar.name;
await avatar.save(new File([PNG], "new.png", { type: "image/png" }));
const replaced = await prisma.user.findUniqueOrThrow({ where: { id: user.id } });
const replacedKey = replaced.avatar?.name;
const oldExistsAfterReplace = await defaultStorage.exists(oldKey);
await replaced.avatar?.delete();
const deleted = await prisma.user.findUniqueOrThrow({ where: { id: user.id } });

console.log(
  JSON.stringify({
    avatarKey: oldKey,
    idCardKey: idCard.name,
    fetchedStatus: response.status,
    fetchedType: response.headers.get("content-type"),
    fetchedBytesMatch: fetched.equals(PNG),
    replacedKey,
    oldExistsAfterReplace,
    avatarAfterDelete: deleted.avatar,
    replacedExistsAfterDelete: await defaultStorage.exists(replacedKey!),
    idCardExists: await storages.private.exists(idCard.name),
    json: JSON.stringify(deleted),
  }),
);
// An object under a column's prefix that no row references, for the sweep.
await defaultStorage.save("avatars/orphan.png", Buffer.from("orphan"));
await prisma.$disconnect();
await session.destroy();
`;

/** Node module hooks that fail any import of the AWS SDK. */
const NO_AWS_HOOKS = `export async function resolve(specifier, context, next) {
  if (/^@aws-sdk\\//.test(specifier)) throw new Error("refused " + specifier + " (imported by " + context.parentURL + ")");
  return next(specifier, context);
}
`;

/** What a filesystem-only app imports and does, under the hooks above. */
const FILESYSTEM_APP = `import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FileSystemStorage, s3Files, sweepOrphans, upload, FieldFile, PrismaS3FilesError } from "prisma-s3-files";
import { MemoryStorage, BaseStorage, describeStorageConformance } from "prisma-s3-files/storage";
import { getValidFilename } from "prisma-s3-files/naming";
import { FileAnnotationError } from "prisma-s3-files/generator";
import { uploadWithGrant } from "prisma-s3-files/browser";

const storage = new FileSystemStorage({ location: mkdtempSync(join(tmpdir(), "psf-fs-")) });
const stored = await storage.save("uploads/a.txt", Buffer.from("hello"));
const text = Buffer.from(await storage.read(stored)).toString();
const extension = s3Files(undefined, {
  fields: {
    Doc: { fileFields: { file: { uploadTo: "docs/", storage: "default", maxSize: null, accept: null, keepFiles: false, deleteAfterSeconds: 0, maxLength: null, nullable: false } }, relations: {}, primaryKey: ["id"] },
    FileJournal: { fileFields: {}, relations: {}, primaryKey: ["id"], journal: { provider: "postgresql" } },
  },
  storages: { default: storage },
});
// The conformance suite registers its tests with the framework it is given.
const tests = [];
describeStorageConformance("memory", async () => ({ storage: new MemoryStorage() }), {
  describe: (_name, body) => body(),
  it: (name) => tests.push(name),
  beforeEach: () => {},
  afterEach: () => {},
  expect: () => ({}),
});
void [sweepOrphans, upload, FieldFile, PrismaS3FilesError, MemoryStorage, BaseStorage, getValidFilename, FileAnnotationError, uploadWithGrant];
console.log(JSON.stringify({ stored, text, extension: typeof extension, conformanceTests: tests.length > 100 }));
`;
