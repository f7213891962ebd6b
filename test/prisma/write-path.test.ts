import { randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from "vitest";
import { FileValidationError } from "../../src/files/validation.js";
import {
  createSession,
  LeftBehindError,
  MemoryStorage,
  PrismaS3FilesError,
  type S3Session,
  S3Storage,
  StorageError,
  strftime,
} from "../../src/index.js";
import { s3Files } from "../../src/prisma/extension.js";
import { FieldFile } from "../../src/prisma/field-file.js";
import { pendingUploadCount, upload } from "../../src/prisma/upload.js";
import { Prisma } from "../generated/prisma/client.js";
import { listKeys, sessionOptionsFor } from "../harness/s3.js";
import { type S3Proxy, startS3Proxy } from "../harness/s3-proxy.js";
import { dummyKey, fileFields, harnessSession, plainClient, provider } from "./client.js";

const s3 = inject("s3");
const tag = randomBytes(4).toString("hex");
const location = `write-${tag}`;
let session: S3Session;
let storages: { default: S3Storage; private: S3Storage; public: MemoryStorage };
let prisma: ReturnType<typeof makeClient>;
const plain = plainClient();

function makeClient() {
  return plainClient().$extends(s3Files(session, { fields: fileFields, storages }));
}

/** A real 1×1 PNG. */
const PNG = Buffer.from(
  "89504e470d0a1a0a0000000d4948445200000001000000010806000000" +
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082",
  "hex",
);
const month = strftime("%Y/%m/", new Date());
let n = 0;
const email = () => `w${n++}-${tag}@example.com`;
const keys = () => listKeys(s3, location);
const privateKeys = () => listKeys(s3, `${location}-private`);

beforeAll(() => {
  session = harnessSession();
  storages = {
    default: new S3Storage({ session, location }),
    private: new S3Storage({ session, location: `${location}-private` }),
    public: new MemoryStorage({ baseUrl: "https://public.example.com/" }),
  };
  prisma = makeClient();
});
afterAll(async () => {
  await prisma.$disconnect();
  await plain.$disconnect();
  await session.destroy();
});

describe("uploads where users write data", () => {
  it("create: the bytes go to the column's storage under uploadTo, the key to the column", async () => {
    const user = await prisma.user.create({
      data: {
        email: email(),
        avatar: upload(PNG, { filename: "me.png" }),
        badge: upload(Buffer.from("%PDF-1.7\n"), { filename: "id card.pdf" }),
      },
    });
    expect(user.avatar).toBeInstanceOf(FieldFile);
    expect(user.avatar!.name).toBe(`avatars/${month}me.png`);
    expect(user.badge.name).toBe("badges/id_card.pdf");
    expect(Buffer.from(await user.avatar!.read())).toEqual(PNG);
    expect((await plain.user.findUniqueOrThrow({ where: { id: user.id } })).avatar).toBe(`avatars/${month}me.png`);
    expect(await storages.private.exists("badges/id_card.pdf")).toBe(true);
    expect(pendingUploadCount()).toBe(0);
  });

  it("takes a File (name and type from it), a Node Readable and a web ReadableStream", async () => {
    const fromFile = await prisma.user.create({
      data: {
        email: email(),
        avatar: upload(new File([PNG], "holiday photo.png", { type: "image/png" })),
        badge: "badges/x.pdf",
      },
    });
    expect(fromFile.avatar!.name).toBe(`avatars/${month}holiday_photo.png`);
    const fromStream = await prisma.user.update({
      where: { id: fromFile.id },
      data: { avatar: upload(Readable.from([PNG.subarray(0, 10), PNG.subarray(10)]), { filename: "s.png" }) },
    });
    expect(Buffer.from(await fromStream.avatar!.read())).toEqual(PNG);
    const web = new Blob([PNG]).stream();
    const fromWeb = await prisma.user.update({
      where: { id: fromFile.id },
      data: { avatar: upload(web, { filename: "w.png" }) },
    });
    expect(fromWeb.avatar!.name).toBe(`avatars/${month}w.png`);
    expect(await storages.default.exists(`avatars/${month}s.png`)).toBe(false); // replaced twice: old ones gone
    expect(await storages.default.exists(`avatars/${month}holiday_photo.png`)).toBe(false);
  });

  it("a taken name gets Django's random suffix; a plain string still means a key", async () => {
    const a = await prisma.user.create({
      data: { email: email(), avatar: upload(PNG, { filename: "same.png" }), badge: dummyKey() },
    });
    const b = await prisma.user.create({
      data: { email: email(), avatar: upload(PNG, { filename: "same.png" }), badge: dummyKey() },
    });
    expect(a.avatar!.name).toBe(`avatars/${month}same.png`);
    expect(b.avatar!.name).toMatch(new RegExp(`^avatars/${month}same_[A-Za-z0-9]{7}\\.png$`));
    const c = await prisma.user.create({ data: { email: email(), avatar: a.avatar!.name, badge: dummyKey() } });
    expect(c.avatar!.name).toBe(a.avatar!.name);
  });

  it("createMany, createManyAndReturn and upsert take uploads too", async () => {
    const group = `many-${tag}`;
    const count = await prisma.user.createMany({
      data: [
        { email: `${group}-1@example.com`, badge: upload(Buffer.from("%PDF-1.7 1"), { filename: "m1.pdf" }) },
        { email: `${group}-2@example.com`, badge: upload(Buffer.from("%PDF-1.7 2"), { filename: "m2.pdf" }) },
      ],
    });
    expect(count.count).toBe(2);
    const rows = await plain.user.findMany({ where: { email: { startsWith: group } }, orderBy: { email: "asc" } });
    expect(rows.map((r) => r.badge)).toEqual(["badges/m1.pdf", "badges/m2.pdf"]);
    for (const r of rows) expect(await storages.private.exists(r.badge)).toBe(true);
    const third = { email: `${group}-3@example.com`, badge: dummyKey(), avatar: upload(PNG, { filename: "cmr.png" }) };
    // Prisma has no createManyAndReturn on MySQL: a create stands in there.
    const returned =
      provider === "mysql"
        ? [await prisma.user.create({ data: third })]
        : await prisma.user.createManyAndReturn({ data: [third] });
    expect(returned[0]!.avatar!.name).toBe(`avatars/${month}cmr.png`);
    const upserted = await prisma.user.upsert({
      where: { email: `${group}-3@example.com` },
      create: { email: "never@example.com", badge: dummyKey() },
      update: { avatar: upload(PNG, { filename: "ups.png" }) },
    });
    expect(upserted.avatar!.name).toBe(`avatars/${month}ups.png`);
    expect(await storages.default.exists(`avatars/${month}cmr.png`)).toBe(false);
    const created = await prisma.user.upsert({
      where: { email: `${group}-4@example.com` },
      create: { email: `${group}-4@example.com`, badge: upload(Buffer.from("%PDF-1.7 4"), { filename: "m4.pdf" }) },
      update: {},
    });
    expect(created.badge.name).toBe("badges/m4.pdf");
  });

  it("an upload value can be written once", async () => {
    const token = upload(PNG, { filename: "once.png" });
    await prisma.user.create({ data: { email: email(), avatar: token, badge: dummyKey() } });
    const error = await prisma.user
      .create({ data: { email: email(), avatar: token, badge: dummyKey() } })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PrismaS3FilesError);
    expect((error as PrismaS3FilesError).code).toBe("UPLOAD_NOT_FOUND");
  });
});

