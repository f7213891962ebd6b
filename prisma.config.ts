import { defineConfig } from "prisma/config";

// `prisma generate` needs no database; `prisma migrate` (on a machine with the schema
// engine) uses DATABASE_URL. The fallback is the local server the test harness uses.
export default defineConfig({
  schema: "prisma/schema.prisma",
  migrations: { path: "prisma/migrations" },
  datasource: {
    url: process.env.DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/test",
  },
});
