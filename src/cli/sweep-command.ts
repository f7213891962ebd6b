/**
 * `prisma-s3-files sweep`: deletes objects that no row references, with a progress bar and a
 * dry-run summary. A thin shell over {@link sweepOrphans}; the client, metadata and storages
 * come from a config module the command imports (./config.ts).
 */
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { type SweepReport, sweepOrphans } from "../prisma/sweep.js";
import {
  type CommandConfig,
  type CommandIO,
  DEFAULT_CONFIG_FILES,
  describeError,
  findConfig,
  listed,
  parseCommandArgs,
  processIO,
  redactUrls,
  storagesOf,
  UsageError,
  withConfig,
} from "./config.js";

export { type CommandIO, DEFAULT_CONFIG_FILES, describeError, findConfig, redactUrls };
/** What the config module default-exports (or a function, possibly async, returns). */
export type SweepConfig = CommandConfig;

export const DEFAULT_OLDER_THAN = 3600;
export const DEFAULT_MULTIPART_OLDER_THAN = 86_400;
/** Keys listed in a dry-run summary. */
export const SAMPLE_KEYS = 20;

export const SWEEP_USAGE = `Usage: prisma-s3-files sweep [--config <path>] [--older-than <seconds>] [--multipart-older-than <seconds>] [--dry-run] [--yes]

Deletes objects under the file columns' prefixes that no row references: what cascading
deletes, raw SQL, or a crash between upload and commit leave behind. On S3 it also aborts
incomplete multipart uploads under those prefixes (parts stored and billed, never completed).

Options:
  -c, --config <path>       Config module. Default: the first of ${DEFAULT_CONFIG_FILES.join(", ")}
                            in the current directory.
      --older-than <age>    Only objects at least this old: seconds, or with a unit
                            (90s, 30m, 2h, 7d). Default: ${DEFAULT_OLDER_THAN}. Keep it above the time an
                            upload takes. Age counts from the upload: objects an app
                            process keeps for deleteAfterSeconds are orphans to this
                            command and go now.
      --multipart-older-than <age>
                            Abort incomplete multipart uploads started at least this
                            long ago (same units). Default: ${DEFAULT_MULTIPART_OLDER_THAN} (24h): keep it above
                            the time a save takes. A direct upload's plan is aborted once
                            its grant has expired, whatever this says.
  -n, --dry-run             List what would be deleted; delete nothing.
  -y, --yes                 Delete without asking. Without it, the command shows a dry run and
                            asks; when stdin is not a terminal, --yes (or --dry-run) is required.
  -h, --help                Show this help.

The config module default-exports { client, fields, session?, storages? }, or a function
(possibly async) returning it. The client and session are closed when the command ends.

  // ${DEFAULT_CONFIG_FILES[0]}, beside package.json
  import { fileFields } from "./src/generated/files/index.js";
  import { prisma, session, storages } from "./src/db.js";

  export default { client: prisma, fields: fileFields, session, storages };

Prisma 7's client and the generated fileFields are TypeScript: when tsx is installed in the
project (npm install -D tsx), the command loads the config, and what it imports, through it.

Exit codes: 0 done, 1 failure (or deletion declined), 2 usage error.
`;

const HELP_HINT = "Run `prisma-s3-files sweep --help` for the options and the config module.";

export interface SweepArgs {
  config: string | undefined;
  olderThan: number;
  multipartOlderThan: number;
  dryRun: boolean;
  yes: boolean;
  help: boolean;
}

