import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // The torture suite (issue #8) runs through `npm run torture` until it is green at CI size.
    exclude: process.env.PSF_TORTURE === "1" ? ["**/node_modules/**"] : ["**/node_modules/**", "test/torture/**"],
    globalSetup: ["test/harness/global-setup.ts"],
    testTimeout: 60_000,
    env: { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true" },
    hookTimeout: 120_000,
    typecheck: { enabled: true, include: ["test/**/*.test-d.ts"], tsconfig: "tsconfig.json" },
  },
});
