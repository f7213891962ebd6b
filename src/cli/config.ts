/**
 * What the `sweep` and `drain` commands share: finding and importing the config module (through
 * the project's tsx when it has one), checking its shape, closing what it opened, and printing
 * errors without credentials.
 */
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import type { FileFieldsMetadataShape } from "../prisma/metadata-types.js";
import type { S3Session } from "../session/session.js";
import type { Storage } from "../storage/storage.js";

/** What the config module default-exports (or a function, possibly async, returns). */
export interface CommandConfig {
  /** A Prisma client (plain or extended) on the database whose rows reference the objects. */
  client: unknown;
  /** The generated metadata: `fileFields` from the generator's output module. */
  fields: FileFieldsMetadataShape;
  /** The session of the default storage (unless `storages.default` is given). Destroyed at the end. */
  session?: S3Session;
  /** Storages by the names used in `@file(storage: "...")`, as given to `s3Files()`. */
  storages?: { [name: string]: Storage };
}

/** The streams the command talks to; `process`'s by default, fakes in tests. */
export interface CommandIO {
  stdout: { write(chunk: string): unknown; isTTY?: boolean };
  stderr: { write(chunk: string): unknown; isTTY?: boolean };
  stdin: NodeJS.ReadableStream & { isTTY?: boolean };
  cwd: string;
}

export const DEFAULT_CONFIG_FILES = [
  "prisma-s3-files.config.ts",
  "prisma-s3-files.config.mjs",
  "prisma-s3-files.config.js",
] as const;

/** A usage error: exit code 2. */
export class UsageError extends Error {}

/** The config file to load: `--config` (relative to cwd), else the first default that exists. */
export function findConfig(given: string | undefined, cwd: string): string {
  if (given !== undefined) {
    const path = resolve(cwd, given);
    if (!existsSync(path)) throw new UsageError(`config file not found: ${path}`);
    return path;
  }
  for (const name of DEFAULT_CONFIG_FILES) {
    const path = resolve(cwd, name);
    if (existsSync(path)) return path;
  }
  throw new UsageError(
    `no config file: looked for ${DEFAULT_CONFIG_FILES.join(" and ")} in ${cwd}; pass --config <path> (see --help)`,
  );
}

/** Whether tsx's loader was registered by {@link useTypeScriptLoader}. */
let tsxRegistered = false;

/**
 * Registers tsx's loader when the project has it (resolved from the config's directory), so
 * that a config, and the generated TypeScript modules it imports (Prisma 7's client and our
 * `fileFields` are `.ts`), load as they do in the app.
 */
async function useTypeScriptLoader(path: string): Promise<void> {
  if (tsxRegistered) return;
  let api: string | undefined;
  try {
    // Its ESM entry (`exports["./esm/api"].import`); require.resolve would give the CommonJS one.
    const manifest = createRequire(path).resolve("tsx/package.json");
    const exported = (JSON.parse(readFileSync(manifest, "utf8")) as { exports?: Record<string, unknown> }).exports?.[
      "./esm/api"
    ] as { import?: string | { default?: string } } | undefined;
    const target = typeof exported?.import === "string" ? exported.import : exported?.import?.default;
    api = target === undefined ? undefined : join(dirname(manifest), target);
  } catch {
    api = undefined;
  }
  // Without it, import as is: a loader may be active already (NODE_OPTIONS="--import tsx"), and
  // if none is, the import's error gets the hint (describeError).
  if (api === undefined) return;
  const { register } = (await import(pathToFileURL(api).href)) as { register: () => unknown };
  register();
  tsxRegistered = true;
}

/** Imports the config module and checks its shape. */
export async function loadConfig(
  path: string,
  opened: (config: Partial<CommandConfig>) => void,
): Promise<CommandConfig> {
  await useTypeScriptLoader(path);
  const mod = (await import(pathToFileURL(path).href)) as { default?: unknown };
  let value = mod.default;
  if (value === undefined) {
    throw new Error(`${path} has no default export; export default { client, fields, session?, storages? }`);
  }
  if (typeof value === "function") value = await (value as () => unknown)();
  if (value === null || typeof value !== "object") {
    throw new Error(
      `the default export of ${path} must be { client, fields, session?, storages? } or a function returning it`,
    );
  }
  const config = value as Partial<CommandConfig>;
  opened(config);
  const problems: string[] = [];
  if (config.client === null || (typeof config.client !== "object" && typeof config.client !== "function")) {
    problems.push("client (a Prisma client) is missing");
  }
  if (!isFieldsMetadata(config.fields)) problems.push("fields (the generated fileFields) is missing or not metadata");
  if (config.session !== undefined && typeof (config.session as { destroy?: unknown })?.destroy !== "function") {
    problems.push("session is not an S3Session");
  }
  if (config.storages !== undefined && (config.storages === null || typeof config.storages !== "object")) {
    problems.push("storages is not an object of storages by name");
  }
  if (problems.length > 0) throw new Error(`invalid config ${path}: ${problems.join("; ")}`);
  return config as CommandConfig;
}

