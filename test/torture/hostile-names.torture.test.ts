/**
 * Hostile names through every entry point: `storage.save()` on S3, the filesystem and memory;
 * `uploadTo` strings and functions; `File.name` in an upload; `upload(content, { filename })`;
 * and `prisma.user.attach(...)`. Invariants:
 * - no key outside `location` (the dedicated bucket is listed, and every request the S3 client
 *   sent is checked, through a recording proxy);
 * - each name is either stored under a safe key (under `location`, passing
 *   `validateFileName(key, { allowRelativePath: true })` and the stricter `assertSafeKey`, and
 *   readable back under that key) or rejected with `SuspiciousFileOperationError`; a storage
 *   backend refusing a name for its length (ENAMETOOLONG, S3's key limit) counts as a refusal on
 *   the raw `save()` and developer-written `uploadTo` paths, and is reported, not accepted, on the
 *   paths where the name comes from the client (`File.name`, `filename`, `attach`), where Django
 *   cuts uploaded names to 255 characters;
 * - the filesystem backend never writes outside its root, symbolic links included (the whole
 *   parent directory is snapshotted before and after).
 * Valid PNG content (and an explicit `image/png` type) keeps content rules out of the way.
 */
import { randomBytes } from "node:crypto";
import * as fs from "node:fs/promises";
import * as os from "node:os";
import * as path from "node:path";
import { DeleteBucketCommand, DeleteObjectCommand, ListObjectsV2Command, PutObjectCommand } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import {
  createSession,
  FileSystemStorage,
  MemoryStorage,
  type S3Session,
  S3Storage,
  type Storage,
  SuspiciousFileOperationError,
  upload,
} from "../../src/index.js";
import { s3Files } from "../../src/prisma/extension.js";
import { assertSafeKey, validateFileName } from "../../src/storage/naming.js";
import { createBucket, harnessClient, uniqueBucketName } from "../harness/s3.js";
import { type S3Proxy, startS3Proxy } from "../harness/s3-proxy.js";
import { fileFields, plainClient } from "../prisma/client.js";
import { CORE_NAMES, hostileNames, show } from "./hostile-corpus.js";
import { png } from "./support.js";

const s3 = inject("s3");
const FULL = process.env.TORTURE_NAMES === "full";
/**
 * The filesystem and memory `save()` take the full corpus (cheap); S3 `save()` and the Prisma
 * paths take the core names (all 200+ attacks, without the wrappers) unless `TORTURE_NAMES=full`.
 */
const SAVE_NAMES = hostileNames();
/** Plus names aimed at the filesystem root's link to the outside (harmless elsewhere). */
const LINK_NAMES = ["link/x.png", "link/sub/x.png", "link/", "link"];
const PRISMA_NAMES = [...(FULL ? hostileNames() : CORE_NAMES), ...LINK_NAMES];
const S3_SAVE_NAMES = PRISMA_NAMES;
const run = randomBytes(3).toString("hex");
const bucket = uniqueBucketName("psf-hostile");
const location = `hostile-${run}/in`;
const privateLocation = `hostile-${run}/in-private`;
/** Objects placed outside every location before the run; they must be exactly what is left outside. */
const CANARIES = [`hostile-${run}/canary.txt`, "canary.txt", `hostile-${run}/in-canary/x.txt`];
const PNG = png();

let proxy: S3Proxy;
let session: S3Session;
let tmp: string;
let fsRoot: string;
const plain = plainClient();

/** What happened to one name at one entry point. */
type Outcome = { stored: string } | { rejected: unknown };
/**
 * Problems by kind. `escape` and `unexpected` break the invariant; `unnormalised` (a key kept
 * with empty or `.` segments, which URL parsers collapse) and `lengthNotCut` (a client's name too
 * long for the backend, not cut as Django cuts uploaded names) are defects checked separately.
 */
