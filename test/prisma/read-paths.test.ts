import { randomBytes } from "node:crypto";
import { inspect } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PrismaS3FilesError, type S3Session } from "../../src/index.js";
import { s3Files } from "../../src/prisma/extension.js";
import { FieldFile } from "../../src/prisma/field-file.js";
import { Prisma } from "../generated/prisma/client.js";
import {
  type CountingMemoryStorage,
  fileFields,
  filesClient,
  generatedS3Files,
  harnessSession,
  plainClient,
  provider,
  sqlId,
  testStorages,
} from "./client.js";

let session: S3Session;
let storages: ReturnType<typeof testStorages>;
let prisma: ReturnType<typeof filesClient>;
const plain = plainClient();
const tag = randomBytes(4).toString("hex");
let userId: number;
let postId: number;

beforeAll(async () => {
  session = harnessSession();
  storages = testStorages(session);
  prisma = filesClient(session, storages);
  const user = await plain.user.create({
    data: {
      email: `reader-${tag}@example.com`,
      avatar: `avatars/${tag}/me.png`,
      badge: `badges/${tag}.pdf`,
      posts: {
        create: [
          {
            title: "first",
            cover: `posts/covers/${tag}-1.jpg`,
            attachments: { create: [{ original: `att/${tag}/o.pdf`, preview: `att/${tag}/p.png` }] },
          },
          { title: "second", cover: null },
        ],
      },
    },
    include: { posts: true },
  });
  userId = user.id;
  postId = user.posts[0]!.id;
  await plain.user.create({ data: { email: `noavatar-${tag}@example.com`, badge: `badges/${tag}-2.pdf` } });
});
afterAll(async () => {
  await prisma.$disconnect();
  await plain.$disconnect();
  await session.destroy();
});

function expectFile(value: unknown, name: string, storage?: unknown) {
  expect(value).toBeInstanceOf(FieldFile);
  expect((value as FieldFile).name).toBe(name);
  if (storage) expect((value as FieldFile).storage).toBe(storage);
}

describe("find*", () => {
  it("findUnique: file columns read as FieldFile, null stays null, other columns untouched", async () => {
    const user = await prisma.user.findUniqueOrThrow({ where: { id: userId } });
    expectFile(user.avatar, `avatars/${tag}/me.png`);
    expectFile(user.badge, `badges/${tag}.pdf`, storages.private);
    expect(user.email).toBe(`reader-${tag}@example.com`);
    expect(user.avatar?.model).toBe("User");
    expect(user.avatar?.field).toBe("avatar");
    const other = await prisma.user.findUnique({ where: { email: `noavatar-${tag}@example.com` } });
    expect(other?.avatar).toBeNull();
  });

  it("findMany / findFirst / findFirstOrThrow", async () => {
    const users = await prisma.user.findMany({ where: { email: { contains: tag } }, orderBy: { id: "asc" } });
    expect(users).toHaveLength(2);
    expectFile(users[0]!.avatar, `avatars/${tag}/me.png`);
    expect(users[1]!.avatar).toBeNull();
    expectFile((await prisma.user.findFirst({ where: { id: userId } }))?.badge, `badges/${tag}.pdf`);
    expectFile((await prisma.user.findFirstOrThrow({ where: { id: userId } })).avatar, `avatars/${tag}/me.png`);
  });

  it("where and orderBy on a file column still take the key string", async () => {
    const found = await prisma.user.findMany({
      where: { avatar: `avatars/${tag}/me.png` },
      orderBy: { avatar: "asc" },
    });
    expect(found.map((u) => u.id)).toEqual([userId]);
  });

  it("select without the column leaves it out; select with it maps it", async () => {
    const picked = await prisma.user.findUniqueOrThrow({ where: { id: userId }, select: { email: true } });
    expect(Object.keys(picked)).toEqual(["email"]);
    const onlyAvatar = await prisma.user.findUniqueOrThrow({ where: { id: userId }, select: { avatar: true } });
    expectFile(onlyAvatar.avatar, `avatars/${tag}/me.png`);
  });

  it("url() of a read file is a working presigned URL", async () => {
    const user = await prisma.user.findUniqueOrThrow({ where: { id: userId } });
    await session.client.config.region(); // nothing to do with the URL: just a warm session
    const s3 = (await import("vitest")).inject("s3");
    const storage = user.avatar!.storage;
    await storage.save(user.avatar!.name, Buffer.from("avatar bytes"));
    const url = await user.avatar!.url();
    expect(url.startsWith(`${s3.endpoint}/${s3.bucket}/avatars/${tag}/me.png?`)).toBe(true);
    expect(await (await fetch(url)).text()).toBe("avatar bytes");
    expect(await user.avatar!.size()).toBe(12);
    await storage.delete(user.avatar!.name);
  });
});