function isFieldsMetadata(value: unknown): value is FileFieldsMetadataShape {
  if (value === null || typeof value !== "object") return false;
  return Object.values(value).every(
    (m) => m !== null && typeof m === "object" && typeof (m as { fileFields?: unknown }).fileFields === "object",
  );
}

/** `$disconnect()` the client and destroy the session, whatever happened before. */
export async function closeConfig(
  config: Partial<CommandConfig> | undefined,
  io: CommandIO,
  command: string,
): Promise<void> {
  if (!config) return;
  const client = config.client as { $disconnect?: () => Promise<void> } | null | undefined;
  try {
    if (typeof client?.$disconnect === "function") await client.$disconnect();
  } catch (error) {
    io.stderr.write(`prisma-s3-files ${command}: warning: disconnecting the client failed: ${describeError(error)}\n`);
  }
  try {
    if (typeof config.session?.destroy === "function") await config.session.destroy();
  } catch (error) {
    io.stderr.write(`prisma-s3-files ${command}: warning: destroying the session failed: ${describeError(error)}\n`);
  }
}

/**
 * Parses a command's arguments, answering the two cases that end it at once: a usage error
 * (the message, the usage line and `hint` on stderr; exit code 2) and `--help` (the usage on
 * stdout; 0). Returns the options otherwise, else that exit code.
 */
export function parseCommandArgs<T extends { help: boolean }>(
  args: string[],
  parse: (args: string[]) => T,
  command: { name: string; usage: string; hint: string },
  io: { stdout: { write(chunk: string): unknown }; stderr: { write(chunk: string): unknown } },
): T | number {
  let options: T;
  try {
    options = parse(args);
  } catch (error) {
    io.stderr.write(
      `prisma-s3-files ${command.name}: ${(error as Error).message}\n${command.usage.split("\n")[0]}\n${command.hint}\n`,
    );
    return 2;
  }
  if (options.help) {
    io.stdout.write(command.usage);
    return 0;
  }
  return options;
}

/**
 * A command's life with its config module: find it (`--config` or the default names), load it,
 * run `body`, and close what it opened (client, session) whatever happened. Returns the exit
 * code: `body`'s, 2 when no config is found, 1 when loading or `body` fails (one message, no
 * stack: a stack or a cause may carry a URL with credentials).
 */
export async function withConfig(
  command: string,
  given: string | undefined,
  io: CommandIO,
  body: (config: CommandConfig) => Promise<number>,
): Promise<number> {
  let configPath: string;
  try {
    configPath = findConfig(given, io.cwd);
  } catch (error) {
    io.stderr.write(`prisma-s3-files ${command}: ${(error as Error).message}\n`);
    return 2;
  }
  let config: Partial<CommandConfig> | undefined;
  try {
    const loaded = await loadConfig(configPath, (opened) => {
      config = opened; // close what a half-valid config opened
    });
    return await body(loaded);
  } catch (error) {
    io.stderr.write(`prisma-s3-files ${command}: ${describeError(error)}\n`);
    return 1;
  } finally {
    await closeConfig(config, io, command);
  }
}

/** Storage names in the order `sweepOrphans` walks them (first use in the metadata). */
export function storagesOf(fields: FileFieldsMetadataShape): string[] {
  const names = new Set<string>();
  for (const meta of Object.values(fields)) for (const f of Object.values(meta.fileFields)) names.add(f.storage);
  return [...names];
}

/** One line per error, with the password of any URL in it masked. */
export function describeError(error: unknown): string {
  const e = error as { message?: unknown; code?: unknown } | null;
  let message = typeof e?.message === "string" && e.message !== "" ? e.message : String(error);
  if (
    !tsxRegistered &&
    (e?.code === "ERR_UNKNOWN_FILE_EXTENSION" ||
      (e?.code === "ERR_MODULE_NOT_FOUND" && /\.js['"]? imported from/.test(message)))
  ) {
    // A generated module (.ts) imported as .js, or a .ts file, without a loader.
    message += ` (the config imports TypeScript, e.g. Prisma 7's generated client: npm install --save-dev tsx, and the command loads it)`;
  }
  return redactUrls(message).trim();
}

/** `postgres://user:secret@host` → `postgres://user:***@host`. */
export function redactUrls(text: string): string {
  return text.replace(/([a-z][a-z0-9+.-]*:\/\/[^\s:/@]*):[^\s@/]*@/gi, "$1:***@");
}

export function processIO(): CommandIO {
  return { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin, cwd: process.cwd() };
}

/**
 * `  first  text` for the first `sample` items (the first column padded to line up), then
 * `  ... and N more`: the commands' lists of failures and findings. `first` defaults to the storage.
 */
export function listed<T>(
  items: readonly T[],
  sample: number,
  text: (item: T) => string,
  first: (item: T) => string = (item) => (item as { storage: string }).storage,
): string[] {
  const shown = items.slice(0, sample);
  const width = Math.max(0, ...shown.map((o) => first(o).length));
  const lines = shown.map((o) => `  ${first(o).padEnd(width)}  ${text(o)}`);
  if (items.length > shown.length) lines.push(`  ... and ${items.length - shown.length} more`);
  return lines;
}
