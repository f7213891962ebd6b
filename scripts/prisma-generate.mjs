#!/usr/bin/env node
// Runs `prisma generate` for the test schema. Generate never executes the native schema
// engine, but the CLI insists the engine file exists; where it could not be downloaded
// (offline machines, npm without install scripts) we point it at a placeholder file.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const env = { ...process.env, PRISMA_HIDE_UPDATE_MESSAGE: "1" };
if (!env.PRISMA_SCHEMA_ENGINE_BINARY) {
  const enginesDir = join(process.cwd(), "node_modules", "@prisma", "engines");
  const haveEngine =
    existsSync(enginesDir) &&
    (await import("node:fs")).readdirSync(enginesDir).some((f) => f.startsWith("schema-engine"));
  if (!haveEngine) {
    const dir = join(tmpdir(), "prisma-s3-files");
    mkdirSync(dir, { recursive: true });
    const placeholder = join(dir, "schema-engine-placeholder");
    writeFileSync(placeholder, "#!/bin/sh\necho 'schema engine not available on this machine' >&2\nexit 1\n", {
      mode: 0o755,
    });
    env.PRISMA_SCHEMA_ENGINE_BINARY = placeholder;
  }
}
const result = spawnSync(
  process.execPath,
  [join("node_modules", "prisma", "build", "index.js"), "generate", ...process.argv.slice(2)],
  {
    stdio: "inherit",
    env,
  },
);
process.exit(result.status ?? 1);