describe("nested reads", () => {
  it("include: relations' file columns map, each on its own storage", async () => {
    const user = await prisma.user.findUniqueOrThrow({
      where: { id: userId },
      include: { posts: { include: { attachments: true }, orderBy: { id: "asc" } } },
    });
    expectFile(user.posts[0]!.cover, `posts/covers/${tag}-1.jpg`);
    expect(user.posts[1]!.cover).toBeNull();
    const attachment = user.posts[0]!.attachments[0]!;
    expectFile(attachment.original, `att/${tag}/o.pdf`, storages.private);
    expectFile(attachment.preview, `att/${tag}/p.png`, storages.public);
  });

  it("nested select and a to-one relation back up", async () => {
    const post = await prisma.post.findUniqueOrThrow({
      where: { id: postId },
      select: {
        title: true,
        author: { select: { avatar: true, email: true } },
        attachments: { select: { preview: true } },
      },
    });
    expectFile(post.author.avatar, `avatars/${tag}/me.png`);
    expectFile(post.attachments[0]!.preview, `att/${tag}/p.png`);
  });

  it("fluent relations", async () => {
    const posts = await prisma.user.findUnique({ where: { id: userId } }).posts({ orderBy: { id: "asc" } });
    expectFile(posts?.[0]?.cover, `posts/covers/${tag}-1.jpg`);
    const author = await prisma.post.findUnique({ where: { id: postId } }).author();
    expectFile(author?.avatar, `avatars/${tag}/me.png`);
  });
});

describe("write results", () => {
  it("create, update, upsert, delete, createManyAndReturn and updateManyAndReturn return FieldFiles", async () => {
    const created = await prisma.user.create({
      data: { email: `w-${tag}@example.com`, badge: "badges/w.pdf", avatar: "a/w.png" },
    });
    expectFile(created.avatar, "a/w.png");
    const updated = await prisma.user.update({ where: { id: created.id }, data: { avatar: "a/w2.png" } });
    expectFile(updated.avatar, "a/w2.png");
    const upserted = await prisma.user.upsert({
      where: { id: created.id },
      update: { badge: "badges/w2.pdf" },
      create: { email: "never@example.com", badge: "x" },
    });
    expectFile(upserted.badge, "badges/w2.pdf");
    // Prisma has no createManyAndReturn / updateManyAndReturn on MySQL.
    if (provider !== "mysql") {
      const many = await prisma.user.createManyAndReturn({
        data: [
          { email: `m1-${tag}@example.com`, badge: "badges/m1.pdf" },
          { email: `m2-${tag}@example.com`, badge: "badges/m2.pdf", avatar: "a/m2.png" },
        ],
      });
      expectFile(many[0]!.badge, "badges/m1.pdf");
      expectFile(many[1]!.avatar, "a/m2.png");
      const updatedMany = await prisma.user.updateManyAndReturn({
        where: { email: { in: [`m1-${tag}@example.com`, `m2-${tag}@example.com`] } },
        data: { avatar: "a/same.png" },
      });
      for (const u of updatedMany) expectFile(u.avatar, "a/same.png");
    }
    const deleted = await prisma.user.delete({ where: { id: created.id } });
    expectFile(deleted.avatar, "a/w2.png");
    await plain.user.deleteMany({ where: { email: { in: [`m1-${tag}@example.com`, `m2-${tag}@example.com`] } } });
  });

  it("counts, aggregates and groupBy stay as Prisma returns them", async () => {
    expect(await prisma.user.count({ where: { id: userId } })).toBe(1);
    const groups = await prisma.user.groupBy({ by: ["avatar"], where: { id: userId } });
    expect(groups[0]!.avatar).toBe(`avatars/${tag}/me.png`);
    const agg = await prisma.user.aggregate({ where: { id: userId }, _max: { avatar: true } });
    expect(agg._max.avatar).toBe(`avatars/${tag}/me.png`);
  });
});

