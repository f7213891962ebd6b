import { defineConfig, type TestProjectInlineConfiguration } from "vitest/config";

/**
 * The suites that go through a database (read and write paths, transactions, direct uploads,
 * drain and sweep, the CLI, the torture suite): they run once per provider. Everything else
 * (session, storages, files, browser, errors, the generator, the package) runs once, in the
 * postgresql project.
 */
const PRISMA_SUITES = [
  "test/harness/database.test.ts",
  "test/prisma/coordination.test.ts",
  "test/prisma/databases.test.ts",
  "test/prisma/direct-uploads-attacks.test.ts",
  "test/prisma/direct-uploads.test.ts",
  "test/prisma/image-metadata.test.ts",
  "test/prisma/image-variants.test.ts",
  "test/prisma/prisma-internals.test.ts",
  "test/prisma/read-paths.test.ts",
  "test/prisma/uploaded-names.test.ts",
  "test/prisma/write-path.test.ts",
  "test/cli/drain-command.test.ts",
  "test/cli/sweep-command.test.ts",
  "test/torture/hostile-names.torture.test.ts",
  "test/torture/huge-file.torture.test.ts",
  "test/torture/journal-gaps.torture.test.ts",
  "test/torture/multiprocess.torture.test.ts",
  "test/torture/races.torture.test.ts",
  "test/torture/write-path.torture.test.ts",
];

// Not `extends: true`: the root's globalSetup (S3) would be merged into each project's and run again.
const shared = {
  // The torture suite (test/torture) runs here at CI sizes; `npm run torture` runs it larger.
  exclude: ["**/node_modules/**"],
  // The project's database (named after it): test/harness/database-setup.ts.
  globalSetup: ["test/harness/database-setup.ts"],
  testTimeout: 60_000,
  env: { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true" },
  hookTimeout: 120_000,
} satisfies TestProjectInlineConfiguration["test"];

export default defineConfig({
  test: {
    // One S3 server per run, provided to every project (test/harness/global-setup.ts).
    globalSetup: ["test/harness/global-setup.ts"],
    projects: [
      {
        test: {
          ...shared,
          name: "postgresql",
          include: ["test/**/*.test.ts"],
          typecheck: { enabled: true, include: ["test/**/*.test-d.ts"], tsconfig: "tsconfig.json" },
        },
      },
      { test: { ...shared, name: "mysql", include: PRISMA_SUITES } },
      { test: { ...shared, name: "sqlite", include: PRISMA_SUITES } },
    ],
  },
});
