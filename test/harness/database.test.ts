import { describe, expect, inject, it } from "vitest";
import { plainClient, provider } from "../prisma/client.js";
import { rawDb } from "./sql.js";

// Runs in every project (vitest.config.ts): the harness's database for that provider.
describe(`${provider} from the harness`, () => {
  it("is a fresh database with the committed migrations applied", async () => {
    const db = await rawDb(provider, inject("databaseUrl"));
    try {
      const tablesSql = {
        postgresql:
          "select table_name as name from information_schema.tables where table_schema = 'public' order by table_name",
        mysql:
          "select table_name as name from information_schema.tables where table_schema = database() order by table_name",
        sqlite: "select name from sqlite_master where type = 'table' and name not like 'sqlite_%' order by name",
      }[provider];
      const tables = await db.query<{ name: string }>(tablesSql);
      expect(tables.map((r) => r.name).sort()).toEqual([
        "Attachment",
        "Photo",
        "Post",
        "User",
        "prisma_s3_files_journal",
      ]);
      if (provider === "sqlite") {
        // WAL, set on the file by the harness (test/harness/sqlite.ts says why).
        expect(await db.query("pragma journal_mode")).toEqual([{ journal_mode: "wal" }]);
        expect(inject("databaseUrl")).toMatch(/psf-sqlite-[^/]+\/test\.db$/);
      } else {
        const current = provider === "mysql" ? "select database() as name" : "select current_database() as name";
        expect((await db.query<{ name: string }>(current))[0]?.name).toMatch(/^psf_/);
      }
    } finally {
      await db.end();
    }
  });

  it("is reachable through the provider's generated Prisma client and driver adapter", async () => {
    const prisma = plainClient();
    try {
      const user = await prisma.user.create({
        data: { email: `h-${Date.now()}@x.test`, badge: "badges/a.pdf", posts: { create: { title: "t" } } },
      });
      const found = await prisma.user.findUniqueOrThrow({ where: { id: user.id }, include: { posts: true } });
      expect(found.badge).toBe("badges/a.pdf");
      expect(found.avatar).toBeNull();
      expect(found.posts.map((p) => p.title)).toEqual(["t"]);
      // The foreign keys cascade (SQLite enforces them only where enabled: better-sqlite3 does by default).
      await prisma.user.delete({ where: { id: user.id } });
      expect(await prisma.post.count({ where: { authorId: user.id } })).toBe(0);
      const journal = await prisma.fileJournal.create({ data: { kind: "upload", storage: "s", objectKey: "k" } });
      expect(typeof journal.id).toBe("bigint");
      expect(journal.notBefore).toBeInstanceOf(Date);
      await prisma.fileJournal.delete({ where: { id: journal.id } });
    } finally {
      await prisma.$disconnect();
    }
  });
});