describe("transactions and raw queries", () => {
  it("inside an interactive transaction", async () => {
    const user = await prisma.$transaction(async (tx) =>
      tx.user.findUniqueOrThrow({ where: { id: userId }, include: { posts: true } }),
    );
    expectFile(user.avatar, `avatars/${tag}/me.png`);
    expect(user.posts.some((p) => p.cover instanceof FieldFile)).toBe(true);
  });

  it("inside a batch transaction", async () => {
    const [user, posts] = await prisma.$transaction([
      prisma.user.findUniqueOrThrow({ where: { id: userId } }),
      prisma.post.findMany({ where: { authorId: userId }, orderBy: { id: "asc" } }),
    ]);
    expectFile(user.avatar, `avatars/${tag}/me.png`);
    expectFile(posts[0]!.cover, `posts/covers/${tag}-1.jpg`);
  });

  it("raw queries stay raw", async () => {
    const rows = await prisma.$queryRaw<
      { avatar: string }[]
    >`SELECT avatar FROM ${Prisma.raw(sqlId("User"))} WHERE id = ${userId}`;
    expect(rows[0]!.avatar).toBe(`avatars/${tag}/me.png`);
  });
});

describe("file objects", () => {
  it("serialize as their key; inspect shows the key; structuredClone works", async () => {
    const user = await prisma.user.findUniqueOrThrow({ where: { id: userId } });
    const json = JSON.parse(JSON.stringify(user));
    expect(json.avatar).toBe(`avatars/${tag}/me.png`);
    expect(json.badge).toBe(`badges/${tag}.pdf`);
    expect(inspect(user.avatar)).toBe(`FieldFile("avatars/${tag}/me.png")`);
    expect(inspect(user)).toContain(`FieldFile("avatars/${tag}/me.png")`);
    expect(() => structuredClone(user)).not.toThrow();
  });

  it("stay lazy: reading rows makes no storage call", async () => {
    const pub = storages.public as CountingMemoryStorage;
    const before = pub.calls;
    const attachments = await prisma.attachment.findMany({ where: { original: { startsWith: `att/${tag}` } } });
    expect(attachments[0]!.preview).toBeInstanceOf(FieldFile);
    expect(pub.calls).toBe(before);
    await attachments[0]!.preview!.url();
    expect(pub.calls).toBe(before + 1);
  });

  it("applying the extension twice does not wrap a FieldFile in another", async () => {
    const twice = prisma.$extends(s3Files(session, { fields: fileFields, storages }));
    const user = await twice.user.findUniqueOrThrow({ where: { id: userId } });
    expectFile(user.avatar, `avatars/${tag}/me.png`);
    expect(typeof user.avatar?.name).toBe("string");
  });

  it("a storage named in the schema but not given is a configuration error naming the fields", () => {
    expect(() => s3Files(session, { fields: fileFields, storages: { public: storages.public } })).toThrow(
      PrismaS3FilesError,
    );
    expect(() => s3Files(session, { fields: fileFields, storages: { public: storages.public } })).toThrow(
      /"private" \(used by Attachment\.original, User\.badge\)/,
    );
  });
});

/** Counts the calls of Prisma's computed-field lookup on a client: its result pass makes one per row. */
function countComputedFieldLookups(client: unknown): { calls: number } {
  const extensions = (client as { _extensions: { getAllComputedFields(model: string): unknown } })._extensions;
  const counter = { calls: 0 };
  const original = extensions.getAllComputedFields.bind(extensions);
  extensions.getAllComputedFields = (model: string) => {
    counter.calls++;
    return original(model);
  };
  return counter;
}