type ProblemKind = "escape" | "unexpected" | "unnormalised" | "lengthNotCut";
interface Tally {
  stored: number;
  suspicious: number;
  refusedByBackend: number;
  /** Stored names the client's name put into sub-directories of `uploadTo` (Django keeps only the base name). */
  clientDirectories: string[];
  problems: Record<ProblemKind, string[]>;
}
const tallies = new Map<string, Tally>();
function tally(entry: string): Tally {
  let t = tallies.get(entry);
  if (!t) {
    t = {
      stored: 0,
      suspicious: 0,
      refusedByBackend: 0,
      clientDirectories: [],
      problems: { escape: [], unexpected: [], unnormalised: [], lengthNotCut: [] },
    };
    tallies.set(entry, t);
  }
  return t;
}

function messageOf(error: unknown): string {
  const parts: string[] = [];
  for (let e: unknown = error, i = 0; e && i < 4; e = (e as { cause?: unknown }).cause, i++) {
    const err = e as { constructor?: { name?: string }; code?: unknown; message?: string };
    const m = `${err.constructor?.name}${typeof err.code === "string" ? `(${err.code})` : ""}: ${err.message ?? e}`;
    parts.push(m.length > 120 ? `${m.slice(0, 110)}…` : m);
  }
  return parts.join(" ← ");
}

/** A key with an empty or `.` segment: stored as is on S3, but collapsed by URL parsers and some servers. */
function unnormalised(key: string): boolean {
  return key
    .replaceAll("\\", "/")
    .split("/")
    .some((s) => s === "" || s === ".");
}

/** A backend refusing a name for its length: ENAMETOOLONG, S3's KeyTooLongError, or a server error on such a key. */
function isTooLong(error: unknown, name: string): boolean {
  for (let e: unknown = error, i = 0; e && i < 6; e = (e as { cause?: unknown }).cause, i++) {
    const { code, name: errName, message } = e as { code?: string; name?: string; message?: string };
    if (code === "ENAMETOOLONG" || errName === "KeyTooLongError" || /too long/i.test(message ?? "")) return true;
  }
  // s3rver keeps objects as files: a key segment over 255 bytes fails there as an internal error.
  return s3.server === "s3rver" && name.split(/[\\/]/).some((segment) => Buffer.byteLength(segment) > 255);
}

/** The filesystem refusing a path through an existing file (`a` is a file, `a/b` asked for): names collide, nothing escapes. */
function isNotADirectory(error: unknown): boolean {
  for (let e: unknown = error, i = 0; e && i < 6; e = (e as { cause?: unknown }).cause, i++) {
    const code = (e as { code?: string }).code;
    if (code === "NOT_A_DIRECTORY" || code === "ENOTDIR") return true;
  }
  return false;
}

async function attempt(run: () => Promise<string>): Promise<Outcome> {
  try {
    return { stored: await run() };
  } catch (rejected) {
    return { rejected };
  }
}

/** The key a server files an object under: s3rver collapses `.` and empty segments (AWS and MinIO keep keys literally). */
function serverView(key: string): string {
  return s3.server === "s3rver"
    ? key
        .split("/")
        .filter((seg) => seg !== "" && seg !== ".")
        .join("/")
    : key;
}

/**
 * Classifies an outcome. `exists` checks the stored key is really there under that name (omit it
 * when the caller checks all stored keys at once, from `stored`);
 * `clientName`: the name came from the client (a backend length refusal is then a defect).
 */
