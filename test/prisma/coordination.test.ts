/**
 * The database coordinates file writes (issue #14): the file journal, the drain, the sweep's
 * respect for the journal, and the write going through Prisma's `query` inside our transaction.
 * The multi-process and crash tests are in test/torture/.
 */
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { MemoryStorage, PrismaS3FilesError, type S3Session, S3Storage } from "../../src/index.js";
import { s3Files } from "../../src/prisma/extension.js";
import { drainFiles } from "../../src/prisma/journal/drain.js";
import { sweepOrphans } from "../../src/prisma/sweep.js";
import { upload } from "../../src/prisma/upload.js";
import type { WriteObjectRequest } from "../../src/storage/base-storage.js";
import { listKeys } from "../harness/s3.js";
import { dummyKey, fileFields, harnessSession, plainClient } from "./client.js";

const s3 = inject("s3");
const tag = randomBytes(4).toString("hex");
const location = `coord-${tag}`;
let session: S3Session;
let storages: { default: S3Storage; private: S3Storage; public: MemoryStorage };
const plain = plainClient();
let n = 0;
const email = () => `c${n++}-${tag}@example.com`;
const PNG = Buffer.from(
  "89504e470d0a1a0a0000000d4948445200000001000000010806000000" +
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082",
  "hex",
);
const keys = () => listKeys(s3, location);
const records = (objectKey: string) => plain.fileJournal.findMany({ where: { objectKey } });
const options = () => ({ fields: fileFields, storages });

beforeAll(() => {
  session = harnessSession();
  storages = {
    default: new S3Storage({ session, location }),
    private: new S3Storage({ session, location: `${location}-private` }),
    public: new MemoryStorage({ baseUrl: "https://public.example.com/" }),
  };
});
afterAll(async () => {
  await plain.$disconnect();
  await session.destroy();
});

describe("the file journal", () => {
  it("records an upload before its first byte is sent, and drops the record with the row's commit", async () => {
    const seen: { name: string; recorded: number }[] = [];
    class Watching extends MemoryStorage {
      protected override async writeObject(request: WriteObjectRequest): Promise<string> {
        seen.push({ name: request.name, recorded: (await records(request.name)).length });
        return super.writeObject(request);
      }
    }
    const client = plainClient().$extends(
      s3Files(session, { fields: fileFields, storages: { ...storages, public: new Watching() } }),
    );
    try {
      const user = await client.user.create({ data: { email: email(), badge: dummyKey() } });
      const post = await client.post.create({
        data: {
          title: "t",
          authorId: user.id,
          attachments: { create: { original: dummyKey(), preview: upload(PNG, { filename: `j-${tag}.png` }) } },
        },
        include: { attachments: true },
      });
      const preview = post.attachments[0]!.preview!.name;
      expect(seen).toEqual([{ name: preview, recorded: 1 }]);
      expect(await records(preview)).toEqual([]);
    } finally {
      await client.$disconnect();
    }
  });

  it("a replaced file with deleteAfterSeconds has a deletion record due then; drain: false leaves it to other drains", async () => {
    const fields = {
      ...fileFields,
      User: {
        ...fileFields.User,
        fileFields: {
          ...fileFields.User.fileFields,
          avatar: { ...fileFields.User.fileFields.avatar, deleteAfterSeconds: 60 },
        },
      },
    };
    const client = plainClient().$extends(s3Files(session, { fields, storages, drain: false }));
    try {
      const user = await client.user.create({
        data: { email: email(), badge: dummyKey(), avatar: upload(PNG, { filename: "graced.png" }) },
      });
      const before = Date.now();
      await client.user.update({ where: { id: user.id }, data: { avatar: null } });
      const [record] = await records(user.avatar!.name);
      expect(record).toMatchObject({
        kind: "delete",
        storage: storages.default.namespace,
        owner: "User.avatar",
        attempts: 0,
      });
      const due = record!.notBefore.getTime() - before;
      expect(due).toBeGreaterThan(55_000);
      expect(due).toBeLessThan(65_000);
      // Not due: neither a drain nor a sweep touches it.
      expect((await drainFiles(plain, session, options())).deleted).toBe(0);
      await sweepOrphans(plain, session, { ...options(), olderThan: 0 });
      expect(await storages.default.exists(user.avatar!.name)).toBe(true);
      // Made due (as time would): a drain of any client deletes it and leaves a tombstone.
      await plain.fileJournal.update({ where: { id: record!.id }, data: { notBefore: new Date(Date.now() - 1000) } });
      const report = await drainFiles(plain, session, { ...options(), batchSize: 1000 });
      expect(report.failed).toEqual([]);
      expect(await storages.default.exists(user.avatar!.name)).toBe(false);
      expect(await records(user.avatar!.name)).toMatchObject([{ kind: "gone" }]);
    } finally {
      await client.$disconnect();
    }
  });
});

