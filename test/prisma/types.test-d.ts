import { describe, expectTypeOf, it } from "vitest";
import type { FieldFile } from "../../src/prisma/field-file.js";
import { upload } from "../../src/prisma/upload.js";
import type { filesClient } from "./client.js";

// Types only: the client is never constructed here.
declare const prisma: ReturnType<typeof filesClient>;

describe("file columns are typed end to end", () => {
  it("find*: optional → FieldFile | null, required → FieldFile, other columns untouched", async () => {
    const user = await prisma.user.findUniqueOrThrow({ where: { id: 1 } });
    expectTypeOf(user.avatar).toEqualTypeOf<FieldFile | null>();
    expectTypeOf(user.badge).toEqualTypeOf<FieldFile>();
    expectTypeOf(user.email).toEqualTypeOf<string>();
    expectTypeOf(user.name).toEqualTypeOf<string | null>();
    const many = await prisma.user.findMany();
    expectTypeOf(many[0]!.avatar).toEqualTypeOf<FieldFile | null>();
    // @ts-expect-error a FieldFile is not a string
    const key: string = user.badge;
    void key;
  });

  it("nested include and select", async () => {
    const user = await prisma.user.findUniqueOrThrow({
      where: { id: 1 },
      include: { posts: { include: { attachments: true } } },
    });
    expectTypeOf(user.posts[0]!.cover).toEqualTypeOf<FieldFile | null>();
    expectTypeOf(user.posts[0]!.attachments[0]!.original).toEqualTypeOf<FieldFile>();
    expectTypeOf(user.posts[0]!.attachments[0]!.preview).toEqualTypeOf<FieldFile | null>();
    const post = await prisma.post.findFirstOrThrow({ select: { author: { select: { avatar: true } } } });
    expectTypeOf(post.author.avatar).toEqualTypeOf<FieldFile | null>();
  });

  it("select without the column leaves it out of the type", async () => {
    const picked = await prisma.user.findUniqueOrThrow({ where: { id: 1 }, select: { email: true } });
    expectTypeOf(picked).toEqualTypeOf<{ email: string }>();
  });

  it("write results, fluent relations and transactions", async () => {
    const created = await prisma.user.create({ data: { email: "a", badge: "badges/x.pdf" } });
    expectTypeOf(created.badge).toEqualTypeOf<FieldFile>();
    const posts = await prisma.user.findUnique({ where: { id: 1 } }).posts();
    expectTypeOf(posts![0]!.cover).toEqualTypeOf<FieldFile | null>();
    const inTx = await prisma.$transaction(async (tx) => tx.user.findFirstOrThrow());
    expectTypeOf(inTx.avatar).toEqualTypeOf<FieldFile | null>();
    const [batch] = await prisma.$transaction([prisma.user.findFirstOrThrow()]);
    expectTypeOf(batch.badge).toEqualTypeOf<FieldFile>();
  });

  it("where and orderBy still take the key string", () => {
    expectTypeOf(prisma.user.findMany).toBeCallableWith({
      where: { avatar: "avatars/a.png" },
      orderBy: { avatar: "asc" },
    });
  });

  it("upload() is accepted where a file column is written, nested too; raw content is not", () => {
    const file = new File(["x"], "a.png");
    prisma.user.create({
      data: { email: "a", badge: upload(file), avatar: upload(Buffer.from("x"), { filename: "a.png" }) },
    });
    prisma.user.update({ where: { id: 1 }, data: { avatar: { set: upload(file) } } });
    prisma.user.create({
      data: { email: "a", badge: "k", posts: { create: { title: "t", cover: upload(file) } } },
    });
    prisma.post.update({
      where: { id: 1 },
      data: { attachments: { create: { original: upload(file) } } },
    });
    // @ts-expect-error raw content must go through upload()
    prisma.user.create({ data: { email: "a", badge: Buffer.from("x") } });
    // @ts-expect-error a File is not a key either
    prisma.user.update({ where: { id: 1 }, data: { avatar: file } });
    // @ts-expect-error upload() takes content, not a key string
    upload("avatars/a.png");
  });
});