async function judge(
  entry: string,
  name: string,
  outcome: Outcome,
  opts: {
    exists?: (key: string) => Promise<boolean>;
    stored?: string[];
    clientName: boolean;
    expectedDir?: string;
  },
): Promise<void> {
  const t = tally(entry);
  if ("stored" in outcome) {
    const key = outcome.stored;
    t.stored++;
    try {
      validateFileName(key, { allowRelativePath: true });
      assertSafeKey(key);
    } catch (error) {
      t.problems.escape.push(`${show(name)} → stored as unsafe key ${show(key)}: ${messageOf(error)}`);
      return;
    }
    opts.stored?.push(key);
    if (opts.exists && !(await opts.exists(key))) {
      t.problems.escape.push(`${show(name)} → ${show(key)} is not in the storage under that key`);
    }
    if (unnormalised(key)) t.problems.unnormalised.push(`${show(name)} → stored as ${show(key)}`);
    if (opts.expectedDir !== undefined && path.posix.dirname(key) !== opts.expectedDir.replace(/\/$/, "")) {
      t.clientDirectories.push(`${show(name)} → ${show(key)}`);
    }
    return;
  }
  const error = outcome.rejected;
  if (error instanceof SuspiciousFileOperationError) {
    t.suspicious++;
  } else if (isTooLong(error, name)) {
    t.refusedByBackend++;
    if (opts.clientName) {
      t.problems.lengthNotCut.push(`${show(name)} → reached the backend and failed there: ${messageOf(error)}`);
    }
  } else if (isNotADirectory(error)) {
    t.refusedByBackend++;
  } else if (unnormalised(name)) {
    t.problems.unnormalised.push(`${show(name)} → kept un-normalised, the server refused it: ${messageOf(error)}`);
  } else {
    t.problems.unexpected.push(`${show(name)} → ${messageOf(error)}`);
  }
}

// ------------------------------------------------------------------------------------ helpers

/** Every key of the dedicated bucket. */
async function bucketKeys(): Promise<string[]> {
  const client = harnessClient({ ...s3, bucket });
  const keys: string[] = [];
  let token: string | undefined;
  try {
    do {
      const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token }));
      for (const o of page.Contents ?? []) keys.push(o.Key as string);
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  } finally {
    client.destroy();
  }
  return keys.sort();
}

/** Deletes the dedicated bucket: key by key, a few passes (a batch delete may choke on odd keys). */
async function dropBucket(): Promise<void> {
  const client = harnessClient({ ...s3, bucket });
  try {
    for (let pass = 0; pass < 3; pass++) {
      const keys = await bucketKeys();
      if (keys.length === 0) break;
      for (let i = 0; i < keys.length; i += 50) {
        await Promise.all(
          keys
            .slice(i, i + 50)
            .map((Key) => client.send(new DeleteObjectCommand({ Bucket: bucket, Key })).catch(() => undefined)),
        );
      }
    }
    await client.send(new DeleteBucketCommand({ Bucket: bucket })).catch(() => undefined);
  } finally {
    client.destroy();
  }
}

/** Every entry below `dir` (not following links) with its type and size: a snapshot to diff. */
async function tree(dir: string, skip: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  async function visit(current: string): Promise<void> {
    for (const entry of await fs.readdir(current, { withFileTypes: true })) {
      const full = path.join(current, entry.name);
      if (full === skip) continue;
      const st = await fs.lstat(full);
      const kind = st.isSymbolicLink() ? `link→${await fs.readlink(full)}` : st.isDirectory() ? "dir" : "file";
      out.set(path.relative(dir, full), `${kind}:${st.isFile() ? st.size : ""}:${st.mode}`);
      if (st.isDirectory()) await visit(full);
    }
  }
  await visit(dir);
  return out;
}

function insideRoot(root: string, key: string): boolean {
  const full = path.resolve(root, key);
  return full.startsWith(root + path.sep);
}

// -------------------------------------------------------------------------------------- setup