describe("validation before anything is written", () => {
  it("an upload() value outside a file column fails with NOT_A_FILE_FIELD naming where it is; nothing is written", async () => {
    const before = await keys();
    const pending = pendingUploadCount();
    const address = email();
    const plainColumn = await prisma.user
      .create({
        data: { email: address, name: upload(PNG) as unknown as string, avatar: upload(PNG), badge: dummyKey() },
      })
      .catch((e: unknown) => e);
    expect(plainColumn).toBeInstanceOf(PrismaS3FilesError);
    expect(plainColumn).toMatchObject({ code: "NOT_A_FILE_FIELD", message: expect.stringContaining("data.name") });
    expect(await plain.user.findUnique({ where: { email: address } })).toBeNull();
    const user = await prisma.user.create({ data: { email: email(), badge: dummyKey() } });
    const nested = await prisma.user
      .update({ where: { id: user.id }, data: { posts: { create: { title: upload(PNG) as unknown as string } } } })
      .catch((e: unknown) => e);
    expect(nested).toMatchObject({
      code: "NOT_A_FILE_FIELD",
      message: expect.stringContaining("data.posts.create.title"),
    });
    expect(await plain.post.count({ where: { authorId: user.id } })).toBe(0);
    // No object was stored, and the refused uploads were let go.
    expect(await keys()).toEqual(before);
    expect(pendingUploadCount()).toBe(pending);
  });

  it("maxSize counted while streaming: aborts mid-stream, no object, no row", async () => {
    const before = await keys();
    let produced = 0;
    const big = Readable.from(
      (function* () {
        yield PNG; // a real PNG header first, so only the size is wrong
        for (let i = 0; i < 200; i++) {
          produced++;
          yield Buffer.alloc(64 * 1024);
        }
      })(),
    );
    const address = email();
    const error = await prisma.user
      .create({ data: { email: address, avatar: upload(big, { filename: "huge.png" }), badge: dummyKey() } })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(FileValidationError);
    expect((error as FileValidationError).message).toMatch(/User\.avatar/);
    expect(produced).toBeLessThan(200); // stopped reading past the limit
    expect(await keys()).toEqual(before);
    expect(await plain.user.findUnique({ where: { email: address } })).toBeNull();
  });

  it("a known size over maxSize is refused before reading", async () => {
    const tooBig = new File([new Uint8Array(5_000_001)], "big.png", { type: "image/png" });
    await expect(
      prisma.user.create({ data: { email: email(), avatar: upload(tooBig), badge: dummyKey() } }),
    ).rejects.toBeInstanceOf(FileValidationError);
  });

  it("accept: a .png that is HTML is rejected by what its bytes are; nothing is written", async () => {
    const before = await keys();
    const address = email();
    const html = new File(["<!DOCTYPE html><script>alert(1)</script>"], "cat.png", { type: "image/png" });
    const error = await prisma.user
      .create({ data: { email: address, avatar: upload(html), badge: dummyKey() } })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(FileValidationError);
    expect((error as FileValidationError).message).toMatch(/User\.avatar.*text\/html/);
    expect(await keys()).toEqual(before);
    expect(await plain.user.findUnique({ where: { email: address } })).toBeNull();
  });

  it("a bad file among several writes nothing", async () => {
    const before = await keys();
    const beforePrivate = await privateKeys();
    const html = Buffer.from("<html><body>not a picture</body></html>");
    await expect(
      prisma.user.create({
        data: {
          email: email(),
          badge: upload(Buffer.from("%PDF-1.4"), { filename: "ok.pdf" }),
          avatar: upload(html, { filename: "x.png" }),
        },
      }),
    ).rejects.toBeInstanceOf(FileValidationError);
    expect(await keys()).toEqual(before);
    expect(await privateKeys()).toEqual(beforePrivate);
  });
});

describe("consistency", () => {
  it("a database constraint failure after upload: the error comes back unchanged, no object is left", async () => {
    const taken = email();
    await prisma.user.create({ data: { email: taken, badge: dummyKey() } });
    const before = await keys();
    const error = await prisma.user
      .create({ data: { email: taken, avatar: upload(PNG, { filename: "dup.png" }), badge: dummyKey() } })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Prisma.PrismaClientKnownRequestError);
    expect((error as Prisma.PrismaClientKnownRequestError).code).toBe("P2002");
    expect(await keys()).toEqual(before);
  });

  it("replace: the old object is deleted after the write; a failed replace keeps the old and removes the new", async () => {
    const user = await prisma.user.create({
      data: { email: email(), avatar: upload(PNG, { filename: "v1.png" }), badge: dummyKey() },
    });
    const v1 = user.avatar!.name;
    const replaced = await prisma.user.update({
      where: { id: user.id },
      data: { avatar: upload(PNG, { filename: "v2.png" }) },
    });
    expect(await storages.default.exists(v1)).toBe(false);
    expect(await storages.default.exists(replaced.avatar!.name)).toBe(true);

    const taken = email();
    await plain.user.create({ data: { email: taken, badge: dummyKey() } });
    const before = await keys();
    await expect(
      prisma.user.update({
        where: { id: user.id },
        data: { email: taken, avatar: upload(PNG, { filename: "v3.png" }) },
      }),
    ).rejects.toBeInstanceOf(Prisma.PrismaClientKnownRequestError);
    expect(await keys()).toEqual(before);
    expect((await plain.user.findUniqueOrThrow({ where: { id: user.id } })).avatar).toBe(replaced.avatar!.name);
  });

  it("setting the column to null deletes the old object", async () => {
    const user = await prisma.user.create({
      data: { email: email(), avatar: upload(PNG, { filename: "gone.png" }), badge: dummyKey() },
    });
    await prisma.user.update({ where: { id: user.id }, data: { avatar: null } });
    expect(await storages.default.exists(user.avatar!.name)).toBe(false);
    const again = await prisma.user.create({
      data: { email: email(), avatar: upload(PNG, { filename: "set.png" }), badge: dummyKey() },
    });
    await prisma.user.update({ where: { id: again.id }, data: { avatar: { set: null } } });
    expect(await storages.default.exists(again.avatar!.name)).toBe(false);
  });

  it("a key another row still references is never deleted", async () => {
    const a = await prisma.user.create({
      data: { email: email(), avatar: upload(PNG, { filename: "shared.png" }), badge: dummyKey() },
    });
    const b = await prisma.user.create({ data: { email: email(), avatar: a.avatar!.name, badge: dummyKey() } });
    await prisma.user.update({ where: { id: a.id }, data: { avatar: null } });
    expect(await storages.default.exists(a.avatar!.name)).toBe(true);
    await prisma.user.delete({ where: { id: b.id } });
    expect(await storages.default.exists(a.avatar!.name)).toBe(false);
  });

  it("delete and deleteMany remove the rows' objects after commit: 100 rows, 100 objects", async () => {
    const group = `bulk-${tag}`;
    const rows = await Promise.all(
      Array.from({ length: 100 }, (_, i) =>
        prisma.user.create({
          data: {
            email: `${group}-${i}@example.com`,
            badge: upload(Buffer.from(`%PDF-1.7 ${i}`), { filename: `b${i}.pdf` }),
          },
        }),
      ),
    );
    const names = rows.map((r) => r.badge.name);
    expect(new Set(names).size).toBe(100);
    for (const name of names.slice(0, 3)) expect(await storages.private.exists(name)).toBe(true);
    const deleted = await prisma.user.deleteMany({ where: { email: { startsWith: group } } });
    expect(deleted.count).toBe(100);
    const left = new Set(await privateKeys());
    expect(names.filter((k) => left.has(k))).toEqual([]);
  });

  it("deleting a user deletes the files of the rows the database cascades to (posts, their attachments)", async () => {
    const user = await prisma.user.create({
      data: {
        email: email(),
        avatar: upload(PNG, { filename: "cascade-avatar.png" }),
        badge: dummyKey(),
        posts: {
          create: {
            title: "p",
            cover: upload(PNG, { filename: "cascade-cover.png" }),
            attachments: {
              create: {
                original: upload(Buffer.from("%PDF-1.7"), { filename: "cascade.pdf" }),
                preview: upload(PNG, { filename: "cascade-preview.png" }),
              },
            },
          },
        },
      },
      include: { posts: { include: { attachments: true } } },
    });
    const post = user.posts[0]!;
    const attachment = post.attachments[0]!;
    await prisma.user.delete({ where: { id: user.id } });
    expect(await storages.default.exists(user.avatar!.name)).toBe(false);
    expect(await storages.default.exists(post.cover!.name)).toBe(false);
    expect(await storages.private.exists(attachment.original.name)).toBe(false);
    expect(await storages.public.exists(attachment.preview!.name)).toBe(false);
  });

  it("a delete locks the rows it cascades to: a concurrent replace of a child's file is not orphaned", async () => {
    // The post's delete is held for a moment after it has read its cascade's keys and before its
    // SQL (a query extension applied after s3Files runs after its hook): a replace of its
    // attachment's preview arriving then must wait for it.
    let held!: () => void;
    const deleteHeld = new Promise<void>((r) => (held = r));
    const client = plainClient()
      .$extends(s3Files(session, { fields: fileFields, storages }))
      .$extends({
        query: {
          post: {
            async delete({ args, query }) {
              held();
              await new Promise((r) => setTimeout(r, 300));
              return query(args);
            },
          },
        },
      });
    try {
      const user = await client.user.create({ data: { email: email(), badge: dummyKey() } });
      const post = await client.post.create({
        data: {
          title: "p",
          authorId: user.id,
          attachments: {
            create: {
              original: upload(Buffer.from("%PDF-1.7"), { filename: "c.pdf" }),
              preview: upload(PNG, { filename: "c-old.png" }),
            },
          },
        },
        include: { attachments: true },
      });
      const attachment = post.attachments[0]!;
      // A Prisma query starts when awaited or then-ed.
      const deleting = client.post.delete({ where: { id: post.id } }).then(() => undefined);
      await deleteHeld; // its keys are read, its SQL not yet run
      const replaced = await client.attachment
        .update({ where: { id: attachment.id }, data: { preview: upload(PNG, { filename: "c-new.png" }) } })
        .then(
          (row) => row.preview!.name,
          (e: unknown) => e,
        );
      await deleting;
      expect(await plain.attachment.count({ where: { postId: post.id } })).toBe(0);
      // No preview of this attachment is left.
      const left = [];
      for await (const o of storages.public.listAll("attachments/preview")) {
        if (/c-(old|new)/.test(o.name)) left.push(o.name);
      }
      // Either the replace committed first (and the delete, locking the attachment, recorded the
      // new key for deletion) or it waited for the delete and found its row gone.
      if (typeof replaced !== "string") expect(replaced).toMatchObject({ code: "P2025" });
      expect(left).toEqual([]);
    } finally {
      await client.$disconnect();
    }
  });

  it("updateMany replacing files deletes the replaced objects", async () => {
    const group = `um-${tag}`;
    const a = await prisma.user.create({
      data: { email: `${group}-a@example.com`, avatar: upload(PNG, { filename: "um-a.png" }), badge: dummyKey() },
    });
    const b = await prisma.user.create({
      data: { email: `${group}-b@example.com`, avatar: upload(PNG, { filename: "um-b.png" }), badge: dummyKey() },
    });
    await prisma.user.updateMany({
      where: { email: { startsWith: group } },
      data: { avatar: "avatars/shared-default.png" },
    });
    expect(await storages.default.exists(a.avatar!.name)).toBe(false);
    expect(await storages.default.exists(b.avatar!.name)).toBe(false);
  });
});

