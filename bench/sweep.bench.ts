import { randomBytes } from "node:crypto";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { PutObjectCommand } from "@aws-sdk/client-s3";
import { PrismaPg } from "@prisma/adapter-pg";
import { createSession, S3Storage, sweepOrphans } from "../src/index.js";
import { fileFields } from "../test/generated/files/index.js";
import { PrismaClient } from "../test/generated/prisma/client.js";
import { createTestDatabase } from "../test/harness/postgres.js";
import { createTestS3, sessionOptionsFor } from "../test/harness/s3.js";
import type { Bench } from "./lib/report.js";

/** Objects to sweep (`BENCH_SWEEP_OBJECTS`, default 10^5). */
const OBJECTS = Number(process.env.BENCH_SWEEP_OBJECTS ?? 100_000);
/** Creating them stops after this many seconds (`BENCH_SWEEP_SECONDS`): the sweep runs on what exists. */
const CREATE_SECONDS = Number(process.env.BENCH_SWEEP_SECONDS ?? 600);
const CONCURRENCY = 64;
/** Every other object is held by a row; one in a hundred of the rest has an upload record. */
const HELD_EVERY = 2;
const RECORDED_EVERY = 100;

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

/**
 * `sweepOrphans` over 10^5 objects on the harness's S3 server (Ceph RGW here; PutObject in
 * parallel, no batch creation): half held by rows, some with upload records, the rest orphans
 * it deletes. Reports its time, its memory growth (RSS and heap, peak during the sweep and after
 * it, against a baseline taken after a GC), and the SQL statements and S3 requests it sends per
 * 1,000 keys examined. The report lists every orphan (by design), which is part of the growth.
 */
const bench: Bench = {
  description: `sweepOrphans over ${OBJECTS} objects (1/${HELD_EVERY} held by rows): time, memory, queries per 1,000 keys`,
  async run(ctx) {
    const [db, s3] = await Promise.all([createTestDatabase("psf_bench"), createTestS3()]);
    const session = createSession(sessionOptionsFor(s3));
    let requests = 0;
    let statements = 0;
    session.client.middlewareStack.add(
      (next) => (args) => {
        requests++;
        return next(args);
      },
      { step: "build", name: "benchRequestCounter" },
    );
    const client = new PrismaClient({
      adapter: new PrismaPg({ connectionString: db.url }),
      log: [{ emit: "event", level: "query" }],
    });
    client.$on("query", () => statements++);
    const location = `bench-sweep-${randomBytes(4).toString("hex")}`;
    const storage = new S3Storage({ session, location });
    const storages = { default: storage, private: storage, public: storage };
    try {
      // The objects: PutObject in parallel, time-boxed.
      const keys: string[] = [];
      const body = Buffer.from("x");
      const started = Date.now();
      let next = 0;
      const put = async () => {
        while (next < OBJECTS && Date.now() - started < CREATE_SECONDS * 1000) {
          const i = next++;
          const key = `avatars/2026/01/k${String(i).padStart(6, "0")}.png`;
          await session.client.send(
            new PutObjectCommand({ Bucket: s3.bucket, Key: `${location}/${key}`, Body: body, ContentLength: 1 }),
          );
          keys.push(key);
        }
      };
      await Promise.all(Array.from({ length: CONCURRENCY }, put));
      const createSeconds = (Date.now() - started) / 1000;
      ctx.report("setup", "objects", keys.length, "objects");
      ctx.report("setup", "PutObject rate", Math.round(keys.length / createSeconds), "objects/s");
      keys.sort();
      const held = keys.filter((_, i) => i % HELD_EVERY === 0);
      const recorded = keys.filter((_, i) => i % HELD_EVERY !== 0 && i % RECORDED_EVERY === 1);
      for (let i = 0; i < held.length; i += 5000) {
        await client.user.createMany({
          data: held.slice(i, i + 5000).map((avatar, j) => ({
            email: `b${i + j}@bench.test`,
            avatar,
            badge: "badges/bench.pdf",
          })),
        });
      }
      for (let i = 0; i < recorded.length; i += 1000) {
        const chunk = recorded.slice(i, i + 1000);
        await client.$executeRawUnsafe(
          `INSERT INTO prisma_s3_files_journal (kind, storage, "objectKey", "notBefore") SELECT 'upload', 'default', k, now() + interval '1 hour' FROM unnest($1::text[]) AS k`,
          chunk,
        );
      }

      gc();
      const before = process.memoryUsage();
      let peakRss = before.rss;
      let peakHeap = before.heapUsed;
      const sampler = setInterval(() => {
        const m = process.memoryUsage();
        peakRss = Math.max(peakRss, m.rss);
        peakHeap = Math.max(peakHeap, m.heapUsed);
      }, 20);
      const [s0, r0] = [statements, requests];
      const t0 = performance.now();
      const report = await sweepOrphans(client, session, { fields: fileFields, storages, olderThan: 0 });
      const seconds = (performance.now() - t0) / 1000;
      clearInterval(sampler);
      const during = process.memoryUsage();
      peakRss = Math.max(peakRss, during.rss);
      peakHeap = Math.max(peakHeap, during.heapUsed);
      const sqls = statements - s0;
      const s3requests = requests - r0;
      const orphans = report.orphans.length;
      gc();
      const after = process.memoryUsage();
      const MiB = 1024 * 1024;
      const per1000 = (n: number) => +((n * 1000) / report.examined).toFixed(2);
      ctx.report("sweep", "examined", report.examined, "objects");
      ctx.report("sweep", "orphans", orphans, "objects");
      ctx.report("sweep", "deleted", report.deleted, "objects");
      ctx.report("sweep", "failed", report.failed.length, "objects");
      ctx.report("sweep", "time", +seconds.toFixed(2), "s");
      ctx.report("sweep", "rate", Math.round(report.examined / seconds), "objects/s");
      ctx.report("sweep", "SQL statements", sqls, "statements");
      ctx.report("sweep", "SQL statements per 1,000 keys", per1000(sqls), "statements");
      ctx.report("sweep", "S3 requests per 1,000 keys", per1000(s3requests), "requests");
      ctx.report("sweep", "RSS growth, peak", +((peakRss - before.rss) / MiB).toFixed(1), "MiB");
      ctx.report("sweep", "heap growth, peak", +((peakHeap - before.heapUsed) / MiB).toFixed(1), "MiB");
      ctx.report(
        "sweep",
        "heap growth, after (report kept)",
        +((after.heapUsed - before.heapUsed) / MiB).toFixed(1),
        "MiB",
      );
      ctx.report("sweep", "RSS growth, after", +((after.rss - before.rss) / MiB).toFixed(1), "MiB");
      // What the report itself holds: one entry per orphan.
      ctx.report("sweep", "report size (JSON)", +(JSON.stringify(report).length / MiB).toFixed(1), "MiB");
      const left = await client.user.count({ where: { email: { endsWith: "@bench.test" } } });
      ctx.report("sweep", "rows kept", left, "rows");
    } finally {
      await client.$disconnect();
      await session.destroy();
      await Promise.allSettled([db.drop(), s3.stop()]);
    }
  },
};

export default bench;
