// What each database does differently under the write path, run on every provider
// (vitest.config.ts): MySQL's REPEATABLE READ snapshots, SQLite's one shared connection.
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MemoryStorage, type S3Session, S3Storage, StorageError, strftime } from "../../src/index.js";
import { s3Files } from "../../src/prisma/extension.js";
import { upload } from "../../src/prisma/upload.js";
import { dummyKey, fileFields, harnessSession, plainClient, provider } from "./client.js";

const tag = randomBytes(4).toString("hex");
const location = `dbs-${tag}`;
const month = strftime("%Y/%m/", new Date());
let session: S3Session;
let storages: { default: S3Storage; private: S3Storage; public: MemoryStorage };
let prisma: ReturnType<typeof makeClient>;
const plain = plainClient();
let n = 0;
const email = () => `d${n++}-${tag}@example.com`;
const PNG = Buffer.from(
  "89504e470d0a1a0a0000000d4948445200000001000000010806000000" +
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082",
  "hex",
);

function makeClient() {
  return plainClient().$extends(s3Files(session, { fields: fileFields, storages, drain: false }));
}

beforeAll(() => {
  session = harnessSession();
  storages = {
    default: new S3Storage({ session, location }),
    private: new S3Storage({ session, location: `${location}-private` }),
    public: new MemoryStorage(),
  };
  prisma = makeClient();
});
afterAll(async () => {
  await prisma.$disconnect();
  await plain.$disconnect();
  await session.destroy();
});

/** Starts a Prisma query now (it runs when first awaited), keeping its result. */
const started = <T>(query: PromiseLike<T>): Promise<T> => Promise.resolve(query);

const pending = (p: Promise<unknown>) =>
  Promise.race([p.then(() => "settled"), new Promise((r) => setTimeout(() => r("pending"), 300))]);

/** Journal records still naming `key` (a leftover upload record would be a gap). */
async function uploadRecords(key: string): Promise<number> {
  const rows = await plain.fileJournal.findMany({ where: { objectKey: key, kind: "upload" } });
  return rows.length;
}

describe("a transaction that read a row replaces its file after another request did", () => {
  it("the old key is the row's latest, not the transaction's snapshot: the other request's file is deleted, none orphaned", async () => {
    const user = await prisma.user.create({
      data: { email: email(), avatar: upload(PNG, { filename: "first.png" }), badge: dummyKey() },
    });
    const first = user.avatar!.name;
    let readDone!: () => void;
    const read = new Promise<void>((r) => (readDone = r));
    let goOn!: () => void;
    const replaced = new Promise<void>((r) => (goOn = r));
    const transaction = prisma.$transaction(async (tx) => {
      // The first read fixes a REPEATABLE READ snapshot (MySQL's default) of the row.
      expect((await tx.user.findUniqueOrThrow({ where: { id: user.id } })).avatar!.name).toBe(first);
      readDone();
      await replaced;
      return tx.user.update({ where: { id: user.id }, data: { avatar: upload(PNG, { filename: "third.png" }) } });
    });
    await read;
    const other = started(
      prisma.user.update({ where: { id: user.id }, data: { avatar: upload(PNG, { filename: "second.png" }) } }),
    );
    if (provider === "sqlite") {
      // One writer, one connection: the other request waits for the transaction, and replaces
      // its file after it.
      expect(await pending(other)).toBe("pending");
      goOn();
      const third = (await transaction).avatar!.name;
      const second = (await other).avatar!.name;
      expect((await plain.user.findUniqueOrThrow({ where: { id: user.id } })).avatar).toBe(second);
      expect(await storages.default.exists(second)).toBe(true);
      expect(await storages.default.exists(third)).toBe(false);
      expect(await storages.default.exists(first)).toBe(false);
      return;
    }
    const second = (await other).avatar!.name;
    expect(second).toBe(`avatars/${month}second.png`);
    goOn();
    const third = (await transaction).avatar!.name;
    expect((await plain.user.findUniqueOrThrow({ where: { id: user.id } })).avatar).toBe(third);
    expect(await storages.default.exists(third)).toBe(true);
    // Read through the snapshot, the old key would be `first` (deleted already) and `second`
    // would stay behind with no row.
    expect(await storages.default.exists(second)).toBe(false);
    expect(await storages.default.exists(first)).toBe(false);
  });
});

