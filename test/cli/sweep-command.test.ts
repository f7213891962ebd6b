import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { fileURLToPath, pathToFileURL } from "node:url";
import { PutObjectCommand } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import {
  type CommandIO,
  formatAge,
  formatBytes,
  formatProgressLine,
  formatSummary,
  ProgressReporter,
  parseAge,
  parseSweepArgs,
  redactUrls,
  sweepCommand,
} from "../../src/cli/sweep-command.js";
import { MemoryStorage, type S3Session, S3Storage, strftime } from "../../src/index.js";
import { s3Files } from "../../src/prisma/extension.js";
import type { SweepReport } from "../../src/prisma/sweep.js";
import { upload } from "../../src/prisma/upload.js";
import { type CommandResult, runCommand } from "../harness/run-command.js";
import { harnessClient, listKeys } from "../harness/s3.js";
import { fileFields, harnessSession, plainClient, provider } from "../prisma/client.js";
import { generatedDir } from "../prisma/providers.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const BIN = "src/bin/prisma-s3-files.ts";

/** Collects what is written; `isTTY` as asked. */
function sink(isTTY = false) {
  const chunks: string[] = [];
  return {
    isTTY,
    chunks,
    write: (c: string) => chunks.push(c),
    get text() {
      return chunks.join("");
    },
  };
}

describe("arguments", () => {
  it("parses the options, with seconds or a unit for --older-than", () => {
    expect(parseSweepArgs([])).toEqual({
      config: undefined,
      olderThan: 3600,
      multipartOlderThan: 86_400,
      dryRun: false,
      yes: false,
      help: false,
    });
    expect(
      parseSweepArgs(["--config", "x.mjs", "--older-than", "0", "--multipart-older-than", "2h", "--dry-run", "-y"]),
    ).toEqual({
      config: "x.mjs",
      olderThan: 0,
      multipartOlderThan: 7200,
      dryRun: true,
      yes: true,
      help: false,
    });
    expect(parseSweepArgs(["--older-than=90"]).olderThan).toBe(90);
    expect([parseAge("30m"), parseAge("2h"), parseAge("7d"), parseAge("1.5s")]).toEqual([1800, 7200, 604800, 1.5]);
    expect(() => parseSweepArgs(["--multipart-older-than", "soon"])).toThrow(/--multipart-older-than takes seconds/);
    for (const bad of [["--older-than", "-1"], ["--older-than", "1x"], ["--nope"], ["extra"], ["--config"]]) {
      expect(() => parseSweepArgs(bad), bad.join(" ")).toThrow();
    }
  });

  it("usage errors exit 2 before anything is loaded; --help exits 0", async () => {
    const io = (stdinTTY: boolean) => ({
      stdout: sink(),
      stderr: sink(),
      stdin: Object.assign(new PassThrough(), { isTTY: stdinTTY }),
      cwd: tmpdir(),
    });
    const a = io(false);
    expect(await sweepCommand(["--older-than", "soon"], a)).toBe(2);
    expect(a.stderr.text).toMatch(/--older-than takes seconds/);
    const b = io(false);
    expect(await sweepCommand([], b)).toBe(2); // would delete, nobody to ask
    expect(b.stderr.text).toMatch(/--yes/);
    const c = io(true);
    expect(await sweepCommand(["--dry-run", "--config", "missing.mjs"], c)).toBe(2);
    expect(c.stderr.text).toMatch(/config file not found: .*missing\.mjs/);
    const d = io(true);
    const empty = mkdtempSync(join(tmpdir(), "psf-sweep-none-"));
    d.cwd = empty;
    expect(await sweepCommand(["--dry-run"], d)).toBe(2);
    expect(d.stderr.text).toMatch(
      /prisma-s3-files\.config\.ts and prisma-s3-files\.config\.mjs and prisma-s3-files\.config\.js/,
    );
    rmSync(empty, { recursive: true });
    const e = io(false);
    expect(await sweepCommand(["--help"], e)).toBe(0);
    expect(e.stdout.text).toMatch(/--older-than/);
    expect(e.stdout.text).toMatch(/npm install -D tsx/);
  });
});