/** Parses the command's arguments; throws a usage error (exit 2) on anything it does not take. */
export function parseSweepArgs(args: string[]): SweepArgs {
  let values: {
    config?: string;
    "older-than"?: string;
    "multipart-older-than"?: string;
    "dry-run"?: boolean;
    yes?: boolean;
    help?: boolean;
  };
  try {
    ({ values } = parseArgs({
      args,
      strict: true,
      allowPositionals: false,
      options: {
        config: { type: "string", short: "c" },
        "older-than": { type: "string" },
        "multipart-older-than": { type: "string" },
        "dry-run": { type: "boolean", short: "n" },
        yes: { type: "boolean", short: "y" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const olderThan = values["older-than"] === undefined ? DEFAULT_OLDER_THAN : parseAge(values["older-than"]);
  const multipart = values["multipart-older-than"];
  const multipartOlderThan =
    multipart === undefined ? DEFAULT_MULTIPART_OLDER_THAN : parseAge(multipart, "--multipart-older-than");
  if (values.config === "") throw new UsageError("--config needs a path");
  return {
    config: values.config,
    olderThan,
    multipartOlderThan,
    dryRun: values["dry-run"] ?? false,
    yes: values.yes ?? false,
    help: values.help ?? false,
  };
}

const UNITS: Record<string, number> = { "": 1, s: 1, m: 60, h: 3600, d: 86400 };

/** `3600`, `90s`, `30m`, `2h`, `7d` → seconds. */
export function parseAge(text: string, option = "--older-than"): number {
  const match = /^(\d+(?:\.\d+)?)\s*([smhd]?)$/i.exec(text.trim());
  if (!match) throw new UsageError(`${option} takes seconds (or 90s, 30m, 2h, 7d), not ${JSON.stringify(text)}`);
  return Number(match[1]) * UNITS[match[2]!.toLowerCase()]!;
}

/**
 * Runs `sweep` with its arguments (after the command name). Resolves to the exit code; never
 * rejects, and prints errors as one message (no stack: a stack or a cause may carry a URL with
 * credentials).
 */
export async function sweepCommand(args: string[], io: CommandIO = processIO()): Promise<number> {
  const options = parseCommandArgs(args, parseSweepArgs, { name: "sweep", usage: SWEEP_USAGE, hint: HELP_HINT }, io);
  if (typeof options === "number") return options;
  const confirm = !options.dryRun && !options.yes;
  if (confirm && !io.stdin.isTTY) {
    io.stderr.write(
      "prisma-s3-files sweep: stdin is not a terminal, so there is no one to confirm the deletion.\n" +
        "Pass --yes to delete orphaned objects, or --dry-run to only list them.\n",
    );
    return 2;
  }
  return withConfig("sweep", options.config, io, (config) => run(config as SweepConfig, options, confirm, io));
}

async function run(config: SweepConfig, options: SweepArgs, confirm: boolean, io: CommandIO): Promise<number> {
  const storageNames = storagesOf(config.fields);
  const sweep = async (dryRun: boolean, olderThan: number, multipartOlderThan: number) => {
    const progress = new ProgressReporter(io.stderr, storageNames.length, dryRun ? "dry run" : "sweep");
    try {
      const report = await sweepOrphans(config.client, config.session, {
        fields: config.fields,
        storages: config.storages,
        olderThan,
        abortMultipartOlderThan: multipartOlderThan,
        dryRun,
        onProgress: (p) => progress.update(p),
      });
      progress.finish();
      return { report, examined: progress.examined };
    } catch (error) {
      progress.abort();
      throw error;
    }
  };

  if (!confirm) {
    const { report, examined } = await sweep(options.dryRun, options.olderThan, options.multipartOlderThan);
    io.stdout.write(formatSummary(report, { examined, ...ages(options) }));
    return 0;
  }

  // Ask after a dry run. The second pass keeps the first one's cutoff, so it deletes what was
  // shown (less anything a row took up since), not objects that came of age while the user read.
  const started = Date.now();
  const preview = await sweep(true, options.olderThan, options.multipartOlderThan);
  io.stdout.write(formatSummary(preview.report, { examined: preview.examined, ...ages(options) }));
  const count = preview.report.orphans.length;
  const uploads = preview.report.multipart.abandoned.length;
  if (count === 0 && uploads === 0) return 0;
  const question = [
    ...(count > 0 ? [`delete ${plural(count, "object")}`] : []),
    ...(uploads > 0 ? [`abort ${plural(uploads, "incomplete multipart upload")}`] : []),
  ].join(" and ");
  io.stderr.write(`${capitalize(question)}? [y/N] `);
  const answer = await readLine(io.stdin);
  if (answer === undefined) io.stderr.write("\n");
  if (!/^\s*y(es)?\s*$/i.test(answer ?? "")) {
    io.stderr.write("Aborted; nothing was deleted.\n");
    return 1;
  }
  const elapsed = (Date.now() - started) / 1000;
  const { report, examined } = await sweep(false, options.olderThan + elapsed, options.multipartOlderThan + elapsed);
  io.stdout.write(formatSummary(report, { examined, ...ages(options) }));
  return 0;
}

function ages(options: SweepArgs): Pick<SummaryOptions, "olderThan" | "multipartOlderThan"> {
  return { olderThan: options.olderThan, multipartOlderThan: options.multipartOlderThan };
}

function capitalize(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/** Reads one line; `undefined` when the input ends first. */
function readLine(input: NodeJS.ReadableStream): Promise<string | undefined> {
  return new Promise((resolveLine) => {
    const rl = createInterface({ input, terminal: false });
    let answered = false;
    rl.once("line", (line) => {
      answered = true;
      rl.close();
      resolveLine(line);
    });
    rl.once("close", () => {
      if (!answered) resolveLine(undefined);
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Progress and summary (pure formatting, unit-tested)

export interface Progress {
  storage: string;
  examined: number;
  orphans: number;
}

/**
 * Shows `sweepOrphans`' progress on stderr: a one-line bar redrawn with `\r` on a terminal,
 * plain lines otherwise (one per storage, plus one every few seconds on a long storage).
 */
export class ProgressReporter {
  /** Objects examined per storage, from the last report of each. */
  readonly examined = new Map<string, number>();
  private current: Progress | undefined;
  private lastLine = 0;
  private readonly tty: boolean;

  constructor(
    private readonly out: { write(chunk: string): unknown; isTTY?: boolean },
    private readonly total: number,
    private readonly label = "sweep",
    private readonly now: () => number = Date.now,
  ) {
    this.tty = Boolean(out.isTTY);
    this.lastLine = now();
    if (this.tty) this.draw(0, undefined);
    else out.write(`${label}: examining ${plural(total, "storage")}\n`);
  }

  update(progress: Progress): void {
    if (this.current && this.current.storage !== progress.storage && !this.tty) this.line(this.current);
    this.current = { ...progress };
    this.examined.set(progress.storage, progress.examined);
    if (this.tty) this.draw(this.examined.size - 1, progress);
    else if (this.now() - this.lastLine >= 2000) {
      this.lastLine = this.now();
      this.out.write(
        `${this.label}: ${progress.storage}: examined ${progress.examined}, orphans ${progress.orphans} so far\n`,
      );
    }
  }

  finish(): void {
    if (this.tty) {
      this.draw(this.total, this.current);
      this.out.write("\n");
    } else if (this.current) this.line(this.current);
  }

  /** Ends the bar's line, so an error message starts on its own. */
  abort(): void {
    if (this.tty) this.out.write("\n");
  }

  private line(p: Progress): void {
    this.out.write(`${this.label}: ${p.storage}: examined ${p.examined}, orphans ${p.orphans}\n`);
  }

  private draw(done: number, p: Progress | undefined): void {
    this.out.write(`\r${formatProgressLine(this.label, done, this.total, p)}\x1b[K`);
  }
}

/** `sweep [######--------------] 1/3 storages  private: examined 120, orphans 4`. */
export function formatProgressLine(label: string, done: number, total: number, p: Progress | undefined, width = 20) {
  const fraction = total === 0 ? 1 : Math.min(1, Math.max(0, done / total));
  const filled = Math.round(fraction * width);
  const bar = `[${"#".repeat(filled)}${"-".repeat(width - filled)}]`;
  const state = p ? `${p.storage}: examined ${p.examined}, orphans ${p.orphans}` : "listing...";
  return `${label} ${bar} ${Math.min(done, total)}/${total} storages  ${state}`;
}

export interface SummaryOptions {
  /** Objects examined per storage (from progress); the report only has the total. */
  examined?: ReadonlyMap<string, number>;
  /** The age cutoff used, in seconds. */
  olderThan?: number;
  /** The age cutoff used for incomplete multipart uploads, in seconds. */
  multipartOlderThan?: number;
  /** Keys listed in a dry run (default {@link SAMPLE_KEYS}). */
  sample?: number;
}

/**
 * The summary printed on stdout: a table per storage (examined, orphans, bytes where the report
 * knows sizes, deleted), then in a dry run "Would delete N objects:" and the first keys, else
 * what was deleted and what could not be; then the incomplete multipart uploads, likewise.
 */
export function formatSummary(report: SweepReport, options: SummaryOptions = {}): string {
  const sample = options.sample ?? SAMPLE_KEYS;
  const rows = new Map<string, { examined?: number; orphans: number; bytes: number; sized: number; failed: number }>();
  for (const [storage, examined] of options.examined ?? [])
    rows.set(storage, { examined, orphans: 0, bytes: 0, sized: 0, failed: 0 });
  for (const o of report.orphans) {
    const row = rows.get(o.storage) ?? { orphans: 0, bytes: 0, sized: 0, failed: 0 };
    row.orphans++;
    if (typeof o.size === "number") {
      row.bytes += o.size;
      row.sized++;
    }
    rows.set(o.storage, row);
  }
  for (const f of report.failed) {
    const row = rows.get(f.storage);
    if (row) row.failed++;
  }
  const anySize = [...rows.values()].some((r) => r.sized > 0);
  const header = [
    "storage",
    "examined",
    "orphans",
    ...(anySize ? ["bytes"] : []),
    ...(report.dryRun ? [] : ["deleted"]),
  ];
  const table = [...rows].map(([storage, r]) => [
    storage,
    r.examined === undefined ? "?" : String(r.examined),
    String(r.orphans),
    ...(anySize
      ? [r.sized === 0 ? (r.orphans === 0 ? "0 B" : "?") : `${formatBytes(r.bytes)}${r.sized < r.orphans ? "+" : ""}`]
      : []),
    // Every orphan reported was deleted, or is among the failures.
    ...(report.dryRun ? [] : [String(Math.max(0, r.orphans - r.failed))]),
  ]);

  const age = options.olderThan === undefined ? "" : ` older than ${formatAge(options.olderThan)}`;
  const lines: string[] = [];
  lines.push(
    report.dryRun
      ? `Dry run, nothing deleted: ${plural(report.examined, "object")} examined, ${plural(report.orphans.length, "orphan")}${age}.`
      : `Swept ${plural(report.examined, "object")}: ${plural(report.orphans.length, "orphan")}${age}, ${report.deleted} deleted.`,
  );
  if (table.length > 0) lines.push(...formatTable(header, table).map((l) => `  ${l}`));
  if (report.dryRun) {
    const n = report.orphans.length;
    lines.push(`Would delete ${plural(n, "object")}${n > 0 ? ":" : "."}`);
    const shown = report.orphans.slice(0, sample);
    const width = Math.max(0, ...shown.map((o) => o.storage.length));
    for (const o of shown) lines.push(`  ${o.storage.padEnd(width)}  ${o.key}`);
    if (n > shown.length) lines.push(`  ... and ${n - shown.length} more`);
  } else {
    lines.push(`Deleted ${plural(report.deleted, "object")}.`);
    if (report.failed.length > 0) {
      lines.push(`Could not delete ${plural(report.failed.length, "object")} (still stored):`);
      lines.push(...listed(report.failed, sample, (f) => `${f.key}: ${redactUrls(f.error)}`));
    }
  }
  lines.push(...formatMultipart(report, options.multipartOlderThan, sample));
  return `${lines.join("\n")}\n`;
}

/** The multipart part of the summary: counts, then what was (or would be) aborted, and where the server could not list. */
function formatMultipart(report: SweepReport, olderThan: number | undefined, sample: number): string[] {
  const m = report.multipart;
  const lines: string[] = [];
  const age = olderThan === undefined ? "" : ` older than ${formatAge(olderThan)} or of expired grants`;
  lines.push(
    `Incomplete multipart uploads: ${m.examined} examined, ${m.abandoned.length} abandoned${age}${
      report.dryRun ? "" : `, ${m.aborted} aborted`
    }.`,
  );
  const describe = (u: { key: string; uploadId: string }) => `${u.key} (upload ID ${u.uploadId})`;
  if (report.dryRun && m.abandoned.length > 0) {
    lines.push(`Would abort ${plural(m.abandoned.length, "upload")}:`);
    lines.push(...listed(m.abandoned, sample, describe));
  }
  if (!report.dryRun && m.failed.length > 0) {
    lines.push(`Could not abort ${plural(m.failed.length, "upload")}:`);
    lines.push(...listed(m.failed, sample, (f) => `${describe(f)}: ${redactUrls(f.error)}`));
  }
  if (m.unsupported.length > 0) {
    lines.push(`  not swept on ${m.unsupported.join(", ")}: the S3 server cannot list multipart uploads`);
  }
  for (const f of m.listFailed) lines.push(`  not swept on ${f.storage}: ${redactUrls(f.error)}`);
  return lines;
}

/** Left-aligned first column, right-aligned numbers. */
function formatTable(header: string[], rows: string[][]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const fmt = (cells: string[]) =>
    cells
      .map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)))
      .join("  ")
      .trimEnd();
  return [fmt(header), ...rows.map(fmt)];
}

/** 1536 → `1.5 KiB`. */
export function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

/** 3600 → `1h`, 90 → `90s`. */
export function formatAge(seconds: number): string {
  for (const [unit, size] of [
    ["d", 86400],
    ["h", 3600],
    ["m", 60],
  ] as const) {
    if (seconds >= size && seconds % size === 0) return `${seconds / size}${unit}`;
  }
  return `${seconds}s`;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}