beforeAll(async () => {
  await createBucket(s3, bucket);
  const client = harnessClient({ ...s3, bucket });
  for (const key of CANARIES) await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: "canary" }));
  client.destroy();
  proxy = await startS3Proxy(s3);
  session = createSession({
    region: s3.region,
    endpoint: proxy.endpoint,
    forcePathStyle: true,
    bucket,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    checksums: "when_required",
  });
  // parent/ holds the storage root, a secret next to it, and a link from inside the root to outside.
  tmp = await fs.realpath(await fs.mkdtemp(path.join(os.tmpdir(), "psf-hostile-")));
  fsRoot = path.join(tmp, "parent", "root");
  await fs.mkdir(fsRoot, { recursive: true });
  await fs.mkdir(path.join(tmp, "parent", "outside"));
  await fs.writeFile(path.join(tmp, "parent", "outside", "secret.txt"), "secret");
  await fs.writeFile(path.join(tmp, "parent", "sibling.txt"), "sibling");
  await fs.symlink(path.join(tmp, "parent", "outside"), path.join(fsRoot, "link"));
});

afterAll(async () => {
  await plain.$disconnect();
  await session?.destroy();
  await proxy?.close();
  await dropBucket();
  if (tmp) await fs.rm(tmp, { recursive: true, force: true });
  const lines: string[] = [];
  for (const [entry, t] of tallies) {
    lines.push(
      `  ${entry}: stored ${t.stored}, SuspiciousFileOperationError ${t.suspicious}, refused by the backend ${t.refusedByBackend}, ` +
        `problems ${Object.entries(t.problems)
          .map(([k, v]) => `${k}=${v.length}`)
          .join(" ")}` +
        (t.clientDirectories.length > 0
          ? `; ${t.clientDirectories.length} stored in client-chosen sub-directories, e.g. ${t.clientDirectories.slice(0, 2).join(", ")}`
          : ""),
    );
  }
  console.log(
    `[torture:hostile-names] ${SAVE_NAMES.length} names (save), ${PRISMA_NAMES.length} (Prisma paths)\n${lines.join("\n")}`,
  );
});

