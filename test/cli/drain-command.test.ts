import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { fileURLToPath, pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import {
  type DrainFunction,
  type DrainSummary,
  drainCommand,
  formatDrainFailures,
  formatDrainSummary,
  parseDrainArgs,
} from "../../src/cli/drain-command.js";
import { S3Storage } from "../../src/index.js";
import { type CommandResult, runCommand } from "../harness/run-command.js";
import { listKeys } from "../harness/s3.js";
import { harnessSession, plainClient, provider } from "../prisma/client.js";
import { generatedDir } from "../prisma/providers.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const BIN = "src/bin/prisma-s3-files.ts";

/** Collects what is written. */
function sink() {
  const chunks: string[] = [];
  return {
    chunks,
    write: (c: string) => chunks.push(c),
    get text() {
      return chunks.join("");
    },
  };
}

function io(cwd: string) {
  return { stdout: sink(), stderr: sink(), stdin: Object.assign(new PassThrough(), { isTTY: false }), cwd };
}

const dir = mkdtempSync(join(tmpdir(), "psf-drain-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("arguments", () => {
  it("parses --config and --limit", () => {
    expect(parseDrainArgs([])).toEqual({ config: undefined, limit: undefined, help: false });
    expect(parseDrainArgs(["-c", "x.mjs", "--limit", "500"])).toEqual({ config: "x.mjs", limit: 500, help: false });
    expect(parseDrainArgs(["--limit=1", "-h"])).toEqual({ config: undefined, limit: 1, help: true });
    for (const bad of [
      ["--limit", "0"],
      ["--limit", "-3"],
      ["--limit", "1.5"],
      ["--limit", "many"],
      ["--yes"],
      ["x"],
    ]) {
      expect(() => parseDrainArgs(bad), bad.join(" ")).toThrow();
    }
    expect(() => parseDrainArgs(["--limit", "ten"])).toThrow(
      '--limit takes a positive whole number of records, not "ten"',
    );
  });

  it("usage errors exit 2 before anything is loaded; --help exits 0", async () => {
    const a = io(dir);
    expect(await drainCommand(["--limit", "0"], a)).toBe(2);
    expect(a.stderr.text).toMatch(/--limit takes a positive whole number/);
    expect(a.stderr.text).toContain("Run `prisma-s3-files drain --help`");
    const b = io(dir);
    expect(await drainCommand(["--config", "missing.mjs"], b)).toBe(2);
    expect(b.stderr.text).toMatch(/config file not found: .*missing\.mjs/);
    const c = io(dir);
    expect(await drainCommand([], c)).toBe(2);
    expect(c.stderr.text).toMatch(/no config file: looked for prisma-s3-files\.config\.ts/);
    const d = io(dir);
    expect(await drainCommand(["--help"], d)).toBe(0);
    expect(d.stdout.text).toMatch(/^Usage: prisma-s3-files drain \[--config <path>\] \[--limit <n>\]/);
    expect(d.stdout.text).toContain("npx prisma-s3-files drain");
  });
});

describe("formatting", () => {
  const report = (failed: DrainSummary["failed"]): DrainSummary => ({ claimed: 12, deleted: 9, dropped: 2, failed });

  it("one line of counts", () => {
    expect(formatDrainSummary(report([]))).toBe("drain: 12 claimed, 9 deleted, 2 dropped, 0 failed");
  });

  it("lists failures on their own lines, credentials masked, then how many more", () => {
    const failed = [
      { storage: "default", key: "a.png", error: "Access Denied\n  at https://u:secret@s3.example.com/" },
      { storage: "private", key: "b.pdf", error: "timeout" },
      { storage: "default", key: "c.png", error: "timeout" },
    ];
    expect(formatDrainFailures(report(failed), 2)).toBe(
      "Could not delete (retried by a later drain):\n" +
        "  default  a.png: Access Denied at https://u:***@s3.example.com/\n" +
        "  private  b.pdf: timeout\n" +
        "  ... and 1 more\n",
    );
  });
});

describe("the config module and the drain (a stand-in for drainFiles)", () => {
  const configPath = join(dir, "prisma-s3-files.config.mjs");
  const fields = { User: { fileFields: {}, relations: {}, primaryKey: ["id"] } };
  beforeAll(() => {
    writeFileSync(
      configPath,
      `export default async () => {
  const state = (globalThis.__psfDrainTest ??= { disconnected: 0, destroyed: 0 });
  return {
    client: { name: "client", $disconnect: async () => { state.disconnected++; } },
    fields: ${JSON.stringify(fields)},
    session: { destroy: async () => { state.destroyed++; } },
    storages: { public: { name: "public" } },
  };
};
`,
    );
  });
  const state = () => (globalThis as { __psfDrainTest?: { disconnected: number; destroyed: number } }).__psfDrainTest!;

  function standIn(result: DrainSummary | Error) {
    const calls: Parameters<DrainFunction>[] = [];
    const drain: DrainFunction = async (...args) => {
      calls.push(args);
      if (result instanceof Error) throw result;
      return result;
    };
    return { calls, load: async () => drain };
  }

  it("passes client, session, fields, storages and --limit; prints the summary; closes the client and session", async () => {
    const fake = standIn({ claimed: 3, deleted: 2, dropped: 1, failed: [] });
    const out = io(dir);
    expect(await drainCommand(["--limit", "50"], out, fake.load)).toBe(0);
    expect(out.stdout.text).toBe("drain: 3 claimed, 2 deleted, 1 dropped, 0 failed\n");
    expect(out.stderr.text).toBe("");
    const [client, session, options] = fake.calls[0]!;
    expect(client).toMatchObject({ name: "client" });
    expect(typeof session?.destroy).toBe("function");
    expect(options).toEqual({ fields, storages: { public: { name: "public" } }, limit: 50 });
    expect(state()).toEqual({ disconnected: 1, destroyed: 1 });

    // Without --limit, no limit is passed (drainFiles' default).
    const again = standIn({ claimed: 0, deleted: 0, dropped: 0, failed: [] });
    expect(await drainCommand(["--config", configPath], io(tmpdir()), again.load)).toBe(0);
    expect(again.calls[0]![2]).not.toHaveProperty("limit");
  });

  it("exits 1 when a deletion failed, listing it on stderr", async () => {
    const fake = standIn({
      claimed: 2,
      deleted: 1,
      dropped: 0,
      failed: [{ storage: "default", key: "avatars/x.png", error: "SlowDown" }],
    });
    const out = io(dir);
    expect(await drainCommand([], out, fake.load)).toBe(1);
    expect(out.stdout.text).toBe("drain: 2 claimed, 1 deleted, 0 dropped, 1 failed\n");
    expect(out.stderr.text).toContain("  default  avatars/x.png: SlowDown\n");
  });

  it("exits 1 with one line when the drain or the config throws, and still closes what was opened", async () => {
    const before = { ...state() };
    const out = io(dir);
    const fake = standIn(new Error("connect ECONNREFUSED postgres://app:hunter2@db:5432/app"));
    expect(await drainCommand([], out, fake.load)).toBe(1);
    expect(out.stderr.text).toBe("prisma-s3-files drain: connect ECONNREFUSED postgres://app:***@db:5432/app\n");
    expect(state()).toEqual({ disconnected: before.disconnected + 1, destroyed: before.destroyed + 1 });

    writeFileSync(join(dir, "shape.mjs"), "export default { fields: {} };\n");
    const bad = io(dir);
    expect(await drainCommand(["--config", "shape.mjs"], bad, standIn(new Error("not called")).load)).toBe(1);
    expect(bad.stderr.text).toMatch(/invalid config .*shape\.mjs: client \(a Prisma client\) is missing/);
  });
});

// End to end: the bin, the runtime's drainFiles, the project's database and S3.
describe(`drain against ${provider} and S3`, () => {
  const s3 = inject("s3");
  const tag = randomBytes(4).toString("hex");
  const location = `cli-drain-${tag}`;
  const e2eConfig = join(dir, "e2e.config.ts");

  function cli(...args: string[]): Promise<CommandResult> {
    return runCommand(process.execPath, ["--import", "tsx", BIN, "drain", "--config", e2eConfig, ...args], {
      cwd: ROOT,
      env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true" },
      timeoutMs: 50_000,
    });
  }

  beforeAll(() => {
    const url = (path: string) => pathToFileURL(join(ROOT, path)).href;
    const generated = generatedDir(provider);
    writeFileSync(
      e2eConfig,
      `import { createSession, MemoryStorage, S3Storage } from ${JSON.stringify(url("src/index.ts"))};
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
export default {
  client: new PrismaClient({ adapter: adapterFor(${JSON.stringify(provider)}, ${JSON.stringify(inject("databaseUrl"))}) }),
  fields: fileFields,
  session,
  storages: {
    default: new S3Storage({ session, location: ${JSON.stringify(location)} }),
    private: new S3Storage({ session, location: ${JSON.stringify(`${location}-private`)} }),
    public: new MemoryStorage(),
  },
};
`,
    );
  });

  it("deletes an object whose deletion is due and leaves its record as a tombstone; exit 0", async () => {
    const session = harnessSession();
    const plain = plainClient();
    try {
      const storage = new S3Storage({ session, location });
      const key = await storage.save(`avatars/due-${tag}.png`, Buffer.from("old"));
      const record = await plain.fileJournal.create({
        data: {
          kind: "delete",
          storage: storage.namespace,
          objectKey: key,
          owner: "User.avatar",
          notBefore: new Date(Date.now() - 1000),
        },
      });
      const result = await cli();
      expect(result.code, result.stderr).toBe(0);
      expect(result.stdout).toMatch(/^drain: \d+ claimed, \d+ deleted, \d+ dropped, 0 failed\n$/);
      expect(await listKeys(s3, location)).toEqual([]);
      // Kept for a while: a write copying the deleted key is refused.
      expect(await plain.fileJournal.findUnique({ where: { id: record.id } })).toMatchObject({ kind: "gone" });
    } finally {
      await plain.$disconnect();
      await session.destroy();
    }
  }, 60_000);
});