describe("nested writes", () => {
  it("nested create with a file under a relation, and nested update replacing it", async () => {
    const user = await prisma.user.create({
      data: {
        email: email(),
        badge: dummyKey(),
        posts: { create: [{ title: "with cover", cover: upload(PNG, { filename: "cover.png" }) }] },
      },
      include: { posts: true },
    });
    const cover = user.posts[0]!.cover!;
    expect(cover.name).toBe(`posts/covers/${strftime("%Y", new Date())}/cover.png`);
    expect(await storages.default.exists(cover.name)).toBe(true);

    const updated = await prisma.user.update({
      where: { id: user.id },
      data: {
        posts: {
          update: { where: { id: user.posts[0]!.id }, data: { cover: upload(PNG, { filename: "cover2.png" }) } },
        },
      },
      include: { posts: true },
    });
    expect(updated.posts[0]!.cover!.name).toMatch(/cover2\.png$/);
    expect(await storages.default.exists(cover.name)).toBe(false);
  });

  it("nested createMany, connectOrCreate and upsert take uploads", async () => {
    const user = await prisma.user.create({ data: { email: email(), badge: dummyKey() } });
    const post = await prisma.post.create({
      data: {
        title: "attachments",
        author: { connect: { id: user.id } },
        attachments: {
          createMany: { data: [{ original: upload(Buffer.from("%PDF-1.7 a"), { filename: "a.pdf" }) }] },
        },
      },
      include: { attachments: true },
    });
    expect(await storages.private.exists(post.attachments[0]!.original.name)).toBe(true);
    const other = await prisma.post.create({
      data: {
        title: "coc",
        author: {
          connectOrCreate: {
            where: { email: `coc-${tag}@example.com` },
            create: {
              email: `coc-${tag}@example.com`,
              badge: upload(Buffer.from("%PDF-1.7 c"), { filename: "coc.pdf" }),
            },
          },
        },
      },
      include: { author: true },
    });
    expect(other.author.badge.name).toBe("badges/coc.pdf");
    const upserted = await prisma.user.update({
      where: { id: user.id },
      data: {
        posts: {
          upsert: {
            where: { id: post.id },
            create: { title: "x" },
            update: { cover: upload(PNG, { filename: "up.png" }) },
          },
        },
      },
      include: { posts: true },
    });
    expect(upserted.posts.find((p) => p.id === post.id)?.cover?.name).toMatch(/up\.png$/);
  });
});

describe("transactions", () => {
  it("interactive: a rollback removes the new upload and keeps the old file", async () => {
    const user = await prisma.user.create({
      data: { email: email(), avatar: upload(PNG, { filename: "keep.png" }), badge: dummyKey() },
    });
    const old = user.avatar!.name;
    let uploaded = "";
    await expect(
      prisma.$transaction(async (tx) => {
        const u = await tx.user.update({
          where: { id: user.id },
          data: { avatar: upload(PNG, { filename: "rolled.png" }) },
        });
        uploaded = u.avatar!.name;
        expect(await storages.default.exists(uploaded)).toBe(true);
        throw new Error("changed my mind");
      }),
    ).rejects.toThrow("changed my mind");
    expect(await storages.default.exists(uploaded)).toBe(false);
    expect(await storages.default.exists(old)).toBe(true);
    expect((await plain.user.findUniqueOrThrow({ where: { id: user.id } })).avatar).toBe(old);
  });

  it("interactive: the old file is deleted after the commit, never before", async () => {
    const user = await prisma.user.create({
      data: { email: email(), avatar: upload(PNG, { filename: "before.png" }), badge: dummyKey() },
    });
    const old = user.avatar!.name;
    let existedInside = false;
    await prisma.$transaction(async (tx) => {
      await tx.user.update({ where: { id: user.id }, data: { avatar: upload(PNG, { filename: "after.png" }) } });
      existedInside = await storages.default.exists(old);
    });
    expect(existedInside).toBe(true);
    expect(await storages.default.exists(old)).toBe(false);
  });

  it("a transaction started inside another joins it", async () => {
    const address = email();
    await expect(
      prisma.$transaction(async () => {
        await prisma.$transaction(async (inner) => {
          await inner.user.create({
            data: { email: address, avatar: upload(PNG, { filename: "inner.png" }), badge: dummyKey() },
          });
        });
        throw new Error("outer fails");
      }),
    ).rejects.toThrow("outer fails");
    expect(await plain.user.findUnique({ where: { email: address } })).toBeNull();
    expect(await storages.default.exists(`avatars/${month}inner.png`)).toBe(false);
  });

  it("batch: a failing batch removes the uploads of its other writes", async () => {
    const taken = email();
    await plain.user.create({ data: { email: taken, badge: dummyKey() } });
    const before = await keys();
    await expect(
      prisma.$transaction([
        prisma.user.create({
          data: { email: email(), avatar: upload(PNG, { filename: "batch-ok.png" }), badge: dummyKey() },
        }),
        prisma.user.create({
          data: { email: taken, avatar: upload(PNG, { filename: "batch-dup.png" }), badge: dummyKey() },
        }),
      ]),
    ).rejects.toBeInstanceOf(Prisma.PrismaClientKnownRequestError);
    expect(await keys()).toEqual(before);
  });
});