describe("the drain", () => {
  it("deletes an upload whose row never committed once its record expires, and drops a record whose key a row holds", async () => {
    const orphan = await storages.default.save(`avatars/crashed-${tag}.png`, PNG);
    const held = await storages.default.save(`avatars/held-${tag}.png`, PNG);
    await plain.user.create({ data: { email: email(), badge: dummyKey(), avatar: held } });
    const past = new Date(Date.now() - 1000);
    for (const key of [orphan, held]) {
      await plain.fileJournal.create({
        data: {
          kind: "upload",
          storage: storages.default.namespace,
          objectKey: key,
          owner: "User.avatar",
          notBefore: past,
        },
      });
    }
    const report = await drainFiles(plain, session, options());
    expect(report.failed).toEqual([]);
    expect(await storages.default.exists(orphan)).toBe(false);
    expect(await storages.default.exists(held)).toBe(true);
    expect(await records(held)).toEqual([]);
    expect(await records(orphan)).toMatchObject([{ kind: "gone" }]);
  });

  it("runs in the background from each client (drain.intervalSeconds), not from a client with drain: false", async () => {
    const a = await storages.default.save(`avatars/bg-${tag}.png`, PNG);
    await plain.fileJournal.create({
      data: {
        kind: "delete",
        storage: storages.default.namespace,
        objectKey: a,
        owner: "User.avatar",
        notBefore: new Date(),
      },
    });
    const off = plainClient().$extends(s3Files(session, { ...options(), drain: false }));
    await off.user.count();
    await new Promise((r) => setTimeout(r, 700));
    expect(await storages.default.exists(a)).toBe(true);
    await off.$disconnect();
    const on = plainClient().$extends(s3Files(session, { ...options(), drain: { intervalSeconds: 0.2 } }));
    try {
      for (let i = 0; i < 50 && (await storages.default.exists(a)); i++) await new Promise((r) => setTimeout(r, 100));
      expect(await storages.default.exists(a)).toBe(false);
    } finally {
      await on.$disconnect();
    }
  });

  it("two drains at once claim each record once: 300 due deletions, 300 deleted, none twice", async () => {
    const names = await Promise.all(
      Array.from({ length: 300 }, (_, i) => storages.default.save(`avatars/pair-${tag}-${i}.png`, PNG)),
    );
    await plain.fileJournal.createMany({
      data: names.map((objectKey) => ({
        kind: "delete",
        storage: storages.default.namespace,
        objectKey,
        owner: "User.avatar",
      })),
    });
    const counting = new S3Storage({ session, location });
    let deleteRequests = 0;
    const original = counting.deleteMany.bind(counting);
    counting.deleteMany = async (list: string[]) => {
      deleteRequests += list.length;
      return original(list);
    };
    const opts = { fields: fileFields, storages: { ...storages, default: counting }, batchSize: 50 };
    const [r1, r2] = await Promise.all([drainFiles(plain, session, opts), drainFiles(plain, session, opts)]);
    const ours = (await keys()).filter((k) => k.includes(`pair-${tag}`));
    expect(ours).toEqual([]);
    expect(r1.failed.concat(r2.failed)).toEqual([]);
    // Other test files' records may be due too: ours were each deleted exactly once.
    expect(deleteRequests).toBe(r1.deleted + r2.deleted);
    expect(r1.deleted + r2.deleted).toBeGreaterThanOrEqual(300);
    const tombstones = await plain.fileJournal.count({ where: { objectKey: { in: names }, kind: "gone" } });
    expect(tombstones).toBe(300);
  });
  it("a key held through another storage instance over the same bucket and prefix is kept", async () => {
    // `public` configured as a second S3Storage over default's location: one namespace.
    const twin = new S3Storage({ session, location });
    const client = plainClient().$extends(
      s3Files(session, { fields: fileFields, storages: { ...storages, public: twin }, drain: false }),
    );
    try {
      const user = await client.user.create({
        data: { email: email(), badge: dummyKey(), avatar: upload(PNG, { filename: `twin-${tag}.png` }) },
      });
      const post = await client.post.create({ data: { title: "t", authorId: user.id } });
      await client.attachment.create({
        data: { postId: post.id, original: dummyKey(), preview: user.avatar!.name },
      });
      await client.user.update({ where: { id: user.id }, data: { avatar: null } });
      // The attachment's preview still holds the key: the drain must see it through `public`.
      expect(await storages.default.exists(user.avatar!.name)).toBe(true);
    } finally {
      await client.$disconnect();
    }
  });
});