/** The client's requests all stayed inside the locations (lists are checked by their prefix). */
function requestsOutside(): string[] {
  const inside = (p: string) => p.startsWith(`${location}/`) || p.startsWith(`${privateLocation}/`);
  const bad: string[] = [];
  for (const r of proxy.log) {
    const rest = r.path.startsWith(`/${bucket}`) ? r.path.slice(bucket.length + 1).replace(/^\//, "") : undefined;
    if (rest === undefined) bad.push(`${r.method} ${r.path} (another bucket)`);
    else if (rest === "" && r.query.has("delete") && r.deleteKeys) {
      // DeleteObjects names its keys in the body: each must be inside.
      for (const key of r.deleteKeys) if (!inside(key)) bad.push(`${r.method} /${bucket}?delete key ${key}`);
    } else if (rest === "") {
      const prefix = r.query.get("prefix") ?? "";
      if (r.query.has("list-type") ? !inside(prefix) : true)
        bad.push(`${r.method} /${bucket}?${r.query} (bucket level)`);
    } else if (!inside(rest)) bad.push(`${r.method} ${r.path}`);
  }
  return bad;
}

async function expectNothingOutside(): Promise<void> {
  const outside = (await bucketKeys()).filter(
    (k) => !k.startsWith(`${location}/`) && !k.startsWith(`${privateLocation}/`),
  );
  expect(outside, "keys outside the locations").toEqual([...CANARIES].sort());
  expect(requestsOutside(), "requests outside the locations").toEqual([]);
}

function problems(kinds: ProblemKind[], entries: string[] = [...tallies.keys()]): string[] {
  return entries.flatMap((e) => kinds.flatMap((k) => (tallies.get(e)?.problems[k] ?? []).map((p) => `${e}: ${p}`)));
}

function expectNoProblems(entries: string[]): void {
  expect(problems(["escape", "unexpected"], entries), "names neither stored safely nor refused").toEqual([]);
}

// -------------------------------------------------------------------------------------- tests

describe("hostile names: storage.save()", () => {
  it(`S3: ${S3_SAVE_NAMES.length} names stay under location or are refused`, async () => {
    const storage = new S3Storage({ session, bucket, location, maxSegmentBytes: s3.maxSegmentBytes });
    const stored: string[] = [];
    for (const name of S3_SAVE_NAMES) {
      const outcome = await attempt(() => storage.save(name, PNG, { contentType: "image/png" }));
      await judge("save:S3", name, outcome, { stored, clientName: false });
    }
    // Every stored key is in the bucket, under location, as the server files it.
    const listed = new Set(await bucketKeys());
    const missing = stored.filter((k) => !listed.has(serverView(`${location}/${k}`)));
    expect(missing, "stored keys missing from the bucket").toEqual([]);
    await expectNothingOutside();
    expectNoProblems(["save:S3"]);
  }, 300_000);

  it(`filesystem: ${SAVE_NAMES.length} names never write outside the root, symbolic links included`, async () => {
    const storage = new FileSystemStorage({ location: fsRoot });
    const names = [...SAVE_NAMES, ...LINK_NAMES];
    const parent = path.join(tmp, "parent");
    const before = await tree(parent, fsRoot);
    for (const name of names) {
      const outcome = await attempt(() => storage.save(name, PNG));
      await judge("save:filesystem", name, outcome, {
        exists: async (k) => insideRoot(fsRoot, k) && (await storage.exists(k)),
        clientName: false,
      });
    }
    expect(await tree(parent, fsRoot), "the root's parent is unchanged").toEqual(before);
    expect(await fs.readFile(path.join(tmp, "parent", "outside", "secret.txt"), "utf8")).toBe("secret");
    // Nothing new through the link either.
    expect(await fs.readdir(path.join(tmp, "parent", "outside"))).toEqual(["secret.txt"]);
    expectNoProblems(["save:filesystem"]);
  }, 300_000);

  it(`memory: ${SAVE_NAMES.length} names are stored under safe keys or refused`, async () => {
    const storage = new MemoryStorage();
    for (const name of SAVE_NAMES) {
      const outcome = await attempt(() => storage.save(name, PNG));
      await judge("save:memory", name, outcome, { exists: async (k) => storage.keys().includes(k), clientName: false });
    }
    for (const key of storage.keys()) expect(() => assertSafeKey(key)).not.toThrow();
    expectNoProblems(["save:memory"]);
  }, 120_000);
});

describe("hostile names: the Prisma write path", () => {
  /** The column's `uploadTo` for the next write: the runtime reads the metadata it was given at each write. */
  let currentUploadTo: unknown = fileFields.User.fileFields.avatar.uploadTo;
  const avatar = Object.defineProperty({ ...fileFields.User.fileFields.avatar }, "uploadTo", {
    get: () => currentUploadTo,
    enumerable: true,
  });
  const fields = {
    ...fileFields,
    User: { ...fileFields.User, fileFields: { ...fileFields.User.fileFields, avatar } },
  } as typeof fileFields;
  const domain = `@hostile-${run}.torture`;
  let n = 0;

  function client(storage: Storage) {
    return plainClient().$extends(
      s3Files(session, { fields, storages: { default: storage, private: storage, public: new MemoryStorage() } }),
    );
  }
  type Client = ReturnType<typeof client>;

  /** Runs every Prisma entry point over the names against one storage; returns the entries used. */
  async function entryPoints(
    label: string,
    prisma: Client,
    exists: (key: string) => Promise<boolean>,
    missingOf: (keys: string[]) => Promise<string[]> = async (keys) => {
      const missing: string[] = [];
      for (const key of keys) if (!(await exists(key))) missing.push(key);
      return missing;
    },
  ): Promise<string[]> {
    // Rows created here keep their objects until the end: checked all at once, before the cleanup.
    const stored: string[] = [];
    const create = async (value: string) => {
      const row = await prisma.user.create({
        data: { email: `h${n++}${domain}`, badge: "badges/fixed.pdf", avatar: value },
        select: { avatar: true },
      });
      return row.avatar!.name;
    };
    const month = fileFields.User.fileFields.avatar.uploadTo;
    const { strftime } = await import("../../src/storage/naming.js");
    const dir = strftime(month, new Date());
    const target = await prisma.user.create({ data: { email: `target${n++}${domain}`, badge: "badges/fixed.pdf" } });
    try {
      for (const name of PRISMA_NAMES) {
        const plainPng = () => upload(PNG, { filename: "ok.png", contentType: "image/png" });
        currentUploadTo = name;
        await judge(`uploadTo string:${label}`, name, await attempt(() => create(plainPng())), {
          stored,
          clientName: false,
        });
        currentUploadTo = (filename: string) => name + (name.endsWith("/") ? filename : "");
        await judge(`uploadTo function:${label}`, name, await attempt(() => create(plainPng())), {
          stored,
          clientName: false,
        });
        currentUploadTo = month;
        const file = new File([PNG], name, { type: "image/png" });
        await judge(`File.name:${label}`, name, await attempt(() => create(upload(file))), {
          stored,
          clientName: true,
          expectedDir: dir,
        });
        await judge(
          `upload filename:${label}`,
          name,
          await attempt(() => create(upload(PNG, { filename: name, contentType: "image/png" }))),
          { stored, clientName: true, expectedDir: dir },
        );
        await judge(
          `attach:${label}`,
          name,
          await attempt(async () => {
            const f = await prisma.user.attach({ id: target.id }, "avatar", PNG, {
              filename: name,
              contentType: "image/png",
            });
            return f.name;
          }),
          { exists, clientName: true, expectedDir: dir },
        );
      }

      expect(await missingOf([...new Set(stored)]), "stored keys missing from the storage").toEqual([]);
    } finally {
      currentUploadTo = month;
      // Rows go, and their objects with them (through the extension).
      await prisma.user.deleteMany({ where: { email: { endsWith: domain } } });
    }
    return ["uploadTo string", "uploadTo function", "File.name", "upload filename", "attach"].map(
      (e) => `${e}:${label}`,
    );
  }

  it(`S3: ${PRISMA_NAMES.length} names × uploadTo string, uploadTo function, File.name, filename, attach`, async () => {
    const storage = new S3Storage({ session, bucket, location, maxSegmentBytes: s3.maxSegmentBytes });
    const prisma = client(storage);
    try {
      const entries = await entryPoints(
        "S3",
        prisma,
        (k) => storage.exists(k),
        async (keys) => {
          const listed = new Set(await bucketKeys());
          return keys.filter((k) => !listed.has(serverView(`${location}/${k}`)));
        },
      );
      await expectNothingOutside();
      expectNoProblems(entries);
    } finally {
      await prisma.$disconnect();
    }
  }, 600_000);

  it(`filesystem: ${PRISMA_NAMES.length} names × the same entry points, never outside the root`, async () => {
    const root = path.join(tmp, "parent", "prisma-root");
    await fs.mkdir(root);
    await fs.symlink(path.join(tmp, "parent", "outside"), path.join(root, "link"));
    const storage = new FileSystemStorage({ location: root });
    const prisma = client(storage);
    const parent = path.join(tmp, "parent");
    const skip = root;
    const before = await tree(parent, skip);
    try {
      const entries = await entryPoints("filesystem", prisma, async (k) => insideRoot(root, k) && storage.exists(k));
      expect(await tree(parent, skip), "nothing written outside the root").toEqual(before);
      expect(await fs.readdir(path.join(tmp, "parent", "outside"))).toEqual(["secret.txt"]);
      expectNoProblems(entries);
    } finally {
      await prisma.$disconnect();
    }
  }, 600_000);
});

describe("hostile names: defects beyond escaping", () => {
  it("stored keys are normalised: no empty or `.` segments (URL parsers collapse them, so links to such keys break)", () => {
    expect(problems(["unnormalised"])).toEqual([]);
  });

  it("a client's file name too long for the backend is cut (as Django cuts uploaded names) or refused before any I/O", () => {
    expect(problems(["lengthNotCut"])).toEqual([]);
  });
});
