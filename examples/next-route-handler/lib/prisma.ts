/**
 * The extended Prisma client of a Next.js app (`lib/prisma.ts`), built once per process. In
 * development Next re-evaluates modules on every change; keeping the client on `globalThis`
 * keeps one session (one credential fetch, one socket pool) across those reloads.
 */
import { PrismaPg } from "@prisma/adapter-pg";
// In your application: from "prisma-s3-files/s3".
import { createSession } from "../../../src/entries/s3.js";
// Your generators' outputs (here: the demo's, from `npm run demo:generate`).
import { s3Files } from "../../demo/generated/files/index.js";
import { PrismaClient } from "../../demo/generated/prisma/client.js";

function createClient() {
  const session = createSession({ bucket: process.env.S3_BUCKET });
  return new PrismaClient({ adapter: new PrismaPg({ connectionString: process.env.DATABASE_URL }) }).$extends(
    s3Files(session),
  );
}

const cache = globalThis as typeof globalThis & { prismaWithFiles?: ReturnType<typeof createClient> };
export const prisma = cache.prismaWithFiles ?? createClient();
if (process.env.NODE_ENV !== "production") cache.prismaWithFiles = prisma;
