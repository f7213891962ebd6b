/**
 * `prisma-s3-files init`: adds the file journal model to the project's Prisma schema, in the
 * form its datasource's provider takes, unless it is there already; then says which migration to
 * create. Reads and writes text only: it needs no database and no Prisma engine.
 */
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { parseArgs } from "node:util";
import {
  DEFAULT_JOURNAL_MODEL,
  JOURNAL_MIGRATION_NAME,
  JOURNAL_TABLE,
  journalModelSource,
} from "../prisma/generator/journal-model.js";
import { parseCommandArgs } from "./config.js";

/** The streams and directory the command works with; `process`'s by default. */
/** The providers the journal's runtime has a dialect for (src/prisma/journal/sql.ts). */
const SUPPORTED_PROVIDERS: ReadonlySet<string> = new Set(["postgresql", "postgres", "cockroachdb", "mysql", "sqlite"]);

export interface InitIO {
  stdout: { write(chunk: string): unknown };
  stderr: { write(chunk: string): unknown };
  cwd: string;
}

/** Where Prisma looks for its config file, in its order. */
const PRISMA_CONFIG_FILES = [
  "prisma.config.ts",
  "prisma.config.mts",
  "prisma.config.cts",
  "prisma.config.js",
  "prisma.config.mjs",
  "prisma.config.cjs",
  ".config/prisma.ts",
  ".config/prisma.mts",
  ".config/prisma.cts",
  ".config/prisma.js",
  ".config/prisma.mjs",
  ".config/prisma.cjs",
] as const;

/** Default schema locations, after prisma.config's `schema`. */
const DEFAULT_SCHEMAS = ["prisma/schema.prisma", "schema.prisma"] as const;

/** The file `init` writes the model to in a multi-file schema (a folder). */
export const JOURNAL_SCHEMA_FILE = "file-journal.prisma";

export const INIT_USAGE = `Usage: prisma-s3-files init [--schema <path>]

Adds prisma-s3-files' file journal model to the Prisma schema, unless it is there already. The
journal is a table in your database where the library records uploads whose row has not
committed yet and deletions that are due, in the same transactions as your rows; \`prisma
generate\` refuses a schema with @file columns and no journal model.

The model is written for the datasource's provider (MySQL gets column types whose index fits
InnoDB's key limit). Its name is ${DEFAULT_JOURNAL_MODEL}, or the generator block's \`journal = "..."\`.
Then create its table: npx prisma migrate dev --name ${JOURNAL_MIGRATION_NAME}

Options:
      --schema <path>   The schema file, or a multi-file schema's folder (the model then goes
                        to ${JOURNAL_SCHEMA_FILE} in it). Default: prisma.config.ts's \`schema\`
                        when it is a plain string, else ${DEFAULT_SCHEMAS.join(", else ")}.
  -h, --help            Show this help.

Exit codes: 0 added (or already there), 1 no schema found or not writable, 2 usage error.
`;

class UsageError extends Error {}

export interface InitArgs {
  schema: string | undefined;
  help: boolean;
}