describe("failures, grace periods and the sweeper", () => {
  it("the storage failing mid-stream leaves the row unchanged and nothing stored", async () => {
    const user = await prisma.user.create({
      data: { email: email(), avatar: upload(PNG, { filename: "stay.png" }), badge: dummyKey() },
    });
    const before = await keys();
    const failure = new Error("client went away");
    const broken = Readable.from(
      (async function* () {
        yield PNG;
        yield Buffer.alloc(1000);
        throw failure;
      })(),
    );
    await expect(
      prisma.user.update({ where: { id: user.id }, data: { avatar: upload(broken, { filename: "broken.png" }) } }),
    ).rejects.toBe(failure);
    expect(await keys()).toEqual(before);
    expect((await plain.user.findUniqueOrThrow({ where: { id: user.id } })).avatar).toBe(user.avatar!.name);
  });

  it("keepFiles leaves the object; deleteAfterSeconds deletes it only after the grace period", async () => {
    const withRules = (rules: { keepFiles?: boolean; deleteAfterSeconds?: number }) => ({
      ...fileFields,
      User: {
        ...fileFields.User,
        fileFields: { ...fileFields.User.fileFields, avatar: { ...fileFields.User.fileFields.avatar, ...rules } },
      },
    });
    const keeping = plainClient().$extends(s3Files(session, { fields: withRules({ keepFiles: true }), storages }));
    const kept = await keeping.user.create({
      data: { email: email(), avatar: upload(PNG, { filename: "kept.png" }), badge: dummyKey() },
    });
    await keeping.user.delete({ where: { id: kept.id } });
    expect(await storages.default.exists(kept.avatar!.name)).toBe(true);

    const grace = plainClient().$extends(s3Files(session, { fields: withRules({ deleteAfterSeconds: 1 }), storages }));
    const u = await grace.user.create({
      data: { email: email(), avatar: upload(PNG, { filename: "grace.png" }), badge: dummyKey() },
    });
    const url = await u.avatar!.url();
    await grace.user.update({ where: { id: u.id }, data: { avatar: null } });
    expect(await storages.default.exists(u.avatar!.name)).toBe(true);
    expect((await fetch(url)).status).toBe(200); // a URL already handed out keeps working
    await new Promise((r) => setTimeout(r, 1500));
    expect(await storages.default.exists(u.avatar!.name)).toBe(false);
    await Promise.all([keeping.$disconnect(), grace.$disconnect()]);
  });

  it("sweepOrphans waits for a write assigning a key right now, and leaves the key", async () => {
    const { sweepOrphans } = await import("../../src/prisma/sweep.js");
    const key = await storages.default.save(`avatars/${month}sweep-pinned.png`, PNG);
    const b = await prisma.user.create({ data: { email: email(), badge: dummyKey() } });
    let assigned!: () => void;
    const keyAssigned = new Promise<void>((r) => (assigned = r));
    let goOn!: () => void;
    const swept = new Promise<void>((r) => (goOn = r));
    const transaction = prisma.$transaction(async (tx) => {
      await tx.user.update({ where: { id: b.id }, data: { avatar: key } });
      assigned();
      await swept;
    });
    await keyAssigned;
    // Outside the transaction the committed rows do not reference the object yet: the sweep
    // waits for the write's lock on the key, and then sees the committed row.
    // SQLite: through the writing client. A second client is a second connection, and
    // better-sqlite3 waits for the database's write lock synchronously: the event loop stops,
    // and the transaction holding the lock cannot finish (see the README's SQLite notes).
    const sweeper = provider === "sqlite" ? prisma : plain;
    const sweeping = sweepOrphans(sweeper as typeof plain, session, { fields: fileFields, storages, olderThan: 0 });
    await new Promise((r) => setTimeout(r, 500));
    expect(await storages.default.exists(key)).toBe(true);
    goOn();
    await transaction;
    const report = await sweeping;
    expect(report.orphans.map((o) => o.key)).not.toContain(key);
    expect((await plain.user.findUniqueOrThrow({ where: { id: b.id } })).avatar).toBe(key);
    expect(await storages.default.exists(key)).toBe(true);
  });

  it("sweepOrphans (olderThan: 0) during 30 concurrent creates with uploads: no row points at a deleted object", async () => {
    const { sweepOrphans } = await import("../../src/prisma/sweep.js");
    // Each row's avatar is stored at once, its badge streams slowly (a slow client): the avatar
    // object exists, referenced by no row yet, while the sweeps run.
    const slow = (i: number) =>
      Readable.from(
        (async function* () {
          // The head the type check reads first arrives at once; the rest takes its time.
          yield Buffer.concat([Buffer.from("%PDF-1.7\n"), Buffer.alloc(16 * 1024, 0x20)]);
          await new Promise((r) => setTimeout(r, 1000 + (i % 5) * 100));
          yield Buffer.from(`% badge ${i}\n%%EOF\n`);
        })(),
      );
    let stop = false;
    const sweeps = (async () => {
      let n = 0;
      while (!stop) {
        await sweepOrphans(plain, session, { fields: fileFields, storages, olderThan: 0 });
        n++;
      }
      return n;
    })();
    let users: Awaited<ReturnType<typeof prisma.user.create>>[];
    try {
      users = await Promise.all(
        Array.from({ length: 30 }, (_, i) =>
          prisma.user.create({
            data: {
              email: email(),
              avatar: upload(PNG, { filename: `in-flight-${i}.png` }),
              badge: upload(slow(i), { filename: `in-flight-${i}.pdf` }),
            },
          }),
        ),
      );
    } finally {
      stop = true; // a failed create must not leave the sweeps running into the next tests
      await sweeps.catch(() => 0);
    }
    expect(await sweeps).toBeGreaterThan(0);
    const missing = [];
    for (const u of users) {
      if (!(await storages.default.exists(u.avatar!.name))) missing.push(u.avatar!.name);
      if (!(await storages.private.exists(u.badge.name))) missing.push(u.badge.name);
    }
    expect(missing).toEqual([]);
  });

  it("an upload of the name of an object whose deletion is still settling gets another name, and is kept", async () => {
    // The deletion of a replaced file removes the object, then takes a moment to settle.
    let deleted!: () => void;
    const objectGone = new Promise<void>((r) => (deleted = r));
    class SlowToSettle extends MemoryStorage {
      override async deleteMany(names: readonly string[]) {
        const result = await super.deleteMany(names);
        deleted();
        await new Promise((r) => setTimeout(r, 300));
        return result;
      }
      override async delete(name: string) {
        await super.delete(name);
        deleted();
        await new Promise((r) => setTimeout(r, 300));
      }
    }
    const slow = new SlowToSettle();
    const client = plainClient().$extends(
      s3Files(session, { fields: fileFields, storages: { ...storages, default: slow } }),
    );
    try {
      const a = await client.user.create({
        data: { email: email(), avatar: upload(PNG, { filename: "reused.png" }), badge: dummyKey() },
      });
      const first = a.avatar!.name;
      const replacing = client.user
        .update({ where: { id: a.id }, data: { avatar: upload(PNG, { filename: "other.png" }) } })
        .then(() => undefined);
      await objectGone;
      // The name is free in the storage, but the drain that deleted it has not settled: the
      // journal refuses it to the new upload (a deletion of it may still be on its way).
      const b = await client.user.create({
        data: { email: email(), avatar: upload(PNG, { filename: "reused.png" }), badge: dummyKey() },
      });
      await replacing;
      expect(b.avatar!.name).not.toBe(first);
      expect(b.avatar!.name).toMatch(/^avatars\/.*reused_[A-Za-z0-9]{7}\.png$/);
      expect(await slow.exists(b.avatar!.name)).toBe(true);
    } finally {
      await client.$disconnect();
    }
  });

  it("sweepOrphans leaves an object whose save has stored it but not yet returned (a slow PUT response)", async () => {
    const { sweepOrphans } = await import("../../src/prisma/sweep.js");
    let stored!: () => void;
    const objectStored = new Promise<void>((r) => (stored = r));
    let answer!: () => void;
    const answered = new Promise<void>((r) => (answer = r));
    // The object is in the storage; the answer to its write is still on its way.
    class SlowAnswer extends MemoryStorage {
      protected override async writeObject(request: Parameters<MemoryStorage["writeObject"]>[0]) {
        const name = await super.writeObject(request);
        stored();
        await answered;
        return name;
      }
    }
    const slow = new SlowAnswer();
    const mine = { ...storages, default: slow };
    const client = plainClient().$extends(s3Files(session, { fields: fileFields, storages: mine }));
    try {
      const creating = client.user.create({
        data: { email: email(), avatar: upload(PNG, { filename: "slow-answer.png" }), badge: dummyKey() },
      });
      const created = creating.then((u) => u);
      await objectStored;
      const report = await sweepOrphans(plain, session, { fields: fileFields, storages: mine, olderThan: 0 });
      expect(report.orphans.map((o) => o.key)).not.toContain(`avatars/${month}slow-answer.png`);
      answer();
      const user = await created;
      expect(user.avatar!.name).toBe(`avatars/${month}slow-answer.png`);
      expect(await slow.exists(user.avatar!.name)).toBe(true);
    } finally {
      answer();
      await client.$disconnect();
    }
  });

  it("sweepOrphans finds objects orphaned by a cascade delete, and keeps referenced ones", async () => {
    const { sweepOrphans } = await import("../../src/prisma/sweep.js");
    const user = await prisma.user.create({
      data: {
        email: email(),
        avatar: upload(PNG, { filename: "sweep-keep.png" }),
        badge: dummyKey(),
        posts: {
          create: {
            title: "p",
            cover: upload(PNG, { filename: "sweep-cascade.png" }),
            attachments: { create: { original: upload(Buffer.from("%PDF-1.7"), { filename: "sweep.pdf" }) } },
          },
        },
      },
      include: { posts: { include: { attachments: true } } },
    });
    const cover = user.posts[0]!.cover!.name;
    const original = user.posts[0]!.attachments[0]!.original.name;
    // The database cascades the post and its attachment; no hook sees those rows.
    await plain.post.delete({ where: { id: user.posts[0]!.id } });
    expect(await storages.default.exists(cover)).toBe(true);

    const dry = await sweepOrphans(plain, session, { fields: fileFields, storages, olderThan: 0, dryRun: true });
    const found = dry.orphans.map((o) => o.key);
    expect(found).toContain(cover);
    expect(found).toContain(original);
    expect(found).not.toContain(user.avatar!.name);
    expect(await storages.default.exists(cover)).toBe(true);

    const done = await sweepOrphans(plain, session, { fields: fileFields, storages, olderThan: 0 });
    expect(done.deleted).toBe(done.orphans.length);
    expect(await storages.default.exists(cover)).toBe(false);
    expect(await storages.private.exists(original)).toBe(false);
    expect(await storages.default.exists(user.avatar!.name)).toBe(true);
    // Every object a row references survived the sweep.
    const referenced = await plain.user.findMany({
      where: { avatar: { startsWith: `avatars/${month}` } },
      select: { avatar: true },
    });
    const left = new Set(await keys());
    const uploadedHere = referenced.map((r) => r.avatar!).filter((k) => dry.examined > 0 && left.has(k));
    expect(uploadedHere.length).toBeGreaterThan(5);
    for (const k of referenced.map((r) => r.avatar!)) expect(done.orphans.map((o) => o.key)).not.toContain(k);
  });
});