describe("writes outside an open interactive transaction", () => {
  // SQLite's driver adapters run a query from outside an open interactive transaction on the
  // transaction's connection, inside it: its rollback undoes that query too (see the README's
  // upstream report). On PostgreSQL and MySQL these pass trivially: another connection.
  it("a create with an upload and a replace, made while another transaction is open and then rolls back, stay written", async () => {
    const owner = await prisma.user.create({
      data: { email: email(), avatar: upload(PNG, { filename: "kept-old.png" }), badge: dummyKey() },
    });
    const old = owner.avatar!.name;
    let opened!: () => void;
    const open = new Promise<void>((r) => (opened = r));
    let finish!: () => void;
    const finished = new Promise<void>((r) => (finish = r));
    const doomed = prisma
      .$transaction(async (tx) => {
        await tx.user.create({ data: { email: email(), badge: dummyKey() } });
        opened();
        await finished;
        throw new Error("the other transaction rolls back");
      })
      .catch((e: unknown) => e);
    await open;
    // Started now (a Prisma query runs when its promise is first awaited).
    const created = started(
      prisma.user.create({
        data: { email: email(), avatar: upload(PNG, { filename: "outside.png" }), badge: dummyKey() },
      }),
    );
    const replaced = started(
      prisma.user.update({ where: { id: owner.id }, data: { avatar: upload(PNG, { filename: "kept-new.png" }) } }),
    );
    // Let both store their bytes and record them while the transaction is open.
    await new Promise((r) => setTimeout(r, 500));
    finish();
    expect(((await doomed) as Error).message).toBe("the other transaction rolls back");
    const row = await created;
    const newer = (await replaced).avatar!.name;

    expect((await plain.user.findUniqueOrThrow({ where: { id: row.id } })).avatar).toBe(row.avatar!.name);
    expect(await storages.default.exists(row.avatar!.name)).toBe(true);
    expect(await uploadRecords(row.avatar!.name)).toBe(0);
    expect((await plain.user.findUniqueOrThrow({ where: { id: owner.id } })).avatar).toBe(newer);
    expect(await storages.default.exists(newer)).toBe(true);
    expect(await storages.default.exists(old)).toBe(false);
  });
});

describe("an upload failing inside an interactive transaction", () => {
  /** A storage whose writes fail after the upload's journal record is made. */
  class FailingStorage extends MemoryStorage {
    protected override async writeObject(): Promise<string> {
      throw new StorageError("the storage failed mid-upload");
    }
  }

  it("fails the write at once: its record, not committed yet, is settled after the commit (MySQL waited on its row lock)", async () => {
    const failing = new FailingStorage();
    const client = plainClient().$extends(
      s3Files(session, { fields: fileFields, storages: { ...storages, private: failing }, drain: false }),
    );
    try {
      const started = Date.now();
      const outcome = await client
        .$transaction(
          async (tx) => {
            const e = await tx.user
              .create({ data: { email: email(), badge: upload(Buffer.from("%PDF-1.7\n"), { filename: "f.pdf" }) } })
              .catch((x: unknown) => x);
            expect(e).toBeInstanceOf(StorageError);
            // The caller goes on and commits the rest.
            return tx.user.create({ data: { email: email(), badge: dummyKey() } });
          },
          { timeout: 10_000 },
        )
        .catch((x: unknown) => x);
      expect(outcome).not.toBeInstanceOf(Error);
      expect(Date.now() - started).toBeLessThan(5_000);
      // The failed upload's record committed with the transaction; the settle after the commit removed it.
      expect(await plain.fileJournal.count({ where: { objectKey: { startsWith: "badges/f" }, kind: "upload" } })).toBe(
        0,
      );
    } finally {
      await client.$disconnect();
    }
  });
});

describe("a replace waiting for another's row lock", () => {
  it("records the key the other committed, though the column was NULL when it began (none orphaned)", async () => {
    // Two clients: two pools, as two processes would have (one client queues its own writers of a
    // row before they reach the database). SQLite: one client (one writer; see the README).
    const other = provider === "sqlite" ? prisma : makeClient();
    try {
      const user = await prisma.user.create({ data: { email: email(), badge: dummyKey() } });
      let locked!: () => void;
      const holding = new Promise<void>((r) => (locked = r));
      let release!: () => void;
      const released = new Promise<void>((r) => (release = r));
      const first = prisma.$transaction(async (tx) => {
        const row = await tx.user.update({
          where: { id: user.id },
          data: { avatar: upload(PNG, { filename: "null-first.png" }) },
        });
        locked();
        await released;
        return row.avatar!.name;
      });
      await holding;
      // Its lock statement begins while the column is NULL, and waits for the first's commit.
      const second = started(
        other.user.update({ where: { id: user.id }, data: { avatar: upload(PNG, { filename: "null-second.png" }) } }),
      );
      await new Promise((r) => setTimeout(r, 300));
      release();
      const firstKey = await first;
      const secondKey = (await second).avatar!.name;
      expect((await plain.user.findUniqueOrThrow({ where: { id: user.id } })).avatar).toBe(secondKey);
      expect(await storages.default.exists(secondKey)).toBe(true);
      // Before the fix, PostgreSQL pushed `IS NOT NULL` below the lock: the first's key was
      // never recorded, and stayed behind with no row.
      expect(await storages.default.exists(firstKey)).toBe(false);
    } finally {
      if (other !== prisma) await other.$disconnect();
    }
  });
});
