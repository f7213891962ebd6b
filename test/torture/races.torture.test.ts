/**
 * Races. (1) `fileOverwrite: false` under concurrency: N saves of one name at once give N
 * distinct objects with N distinct contents, on S3 (the harness server, one process; and "several
 * processes" — storages with separate in-process reservations — against a server with conditional
 * writes), the filesystem and memory. (2) M concurrent replaces of one record's file through the
 * Prisma extension: at the end exactly one object is referenced and every other upload is gone.
 * Sizes: `TORTURE_RACE_SAVES` (default 100), `TORTURE_RACE_REPLACES` (default 50).
 */
import { randomBytes } from "node:crypto";
import * as fs from "node:fs/promises";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import {
  createSession,
  FileSystemStorage,
  MemoryStorage,
  type S3Session,
  S3Storage,
  type Storage,
  upload,
} from "../../src/index.js";
import { s3Files } from "../../src/prisma/extension.js";
import { listKeys } from "../harness/s3.js";
import { type S3Proxy, startS3Proxy } from "../harness/s3-proxy.js";
import { fileFields, plainClient } from "../prisma/client.js";
import { envInt, png } from "./support.js";

const s3 = inject("s3");
const SAVES = envInt("TORTURE_RACE_SAVES", 100);
const REPLACES = envInt("TORTURE_RACE_REPLACES", 50);
const run = randomBytes(3).toString("hex");
let session: S3Session;
let proxy: S3Proxy;
let proxied: S3Session;
let tmp: string;
const plain = plainClient();

const sessionFor = (endpoint: string) =>
  createSession({
    region: s3.region,
    endpoint,
    forcePathStyle: s3.forcePathStyle,
    bucket: s3.bucket,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    checksums: "when_required",
    maxSockets: 200,
  });

beforeAll(async () => {
  session = sessionFor(s3.endpoint);
  // Conditional writes for servers that ignore If-None-Match (s3rver): what AWS and MinIO do natively.
  const emulate = s3.server === "s3rver";
  proxy = await startS3Proxy(s3, { emulateConditionalWrites: emulate, emulateAbortMultipart: emulate });
  proxied = sessionFor(proxy.endpoint);
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), "psf-races-"));
});

afterAll(async () => {
  await plain.$disconnect();
  await session?.destroy();
  await proxied?.destroy();
  await proxy?.close();
  if (tmp) await fs.rm(tmp, { recursive: true, force: true });
});

/** N saves of one name at once (content i is `race i`); returns the names they were stored under. */
async function saveAll(storages: Storage[], n: number, name = "same.txt"): Promise<string[]> {
  return Promise.all(
    Array.from({ length: n }, (_, i) => storages[i % storages.length]!.save(name, Buffer.from(`race ${i}`))),
  );
}

/** Each stored name holds a different one of the N contents. */
async function expectDistinctContents(storage: Storage, names: string[]): Promise<void> {
  const bodies = await Promise.all(names.map(async (n) => Buffer.from(await storage.read(n)).toString()));
  expect(new Set(bodies).size).toBe(names.length);
  expect(bodies.every((b) => /^race \d+$/.test(b))).toBe(true);
}

describe(`${SAVES} concurrent saves of one name, fileOverwrite off`, () => {
  it("S3, one process: distinct objects", async () => {
    const location = `torture/race-${run}/s3`;
    const storage = new S3Storage({ session, location });
    const names = await saveAll([storage], SAVES);
    expect(new Set(names).size).toBe(SAVES);
    expect(await listKeys(s3, location)).toEqual([...names].sort());
    await expectDistinctContents(storage, names);
  }, 120_000);

  it("S3, four processes (separate reservations) against a server with conditional writes: distinct objects", async () => {
    const location = `torture/race-${run}/s3-procs`;
    class OtherProcess extends S3Storage {
      readonly #scope = randomBytes(8).toString("hex");
      protected override reservationScope(): string {
        return this.#scope;
      }
    }
    const storages = Array.from(
      { length: 4 },
      () => new OtherProcess({ session: proxied, location, conditionalWrites: true }),
    );
    const names = await saveAll(storages, SAVES);
    expect(new Set(names).size).toBe(SAVES);
    expect(await listKeys(s3, location)).toEqual([...names].sort());
    await expectDistinctContents(storages[0]!, names);
  }, 120_000);

  it("filesystem, one process and two instances on one root: distinct files", async () => {
    const location = path.join(tmp, "fs");
    const a = new FileSystemStorage({ location });
    const b = new FileSystemStorage({ location });
    const names = await saveAll([a, b], SAVES);
    expect(new Set(names).size).toBe(SAVES);
    expect((await fs.readdir(location)).sort()).toEqual([...names].sort());
    await expectDistinctContents(a, names);
  }, 120_000);

  it("memory: distinct objects", async () => {
    const storage = new MemoryStorage();
    const names = await saveAll([storage], SAVES);
    expect(new Set(names).size).toBe(SAVES);
    expect(storage.keys()).toEqual([...names].sort());
    await expectDistinctContents(storage, names);
  });
});

describe(`${REPLACES} concurrent replaces of one record's file`, () => {
  const location = `torture/race-${run}/replace`;
  let storage: S3Storage;
  let prisma: ReturnType<typeof makeClient>;
  const reported: unknown[] = [];
  function makeClient() {
    return plainClient().$extends(
      s3Files(session, {
        fields: fileFields,
        storages: {
          default: storage,
          private: new S3Storage({ session, location: `${location}-private` }),
          public: new MemoryStorage(),
        },
        onCleanupError: (e) => reported.push(e),
      }),
    );
  }
  beforeAll(() => {
    storage = new S3Storage({ session, location });
  });
  afterAll(() => prisma?.$disconnect());

  /** Runs `replace(i)` M times at once on one row; then one object is referenced and it is the only one left. */
  async function race(label: string, replace: (id: number, i: number) => Promise<unknown>): Promise<void> {
    prisma ??= makeClient();
    const user = await prisma.user.create({
      data: {
        email: `${label}-${run}@race.torture`,
        badge: "badges/race.pdf",
        avatar: upload(png(), { filename: `${label}-start.png` }),
      },
    });
    const results = await Promise.allSettled(Array.from({ length: REPLACES }, (_, i) => replace(user.id, i)));
    expect(results.filter((r) => r.status === "rejected")).toEqual([]);
    const row = await plain.user.findUniqueOrThrow({ where: { id: user.id } });
    const left = (await listKeys(s3, location)).filter((k) => k.includes(`${label}-`));
    expect(reported, "cleanup failures reported").toEqual([]);
    // Exactly the referenced object remains: every replaced upload (and the first one) is gone.
    expect(left, `objects left after ${REPLACES} concurrent replaces`).toEqual([row.avatar]);
  }

  it("prisma.user.update(... avatar: upload(...)) in parallel: one object left, the referenced one", async () => {
    await race("update", (id, i) =>
      prisma.user.update({ where: { id }, data: { avatar: upload(png(i + 1), { filename: `update-${i}.png` }) } }),
    );
  }, 120_000);

  it("the same through interactive transactions", async () => {
    await race("tx", (id, i) =>
      prisma.$transaction(
        async (tx) =>
          tx.user.update({ where: { id }, data: { avatar: upload(png(i + 1), { filename: `tx-${i}.png` }) } }),
        { maxWait: 60_000, timeout: 60_000 },
      ),
    );
  }, 120_000);
});
