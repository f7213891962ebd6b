#!/usr/bin/env node
/**
 * The `prisma-s3-files` command. Two roles:
 *
 * - **Prisma generator.** `provider = "prisma-s3-files"` in a `generator` block makes
 *   `prisma generate` start this bin (through a shell, in the directory `prisma` runs in) with no
 *   arguments, stdin/stderr as a JSON-RPC pipe and `PRISMA_GENERATOR_INVOCATION=true` in the
 *   environment. No arguments plus either the variable or a non-terminal stdin selects generator
 *   mode. Prisma reads stderr as the protocol channel (other lines end up in its error report).
 * - **CLI.** `prisma-s3-files <command> [args]`; commands live in {@link commands}.
 */

/** A subcommand: gets its arguments, resolves to the exit code. */
type Command = (args: string[]) => Promise<number>;

const USAGE = `Usage: prisma-s3-files <command>

Commands:
  init        Add the file journal model to the Prisma schema (once, before migrating).
  drain       Delete the files whose deletion is due and uploads that never committed (cron).
  sweep       Delete objects no row references (orphans); --dry-run lists them.
  variants    --stale: build image variants missing or made from an old spec.
  help        Show this help; \`help <command>\` shows a command's options.

As a Prisma generator (schema.prisma):
  generator files {
    provider = "prisma-s3-files"
    output   = "../src/generated/files"
  }
`;

/**
 * The CLI's subcommands, by name. A command loads its module lazily, so that the generator mode
 * and `help` do not pay for the others, e.g.
 * `sweep: async (args) => (await import("../cli/sweep-command.js")).sweepCommand(args)`.
 */
const commands: Record<string, Command> = {
  help: async ([topic]) => {
    // `help <command>` is `<command> --help`.
    if (topic !== undefined && topic !== "help" && Object.hasOwn(commands, topic)) return commands[topic]!(["--help"]);
    process.stdout.write(USAGE);
    return 0;
  },
  init: async (args) => (await import("../cli/init-command.js")).initCommand(args),
  drain: async (args) => (await import("../cli/drain-command.js")).drainCommand(args),
  sweep: async (args) => (await import("../cli/sweep-command.js")).sweepCommand(args),
  variants: async (args) => (await import("../cli/variants-command.js")).variantsCommand(args),
};

/** Whether this process was started by `prisma generate`. */
function isGeneratorInvocation(
  args: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
  stdinIsTTY = Boolean(process.stdin.isTTY),
): boolean {
  // Prisma passes no arguments; a command name wins even where the variable leaked into the
  // environment of a process that a generator started.
  if (args.length > 0) return false;
  return env.PRISMA_GENERATOR_INVOCATION === "true" || !stdinIsTTY;
}

async function main(args: string[]): Promise<void> {
  if (isGeneratorInvocation(args)) {
    const { runGenerator } = await import("../prisma/generator/generator.js");
    runGenerator();
    return;
  }
  const [name, ...rest] = args;
  if (name === undefined || name === "--help" || name === "-h") {
    process.stdout.write(USAGE);
    process.exitCode = name === undefined ? 1 : 0;
    return;
  }
  const command = Object.hasOwn(commands, name) ? commands[name] : undefined;
  if (command === undefined) {
    process.stderr.write(`prisma-s3-files: unknown command ${JSON.stringify(name)}\n\n${USAGE}`);
    process.exitCode = 2;
    return;
  }
  process.exitCode = await command(rest);
}

await main(process.argv.slice(2));
