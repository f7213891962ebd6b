import { randomBytes } from "node:crypto";
import { PutObjectCommand } from "@aws-sdk/client-s3";
import { PrismaPg } from "@prisma/adapter-pg";
import { createSession, S3Storage } from "../src/index.js";
import { s3Files } from "../src/prisma/extension.js";
import { upload } from "../src/prisma/upload.js";
import { fileFields } from "../test/generated/files/index.js";
import { PrismaClient } from "../test/generated/prisma/client.js";
import { createTestDatabase } from "../test/harness/postgres.js";
import { createTestS3, sessionOptionsFor } from "../test/harness/s3.js";
import { type Bench, median } from "./lib/report.js";

const BYTES = 64 * 1024;
const WARMUP = 10;
const ITERATIONS = 100;
const GOAL = 1.25;

/**
 * What the write path costs over writing by hand: `post.create` with one 64 KiB upload through
 * `s3Files()` (validation, naming, an exclusive PutObject, the row, the cleanup checks) against
 * the hand-written path an application would otherwise have (PutObject under a fresh key, then a
 * plain `create` with that key), on the same database, S3 server and session, alternating. Also
 * counts what each write sends: SQL statements and S3 requests.
 */
const bench: Bench = {
  baseline: "hand-written",
  description: `post.create with one ${BYTES / 1024} KiB upload: s3Files() vs PutObject then a plain create`,
  async run(ctx) {
    const [db, s3] = await Promise.all([createTestDatabase("psf_bench"), createTestS3()]);
    const session = createSession(sessionOptionsFor(s3));
    let statements = 0;
    let requests = 0;
    session.client.middlewareStack.add(
      (next) => (args) => {
        requests++;
        return next(args);
      },
      { step: "build", name: "benchRequestCounter" },
    );
    const plain = new PrismaClient({
      adapter: new PrismaPg({ connectionString: db.url }),
      log: [{ emit: "event", level: "query" }],
    });
    plain.$on("query", () => statements++);
    const location = `bench-write-${randomBytes(4).toString("hex")}`;
    const storage = new S3Storage({ session, location });
    const files = plain.$extends(
      s3Files(session, { fields: fileFields, storages: { default: storage, public: storage, private: storage } }),
    );
    try {
      const author = await plain.user.create({ data: { email: "bench@example.com", badge: "badges/bench.pdf" } });
      const body = randomBytes(BYTES);
      let n = 0;
      const variants: Record<string, () => Promise<unknown>> = {
        "hand-written": async () => {
          const key = `posts/covers/hand-${n++}-${randomBytes(6).toString("hex")}.bin`;
          await session.client.send(
            new PutObjectCommand({ Bucket: s3.bucket, Key: `${location}/${key}`, Body: body, ContentLength: BYTES }),
          );
          return plain.post.create({ data: { title: "bench", authorId: author.id, cover: key } });
        },
        s3Files: () =>
          files.post.create({
            data: { title: "bench", authorId: author.id, cover: upload(body, { filename: `files-${n++}.bin` }) },
          }),
      };
      const names = Object.keys(variants);
      for (let i = 0; i < WARMUP; i++) for (const name of names) await variants[name]!();
      const samples: Record<string, number[]> = Object.fromEntries(names.map((v) => [v, []]));
      const counts: Record<string, { statements: number; requests: number }> = Object.fromEntries(
        names.map((v) => [v, { statements: 0, requests: 0 }]),
      );
      for (let i = 0; i < ITERATIONS; i++) {
        for (const name of names) {
          const [s0, r0] = [statements, requests];
          const t0 = performance.now();
          await variants[name]!();
          samples[name]!.push(performance.now() - t0);
          counts[name]!.statements += statements - s0;
          counts[name]!.requests += requests - r0;
        }
      }
      for (const name of names) {
        ctx.report(name, "median per write", Math.round(median(samples[name]!) * 100) / 100, "ms");
        ctx.report(name, "SQL statements per write", counts[name]!.statements / ITERATIONS, "count");
        ctx.report(name, "S3 requests per write", counts[name]!.requests / ITERATIONS, "count");
      }
      const ratio = median(samples.s3Files!) / median(samples["hand-written"]!);
      ctx.report(
        "s3Files",
        `ratio vs hand-written (goal ≤ ${GOAL}, server ${s3.server})`,
        Math.round(ratio * 1000) / 1000,
        "x",
      );
    } finally {
      await files.$disconnect();
      await plain.$disconnect();
      await session.destroy();
      await Promise.allSettled([db.drop(), s3.stop()]);
    }
  },
};
export default bench;