describe("the sweep and the journal", () => {
  it("sweepOrphans (olderThan: 0) leaves an object with an upload record (in flight) and deletes one without", async () => {
    const inFlight = await storages.default.save(`avatars/flight-${tag}.png`, PNG);
    const orphan = await storages.default.save(`avatars/orphan-${tag}.png`, PNG);
    await plain.fileJournal.create({
      data: {
        kind: "upload",
        storage: storages.default.namespace,
        objectKey: inFlight,
        owner: "User.avatar",
        notBefore: new Date(Date.now() + 3_600_000),
      },
    });
    const report = await sweepOrphans(plain, session, { ...options(), olderThan: 0 });
    const found = report.orphans.map((o) => o.key);
    expect(found).toContain(orphan);
    expect(found).not.toContain(inFlight);
    expect(await storages.default.exists(inFlight)).toBe(true);
    expect(await storages.default.exists(orphan)).toBe(false);
  });
});

describe("the write inside our transaction", () => {
  it("goes through Prisma's query: an extension applied after s3Files sees it", async () => {
    let seen = 0;
    const client = plainClient()
      .$extends(s3Files(session, options()))
      .$extends({
        query: {
          user: {
            async update({ args, query }) {
              seen++;
              return query(args);
            },
          },
        },
      });
    try {
      const user = await client.user.create({ data: { email: email(), badge: dummyKey() } });
      const updated = await client.user.update({
        where: { id: user.id },
        data: { avatar: upload(PNG, { filename: "seen.png" }) },
      });
      expect(seen).toBe(1);
      expect(await updated.avatar!.exists()).toBe(true);
    } finally {
      await client.$disconnect();
    }
  });

  it("a row created after the write looked for it (by email) is locked and its replaced file recorded, not orphaned", async () => {
    const mail = email();
    const old = await storages.private.save(`badges/appeared-${tag}.pdf`, Buffer.from("%PDF-1.7\n"));
    // Applied after s3Files, this hook runs when s3Files hands the write to Prisma: after it
    // looked the row up (none yet), before its transaction. The row appears in between.
    let created = false;
    const client = plainClient()
      .$extends(s3Files(session, { ...options(), drain: false }))
      .$extends({
        query: {
          user: {
            async update({ args, query }) {
              if (!created) {
                created = true;
                await plain.user.create({ data: { email: mail, badge: old } });
              }
              return query(args);
            },
          },
        },
      });
    try {
      const updated = await client.user.update({
        where: { email: mail },
        data: { badge: upload(Buffer.from("%PDF-1.7\n%new"), { filename: "new.pdf" }) },
      });
      expect(updated.badge.name).not.toBe(old);
      // The old badge was the row's: recorded for deletion and deleted, not left for a sweep.
      expect(await storages.private.exists(old)).toBe(false);
    } finally {
      await client.$disconnect();
    }
  });

  it("an upload a drain took as abandoned (older than uploadExpirySeconds) fails the write with FILE_NOT_FOUND; nothing is left", async () => {
    // The drain runs between the upload and the row's transaction, as a slow upload would let it.
    class Draining extends MemoryStorage {
      override async save(...args: Parameters<MemoryStorage["save"]>): Promise<string> {
        const name = await super.save(...args);
        await drainFiles(plain, session, { fields: fileFields, storages: { ...storages, public: this } });
        return name;
      }
    }
    const publicStorage = new Draining();
    const client = plainClient().$extends(
      s3Files(session, {
        fields: fileFields,
        storages: { ...storages, public: publicStorage },
        uploadExpirySeconds: 0,
      }),
    );
    try {
      const user = await client.user.create({ data: { email: email(), badge: dummyKey() } });
      const post = await client.post.create({ data: { title: "t", authorId: user.id } });
      const error = await client.attachment
        .create({
          data: { postId: post.id, original: dummyKey(), preview: upload(PNG, { filename: `late-${tag}.png` }) },
        })
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(PrismaS3FilesError);
      expect((error as PrismaS3FilesError).code).toBe("FILE_NOT_FOUND");
      expect(await plain.attachment.count({ where: { postId: post.id } })).toBe(0);
      expect(await publicStorage.exists(`attachments/preview/late-${tag}.png`)).toBe(false);
    } finally {
      await client.$disconnect();
    }
  });
});

