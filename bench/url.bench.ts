import { GetObjectCommand } from "@aws-sdk/client-s3";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import { PrismaPg } from "@prisma/adapter-pg";
import { s3Files } from "../src/prisma/extension.js";
import type { FieldFile } from "../src/prisma/field-file.js";
import type { S3Session } from "../src/session/session.js";
import { createSession } from "../src/session/session.js";
import { S3Storage } from "../src/storage/s3/s3-storage.js";
import { fileFields } from "../test/generated/files/index.js";
import { PrismaClient } from "../test/generated/prisma/client.js";
import { createTestDatabase } from "../test/harness/postgres.js";
import { type Bench, type BenchContext, median, quantile } from "./lib/report.js";

const CALLS = 20_000;
const PAGE_ROWS = 1_000;
const PAGE_ROUNDS = 21;
const WARMUP = 2_000;
const ENDPOINT = "http://127.0.0.1:9000";
const REGION = "us-east-1";
const BUCKET = "bench";
const EXPIRES = 3600;
const CREDENTIALS = { accessKeyId: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY" };
const keyOf = (i: number) => `avatars/2026/11/user-${i}.png`;

/**
 * Per-call latency of `fn` in microseconds, after a warm-up; nothing is sent over the network.
 * Every call is awaited on its own, inside the timed span: a Promise-returning API pays its
 * microtask turns like any caller would.
 */
async function measure(fn: (key: string) => Promise<string>): Promise<number[]> {
  for (let i = 0; i < WARMUP; i++) await fn(keyOf(i));
  const samples = new Array<number>(CALLS);
  for (let i = 0; i < CALLS; i++) {
    const key = keyOf(i);
    const t0 = process.hrtime.bigint();
    await fn(key);
    samples[i] = Number(process.hrtime.bigint() - t0) / 1000;
  }
  return samples;
}

/** The `X-Amz-Date` of a presigned URL: both URLs must come from the same clock second to compare. */
const amzDate = (url: string) => new URL(url).searchParams.get("X-Amz-Date");

/**
 * Presigned GET URL latency on one session (static credentials, path-style local endpoint, no
 * I/O on either side): the SDK's getSignedUrl on the session's client vs `S3Storage.url()`.
 */
const bench: Bench = {
  baseline: "getSignedUrl",
  description: `presigned GET URL latency, ${CALLS} warm awaited calls each (SDK getSignedUrl vs S3Storage.url), and the URLs of a ${PAGE_ROWS}-row findMany page`,
  async run(ctx) {
    const session = createSession({
      region: REGION,
      endpoint: ENDPOINT,
      forcePathStyle: true,
      bucket: BUCKET,
      credentials: CREDENTIALS,
      checksums: "when_required",
    });
    const storage = new S3Storage({ session, querystringExpire: EXPIRES });
    const client = session.client;
    const sdkUrl = (key: string) =>
      getSignedUrl(client, new GetObjectCommand({ Bucket: BUCKET, Key: key }), { expiresIn: EXPIRES });
    const ourUrl = (key: string) => storage.url(key);

    try {
      // Both sign the same request with the same credentials: the URLs must be byte-identical
      // when made in the same second (retry if the second ticked over between the two calls).
      let identical = false;
      for (let attempt = 0; attempt < 5; attempt++) {
        const key = keyOf(attempt);
        const ours = await ourUrl(key);
        const sdk = await sdkUrl(key);
        if (amzDate(ours) !== amzDate(sdk)) continue;
        identical = ours === sdk;
        if (!identical) console.error(`url bench: URLs differ\n  storage.url:  ${ours}\n  getSignedUrl: ${sdk}`);
        break;
      }
      ctx.report("storage.url", "identical_urls", identical ? 1 : 0, "bool");

      const sdk = await measure(sdkUrl);
      const ours = await measure(ourUrl);

      const sdkP50 = quantile(sdk, 0.5);
      const oursP50 = quantile(ours, 0.5);
      for (const [variant, samples] of [
        ["getSignedUrl", sdk],
        ["storage.url", ours],
      ] as const) {
        ctx.report(variant, "p50_us", round2(quantile(samples, 0.5)), "us");
        ctx.report(variant, "p99_us", round2(quantile(samples, 0.99)), "us");
      }
      ctx.report("storage.url", "speedup_vs_getSignedUrl", round2(sdkP50 / oursP50), "x");
      await page(ctx, session);
    } finally {
      await session.destroy();
    }
  },
};
export default bench;

/**
 * A page of a list view: `findMany()` of PAGE_ROWS `Attachment` rows (two file columns, on two
 * S3 storages), then every row's two URLs signed, all awaited together as a page render would.
 * `FieldFile.url()` on the rows of the s3Files client vs `getSignedUrl` on the keys of the plain
 * client's rows, alternating, median of PAGE_ROUNDS. `page_sign_ms` is the signing alone (rows in
 * hand), `page_total_ms` the read and the signing.
 */
async function page(ctx: BenchContext, session: S3Session): Promise<void> {
  const db = await createTestDatabase("psf_bench_url");
  const plain = new PrismaClient({ adapter: new PrismaPg({ connectionString: db.url }) });
  try {
    const user = await plain.user.create({ data: { email: "url@example.com", badge: "badges/url.pdf" } });
    const post = await plain.post.create({ data: { title: "url", authorId: user.id } });
    await plain.$executeRaw`
      INSERT INTO "Attachment" ("postId", "original", "preview")
      SELECT ${post.id}, 'attachments/original/file-' || i || '.pdf', 'attachments/preview/file-' || i || '.png'
      FROM generate_series(1, ${PAGE_ROWS}::int) AS i`;
    const storages = {
      private: new S3Storage({ session, location: "private", querystringExpire: EXPIRES }),
      public: new S3Storage({ session, location: "public", querystringExpire: EXPIRES }),
    };
    const files = plain.$extends(s3Files(session, { fields: fileFields, storages }));
    const client = session.client;
    const sign = (key: string) =>
      getSignedUrl(client, new GetObjectCommand({ Bucket: BUCKET, Key: key }), { expiresIn: EXPIRES });

    const sdkPage = async (rows: { original: string; preview: string | null }[]) =>
      Promise.all(
        rows.flatMap((r) => [sign(`private/${r.original}`), r.preview === null ? null : sign(`public/${r.preview}`)]),
      );
    const ourPage = async (rows: { original: FieldFile; preview: FieldFile | null }[]) =>
      Promise.all(rows.flatMap((r) => [r.original.url(), r.preview?.url() ?? null]));

    // Same URLs (the same second), so both variants do the same work.
    const [a, b] = [await files.attachment.findMany({ take: 1 }), await plain.attachment.findMany({ take: 1 })];
    const [ours, sdk] = [await ourPage(a), await sdkPage(b)];
    if (amzDate(ours[0]!) === amzDate(sdk[0]!) && ours.join() !== sdk.join()) {
      throw new Error(`url bench: page URLs differ\n  ${ours[0]}\n  ${sdk[0]}`);
    }

    const samples = {
      sdkSign: [] as number[],
      oursSign: [] as number[],
      sdkTotal: [] as number[],
      oursTotal: [] as number[],
    };
    for (let round = 0; round < PAGE_ROUNDS + 2; round++) {
      let t0 = performance.now();
      const plainRows = await plain.attachment.findMany({ take: PAGE_ROWS });
      let t1 = performance.now();
      const sdkUrls = await sdkPage(plainRows);
      let t2 = performance.now();
      if (round >= 2) {
        samples.sdkSign.push(t2 - t1);
        samples.sdkTotal.push(t2 - t0);
      }
      t0 = performance.now();
      const fileRows = await files.attachment.findMany({ take: PAGE_ROWS });
      t1 = performance.now();
      const ourUrls = await ourPage(fileRows);
      t2 = performance.now();
      if (round >= 2) {
        samples.oursSign.push(t2 - t1);
        samples.oursTotal.push(t2 - t0);
      }
      if (sdkUrls.length !== 2 * PAGE_ROWS || ourUrls.length !== 2 * PAGE_ROWS)
        throw new Error("url bench: short page");
    }
    const [sdkSign, oursSign] = [median(samples.sdkSign), median(samples.oursSign)];
    const [sdkTotal, oursTotal] = [median(samples.sdkTotal), median(samples.oursTotal)];
    ctx.report("getSignedUrl", "page_sign_ms", round2(sdkSign), "ms");
    ctx.report("FieldFile.url", "page_sign_ms", round2(oursSign), "ms");
    ctx.report("getSignedUrl", "page_total_ms", round2(sdkTotal), "ms");
    ctx.report("FieldFile.url", "page_total_ms", round2(oursTotal), "ms");
    ctx.report("FieldFile.url", "page_sign_speedup_vs_getSignedUrl", round2(sdkSign / oursSign), "x");
    ctx.report("FieldFile.url", "page_total_speedup_vs_getSignedUrl", round2(sdkTotal / oursTotal), "x");
    if (sdkSign / oursSign < 30) {
      console.error(`url: signing a ${PAGE_ROWS}-row page is ${round2(sdkSign / oursSign)}× getSignedUrl (goal ≥ 30×)`);
    }
  } finally {
    await plain.$disconnect();
    await db.drop();
  }
}

function round2(n: number): number {
  return Math.round(n * 100) / 100;
}
