/**
 * The Prisma generator: reads the `/// @file(...)` comments from the DMMF and writes
 * `<output>/index.ts` with the file-field metadata.
 *
 * Declared in `schema.prisma` next to the client generator; `provider` is the package's bin:
 *
 * ```prisma
 * generator files {
 *   provider = "prisma-s3-files"
 *   output   = "../src/generated/files"   // relative to this schema file; the default
 *   storages = ["public", "private"]       // optional: check every `storage:` against these (+ "default")
 * }
 * ```
 *
 * How Prisma (7.10) starts it: the `provider` string is a shell command (cross-spawn with
 * `shell: true`), run in the directory `prisma` was started in, with
 * `PRISMA_GENERATOR_INVOCATION=true`; requests arrive as JSON lines on stdin, answers go back on
 * stderr. Prisma does not put `node_modules/.bin` on `PATH` itself: `npx prisma generate` and npm
 * scripts do. Elsewhere, name the file:
 * `provider = "node node_modules/prisma-s3-files/dist/bin/prisma-s3-files.js"`.
 *
 * The manifest declares no `requiresGenerators`: Prisma compares it with the provider strings
 * verbatim, so `["prisma-client"]` would fail every schema using the legacy `prisma-client-js`,
 * and this generator needs neither (it reads only the DMMF).
 */
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import type { GeneratorManifest, GeneratorOptions } from "@prisma/generator-helper";
// A CommonJS package whose exports Node cannot detect statically: import its module.exports.
import generatorHelper from "@prisma/generator-helper";
import { PrismaS3FilesError } from "../../errors.js";
import type { FileFieldsMetadataShape } from "../metadata-types.js";
import { emitModule } from "./emit.js";
import { buildMetadata, readGeneratorConfig } from "./metadata.js";

/** Where the module goes when the block has no `output`, relative to the schema file. */
export const DEFAULT_OUTPUT = "../src/generated/files";

async function packageVersion(): Promise<string | undefined> {
  // src/prisma/generator/ and dist/prisma/generator/ are both three levels below package.json.
  try {
    const text = await readFile(new URL("../../../package.json", import.meta.url), "utf8");
    const version = (JSON.parse(text) as { version?: unknown }).version;
    return typeof version === "string" ? version : undefined;
  } catch {
    return undefined;
  }
}

/** The generator's manifest. */
export async function manifest(): Promise<GeneratorManifest> {
  const version = await packageVersion();
  return {
    prettyName: "prisma-s3-files file fields",
    defaultOutput: DEFAULT_OUTPUT,
    ...(version === undefined ? {} : { version }),
  };
}

/**
 * Builds the metadata and writes `<output>/index.ts` (atomically: a temporary file renamed over
 * the old one). Returns the path written.
 *
 * @throws FileAnnotationError / FileAnnotationErrors naming the model, field and problem.
 */
export async function generate(options: GeneratorOptions): Promise<string> {
  const output = options.generator.output?.value;
  if (!output) throw new Error(`generator ${options.generator.name}: no output directory`);
  const config = readGeneratorConfig(options.generator.config, options.generator.name);
  const provider = options.datasources[0]?.activeProvider ?? options.datasources[0]?.provider;
  const metadata = buildMetadata(options.dmmf.datamodel, { ...config, provider });
  requireSharpFor(metadata, options.schemaPath);
  const source = emitModule(metadata, { runtime: config.runtime ?? "prisma-s3-files" });
  await mkdir(output, { recursive: true });
  const file = join(output, "index.ts");
  const temporary = `${file}.${process.pid}.tmp`;
  await writeFile(temporary, source);
  await rename(temporary, file);
  return file;
}

/**
 * Variants are made with sharp, an optional peer dependency: a schema that declares them fails
 * here, not at the first upload in production, when sharp cannot be resolved from the schema's
 * project. `from` is the schema file (resolution walks up its `node_modules` folders).
 */
export function requireSharpFor(metadata: FileFieldsMetadataShape, from: string): void {
  const declaring = Object.entries(metadata).flatMap(([model, m]) =>
    Object.entries(m.fileFields)
      .filter(([, f]) => f.variants !== undefined)
      .map(([field]) => `${model}.${field}`),
  );
  if (declaring.length === 0) return;
  try {
    createRequire(join(dirname(from), "noop.js")).resolve("sharp");
  } catch (cause) {
    throw new PrismaS3FilesError(
      "GENERATOR_CONFIG",
      `${declaring.join(", ")} declare${declaring.length === 1 ? "s" : ""} image variants, which need the optional package sharp: npm install sharp`,
      { cause },
    );
  }
}

/** Serves Prisma's generator protocol on stdin/stderr until Prisma closes the pipe. */
export function runGenerator(): void {
  generatorHelper.generatorHandler({
    onManifest: () => manifest(),
    onGenerate: async (options) => {
      await generate(options);
    },
  });
}