describe("record-bound methods", () => {
  it("FieldFile.save uploads, updates the row and removes the old object; delete empties the column", async () => {
    const user = await prisma.user.create({
      data: { email: email(), avatar: upload(PNG, { filename: "s1.png" }), badge: dummyKey() },
    });
    const old = user.avatar!;
    const saved = await old.save(new File([PNG], "s2.png", { type: "image/png" }));
    expect(saved.name).toBe(`avatars/${month}s2.png`);
    expect(user.avatar).toBe(saved); // the row object follows
    expect((await plain.user.findUniqueOrThrow({ where: { id: user.id } })).avatar).toBe(saved.name);
    expect(await old.exists()).toBe(false);
    await saved.delete();
    expect(user.avatar).toBeNull();
    expect(await saved.exists()).toBe(false);
    expect((await plain.user.findUniqueOrThrow({ where: { id: user.id } })).avatar).toBeNull();
  });

  it("FieldFile.save inside a transaction writes through it", async () => {
    const user = await prisma.user.create({
      data: { email: email(), avatar: upload(PNG, { filename: "t1.png" }), badge: dummyKey() },
    });
    let inner = "";
    await expect(
      prisma.$transaction(async (tx) => {
        const row = await tx.user.findUniqueOrThrow({ where: { id: user.id } });
        inner = (await row.avatar!.save(PNG, { filename: "t2.png" })).name;
        throw new Error("roll back");
      }),
    ).rejects.toThrow("roll back");
    expect((await plain.user.findUniqueOrThrow({ where: { id: user.id } })).avatar).toBe(user.avatar!.name);
    expect(await storages.default.exists(inner)).toBe(false);
    expect(await storages.default.exists(user.avatar!.name)).toBe(true);
  });

  it("save() needs the primary key in the select", async () => {
    const user = await prisma.user.create({
      data: { email: email(), avatar: upload(PNG, { filename: "pk.png" }), badge: dummyKey() },
    });
    const picked = await prisma.user.findUniqueOrThrow({ where: { id: user.id }, select: { avatar: true } });
    await expect(picked.avatar!.save(PNG, { filename: "x.png" })).rejects.toThrow(/primary key \(id\)/);
  });

  it("attach / detach from a where", async () => {
    const user = await prisma.user.create({ data: { email: email(), badge: dummyKey() } });
    const file = await prisma.user.attach({ id: user.id }, "avatar", PNG, { filename: "att.png" });
    expect(file.name).toBe(`avatars/${month}att.png`);
    expect(await file.exists()).toBe(true);
    const next = await prisma.user.attach({ id: user.id }, "avatar", PNG, { filename: "att2.png" });
    expect(await file.exists()).toBe(false);
    await prisma.user.detach({ id: user.id }, "avatar");
    expect(await next.exists()).toBe(false);
    expect((await plain.user.findUniqueOrThrow({ where: { id: user.id } })).avatar).toBeNull();
    // @ts-expect-error a required column cannot be detached
    await expect(prisma.user.detach({ id: user.id }, "badge")).rejects.toThrow();
    // @ts-expect-error not a file field
    await expect(prisma.user.attach({ id: user.id }, "email", PNG)).rejects.toThrow(/not a file field/);
  });
});

describe("the model methods on an interactive transaction's client", () => {
  it("tx.user.attach / detach / uploadGrant exist and follow the transaction's rollback and commit", async () => {
    const user = await prisma.user.create({
      data: { email: email(), avatar: upload(PNG, { filename: "tx-old.png" }), badge: dummyKey() },
    });
    const old = user.avatar!.name;
    let attached = "";
    await expect(
      prisma.$transaction(async (tx) => {
        expect(typeof tx.user.uploadGrant).toBe("function");
        const file = await tx.user.attach({ id: user.id }, "avatar", PNG, { filename: "tx-new.png" });
        attached = file.name;
        // Written through the transaction: it sees its own write, others do not yet.
        expect((await tx.user.findUniqueOrThrow({ where: { id: user.id } })).avatar?.name).toBe(attached);
        expect((await plain.user.findUniqueOrThrow({ where: { id: user.id } })).avatar).toBe(old);
        throw new Error("roll back");
      }),
    ).rejects.toThrow("roll back");
    expect(attached).not.toBe("");
    expect(await storages.default.exists(attached)).toBe(false);
    expect(await storages.default.exists(old)).toBe(true);
    expect((await plain.user.findUniqueOrThrow({ where: { id: user.id } })).avatar).toBe(old);

    let existedInside = false;
    await prisma.$transaction(async (tx) => {
      await tx.user.attach({ id: user.id }, "avatar", PNG, { filename: "tx-kept.png" });
      await tx.user.detach({ id: user.id }, "avatar");
      existedInside = await storages.default.exists(old);
    });
    expect(existedInside).toBe(true);
    expect(await storages.default.exists(old)).toBe(false);
    expect((await plain.user.findUniqueOrThrow({ where: { id: user.id } })).avatar).toBeNull();
    expect(await keys()).not.toContain(expect.stringContaining("tx-kept"));
  });
});