export function parseInitArgs(args: string[]): InitArgs {
  try {
    const { values } = parseArgs({
      args,
      strict: true,
      allowPositionals: false,
      options: { schema: { type: "string" }, help: { type: "boolean", short: "h" } },
    });
    if (values.schema === "") throw new UsageError("--schema needs a path");
    return { schema: values.schema, help: values.help ?? false };
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

/**
 * The `schema` of the project's Prisma config, when the file sets it to a string literal
 * (`schema: "prisma/schema.prisma"`), resolved against the config's directory; else `undefined`.
 * The config is read as text, not run.
 */
export function prismaConfigSchema(cwd: string): string | undefined {
  for (const name of PRISMA_CONFIG_FILES) {
    const path = join(cwd, name);
    if (!existsSync(path)) continue;
    const text = readFileSync(path, "utf8").replace(/^\s*\/\/.*$/gm, "");
    const match = /\bschema\s*:\s*(["'`])([^"'`$\n]+)\1/.exec(text);
    // Prisma resolves it against the directory of the config file.
    return match ? resolve(dirname(path), match[2]!) : undefined;
  }
  return undefined;
}

/** The schema to change: `--schema`, else prisma.config's, else the first default that exists. */
export function findSchema(given: string | undefined, cwd: string): string {
  if (given !== undefined) {
    const path = resolve(cwd, given);
    if (!existsSync(path)) throw new Error(`schema not found: ${path}`);
    return path;
  }
  const configured = prismaConfigSchema(cwd);
  if (configured !== undefined) {
    if (!existsSync(configured)) throw new Error(`the schema prisma.config names does not exist: ${configured}`);
    return configured;
  }
  for (const name of DEFAULT_SCHEMAS) {
    const path = join(cwd, name);
    if (existsSync(path)) return path;
  }
  throw new Error(
    `no Prisma schema: looked for ${DEFAULT_SCHEMAS.join(" and ")} in ${cwd} (and prisma.config's schema); pass --schema <path>`,
  );
}

/** The `.prisma` files of a schema: the file, or every one under the folder. */
function schemaFiles(path: string): string[] {
  if (!statSync(path).isDirectory()) return [path];
  return readdirSync(path, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith(".prisma"))
    .map((e) => join(e.parentPath, e.name))
    .sort();
}

/** `{ ... }` bodies of the schema's blocks of one kind (`datasource`, `generator`). */
function blocks(text: string, kind: string): string[] {
  return [...text.matchAll(new RegExp(`^\\s*${kind}\\s+\\w+\\s*\\{([^}]*)\\}`, "gm"))].map((m) => m[1]!);
}

/** What `init` reads from the schema text. */
export interface SchemaFacts {
  /** The datasource's `provider`, when a datasource block names one. */
  provider: string | undefined;
  /** The journal model's name: the prisma-s3-files generator's `journal = "..."`, else the default. */
  journal: string;
  /** Whether a model of that name is declared. */
  hasJournal: boolean;
}

export function readSchemaFacts(text: string): SchemaFacts {
  const code = text.replace(/\/\/.*$/gm, "");
  let provider: string | undefined;
  for (const body of blocks(code, "datasource")) {
    provider ??= /\bprovider\s*=\s*"([^"]+)"/.exec(body)?.[1];
  }
  let journal = DEFAULT_JOURNAL_MODEL;
  for (const body of blocks(code, "generator")) {
    if (!/\bprovider\s*=\s*"[^"]*prisma-s3-files[^"]*"/.test(body)) continue;
    const name = /\bjournal\s*=\s*"([A-Za-z][A-Za-z0-9_]*)"/.exec(body)?.[1];
    if (name !== undefined) journal = name;
  }
  const hasJournal = new RegExp(`^\\s*model\\s+${journal}\\s*\\{`, "m").test(code);
  return { provider, journal, hasJournal };
}

export interface InitResult {
  /** The file written to, or the one holding the model already. */
  file: string;
  model: string;
  provider: string | undefined;
  added: boolean;
}

/** Adds the journal model to the schema at `schemaPath` (a file or a folder) unless it is there. */
export function addJournalModel(schemaPath: string): InitResult {
  const files = schemaFiles(schemaPath);
  const texts = files.map((file) => ({ file, text: readFileSync(file, "utf8") }));
  const facts = readSchemaFacts(texts.map((t) => t.text).join("\n"));
  if (facts.hasJournal) {
    const declares = new RegExp(`^\\s*model\\s+${facts.journal}\\s*\\{`, "m");
    const found = texts.find((t) => declares.test(t.text.replace(/\/\/.*$/gm, "")))?.file ?? files[0]!;
    return { file: found, model: facts.journal, provider: facts.provider, added: false };
  }
  const model = journalModelSource(facts.provider, facts.journal);
  let target: string;
  let text: string;
  if (files.length === 1 && files[0] === schemaPath) {
    target = schemaPath;
    const current = texts[0]!.text;
    text = `${current}${current === "" || current.endsWith("\n") ? "" : "\n"}\n${model}`;
  } else {
    target = join(schemaPath, JOURNAL_SCHEMA_FILE);
    const current = existsSync(target) ? readFileSync(target, "utf8") : "";
    text = current === "" ? model : `${current}${current.endsWith("\n") ? "" : "\n"}\n${model}`;
  }
  writeFileSync(target, text);
  return { file: target, model: facts.journal, provider: facts.provider, added: true };
}

/** Runs `init`; resolves to the exit code and never rejects. */
export async function initCommand(
  args: string[],
  io: InitIO = { stdout: process.stdout, stderr: process.stderr, cwd: process.cwd() },
): Promise<number> {
  const hint = "Run `prisma-s3-files init --help` for the options.";
  const options = parseCommandArgs(args, parseInitArgs, { name: "init", usage: INIT_USAGE, hint }, io);
  if (typeof options === "number") return options;
  let result: InitResult;
  try {
    result = addJournalModel(findSchema(options.schema, io.cwd));
  } catch (error) {
    io.stderr.write(`prisma-s3-files init: ${(error as Error).message}\n`);
    return 1;
  }
  const shown = relative(io.cwd, result.file) || result.file;
  if (!result.added) {
    io.stdout.write(`${shown} already has the file journal model ${result.model}; nothing to change.\n`);
    return 0;
  }
  const lines = [
    `Added the file journal model ${result.model} (table ${JOURNAL_TABLE}) to ${shown}${
      result.provider === undefined ? " (no datasource provider found: PostgreSQL's form)" : ` for ${result.provider}`
    }.`,
    "Next, create its table and regenerate the clients:",
    `  npx prisma migrate dev --name ${JOURNAL_MIGRATION_NAME}`,
    "  npx prisma generate",
  ];
  if (result.provider === "mysql") {
    lines.push(
      "Note: on MySQL's provider prisma-s3-files needs MariaDB 10.6 or later (MySQL has no INSERT … RETURNING).",
    );
  } else if (result.provider !== undefined && !SUPPORTED_PROVIDERS.has(result.provider)) {
    lines.push(
      `Note: s3Files() supports PostgreSQL, MariaDB and SQLite; it refuses ${result.provider} with a CONFIGURATION error.`,
    );
  }
  io.stdout.write(`${lines.join("\n")}\n`);
  return 0;
}