describe("Prisma's per-row result pass", () => {
  const ROWS = 40;
  let rowsTag: string;
  beforeAll(async () => {
    rowsTag = randomBytes(4).toString("hex");
    await plain.attachment.createMany({
      data: Array.from({ length: ROWS }, (_, i) => ({ postId, original: `att/${rowsTag}/${i}.pdf` })),
    });
  });
  const mine = () => ({ where: { original: { startsWith: `att/${rowsTag}/` } } });

  it("is skipped by default, and every read path still maps", async () => {
    const client = plainClient().$extends(s3Files(session, { fields: fileFields, storages }));
    const lookups = countComputedFieldLookups(client);
    const rows = await client.attachment.findMany(mine());
    expect(rows).toHaveLength(ROWS);
    expectFile(rows[0]!.original, rows[0]!.original.name, storages.private);
    // Query serialization looks the model up a few times; the pass would add one per row.
    expect(lookups.calls).toBeLessThan(ROWS);
    const user = await client.user.findUniqueOrThrow({
      where: { id: userId },
      include: { posts: { include: { attachments: true } } },
    });
    expectFile(user.avatar, `avatars/${tag}/me.png`);
    expectFile(user.posts.find((p) => p.cover)?.cover, `posts/covers/${tag}-1.jpg`);
    const posts = await client.user.findUnique({ where: { id: userId } }).posts({ orderBy: { id: "asc" } });
    expectFile(posts?.[0]?.cover, `posts/covers/${tag}-1.jpg`);
    const picked = await client.user.findUniqueOrThrow({ where: { id: userId }, select: { email: true } });
    expect(Object.keys(picked)).toEqual(["email"]);
    await client.$disconnect();
  });

  it("is kept when a result extension was applied before", async () => {
    const client = plainClient()
      .$extends({ result: { user: { shout: { needs: { email: true }, compute: (u) => u.email.toUpperCase() } } } })
      .$extends(s3Files(session, { fields: fileFields, storages }));
    const user = await client.user.findUniqueOrThrow({ where: { id: userId } });
    expect(user.shout).toBe(`READER-${tag.toUpperCase()}@EXAMPLE.COM`);
    expectFile(user.avatar, `avatars/${tag}/me.png`);
    await client.$disconnect();
  });

  it("is kept when a result extension is applied after, object or function form, on any derived client", async () => {
    const files = plainClient().$extends(s3Files(session, { fields: fileFields, storages }));
    const later = files
      .$extends({ query: { $allModels: { $allOperations: ({ args, query }) => query(args) } } })
      .$extends((client) =>
        client.$extends({
          result: { post: { loud: { needs: { title: true }, compute: (p) => p.title.toUpperCase() } } },
        }),
      );
    const user = await later.user.findUniqueOrThrow({ where: { id: userId }, include: { posts: true } });
    expect(user.posts.map((p) => p.loud).sort()).toEqual(["FIRST", "SECOND"]);
    expectFile(user.avatar, `avatars/${tag}/me.png`);
    const lookups = countComputedFieldLookups(later);
    expect(await later.attachment.findMany(mine())).toHaveLength(ROWS);
    expect(lookups.calls).toBeGreaterThanOrEqual(ROWS);
    const attachments = await later.post.findUniqueOrThrow({ where: { id: postId } }).attachments();
    expect(attachments).toHaveLength(ROWS + 1);
    expect(attachments.every((a) => a.original instanceof FieldFile)).toBe(true);
    await files.$disconnect();
  });

  it("accepts the deprecated fastReads option without changing anything", async () => {
    const client = plainClient()
      .$extends(s3Files(session, { fields: fileFields, storages, fastReads: true }))
      .$extends({ result: { user: { shout: { needs: { email: true }, compute: (u) => u.email.toUpperCase() } } } });
    const user = await client.user.findUniqueOrThrow({ where: { id: userId } });
    expect(user.shout).toBe(`READER-${tag.toUpperCase()}@EXAMPLE.COM`);
    expectFile(user.avatar, `avatars/${tag}/me.png`);
    await client.$disconnect();
  });
});

describe("the generated module", () => {
  it("exports s3Files pre-bound to the schema: s3Files(session) alone works with the default storage", async () => {
    const bound = generatedS3Files;
    const client = plainClient().$extends(bound(session, { storages }));
    const user = await client.user.findUniqueOrThrow({ where: { id: userId } });
    expectFile(user.avatar, `avatars/${tag}/me.png`);
    expect(user.avatar!.storage.constructor.name).toBe("S3Storage");
    expect(() => bound(session)).toThrow(/"p(ublic|rivate)"/); // named storages still have to be given
    await client.$disconnect();
  });
});