describe("uploads in branches the database may not take", () => {
  it("upsert with uploads on both sides keeps only the one written; connectOrCreate that connects drops its upload", async () => {
    const address = email();
    const first = await prisma.user.upsert({
      where: { email: address },
      create: { email: address, badge: dummyKey(), avatar: upload(PNG, { filename: "branch-create.png" }) },
      update: { avatar: upload(PNG, { filename: "branch-update.png" }) },
    });
    expect(first.avatar!.name).toBe(`avatars/${month}branch-create.png`);
    expect(await storages.default.exists(`avatars/${month}branch-update.png`)).toBe(false);
    const second = await prisma.user.upsert({
      where: { email: address },
      create: { email: address, badge: dummyKey(), avatar: upload(PNG, { filename: "branch-create2.png" }) },
      update: { avatar: upload(PNG, { filename: "branch-update2.png" }) },
    });
    expect(second.avatar!.name).toBe(`avatars/${month}branch-update2.png`);
    expect(await storages.default.exists(`avatars/${month}branch-create2.png`)).toBe(false);

    const post = await prisma.post.create({
      data: {
        title: "coc",
        author: {
          connectOrCreate: {
            where: { email: address },
            create: { email: address, badge: upload(Buffer.from("%PDF-1.7"), { filename: "never-used.pdf" }) },
          },
        },
      },
    });
    expect(post.authorId).toBe(first.id);
    expect(await storages.private.exists("badges/never-used.pdf")).toBe(false);
  });

  it("the same inside a batch transaction", async () => {
    const address = email();
    await prisma.user.create({ data: { email: address, badge: dummyKey() } });
    await prisma.$transaction([
      prisma.user.upsert({
        where: { email: address },
        create: { email: address, badge: dummyKey(), avatar: upload(PNG, { filename: "batch-create.png" }) },
        update: { avatar: upload(PNG, { filename: "batch-update.png" }) },
      }),
    ]);
    expect(await storages.default.exists(`avatars/${month}batch-create.png`)).toBe(false);
    expect(await storages.default.exists(`avatars/${month}batch-update.png`)).toBe(true);
  });
});