describe("formatting", () => {
  const noUploads = (): SweepReport["multipart"] => ({
    examined: 0,
    abandoned: [],
    aborted: 0,
    failed: [],
    unsupported: [],
    listFailed: [],
  });
  const report = (dryRun: boolean, orphans: SweepReport["orphans"]): SweepReport => ({
    examined: 9,
    orphans,
    deleted: dryRun ? 0 : orphans.length,
    failed: [],
    multipart: noUploads(),
    dryRun,
  });
  const examined = new Map([
    ["default", 6],
    ["private", 3],
    ["public", 0],
  ]);

  it("a dry run: a table per storage, 'would delete N objects' and the keys", () => {
    const text = formatSummary(
      report(true, [
        { storage: "default", key: "avatars/a.png" },
        { storage: "private", key: "badges/b.pdf" },
      ]),
      { examined, olderThan: 3600 },
    );
    expect(text).toBe(
      [
        "Dry run, nothing deleted: 9 objects examined, 2 orphans older than 1h.",
        "  storage  examined  orphans",
        "  default         6        1",
        "  private         3        1",
        "  public          0        0",
        "Would delete 2 objects:",
        "  default  avatars/a.png",
        "  private  badges/b.pdf",
        "Incomplete multipart uploads: 0 examined, 0 abandoned.",
        "",
      ].join("\n"),
    );
  });

  it("lists the first 20 keys and counts the rest", () => {
    const orphans = Array.from({ length: 23 }, (_, i) => ({ storage: "default", key: `k/${i}` }));
    const lines = formatSummary(report(true, orphans)).trimEnd().split("\n");
    expect(lines).toContain("Would delete 23 objects:");
    expect(lines.filter((l) => /^ {2}default {2}k\//.test(l))).toHaveLength(20);
    expect(lines.at(-2)).toBe("  ... and 3 more");
  });

  it("a real run: deleted per storage, bytes where the report knows sizes", () => {
    const text = formatSummary(
      report(false, [
        { storage: "default", key: "a", size: 1000 },
        { storage: "default", key: "b", size: 2000 },
        { storage: "private", key: "c" },
      ]),
      { examined, olderThan: 0 },
    );
    expect(text).toBe(
      [
        "Swept 9 objects: 3 orphans older than 0s, 3 deleted.",
        "  storage  examined  orphans    bytes  deleted",
        "  default         6        2  2.9 KiB        2",
        "  private         3        1        ?        1",
        "  public          0        0      0 B        0",
        "Deleted 3 objects.",
        "Incomplete multipart uploads: 0 examined, 0 abandoned, 0 aborted.",
        "",
      ].join("\n"),
    );
    expect(formatSummary(report(true, []))).toMatch(/Would delete 0 objects\.\n/);
  });

  it("failed deletions and incomplete multipart uploads: counted, listed, and where the server cannot list them", () => {
    const initiated = new Date(0);
    const real: SweepReport = {
      ...report(false, [
        { storage: "default", key: "a" },
        { storage: "default", key: "b" },
      ]),
      deleted: 1,
      failed: [{ storage: "default", key: "b", error: 'Could not delete "b" (AccessDenied)' }],
      multipart: {
        examined: 4,
        abandoned: [
          { storage: "default", key: "_pending/x/a.bin", uploadId: "u1", initiated },
          { storage: "default", key: "posts/covers/c.bin", uploadId: "u2", initiated },
        ],
        aborted: 1,
        failed: [{ storage: "default", key: "posts/covers/c.bin", uploadId: "u2", error: "Could not abort it" }],
        unsupported: ["private"],
        listFailed: [{ storage: "public", error: "Could not list the multipart uploads (AccessDenied)" }],
      },
    };
    expect(formatSummary(real, { examined, olderThan: 0, multipartOlderThan: 86_400 })).toBe(
      [
        "Swept 9 objects: 2 orphans older than 0s, 1 deleted.",
        "  storage  examined  orphans  deleted",
        "  default         6        2        1",
        "  private         3        0        0",
        "  public          0        0        0",
        "Deleted 1 object.",
        "Could not delete 1 object (still stored):",
        '  default  b: Could not delete "b" (AccessDenied)',
        "Incomplete multipart uploads: 4 examined, 2 abandoned older than 1d or of expired grants, 1 aborted.",
        "Could not abort 1 upload:",
        "  default  posts/covers/c.bin (upload ID u2): Could not abort it",
        "  not swept on private: the S3 server cannot list multipart uploads",
        "  not swept on public: Could not list the multipart uploads (AccessDenied)",
        "",
      ].join("\n"),
    );
    const dry: SweepReport = {
      ...real,
      dryRun: true,
      deleted: 0,
      failed: [],
      multipart: { ...real.multipart, aborted: 0, failed: [] },
    };
    expect(formatSummary(dry, { multipartOlderThan: 3600 })).toMatch(
      /^Incomplete multipart uploads: 4 examined, 2 abandoned older than 1h or of expired grants\.\nWould abort 2 uploads:\n {2}default {2}_pending\/x\/a\.bin \(upload ID u1\)\n {2}default {2}posts\/covers\/c\.bin \(upload ID u2\)\n/m,
    );
  });

  it("bytes, ages and secrets in messages", () => {
    expect([formatBytes(0), formatBytes(1023), formatBytes(1536), formatBytes(50 * 1024 ** 2)]).toEqual([
      "0 B",
      "1023 B",
      "1.5 KiB",
      "50 MiB",
    ]);
    expect([formatAge(90), formatAge(120), formatAge(86400), formatAge(1.5)]).toEqual(["90s", "2m", "1d", "1.5s"]);
    expect(redactUrls("can't reach postgres://app:s3cr3t@db:5432/x nor https://h/p")).toBe(
      "can't reach postgres://app:***@db:5432/x nor https://h/p",
    );
  });

  it("progress: a \\r bar on a terminal, plain lines otherwise", () => {
    expect(formatProgressLine("sweep", 1, 3, { storage: "private", examined: 120, orphans: 4 })).toBe(
      "sweep [#######-------------] 1/3 storages  private: examined 120, orphans 4",
    );
    const tty = sink(true);
    const bar = new ProgressReporter(tty, 2);
    bar.update({ storage: "default", examined: 5, orphans: 1 });
    bar.update({ storage: "default", examined: 5, orphans: 2 });
    bar.update({ storage: "private", examined: 3, orphans: 0 });
    bar.finish();
    expect(tty.chunks.every((c) => c.startsWith("\r") || c === "\n")).toBe(true);
    expect(tty.chunks.at(-2)).toBe(
      `\r${formatProgressLine("sweep", 2, 2, { storage: "private", examined: 3, orphans: 0 })}\x1b[K`,
    );
    expect(tty.chunks.at(-1)).toBe("\n");

    let now = 0;
    const plain = sink(false);
    const lines = new ProgressReporter(plain, 2, "dry run", () => now);
    lines.update({ storage: "default", examined: 5, orphans: 1 });
    now = 2500; // a long storage reports every few seconds
    lines.update({ storage: "default", examined: 5, orphans: 2 });
    lines.update({ storage: "default", examined: 5, orphans: 2 });
    lines.update({ storage: "private", examined: 3, orphans: 0 });
    lines.finish();
    expect(plain.text).toBe(
      [
        "dry run: examining 2 storages",
        "dry run: default: examined 5, orphans 2 so far",
        "dry run: default: examined 5, orphans 2",
        "dry run: private: examined 3, orphans 0",
        "",
      ].join("\n"),
    );
    expect(plain.text).not.toMatch(/\r/);
    expect([...lines.examined]).toEqual([
      ["default", 5],
      ["private", 3],
    ]);
  });
});

describe(`sweep against ${provider} and S3`, () => {
  const s3 = inject("s3");
  const tag = randomBytes(4).toString("hex");
  const location = `cli-sweep-${tag}`;
  const privateLocation = `${location}-private`;
  const plain = plainClient();
  const dir = mkdtempSync(join(tmpdir(), "psf-sweep-"));
  const configPath = join(dir, "config.ts");
  let session: S3Session;
  let prisma: ReturnType<typeof makeClient>;
  /** Objects rows reference, as `storage key`. */
  let referenced: string[];
  /** Objects no row references, as `storage key`. */
  let orphans: string[];
  /** An object outside every file column's prefix: never examined. */
  const outside = `notes/keep-${tag}.txt`;

  const PNG = Buffer.from(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000" +
      "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082",
    "hex",
  );

  function makeClient() {
    const storages = {
      default: new S3Storage({ session, location }),
      private: new S3Storage({ session, location: privateLocation }),
      public: new MemoryStorage({ baseUrl: "https://public.example.com/" }),
    };
    return plainClient().$extends(s3Files(session, { fields: fileFields, storages }));
  }

  /** Every object of both locations, as `storage key`. */
  async function bucket(): Promise<string[]> {
    const [d, p] = await Promise.all([listKeys(s3, location), listKeys(s3, privateLocation)]);
    return [...d.map((k) => `default ${k}`), ...p.map((k) => `private ${k}`)].sort();
  }

  /** Runs the bin as users do (through tsx here: the package is not built), stdin not a terminal. */
  function cli(...args: string[]): Promise<CommandResult> {
    return runCommand(process.execPath, ["--import", "tsx", BIN, "sweep", "--config", configPath, ...args], {
      cwd: ROOT,
      env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true" },
      timeoutMs: 50_000,
    });
  }

  /** The keys a dry-run summary lists, as `storage key`. */
  function listed(stdout: string): string[] {
    const lines = stdout.split("\n");
    const start = lines.findIndex((l) => /^Would delete \d+ objects?:$/.test(l));
    if (start === -1) return [];
    const keys: string[] = [];
    for (const line of lines.slice(start + 1)) {
      const m = /^ {2}(\S+) {2,}(\S.*)$/.exec(line);
      if (!m || line.startsWith("  ... and")) break;
      keys.push(`${m[1]} ${m[2]}`);
    }
    return keys.sort();
  }

  beforeAll(async () => {
    session = harnessSession();
    prisma = makeClient();
    const url = (path: string) => pathToFileURL(join(ROOT, path)).href;
    const generated = generatedDir(provider);
    // The config as users write it, with an async factory; absolute URLs since it lives outside the repository.
    writeFileSync(
      configPath,
      `import { createSession, MemoryStorage, S3Storage } from ${JSON.stringify(url("src/index.ts"))};
import { fileFields } from ${JSON.stringify(url(`${generated}/files/index.ts`))};
import { PrismaClient } from ${JSON.stringify(url(`${generated}/prisma/client.ts`))};
import { adapterFor } from ${JSON.stringify(url("test/prisma/providers.ts"))};

const s3 = ${JSON.stringify(s3)};

export default async () => {
  const session = createSession({
    region: s3.region,
    endpoint: s3.endpoint,
    forcePathStyle: s3.forcePathStyle,
    bucket: s3.bucket,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    checksums: "when_required",
  });
  const client = new PrismaClient({ adapter: adapterFor(${JSON.stringify(provider)}, ${JSON.stringify(inject("databaseUrl"))}) });
  return {
    client,
    fields: fileFields,
    session,
    storages: {
      default: new S3Storage({ session, location: ${JSON.stringify(location)} }),
      private: new S3Storage({ session, location: ${JSON.stringify(privateLocation)} }),
      public: new MemoryStorage(),
    },
  };
};
`,
    );

    // Names carry the tag: other test files share the database, and a row of theirs holding the
    // same relative key would count as a reference.
    const pdf = (name: string) => upload(Buffer.from(`%PDF-1.7 ${name}`), { filename: `${name}-${tag}.pdf` });
    const kept = await prisma.user.create({
      data: {
        email: `keep-${tag}@example.com`,
        avatar: upload(PNG, { filename: `keep-${tag}.png` }),
        badge: pdf("keep"),
        posts: { create: [{ title: "kept", cover: upload(PNG, { filename: `kept-cover-${tag}.png` }) }] },
      },
      include: { posts: true },
    });
    const keptPost = kept.posts[0]!;
    const keptAttachment = await prisma.attachment.create({ data: { postId: keptPost.id, original: pdf("kept-att") } });
    const gone = await prisma.user.create({
      data: {
        email: `gone-${tag}@example.com`,
        avatar: upload(PNG, { filename: `gone-${tag}.png` }),
        badge: pdf("gone"),
        posts: { create: [{ title: "gone", cover: upload(PNG, { filename: `gone-cover-${tag}.png` }) }] },
      },
      include: { posts: true },
    });
    const gonePost = gone.posts[0]!;
    const goneAttachment = await prisma.attachment.create({ data: { postId: gonePost.id, original: pdf("gone-att") } });

    // The plain client: the database cascades to Post and Attachment, and nobody deletes the objects.
    await plain.user.delete({ where: { id: gone.id } });
    expect(await plain.attachment.findUnique({ where: { id: goneAttachment.id } })).toBeNull();

    // Objects put straight into the bucket: four under file columns' prefixes, one outside.
    // Strays at several depths under avatars/: the sweep must find them at any level (it lists
    // flat; s3rver's delimited listings also drop directories that hold only directories).
    const year = strftime("%Y", new Date());
    const client = harnessClient(s3);
    try {
      for (const key of [
        `${location}/avatars/stray-${tag}.bin`,
        `${location}/avatars/${year}/stray-${tag}.bin`,
        `${location}/posts/covers/stray-${tag}.bin`,
        `${privateLocation}/attachments/original/deep/stray-${tag}.pdf`,
        `${location}/${outside}`,
      ]) {
        await client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: key, Body: "stray" }));
      }
    } finally {
      client.destroy();
    }

    referenced = [
      `default ${kept.avatar!.name}`,
      `private ${kept.badge.name}`,
      `default ${keptPost.cover!.name}`,
      `private ${keptAttachment.original.name}`,
    ].sort();
    orphans = [
      `default ${gone.avatar!.name}`,
      `private ${gone.badge.name}`,
      `default ${gonePost.cover!.name}`,
      `private ${goneAttachment.original.name}`,
      `default avatars/stray-${tag}.bin`,
      `default avatars/${year}/stray-${tag}.bin`,
      `default posts/covers/stray-${tag}.bin`,
      `private attachments/original/deep/stray-${tag}.pdf`,
    ].sort();
    expect(await bucket()).toEqual([...referenced, ...orphans, `default ${outside}`].sort());
  });

  afterAll(async () => {
    await prisma.$disconnect();
    await plain.$disconnect();
    await session.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  it("--dry-run lists exactly the orphans and deletes nothing", async () => {
    const before = await bucket();
    const { code, stdout, stderr } = await cli("--dry-run", "--older-than", "0");
    expect(stderr).not.toMatch(/\r/); // not a terminal: plain progress lines
    expect(stderr).toMatch(/^dry run: default: examined 7, orphans 5$/m);
    expect(stderr).toMatch(/^dry run: private: examined 5, orphans 3$/m);
    expect(code, stderr).toBe(0);
    expect(stdout).toMatch(/^Dry run, nothing deleted: 12 objects examined, 8 orphans older than 0s\.$/m);
    expect(stdout).toMatch(/^ {2}default +7 +5 +\d+ B$/m);
    expect(stdout).toMatch(/^ {2}private +5 +3 +35 B$/m);
    expect(stdout).toMatch(/^Would delete 8 objects:$/m);
    expect(listed(stdout)).toEqual(orphans);
    expect(await bucket()).toEqual(before);
  });

  it("deleting without --yes when stdin is not a terminal exits 2 and deletes nothing", async () => {
    const before = await bucket();
    const { code, stdout, stderr } = await cli("--older-than", "0");
    expect(code).toBe(2);
    expect(stderr).toMatch(/stdin is not a terminal.*\n.*--yes/);
    expect(stdout).toBe("");
    expect(await bucket()).toEqual(before);
  });

  it("--older-than 3600 spares young orphans", async () => {
    const before = await bucket();
    const { code, stdout, stderr } = await cli("--older-than", "3600", "--yes");
    expect(code, stderr).toBe(0);
    expect(stdout).toMatch(/^Swept 12 objects: 0 orphans older than 1h, 0 deleted\.$/m);
    expect(stdout).toMatch(/^Deleted 0 objects\.$/m);
    expect(await bucket()).toEqual(before);
  });

  it("--older-than 0 --yes deletes exactly the orphans and keeps every referenced object", async () => {
    const { code, stdout, stderr } = await cli("--older-than", "0", "--yes");
    expect(code, stderr).toBe(0);
    expect(stderr).toMatch(/^sweep: private: examined \d+, orphans 3$/m);
    expect(stdout).toMatch(/^Swept 12 objects: 8 orphans older than 0s, 8 deleted\.$/m);
    expect(stdout).toMatch(/^ {2}storage +examined +orphans +bytes +deleted$/m);
    expect(stdout).toMatch(/^ {2}default +7 +5 +\d+ B +5$/m);
    expect(stdout).toMatch(/^Deleted 8 objects\.$/m);
    expect(await bucket()).toEqual([...referenced, `default ${outside}`].sort());
    const again = await cli("--dry-run", "--older-than", "0");
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toMatch(/^Would delete 0 objects\.$/m);
  });

  it("on a terminal it asks after a dry run: 'n' keeps everything, 'y' deletes what it showed", async () => {
    const stray = `posts/covers/asked-${tag}.bin`;
    const client = harnessClient(s3);
    await client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: `${location}/${stray}`, Body: "x" }));
    client.destroy();
    const before = await bucket();

    // In this process, with a terminal faked on stdin and stderr; the same config module.
    const terminal = (answer: string) => {
      const stdin = Object.assign(new PassThrough(), { isTTY: true });
      const stderr = sink(true);
      const io: CommandIO = {
        stdout: sink(),
        stderr: {
          isTTY: true,
          write: (c: string) => {
            stderr.write(c);
            if (c.includes("[y/N]")) stdin.end(`${answer}\n`);
          },
        },
        stdin,
        cwd: ROOT,
      };
      return { io, stdout: io.stdout as ReturnType<typeof sink>, stderr };
    };

    const no = terminal("n");
    expect(await sweepCommand(["--config", configPath, "--older-than", "0"], no.io)).toBe(1);
    expect(no.stderr.text).toMatch(/Delete 1 object\? \[y\/N\] /);
    expect(no.stderr.text).toMatch(/Aborted; nothing was deleted/);
    expect(no.stderr.text).toMatch(/\rdry run \[#{20}\] 3\/3 storages/); // the bar, redrawn in place
    expect(listed(no.stdout.text)).toEqual([`default ${stray}`]);
    expect(await bucket()).toEqual(before);

    const yes = terminal("y");
    expect(await sweepCommand(["--config", configPath, "--older-than", "0"], yes.io)).toBe(0);
    expect(yes.stdout.text).toMatch(/^Would delete 1 object:$/m);
    expect(yes.stdout.text).toMatch(/^Deleted 1 object\.$/m);
    expect(await bucket()).toEqual(before.filter((k) => k !== `default ${stray}`));
  });

  // Runs where the server has ListMultipartUploads (RGW, MinIO, AWS S3); on s3rver the summary
  // says the server cannot list them (formatting test above; sweepOrphans in direct-uploads.test.ts).
  it.skipIf(s3.server === "s3rver")(
    "aborts incomplete multipart uploads older than --multipart-older-than and prints the count",
    async () => {
      const storage = new S3Storage({ session, location });
      const name = `avatars/crashed-${tag}.bin`;
      const uploadId = await storage.createMultipartUpload(name, { contentType: "application/octet-stream" });
      const uploads = async () => {
        const found: string[] = [];
        for await (const u of storage.listMultipartUploads("")) found.push(`${u.name} ${u.uploadId}`);
        return found;
      };
      expect(await uploads()).toEqual([`${name} ${uploadId}`]);
      // The default (24 h) spares it.
      const young = await cli("--yes");
      expect(young.code, young.stderr).toBe(0);
      expect(young.stdout).toMatch(
        /^Incomplete multipart uploads: 1 examined, 0 abandoned older than 1d or of expired grants, 0 aborted\.$/m,
      );
      expect(await uploads()).toHaveLength(1);
      const dry = await cli("--dry-run", "--multipart-older-than", "0");
      expect(dry.code, dry.stderr).toBe(0);
      expect(dry.stdout).toMatch(
        /^Incomplete multipart uploads: 1 examined, 1 abandoned older than 0s or of expired grants\.$/m,
      );
      expect(dry.stdout).toContain(`Would abort 1 upload:\n  default  ${name} (upload ID ${uploadId})\n`);
      expect(await uploads()).toHaveLength(1);
      const swept = await cli("--yes", "--multipart-older-than", "0");
      expect(swept.code, swept.stderr).toBe(0);
      expect(swept.stdout).toMatch(
        /^Incomplete multipart uploads: 1 examined, 1 abandoned older than 0s or of expired grants, 1 aborted\.$/m,
      );
      expect(await uploads()).toEqual([]);
    },
  );

  it("a failing config exits 1 with its message, without a stack", async () => {
    const broken = join(dir, "broken.mjs");
    writeFileSync(
      broken,
      `export default () => { throw new Error("cannot reach postgres://app:hunter2@db.internal:5432/app"); };\n`,
    );
    const child = await new Promise<{ code: number | null; stderr: string }>((resolvePromise) => {
      const c = spawn(process.execPath, ["--import", "tsx", BIN, "sweep", "--config", broken, "--dry-run"], {
        cwd: ROOT,
      });
      let stderr = "";
      c.stderr.on("data", (d: Buffer) => {
        stderr += d.toString();
      });
      c.stdin.end();
      c.on("close", (code) => resolvePromise({ code, stderr }));
    });
    expect(child.code).toBe(1);
    expect(child.stderr).toBe("prisma-s3-files sweep: cannot reach postgres://app:***@db.internal:5432/app\n");

    const shape = join(dir, "shape.mjs");
    writeFileSync(shape, `export default { fields: {} };\n`);
    const io = { stdout: sink(), stderr: sink(), stdin: Object.assign(new PassThrough(), { isTTY: false }), cwd: dir };
    expect(await sweepCommand(["--config", "shape.mjs", "--dry-run"], io)).toBe(1);
    expect(io.stderr.text).toMatch(/invalid config .*shape\.mjs: client \(a Prisma client\) is missing/);
  });
});
