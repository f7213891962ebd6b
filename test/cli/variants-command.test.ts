/**
 * `prisma-s3-files variants --stale`: its arguments and output, then the real command, run as a
 * user runs it (the bin, a config module), against the project's database and the harness's S3
 * server: it builds a variant that is missing and deletes one made under an old spec.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { formatVariantsSummary, parseVariantsArgs } from "../../src/cli/variants-command.js";
import { S3Storage } from "../../src/index.js";
import { s3Files } from "../../src/prisma/extension.js";
import { upload } from "../../src/prisma/upload.js";
import { type CommandResult, runCommand } from "../harness/run-command.js";
import { fileFields, harnessSession, plainClient, provider } from "../prisma/client.js";
import { generatedDir } from "../prisma/providers.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const BIN = "src/bin/prisma-s3-files.ts";
const dir = mkdtempSync(join(tmpdir(), "psf-variants-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("arguments and output", () => {
  it("--stale is required; --dry-run and --config are taken; anything else is a usage error", () => {
    expect(parseVariantsArgs(["--stale"])).toEqual({ config: undefined, dryRun: false, help: false });
    expect(parseVariantsArgs(["--stale", "-n", "-c", "x.mjs"])).toEqual({ config: "x.mjs", dryRun: true, help: false });
    expect(parseVariantsArgs(["-h"])).toMatchObject({ help: true });
    expect(() => parseVariantsArgs([])).toThrow("say what to do: --stale");
    expect(() => parseVariantsArgs(["--stale", "--all"])).toThrow();
    expect(() => parseVariantsArgs(["--stale", "x"])).toThrow();
  });

  it("one line of counts, marked when it was a dry run", () => {
    const report = { examined: 12, built: 3, deleted: 2, missing: [], failed: [], dryRun: false };
    expect(formatVariantsSummary(report)).toBe(
      "variants: 12 originals examined, 3 built, 2 deleted, 0 missing, 0 failed",
    );
    expect(formatVariantsSummary({ ...report, dryRun: true })).toBe(
      "variants (dry run): 12 originals examined, 3 to build, 2 to delete, 0 missing, 0 failed",
    );
  });
});

describe(`variants --stale against ${provider} and S3`, () => {
  const s3 = inject("s3");
  const location = `cli-variants-${randomBytes(4).toString("hex")}`;
  const config = join(dir, "variants.config.ts");

  function cli(...args: string[]): Promise<CommandResult> {
    return runCommand(process.execPath, ["--import", "tsx", BIN, "variants", "--config", config, ...args], {
      cwd: ROOT,
      env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true" },
      timeoutMs: 50_000,
    });
  }

  beforeAll(() => {
    const url = (path: string) => pathToFileURL(join(ROOT, path)).href;
    const generated = generatedDir(provider);
    writeFileSync(
      config,
      `import { createSession, S3Storage } from ${JSON.stringify(url("src/index.ts"))};
import { fileFields } from ${JSON.stringify(url(`${generated}/files/index.ts`))};
import { PrismaClient } from ${JSON.stringify(url(`${generated}/prisma/client.ts`))};
import { adapterFor } from ${JSON.stringify(url("test/prisma/providers.ts"))};

const s3 = ${JSON.stringify(s3)};
const session = createSession({
  region: s3.region,
  endpoint: s3.endpoint,
  forcePathStyle: s3.forcePathStyle,
  bucket: s3.bucket,
  credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
  checksums: "when_required",
});
const storage = new S3Storage({ session, location: ${JSON.stringify(location)} });
export default {
  client: new PrismaClient({ adapter: adapterFor(${JSON.stringify(provider)}, ${JSON.stringify(inject("databaseUrl"))}) }),
  fields: fileFields,
  session,
  storages: { default: storage, private: storage, public: storage },
};
`,
    );
  });

  it("builds the missing variant, deletes the old spec's, then finds nothing to do; exit 0", async () => {
    const session = harnessSession();
    const storage = new S3Storage({ session, location });
    const prisma = plainClient().$extends(
      s3Files(session, { fields: fileFields, storages: { default: storage, private: storage, public: storage } }),
    );
    try {
      const png = await sharp({ create: { width: 50, height: 40, channels: 3, background: "#3366aa" } })
        .png()
        .toBuffer();
      const photo = await prisma.photo.create({ data: { picture: upload(png, { filename: "cli.png" }) } });
      const thumb = photo.picture!.variant("thumb").name;
      await storage.delete(thumb);
      const older = `variants/${photo.picture!.name}/card-000000000000.avif`;
      await storage.save(older, Buffer.from("old"), { overwrite: true });

      const dry = await cli("--stale", "--dry-run");
      expect(dry.code, dry.stderr).toBe(0);
      expect(dry.stdout).toMatch(
        /^variants \(dry run\): \d+ originals examined, [1-9]\d* to build, [1-9]\d* to delete, \d+ missing, 0 failed\n$/,
      );
      expect(await storage.exists(thumb)).toBe(false);

      const run = await cli("--stale");
      expect(run.code, run.stderr).toBe(0);
      expect(run.stdout).toMatch(
        /^variants: \d+ originals examined, [1-9]\d* built, [1-9]\d* deleted, \d+ missing, 0 failed\n$/,
      );
      expect(await storage.exists(thumb)).toBe(true);
      expect(await storage.exists(older)).toBe(false);

      const again = await cli("--stale");
      expect(again.stdout).toMatch(/^variants: \d+ originals examined, 0 built, 0 deleted, \d+ missing, 0 failed\n$/);
    } finally {
      await prisma.$disconnect();
      await session.destroy();
    }
  }, 120_000);
});
