import { join } from "node:path";
import { build } from "esbuild";

/**
 * Bundles the page's script (client.ts, which imports `prisma-s3-files/browser` from the source
 * tree) into one ES module, in memory. An application bundles `prisma-s3-files/browser` with its
 * own front-end build instead.
 */
export async function bundleClient(): Promise<string> {
  const result = await build({
    entryPoints: [join(import.meta.dirname, "client.ts")],
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    write: false,
    logLevel: "silent",
  });
  return result.outputFiles[0]!.text;
}
