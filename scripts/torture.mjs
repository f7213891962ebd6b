#!/usr/bin/env node
// `npm run torture`: the torture suite (test/torture) at its large sizes; `npm test` runs it at
// CI sizes (`npx vitest run test/torture` alone). Every size can still be set from the
// environment, which wins:
//   TORTURE_SEED=123 npm run torture            replays a write-path sequence
//   TORTURE_OPS=5000 npm run torture -- -t write  fewer operations, one file
// Extra arguments go to vitest.
import { spawnSync } from "node:child_process";
import { join } from "node:path";

const sizes = {
  TORTURE_OPS: "20000", // write-path operations
  TORTURE_HUGE_MIB: "1024", // the huge file
  TORTURE_NAMES: "full", // every hostile name through every entry point
  TORTURE_OUTAGE_OPS: "50000", // operations across the credential outages
  TORTURE_RACE_SAVES: "500", // concurrent saves of one name
  TORTURE_RACE_REPLACES: "200", // concurrent replaces of one record's file
  TORTURE_MP_OPS: "20000", // multi-process write path, crash mode (test/torture/multiprocess.torture.test.ts)
  TORTURE_MP_CRASHES: "100", // kill -9s among them
  TORTURE_MP_PLAIN_OPS: "5000", // multi-process write path without crashes
};
const env = { ...sizes, ...process.env };

const run = (args) => spawnSync(process.execPath, args, { stdio: "inherit", env });

// The generated clients the tests import (what `pretest` does for `npm test`).
const generated = run([join("scripts", "prisma-generate.mjs")]);
if (generated.status !== 0) process.exit(generated.status ?? 1);

const shown = Object.keys(sizes)
  .map((k) => `${k}=${env[k]}`)
  .join(" ");
console.log(`torture: ${shown}`);
// s3rver signs ListObjectsV2 continuation tokens with DES, which OpenSSL 3 only has in its legacy
// provider: without it, listing more than 1,000 objects (the full name corpus) fails with a 500.
const result = run([
  "--openssl-legacy-provider",
  join("node_modules", "vitest", "vitest.mjs"),
  "run",
  "test/torture",
  ...process.argv.slice(2),
]);
process.exit(result.status ?? 1);