describe("request bodies as uploads", () => {
  it("an over-size request body streamed into upload() can still be answered (413, not a reset)", async () => {
    const { createServer } = await import("node:http");
    const before = await keys();
    const server = createServer(async (req, res) => {
      try {
        await prisma.user.create({
          data: { email: email(), badge: dummyKey(), avatar: upload(req, { filename: "big.png" }) },
        });
        res.writeHead(201).end("created");
      } catch (error) {
        res.writeHead(error instanceof FileValidationError ? 413 : 500).end((error as Error).message);
      }
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    try {
      const port = (server.address() as { port: number }).port;
      const body = Buffer.concat([PNG, Buffer.alloc(7 * 1024 * 1024)]);
      const response = await fetch(`http://127.0.0.1:${port}/`, { method: "POST", body });
      expect(response.status).toBe(413);
      expect(await response.text()).toMatch(/User\.avatar: file is larger than 5 MB/);
      expect(await keys()).toEqual(before);
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });
});

describe("batch transactions whose sibling fails before its query", () => {
  it("removes the uploads of the writes that never ran", async () => {
    const before = await keys();
    const html = Buffer.from("<html><body>not a picture</body></html>");
    await expect(
      prisma.$transaction([
        prisma.user.create({
          data: { email: email(), avatar: upload(PNG, { filename: "sibling-ok.png" }), badge: dummyKey() },
        }),
        prisma.user.create({
          data: { email: email(), avatar: upload(html, { filename: "sibling-bad.png" }), badge: dummyKey() },
        }),
      ]),
    ).rejects.toBeInstanceOf(FileValidationError);
    await new Promise((r) => setTimeout(r, 200));
    expect(await keys()).toEqual(before);
  });
});

describe("row locks", () => {
  it("a transaction may write the same row twice; a failed batch releases its rows", async () => {
    const user = await prisma.user.create({
      data: { email: email(), avatar: upload(PNG, { filename: "rl-0.png" }), badge: dummyKey() },
    });
    const started = Date.now();
    await prisma.$transaction(async (tx) => {
      await tx.user.update({ where: { id: user.id }, data: { avatar: upload(PNG, { filename: "rl-1.png" }) } });
      await tx.user.update({ where: { id: user.id }, data: { avatar: upload(PNG, { filename: "rl-2.png" }) } });
    });
    expect(Date.now() - started).toBeLessThan(20_000); // not the 60 s lock timeout
    const html = Buffer.from("<html>no</html>");
    await expect(
      prisma.$transaction([
        prisma.user.update({ where: { id: user.id }, data: { avatar: upload(PNG, { filename: "rl-3.png" }) } }),
        prisma.user.create({
          data: { email: email(), badge: dummyKey(), avatar: upload(html, { filename: "rl-bad.png" }) },
        }),
      ]),
    ).rejects.toBeInstanceOf(FileValidationError);
    const after = Date.now();
    await prisma.user.update({ where: { id: user.id }, data: { avatar: upload(PNG, { filename: "rl-4.png" }) } });
    expect(Date.now() - after).toBeLessThan(20_000);
    expect((await plain.user.findUniqueOrThrow({ where: { id: user.id } })).avatar).toBe(`avatars/${month}rl-4.png`);
  }, 90_000);
});

describe("row locks by primary key", () => {
  it("{ id } and { email } naming one row take one lock: 20 rounds of two concurrent replaces leave no orphan", async () => {
    const address = email();
    const user = await prisma.user.create({
      data: { email: address, avatar: upload(PNG, { filename: "pk-0.png" }), badge: dummyKey() },
    });
    for (let round = 1; round <= 20; round++) {
      await Promise.all([
        prisma.user.update({ where: { id: user.id }, data: { avatar: upload(PNG, { filename: `pk-${round}a.png` }) } }),
        prisma.user.update({
          where: { email: address },
          data: { avatar: upload(PNG, { filename: `pk-${round}b.png` }) },
        }),
      ]);
    }
    const row = await plain.user.findUniqueOrThrow({ where: { id: user.id } });
    // Of the 41 avatars uploaded, exactly the one the row holds is left.
    expect((await keys()).filter((k) => /\/pk-\d+[ab]?(_\w{7})?\.png$/.test(k))).toEqual([row.avatar]);
  }, 120_000);
});

describe("a batch writing one row twice without uploads", () => {
  it("does not wait on itself: its writes' hooks run concurrently and share the row's lock", async () => {
    const user = await prisma.user.create({
      data: { email: email(), avatar: upload(PNG, { filename: "twice-null.png" }), badge: dummyKey() },
    });
    const started = Date.now();
    await prisma.$transaction([
      prisma.user.update({ where: { id: user.id }, data: { avatar: null } }),
      prisma.user.update({ where: { id: user.id }, data: { name: "second" } }),
      prisma.user.update({ where: { id: user.id }, data: { avatar: null } }),
    ]);
    expect(Date.now() - started).toBeLessThan(20_000); // not the 60 s lock timeout
    expect(await storages.default.exists(user.avatar!.name)).toBe(false);
  }, 90_000);
});

describe("updateMany and update of one row at once", () => {
  it("updateMany waits for the row and reads the update's upload as its old key: one object left", async () => {
    const user = await prisma.user.create({
      data: { email: email(), avatar: upload(PNG, { filename: "um-0.png" }), badge: dummyKey() },
    });
    let written!: () => void;
    const singleWritten = new Promise<void>((r) => (written = r));
    let goOn!: () => void;
    const go = new Promise<void>((r) => (goOn = r));
    const transaction = prisma.$transaction(async (tx) => {
      await tx.user.update({ where: { id: user.id }, data: { avatar: upload(PNG, { filename: "um-single.png" }) } });
      written();
      await go;
    });
    await singleWritten;
    // Outside the transaction (its own async context): without the row lock it would read the
    // committed old key now, wait for the database's row lock, and orphan the update's upload.
    const many = prisma.user
      .updateMany({ where: { id: user.id }, data: { avatar: upload(PNG, { filename: "um-many.png" }) } })
      .then((r) => r);
    await new Promise((r) => setTimeout(r, 300));
    goOn();
    await transaction;
    expect((await many).count).toBe(1);
    const left = (await keys()).filter((k) => k.includes("/um-"));
    expect(left).toEqual([`avatars/${month}um-many.png`]);
  });
});

describe("updateMany matching no row", () => {
  it("removes the upload nobody took", async () => {
    const before = await keys();
    const r = await prisma.user.updateMany({
      where: { email: `nobody-${tag}` },
      data: { avatar: upload(PNG, { filename: "none.png" }) },
    });
    expect(r.count).toBe(0);
    expect(await keys()).toEqual(before);
  });
});

describe("a batch replacing one row's file twice", () => {
  it("keeps the last upload only; the first and the old file are removed after the commit", async () => {
    const user = await prisma.user.create({
      data: { email: email(), avatar: upload(PNG, { filename: "twice-0.png" }), badge: dummyKey() },
    });
    await prisma.$transaction([
      prisma.user.update({ where: { id: user.id }, data: { avatar: upload(PNG, { filename: "twice-1.png" }) } }),
      prisma.user.update({ where: { id: user.id }, data: { avatar: upload(PNG, { filename: "twice-2.png" }) } }),
    ]);
    expect((await plain.user.findUniqueOrThrow({ where: { id: user.id } })).avatar).toBe(`avatars/${month}twice-2.png`);
    const left = (await keys()).filter((k) => k.includes("twice-"));
    expect(left).toEqual([`avatars/${month}twice-2.png`]);
  });
});

describe("a key copied to another row while its last row goes away", () => {
  /**
   * Row A holds a file; row B copies its key in an interactive transaction; while that is open,
   * A is deleted outside it (in its own async context), then the transaction commits or rolls back.
   */
  /**
   * MySQL's default REPEATABLE READ makes the copy's check of the key's journal records lock the
   * gap around them until the copy's transaction ends: a write recording the deletion of that
   * key then waits for it (the test below shows it). READ COMMITTED, which our own transactions
   * use, locks no gaps: these tests give it to the caller's transaction there.
   */
  const copyOptions = provider === "mysql" ? ({ isolationLevel: "ReadCommitted" } as const) : undefined;

  async function copyWhileOwnerGoes(
    name: string,
    outcome: "commit" | "rollback",
    options: { isolationLevel?: "ReadCommitted" | "RepeatableRead" } | undefined = copyOptions,
  ) {
    const a = await prisma.user.create({
      data: { email: email(), avatar: upload(PNG, { filename: name }), badge: dummyKey() },
    });
    const b = await prisma.user.create({ data: { email: email(), badge: dummyKey() } });
    const key = a.avatar!.name;
    let copied!: () => void;
    const copyWritten = new Promise<void>((r) => (copied = r));
    let goOn!: () => void;
    const aDeleted = new Promise<void>((r) => (goOn = r));
    const transaction = prisma.$transaction(async (tx) => {
      await tx.user.update({ where: { id: b.id }, data: { avatar: key } });
      copied();
      await aDeleted;
      if (outcome === "rollback") throw new Error("the copy rolls back");
    }, options);
    await copyWritten;
    // A's delete commits, then its deletion of the key waits for the copy's key lock.
    const deleting = prisma.user.delete({ where: { id: a.id } }).then(() => undefined);
    await new Promise((r) => setTimeout(r, 500));
    const existsWhileOpen = await storages.default.exists(key);
    const aWhileOpen = await plain.user.findUnique({ where: { id: a.id } });
    goOn();
    const settled = await transaction.then(
      () => undefined,
      (e: unknown) => e,
    );
    await deleting;
    return { key, b, existsWhileOpen, settled, aWhileOpen };
  }

  it("is not deleted while the copying write is in flight", async () => {
    const { key, b, existsWhileOpen, settled, aWhileOpen } = await copyWhileOwnerGoes("copied.png", "commit");
    // SQLite: one writer, so the delete's transaction waits for the copy's.
    if (provider === "sqlite") expect(aWhileOpen).not.toBeNull();
    else expect(aWhileOpen).toBeNull();
    expect(settled).toBeUndefined();
    expect(existsWhileOpen).toBe(true);
    expect((await plain.user.findUniqueOrThrow({ where: { id: b.id } })).avatar).toBe(key);
    expect(await storages.default.exists(key)).toBe(true);
  });

  it.runIf(provider === "mysql")(
    "MySQL, REPEATABLE READ: the delete of the key's last row waits for the copying transaction, with the same outcome",
    async () => {
      const { key, b, existsWhileOpen, settled, aWhileOpen } = await copyWhileOwnerGoes("rr-copy.png", "commit", {
        isolationLevel: "RepeatableRead",
      });
      expect(aWhileOpen).not.toBeNull(); // waiting on the copy's gap lock
      expect(settled).toBeUndefined();
      expect(existsWhileOpen).toBe(true);
      expect((await plain.user.findUniqueOrThrow({ where: { id: b.id } })).avatar).toBe(key);
      expect(await storages.default.exists(key)).toBe(true);
    },
  );

  it("a deletion waiting for a copy in flight goes on when the copy rolls back", async () => {
    const { key, existsWhileOpen, settled, aWhileOpen } = await copyWhileOwnerGoes("deferred.png", "rollback");
    if (provider === "sqlite")
      expect(aWhileOpen).not.toBeNull(); // one writer (above)
    else expect(aWhileOpen).toBeNull();
    expect((settled as Error).message).toBe("the copy rolls back");
    expect(existsWhileOpen).toBe(true); // waiting: the copy might still commit
    // Nobody references it now: the deletion went on once the copy's lock was released.
    expect(await storages.default.exists(key)).toBe(false);
  });

  it("a copy arriving after this process deleted the key fails with FILE_NOT_FOUND; a key stored again is taken", async () => {
    const a = await prisma.user.create({
      data: { email: email(), avatar: upload(PNG, { filename: "late-copy.png" }), badge: dummyKey() },
    });
    const b = await prisma.user.create({ data: { email: email(), badge: dummyKey() } });
    const key = a.avatar!.name; // read before A goes, as a concurrent request would have
    await prisma.user.delete({ where: { id: a.id } });
    expect(await storages.default.exists(key)).toBe(false);
    const e = await prisma.user.update({ where: { id: b.id }, data: { avatar: key } }).catch((x: unknown) => x);
    expect((e as PrismaS3FilesError).code).toBe("FILE_NOT_FOUND");
    expect((await plain.user.findUniqueOrThrow({ where: { id: b.id } })).avatar).toBeNull();
    // Stored again under the same name: the copy is fine now.
    const again = await prisma.user.create({
      data: { email: email(), avatar: upload(PNG, { filename: "late-copy.png" }), badge: dummyKey() },
    });
    expect(again.avatar!.name).toBe(key);
    const copied = await prisma.user.update({ where: { id: b.id }, data: { avatar: key } });
    expect(copied.avatar!.name).toBe(key);
  });

  it("a copy arriving while the deletion runs waits for it and fails with FILE_NOT_FOUND, changing nothing", async () => {
    let openGate!: () => void;
    const gate = new Promise<void>((r) => (openGate = r));
    let reached!: () => void;
    const atDelete = new Promise<void>((r) => (reached = r));
    const gated = new Proxy(storages.default, {
      get(target, prop, receiver) {
        // Deletions after a commit go through deleteMany (one batch per storage).
        if (prop === "delete" || prop === "deleteMany") {
          return async (names: string & string[]) => {
            reached();
            await gate;
            return target[prop](names);
          };
        }
        const v = Reflect.get(target, prop, receiver);
        return typeof v === "function" ? v.bind(target) : v;
      },
    });
    const client = plainClient().$extends(
      s3Files(session, { fields: fileFields, storages: { ...storages, default: gated } }),
    );
    const a = await client.user.create({
      data: { email: email(), avatar: upload(PNG, { filename: "racing.png" }), badge: dummyKey() },
    });
    const b = await client.user.create({ data: { email: email(), badge: dummyKey() } });
    // Prisma's promises are lazy: then() starts the query.
    const deleting = client.user.delete({ where: { id: a.id } }).then(() => undefined);
    await atDelete;
    const copying = client.user.update({ where: { id: b.id }, data: { avatar: a.avatar!.name } });
    const copied = copying.then(
      () => undefined,
      (e: unknown) => e,
    );
    openGate();
    await deleting;
    const error = await copied;
    expect(error).toBeInstanceOf(PrismaS3FilesError);
    expect((error as PrismaS3FilesError).code).toBe("FILE_NOT_FOUND");
    expect((await plain.user.findUniqueOrThrow({ where: { id: b.id } })).avatar).toBeNull();
    expect(await storages.default.exists(a.avatar!.name)).toBe(false);
    await client.$disconnect();
  });

  it("deleteAfterSeconds: a row that takes the key during the grace period keeps the file", async () => {
    const fields = {
      ...fileFields,
      User: {
        ...fileFields.User,
        fileFields: {
          ...fileFields.User.fileFields,
          avatar: { ...fileFields.User.fileFields.avatar, deleteAfterSeconds: 0.5 },
        },
      },
    };
    const grace = plainClient().$extends(s3Files(session, { fields, storages }));
    const a = await grace.user.create({
      data: { email: email(), avatar: upload(PNG, { filename: "regrace.png" }), badge: dummyKey() },
    });
    await grace.user.update({ where: { id: a.id }, data: { avatar: null } });
    await grace.user.create({ data: { email: email(), avatar: a.avatar!.name, badge: dummyKey() } });
    await new Promise((r) => setTimeout(r, 1200));
    expect(await storages.default.exists(a.avatar!.name)).toBe(true);
    await grace.$disconnect();
  });
});

describe("client-supplied file names (Django's uploaded-file rules)", () => {
  it("keeps only the base name and cuts it to 255 characters, extension kept", async () => {
    // A memory storage: s3rver keeps objects as files named after the key plus a suffix, so it
    // cannot hold a 255-character segment (S3 itself takes 1,024-byte keys).
    const memory = new MemoryStorage();
    const client = plainClient().$extends(
      s3Files(session, { fields: fileFields, storages: { ...storages, default: memory } }),
    );
    const traversal = await client.user.create({
      data: { email: email(), avatar: upload(PNG, { filename: "../../..;/etc/evil.png" }), badge: dummyKey() },
    });
    expect(traversal.avatar!.name).toBe(`avatars/${month}evil.png`);
    const windows = await client.user.create({
      data: {
        email: email(),
        avatar: upload(new File([PNG], "C:\\Users\\me\\win.png", { type: "image/png" })),
        badge: dummyKey(),
      },
    });
    expect(windows.avatar!.name).toBe(`avatars/${month}win.png`);
    const long = await client.user.create({
      data: { email: email(), avatar: upload(PNG, { filename: `${"l".repeat(1000)}.png` }), badge: dummyKey() },
    });
    const base = long.avatar!.name.slice(`avatars/${month}`.length);
    const maxLength = fileFields.User.fileFields.avatar.maxLength;
    if (maxLength === null) expect(base).toBe(`${"l".repeat(251)}.png`);
    else {
      // MySQL: the column holds 191 characters (the metadata's maxLength), and the name is cut to fit it.
      expect(long.avatar!.name.length).toBeLessThanOrEqual(maxLength);
      expect(base).toMatch(/^l+(_[A-Za-z0-9]{7})?\.png$/);
    }
    expect(await memory.exists(long.avatar!.name)).toBe(true);
    expect(memory.keys().sort()).toEqual([traversal.avatar!.name, windows.avatar!.name, long.avatar!.name].sort());
    await client.$disconnect();
  });
});

describe("objects a storage could not remove", () => {
  it("a save failing with LeftBehindError is rethrown and reported to onCleanupError", async () => {
    class LeavingStorage extends MemoryStorage {
      override async save(name: string): Promise<string> {
        throw new LeftBehindError(
          "upload failed and its placeholder stayed",
          [{ name, key: name, cause: new Error("delete 500") }],
          {
            cause: new Error("put 500"),
            fileName: name,
          },
        );
      }
    }
    const reported: unknown[] = [];
    const client = plainClient().$extends(
      s3Files(session, {
        fields: fileFields,
        storages: { ...storages, default: new LeavingStorage() },
        onCleanupError: (e) => reported.push(e),
      }),
    );
    const error = await client.user
      .create({ data: { email: email(), avatar: upload(PNG, { filename: "left.png" }), badge: dummyKey() } })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LeftBehindError);
    expect(reported).toEqual([error]);
    expect((reported[0] as LeftBehindError).leftBehind[0]!.name).toBe(`avatars/${month}left.png`);
    await client.$disconnect();
  });
});

describe("several objects at once: DeleteObjects batches", () => {
  let proxy: S3Proxy;
  let proxied: S3Session;
  let batchStorages: { default: S3Storage; private: S3Storage; public: MemoryStorage };
  const batchLocation = `write-batch-${tag}`;
  const reported: unknown[] = [];
  let client: ReturnType<typeof batchClient>;
  function batchClient() {
    return plainClient().$extends(
      s3Files(proxied, { fields: fileFields, storages: batchStorages, onCleanupError: (e) => reported.push(e) }),
    );
  }
  const deleteRequests = (from: number) =>
    proxy.log
      .slice(from)
      .filter(
        (r) => (r.method === "POST" && r.query.has("delete")) || (r.method === "DELETE" && !r.query.has("uploadId")),
      );
  /** The server's answer to a batch in which `keys` could not be deleted (a bucket policy denying them, object lock). */
  const denied = (keys: string[]) => ({
    match: (r: { method: string; query: URLSearchParams }) => r.method === "POST" && r.query.has("delete"),
    times: 1,
    action: {
      status: 200,
      body: `<?xml version="1.0" encoding="UTF-8"?><DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">${keys
        .map((k) => `<Error><Key>${k}</Key><Code>AccessDenied</Code><Message>Access Denied</Message></Error>`)
        .join("")}</DeleteResult>`,
    },
  });

  beforeAll(async () => {
    proxy = await startS3Proxy(s3, { emulateConditionalWrites: s3.server === "s3rver" });
    proxied = createSession({ ...sessionOptionsFor(s3), endpoint: proxy.endpoint });
    batchStorages = {
      default: new S3Storage({ session: proxied, location: batchLocation }),
      private: new S3Storage({ session: proxied, location: `${batchLocation}-private` }),
      public: new MemoryStorage({ baseUrl: "https://public.example.com/" }),
    };
    client = batchClient();
  });
  afterAll(async () => {
    await client.$disconnect();
    await proxied.destroy();
    await proxy.close();
  });
  afterEach(() => {
    proxy.clearFaults();
    reported.length = 0;
  });

  const createBadges = (group: string, count: number) =>
    Promise.all(
      Array.from({ length: count }, (_, i) =>
        client.user.create({
          data: {
            email: `${group}-${i}@example.com`,
            badge: upload(Buffer.from(`%PDF-1.7 ${i}`), { filename: `${group}-${i}.pdf` }),
          },
        }),
      ),
    );

  it("deleteMany of 100 rows: their objects go in one DeleteObjects request after the commit", async () => {
    const group = `batch-${tag}`;
    const names = (await createBadges(group, 100)).map((r) => r.badge.name);
    const mark = proxy.log.length;
    expect((await client.user.deleteMany({ where: { email: { startsWith: group } } })).count).toBe(100);
    const deletes = deleteRequests(mark);
    expect(deletes.map((r) => r.method)).toEqual(["POST"]);
    expect(reported).toEqual([]);
    const left = new Set(await listKeys(s3, `${batchLocation}-private`));
    expect(names.filter((k) => left.has(k))).toEqual([]);
  });

  it("a key the batch could not delete goes to onCleanupError as a single delete's error would", async () => {
    const group = `batch-denied-${tag}`;
    const names = (await createBadges(group, 3)).map((r) => r.badge.name).sort();
    proxy.addFault(denied([`${batchLocation}-private/${names[1]}`]));
    expect((await client.user.deleteMany({ where: { email: { startsWith: group } } })).count).toBe(3);
    expect(reported).toHaveLength(1);
    expect(reported[0]).toBeInstanceOf(StorageError);
    expect(reported[0]).toMatchObject({ code: "STORAGE_ERROR", fileName: names[1] });
    expect((reported[0] as Error).message).toBe(`Could not delete ${JSON.stringify(names[1])}`);
    expect(((reported[0] as Error).cause as { name?: string }).name).toBe("AccessDenied");
  });

  it("a sweep deletes its orphans in one batch and reports each key the batch could not delete", async () => {
    const { sweepOrphans } = await import("../../src/prisma/sweep.js");
    const group = `batch-sweep-${tag}`;
    const rows = await createBadges(group, 5);
    const names = rows.map((r) => r.badge.name).sort();
    // Orphans: the rows go without the extension, so nobody deletes their objects.
    await plain.user.deleteMany({ where: { email: { startsWith: group } } });
    proxy.addFault(denied([`${batchLocation}-private/${names[0]}`]));
    const mark = proxy.log.length;
    const report = await sweepOrphans(plain, proxied, { fields: fileFields, storages: batchStorages, olderThan: 0 });
    const mine = report.orphans.filter((o) => names.includes(o.key)).map((o) => o.key);
    expect(mine.sort()).toEqual(names);
    expect(report.failed).toEqual([
      { storage: "private", key: names[0], error: `Could not delete ${JSON.stringify(names[0])} (AccessDenied)` },
    ]);
    expect(report.deleted).toBe(report.orphans.length - 1);
    // One batch: only the private storage has orphans (badges; the denied test's objects too, as
    // its faked answer deleted nothing).
    expect(deleteRequests(mark).map((r) => r.method)).toEqual(["POST"]);
  });
});
