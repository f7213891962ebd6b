/**
 * `prisma-s3-files variants --stale`: brings every original's image variants to the schema's
 * current specs. A thin shell over `rebuildVariants`; the client, metadata and storages come from
 * the config module `sweep` and `drain` load (./config.ts).
 */
import { parseArgs } from "node:util";
import type { RebuildProgress, RebuildReport } from "../prisma/variants-rebuild.js";
import {
  type CommandConfig,
  type CommandIO,
  DEFAULT_CONFIG_FILES,
  listed,
  parseCommandArgs,
  processIO,
  redactUrls,
  UsageError,
  withConfig,
} from "./config.js";

/** `rebuildVariants(client, session, options)`, or a stand-in in tests. */
export type RebuildFunction = (
  client: unknown,
  session: CommandConfig["session"],
  options: {
    fields: CommandConfig["fields"];
    storages?: CommandConfig["storages"];
    dryRun?: boolean;
    onProgress?: (progress: RebuildProgress) => void;
  },
) => Promise<RebuildReport>;

export const VARIANTS_USAGE = `Usage: prisma-s3-files variants --stale [--dry-run] [--config <path>]

Finds the originals whose image variants are missing or were made from an old spec (a
variant's key carries a digest of its spec), builds them from the originals, and deletes the
variants of specs and names no longer declared. Originals are only read. Safe to interrupt and
run again: each variant is recorded in the file journal before it is written, and one built for
an original replaced meanwhile is removed.

Run it after changing a field's variants in schema.prisma (and deploying the new schema):

  npx prisma-s3-files variants --stale

Options:
  --stale               Required: build what is missing or stale (the only mode so far).
  -n, --dry-run         Count what would be built and deleted; change nothing.
  -c, --config <path>   Config module, as for sweep. Default: the first of
                        ${DEFAULT_CONFIG_FILES.join(", ")}
                        in the current directory.
  -h, --help            Show this help.

Prints progress on a terminal (stderr), then one line: originals examined, variants built,
variants deleted, originals missing (a row names them, the storage does not hold them),
failures; each missing original and each failure follows on stderr.

Exit codes: 0 done (missing originals included), 1 some originals failed (or the command
did), 2 usage error.
`;

const HELP_HINT = "Run `prisma-s3-files variants --help` for the options and the config module.";

/** Missing originals and failures listed on stderr; the rest are counted. */
const SAMPLE = 20;

export interface VariantsArgs {
  config: string | undefined;
  dryRun: boolean;
  help: boolean;
}

/** Parses the command's arguments; throws a usage error (exit 2) on anything it does not take. */
export function parseVariantsArgs(args: string[]): VariantsArgs {
  let values: { config?: string; stale?: boolean; "dry-run"?: boolean; help?: boolean };
  try {
    ({ values } = parseArgs({
      args,
      strict: true,
      allowPositionals: false,
      options: {
        config: { type: "string", short: "c" },
        stale: { type: "boolean" },
        "dry-run": { type: "boolean", short: "n" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  if (values.help) return { config: values.config, dryRun: false, help: true };
  if (values.config === "") throw new UsageError("--config needs a path");
  if (!values.stale) throw new UsageError("say what to do: --stale (build missing and stale variants)");
  return { config: values.config, dryRun: values["dry-run"] ?? false, help: false };
}

async function runtimeRebuild(): Promise<RebuildFunction> {
  return (await import("../prisma/variants-rebuild.js")).rebuildVariants as RebuildFunction;
}

/** Runs `variants` with its arguments (after the command name); resolves to the exit code, never rejects. */
export async function variantsCommand(
  args: string[],
  io: CommandIO = processIO(),
  rebuild: () => Promise<RebuildFunction> = runtimeRebuild,
): Promise<number> {
  const options = parseCommandArgs(
    args,
    parseVariantsArgs,
    { name: "variants", usage: VARIANTS_USAGE, hint: HELP_HINT },
    io,
  );
  if (typeof options === "number") return options;
  return withConfig("variants", options.config, io, async (config) => {
    const rebuildVariants = await rebuild();
    const report = await rebuildVariants(config.client, config.session, {
      fields: config.fields,
      ...(config.storages === undefined ? {} : { storages: config.storages }),
      dryRun: options.dryRun,
      ...(io.stderr.isTTY
        ? {
            onProgress: (p: RebuildProgress) =>
              io.stderr.write(
                `\r${p.model}.${p.field}: ${p.examined} examined, ${p.built} built, ${p.deleted} deleted`,
              ),
          }
        : {}),
    });
    if (io.stderr.isTTY) io.stderr.write("\n");
    io.stdout.write(`${formatVariantsSummary(report)}\n`);
    const field = (o: { model: string; field: string }) => `${o.model}.${o.field}`;
    if (report.missing.length > 0) {
      const lines = listed(report.missing, SAMPLE, (m) => m.key, field);
      io.stderr.write(`Originals a row names but the storage does not hold (no variants made):\n${lines.join("\n")}\n`);
    }
    if (report.failed.length > 0) {
      const lines = listed(
        report.failed,
        SAMPLE,
        (f) => `${f.key}: ${redactUrls(f.error).replace(/\s*\n\s*/g, " ")}`,
        field,
      );
      io.stderr.write(`Could not bring up to date (run again):\n${lines.join("\n")}\n`);
    }
    return report.failed.length > 0 ? 1 : 0;
  });
}

/**
 * `variants: 120 originals examined, 118 built, 236 deleted, 1 missing, 2 failed` (with `(dry
 * run)` when so).
 */
export function formatVariantsSummary(report: RebuildReport): string {
  const verb = report.dryRun ? ["to build", "to delete"] : ["built", "deleted"];
  return `variants${report.dryRun ? " (dry run)" : ""}: ${report.examined} originals examined, ${report.built} ${verb[0]}, ${report.deleted} ${verb[1]}, ${report.missing.length} missing, ${report.failed.length} failed`;
}
