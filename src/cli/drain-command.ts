/**
 * `prisma-s3-files drain`: one pass over the file journal, for cron (serverless apps, or apps that
 * turn the in-process drain off). A thin shell over `drainFiles`; the client, metadata and
 * storages come from the same config module `sweep` loads (./config.ts).
 */
import { parseArgs } from "node:util";
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

/** What `drainFiles` reports (the root entry's `DrainReport`). */
export interface DrainSummary {
  claimed: number;
  deleted: number;
  dropped: number;
  failed: { storage: string; key: string; error: string }[];
}

/** `drainFiles(client, session, { fields, storages, limit })`, or a stand-in in tests. */
export type DrainFunction = (
  client: unknown,
  session: CommandConfig["session"],
  options: { fields: CommandConfig["fields"]; storages?: CommandConfig["storages"]; limit?: number },
) => Promise<DrainSummary>;

/** Failures listed on stderr; the rest are counted. */
export const SAMPLE_FAILURES = 20;

export const DRAIN_USAGE = `Usage: prisma-s3-files drain [--config <path>] [--limit <n>]

Runs the file journal once: deletes the objects whose deletion is due (files replaced or
removed, once their deleteAfterSeconds have passed), and removes uploads whose row never
committed, with their objects. Each record is claimed in the database and the key re-checked
against the rows in the same transaction, so drains running side by side (other cron jobs, the
apps' in-process drains) never delete an object twice or delete one a row references.

Meant for cron, e.g. every minute, where the app does not drain by itself (serverless
functions, or s3Files(session, { drain: false })):

  * * * * *  cd /srv/app && npx prisma-s3-files drain

Options:
  -c, --config <path>   Config module, as for sweep. Default: the first of
                        ${DEFAULT_CONFIG_FILES.join(", ")}
                        in the current directory.
  -l, --limit <n>       Claim at most n records in this run. Default: every due record.
  -h, --help            Show this help.

The config module default-exports { client, fields, session?, storages? }, or a function
(possibly async) returning it (see \`prisma-s3-files sweep --help\`). The client and session
are closed when the command ends.

Prints one line: claimed, deleted, dropped (records removed without deleting: the key is
referenced again, or the upload's row committed) and failed; each failure follows on stderr and
is retried by a later drain, with back-off.

Exit codes: 0 done, 1 some deletions failed (or the command did), 2 usage error.
`;

const HELP_HINT = "Run `prisma-s3-files drain --help` for the options and the config module.";

export interface DrainArgs {
  config: string | undefined;
  limit: number | undefined;
  help: boolean;
}

/** Parses the command's arguments; throws a usage error (exit 2) on anything it does not take. */
export function parseDrainArgs(args: string[]): DrainArgs {
  let values: { config?: string; limit?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      args,
      strict: true,
      allowPositionals: false,
      options: {
        config: { type: "string", short: "c" },
        limit: { type: "string", short: "l" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  if (values.config === "") throw new UsageError("--config needs a path");
  let limit: number | undefined;
  if (values.limit !== undefined) {
    if (
      !/^\s*[0-9]+\s*$/.test(values.limit) ||
      Number(values.limit) < 1 ||
      !Number.isSafeInteger(Number(values.limit))
    ) {
      throw new UsageError(`--limit takes a positive whole number of records, not ${JSON.stringify(values.limit)}`);
    }
    limit = Number(values.limit);
  }
  return { config: values.config, limit, help: values.help ?? false };
}

/**
 * `drainFiles` from the runtime, loaded when the command runs (the bin's other commands do not
 * pay for it).
 */
async function runtimeDrain(): Promise<DrainFunction> {
  return (await import("../prisma/journal/drain.js")).drainFiles as DrainFunction;
}

/**
 * Runs `drain` with its arguments (after the command name). Resolves to the exit code; never
 * rejects, and prints errors as one message (no stack: a stack or a cause may carry a URL with
 * credentials).
 */
export async function drainCommand(
  args: string[],
  io: CommandIO = processIO(),
  drain: () => Promise<DrainFunction> = runtimeDrain,
): Promise<number> {
  const options = parseCommandArgs(args, parseDrainArgs, { name: "drain", usage: DRAIN_USAGE, hint: HELP_HINT }, io);
  if (typeof options === "number") return options;
  return withConfig("drain", options.config, io, async (config) => {
    const drainFiles = await drain();
    const report = await drainFiles(config.client, config.session, {
      fields: config.fields,
      ...(config.storages === undefined ? {} : { storages: config.storages }),
      ...(options.limit === undefined ? {} : { limit: options.limit }),
    });
    io.stdout.write(`${formatDrainSummary(report)}\n`);
    if (report.failed.length > 0) io.stderr.write(formatDrainFailures(report));
    return report.failed.length > 0 ? 1 : 0;
  });
}

/** `drain: 12 claimed, 9 deleted, 2 dropped, 1 failed` (one line, for cron's mail and logs). */
export function formatDrainSummary(report: DrainSummary): string {
  return `drain: ${report.claimed} claimed, ${report.deleted} deleted, ${report.dropped} dropped, ${report.failed.length} failed`;
}

/** One line per failure (the first {@link SAMPLE_FAILURES}), then how many more. */
export function formatDrainFailures(report: DrainSummary, sample = SAMPLE_FAILURES): string {
  const lines = listed(report.failed, sample, (f) => `${f.key}: ${redactUrls(f.error).replace(/\s*\n\s*/g, " ")}`);
  return `Could not delete (retried by a later drain):\n${lines.join("\n")}\n`;
}
