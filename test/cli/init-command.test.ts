import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  findSchema,
  initCommand,
  JOURNAL_SCHEMA_FILE,
  parseInitArgs,
  readSchemaFacts,
} from "../../src/cli/init-command.js";
import { journalModelSource } from "../../src/prisma/generator/journal-model.js";
import { runCommand } from "../harness/run-command.js";

const ROOT = join(import.meta.dirname, "..", "..");
const root = mkdtempSync(join(tmpdir(), "psf-init-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function sink() {
  const chunks: string[] = [];
  return {
    write: (c: string) => chunks.push(c),
    get text() {
      return chunks.join("");
    },
  };
}

let count = 0;
/** A fresh project directory with `files` written into it. */
function project(files: Record<string, string>): string {
  const dir = join(root, `p${count++}`);
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(join(dir, name, ".."), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
  mkdirSync(dir, { recursive: true });
  return dir;
}

async function init(cwd: string, ...args: string[]) {
  const io = { stdout: sink(), stderr: sink(), cwd };
  const code = await initCommand(args, io);
  return { code, stdout: io.stdout.text, stderr: io.stderr.text };
}

const schema = (provider: string, generator = "") => `generator client {
  provider = "prisma-client"
  output   = "../src/generated/prisma"
}

generator files {
  provider = "prisma-s3-files"
  output   = "../src/generated/files"${generator}
}

datasource db {
  provider = "${provider}"
}

model User {
  id     Int     @id @default(autoincrement())
  /// @file(uploadTo: "avatars/")
  avatar String?
}
`;

describe("prisma-s3-files init", () => {
  it("appends the journal model to prisma/schema.prisma and prints the next steps", async () => {
    const dir = project({ "prisma/schema.prisma": schema("postgresql") });
    const result = await init(dir);
    expect(result.code, result.stderr).toBe(0);
    expect(readFileSync(join(dir, "prisma/schema.prisma"), "utf8")).toBe(
      `${schema("postgresql")}\n${journalModelSource("postgresql")}`,
    );
    expect(result.stdout).toBe(
      "Added the file journal model FileJournal (table prisma_s3_files_journal) to prisma/schema.prisma for postgresql.\n" +
        "Next, create its table and regenerate the clients:\n" +
        "  npx prisma migrate dev --name file-journal\n" +
        "  npx prisma generate\n",
    );
  });

  it("is idempotent: a second run says the model is there and changes nothing", async () => {
    const dir = project({ "prisma/schema.prisma": schema("postgresql") });
    await init(dir);
    const once = readFileSync(join(dir, "prisma/schema.prisma"), "utf8");
    const again = await init(dir);
    expect(again.code).toBe(0);
    expect(again.stdout).toBe(
      "prisma/schema.prisma already has the file journal model FileJournal; nothing to change.\n",
    );
    expect(readFileSync(join(dir, "prisma/schema.prisma"), "utf8")).toBe(once);
  });

  it("writes the provider's form (MySQL), and notes that MySQL's provider needs MariaDB 10.6+", async () => {
    const dir = project({ "schema.prisma": schema("mysql").trimEnd() }); // no final newline
    const result = await init(dir);
    expect(result.code).toBe(0);
    const text = readFileSync(join(dir, "schema.prisma"), "utf8");
    expect(text).toBe(`${schema("mysql")}\n${journalModelSource("mysql")}`);
    expect(text).toContain("objectKey String   @db.VarChar(1024)");
    expect(result.stdout).toContain("to schema.prisma for mysql.");
    expect(result.stdout).toContain("needs MariaDB 10.6 or later");
  });

  it("says nothing more for SQLite (supported), and that another provider is refused", async () => {
    const sqlite = await init(project({ "schema.prisma": schema("sqlite") }));
    expect(sqlite.code).toBe(0);
    expect(sqlite.stdout).not.toContain("Note:");
    const sqlserver = await init(project({ "schema.prisma": schema("sqlserver") }));
    expect(sqlserver.stdout).toContain("it refuses sqlserver with a CONFIGURATION error");
  });

  it("uses the generator's journal = name", async () => {
    const dir = project({ "prisma/schema.prisma": schema("postgresql", '\n  journal  = "Journal"') });
    const result = await init(dir);
    expect(result.stdout).toContain("model Journal (table prisma_s3_files_journal)");
    expect(readFileSync(join(dir, "prisma/schema.prisma"), "utf8")).toContain("model Journal {\n");
    expect((await init(dir)).stdout).toContain("already has the file journal model Journal");
  });

  it("finds the schema: --schema, prisma.config.ts's schema, prisma/schema.prisma, schema.prisma", async () => {
    const dir = project({
      "db/main.prisma": schema("postgresql"),
      "prisma/schema.prisma": schema("postgresql"),
      "schema.prisma": schema("postgresql"),
      "prisma.config.ts": `import { defineConfig } from "prisma/config";\n// schema: "wrong.prisma"\nexport default defineConfig({\n  schema: "db/main.prisma",\n});\n`,
    });
    expect(findSchema(undefined, dir)).toBe(join(dir, "db/main.prisma"));
    expect(findSchema("schema.prisma", dir)).toBe(join(dir, "schema.prisma"));
    rmSync(join(dir, "prisma.config.ts"));
    expect(findSchema(undefined, dir)).toBe(join(dir, "prisma/schema.prisma"));
    rmSync(join(dir, "prisma"), { recursive: true });
    expect(findSchema(undefined, dir)).toBe(join(dir, "schema.prisma"));
    // A config whose schema is not a plain string falls back to the defaults.
    writeFileSync(join(dir, "prisma.config.ts"), `export default { schema: path.join("db", "main.prisma") };\n`);
    expect(findSchema(undefined, dir)).toBe(join(dir, "schema.prisma"));

    const result = await init(dir, "--schema", "db/main.prisma");
    expect(result.stdout).toContain(`to ${join("db", "main.prisma")} for postgresql.`);
    expect(readFileSync(join(dir, "schema.prisma"), "utf8")).not.toContain("FileJournal");
  });

  it("in a multi-file schema (a folder), writes file-journal.prisma unless a file declares the model", async () => {
    const dir = project({
      "prisma/schema/base.prisma": schema("postgresql").slice(0, schema("postgresql").indexOf("model User")),
      "prisma/schema/user.prisma": schema("postgresql").slice(schema("postgresql").indexOf("model User")),
      "prisma.config.ts": `export default { schema: "prisma/schema" };\n`,
    });
    const result = await init(dir);
    expect(result.code, result.stderr).toBe(0);
    expect(readFileSync(join(dir, "prisma/schema", JOURNAL_SCHEMA_FILE), "utf8")).toBe(
      journalModelSource("postgresql"),
    );
    expect((await init(dir)).stdout).toBe(
      `${join("prisma", "schema", JOURNAL_SCHEMA_FILE)} already has the file journal model FileJournal; nothing to change.\n`,
    );
  });

  it("fails with exit 1 when there is no schema, 2 on bad arguments; --help", async () => {
    const empty = project({});
    const missing = await init(empty);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(
      /^prisma-s3-files init: no Prisma schema: looked for prisma\/schema\.prisma and schema\.prisma/,
    );
    const notThere = await init(empty, "--schema", "nope.prisma");
    expect(notThere.code).toBe(1);
    expect(notThere.stderr).toMatch(/schema not found: .*nope\.prisma/);
    const bad = await init(empty, "--frob");
    expect(bad.code).toBe(2);
    expect(() => parseInitArgs(["--schema"])).toThrow();
    const help = await init(empty, "--help");
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^Usage: prisma-s3-files init \[--schema <path>\]/);
  });

  it("writes the model the README shows", () => {
    const readme = readFileSync(join(ROOT, "README.md"), "utf8");
    expect(readme).toContain(`\`\`\`prisma\n${journalModelSource("postgresql")}\`\`\`\n`);
  });

  it("reads provider and journal name, ignoring comments", () => {
    expect(
      readSchemaFacts(
        `// model FileJournal {\ndatasource db {\n  provider = "sqlite" // local\n}\ngenerator other {\n  provider = "x"\n  journal = "Nope"\n}\n`,
      ),
    ).toEqual({ provider: "sqlite", journal: "FileJournal", hasJournal: false });
  });

  it("runs as the bin's init command", async () => {
    const dir = project({ "prisma/schema.prisma": schema("sqlite") });
    // tsx resolves from the repository, so the bin runs there, pointed at the project's schema.
    const result = await runCommand(
      process.execPath,
      [
        "--import",
        "tsx",
        join(ROOT, "src/bin/prisma-s3-files.ts"),
        "init",
        "--schema",
        join(dir, "prisma/schema.prisma"),
      ],
      { cwd: ROOT },
    );
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain("Added the file journal model FileJournal");
    expect(readFileSync(join(dir, "prisma/schema.prisma"), "utf8")).toContain(journalModelSource("sqlite"));
  }, 30_000);
});