describe("an upload and a drain deleting the same name", () => {
  it.each([
    ["on its own", false],
    ["inside an interactive transaction (which goes on and commits)", true],
  ])(
    "an upload does not take a name a drain has decided to delete: it gets another, and the drain deletes only what it decided (%s)",
    async (_label, interactive) => {
      // A failed save leaves its record and no object: the name is free in the storage, and the
      // drain that takes the record deletes the name. An upload of the same name in between must
      // not be what that deletion removes.
      const name = `badges/deciding-${interactive ? "tx-" : ""}${tag}.pdf`;
      const id = storages.private.namespace;
      await plain.fileJournal.create({
        data: {
          kind: "upload",
          storage: id,
          objectKey: name,
          owner: "User.badge",
          notBefore: new Date(Date.now() - 1000),
        },
      });
      let release!: () => void;
      let reached!: () => void;
      const atDelete = new Promise<void>((resolve) => {
        reached = resolve;
      });
      const released = new Promise<void>((resolve) => {
        release = resolve;
      });
      // The drain's storage stops at its deletion, after the decision committed.
      class Pausing extends S3Storage {
        override async deleteMany(names: readonly string[]) {
          if (names.includes(name)) {
            reached();
            await released;
          }
          return super.deleteMany(names);
        }
      }
      const draining = drainFiles(plain, session, {
        fields: fileFields,
        storages: { ...storages, private: new Pausing({ session, location: `${location}-private` }) },
      });
      await atDelete;
      const client = plainClient().$extends(s3Files(session, { fields: fileFields, storages }));
      try {
        const data = { email: email(), badge: upload(Buffer.from("%PDF-1.4 new"), { filename: name.slice(7) }) };
        const user = interactive
          ? await client.$transaction(async (tx) => {
              const created = await tx.user.create({ data });
              // The transaction is still usable after the refused name (PostgreSQL aborts on an error).
              await tx.user.count();
              return created;
            })
          : await client.user.create({ data });
        release();
        await draining;
        expect(user.badge.name).not.toBe(name);
        expect(await storages.private.exists(user.badge.name)).toBe(true);
        const row = await plain.user.findUniqueOrThrow({ where: { id: user.id } });
        expect(await storages.private.exists(row.badge)).toBe(true);
      } finally {
        release();
        await client.$disconnect();
      }
    },
  );
});

describe("a clash's record", () => {
  it("an upload that clashed with a key whose deletion deferred to its record: the key is deleted once the upload moves on", async () => {
    // A storage that tries the requested name first (as S3 with If-None-Match does): the
    // upload's record names the taken key while its write is refused and it picks another.
    let taken = "";
    let pause!: () => void;
    let paused!: () => void;
    const atClash = new Promise<void>((r) => {
      paused = r;
    });
    const resume = new Promise<void>((r) => {
      pause = r;
    });
    class Optimistic extends MemoryStorage {
      protected override clashesOnWrite(): boolean {
        return true;
      }
      protected override async writeObject(request: WriteObjectRequest): Promise<string> {
        if (request.name === taken && this.#armed) {
          this.#armed = false;
          paused();
          await resume;
        }
        return super.writeObject(request);
      }
      #armed = false;
      arm() {
        this.#armed = true;
      }
    }
    const avatars = new Optimistic();
    const client = plainClient().$extends(
      s3Files(session, { fields: fileFields, storages: { ...storages, default: avatars } }),
    );
    try {
      const owner = await client.user.create({
        data: { email: email(), badge: dummyKey(), avatar: upload(PNG, { filename: `clash-${tag}.png` }) },
      });
      taken = owner.avatar!.name;
      avatars.arm();
      // Started now (a Prisma promise runs when awaited or then'd).
      const uploading = client.user
        .create({ data: { email: email(), badge: dummyKey(), avatar: upload(PNG, { filename: `clash-${tag}.png` }) } })
        .then((u) => u);
      await atClash;
      // The owner goes while the upload's record names its key: the deletion defers to it.
      await client.user.delete({ where: { id: owner.id } });
      pause();
      const other = await uploading;
      expect(other.avatar!.name).not.toBe(taken);
      expect(await avatars.exists(other.avatar!.name)).toBe(true);
      expect(await avatars.exists(taken)).toBe(false);
      expect(
        await plain.fileJournal.count({ where: { objectKey: taken, kind: { in: ["upload", "delete", "deleting"] } } }),
      ).toBe(0);
    } finally {
      pause();
      await client.$disconnect();
    }
  });
});
