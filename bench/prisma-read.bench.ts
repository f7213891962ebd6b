import { PrismaPg } from "@prisma/adapter-pg";
import { FieldFile, MemoryStorage } from "../src/index.js";
import { s3Files } from "../src/prisma/extension.js";
import { fileFields } from "../test/generated/files/index.js";
import { PrismaClient } from "../test/generated/prisma/client.js";
import { createTestDatabase } from "../test/harness/postgres.js";
import { type Bench, median } from "./lib/report.js";

const ROWS = 20_000;
const WARMUP = 5;
const ITERATIONS = 31;
const GOAL = 1.15;
const JSON_GOAL = 1.1;

/**
 * Runs the variants in turn, WARMUP rounds untimed and then ITERATIONS timed rounds
 * (a, b, c, a, b, c, ...), so drift (the database's caches, the machine's clock speed) hits all
 * of them alike. Returns each variant's samples in ms.
 *
 * No forced `gc()` between runs: a full collection that frees the last rows frees their hidden
 * classes, and V8 then drops the optimized code embedding them (`--trace-deopt`: "reason: weak
 * objects"), so every run would start cold (the mapping 3-6x slower than in a warm server); one
 * that keeps them alive made even the plain read 1.3-1.9x slower here. Either way it measures a
 * state a busy server is not in. The garbage a variant leaves is collected on a later variant's clock
 * instead, so the variants in one rotation should allocate alike.
 */
async function alternate(variants: Record<string, () => Promise<unknown>>): Promise<Record<string, number[]>> {
  const entries = Object.entries(variants);
  for (let i = 0; i < WARMUP; i++) for (const [, fn] of entries) await fn();
  const samples: Record<string, number[]> = Object.fromEntries(entries.map(([name]) => [name, []]));
  for (let i = 0; i < ITERATIONS; i++) {
    for (const [name, fn] of entries) {
      const t0 = performance.now();
      await fn();
      samples[name]!.push(performance.now() - t0);
    }
  }
  return samples;
}

const round = (ms: number) => Math.round(ms * 100) / 100;
const ratio = (a: number, b: number) => Math.round((a / b) * 1000) / 1000;

/**
 * What the extension adds to a read: `findMany()` of ROWS `Attachment` rows (two file columns
 * each) on the same PrismaClient, plain, through `s3Files()` with default options (a `query`
 * hook mapping the rows, Prisma's per-row result pass skipped), through `s3Files()` followed by
 * a `result` extension (the one case that keeps that pass),
 * and, for reference, through Prisma's own `result` extension computing the same two fields and
 * through a `query` extension that does nothing: the floor of any `$extends`-based binding, since
 * with any extension on the client Prisma walks every result row for computed fields.
 */
const bench: Bench = {
  baseline: "plain",
  description: `findMany() of ${ROWS} rows with two file columns: plain client vs s3Files() (and Prisma result / no-op query extensions)`,
  async run(ctx) {
    const db = await createTestDatabase("psf_bench");
    const plain = new PrismaClient({ adapter: new PrismaPg({ connectionString: db.url }) });
    try {
      const user = await plain.user.create({ data: { email: "bench@example.com", badge: "badges/bench.pdf" } });
      const post = await plain.post.create({ data: { title: "bench", authorId: user.id } });
      await plain.$executeRaw`
        INSERT INTO "Attachment" ("postId", "original", "preview")
        SELECT ${post.id}, 'attachments/original/file-' || i || '.pdf', 'attachments/preview/file-' || i || '.png'
        FROM generate_series(1, ${ROWS}::int) AS i`;

      const storages = {
        default: new MemoryStorage(),
        public: new MemoryStorage({ baseUrl: "https://public.example.com/" }),
        private: new MemoryStorage(),
      };
      const files = plain.$extends(s3Files(undefined, { fields: fileFields, storages }));
      // The one case that keeps Prisma's per-row pass: a result extension applied after s3Files
      // (here on another model, so only the pass's cost is measured, not the computing).
      const withLaterResult = plain.$extends(s3Files(undefined, { fields: fileFields, storages })).$extends({
        result: { user: { shout: { needs: { email: true }, compute: (u) => u.email.toUpperCase() } } },
      });
      const resultExtension = plain.$extends({
        result: {
          attachment: {
            original: {
              needs: { original: true },
              compute: (a) => new FieldFile(storages.private, a.original, "Attachment", "original"),
            },
            preview: {
              needs: { preview: true },
              compute: (a) =>
                a.preview === null ? null : new FieldFile(storages.public, a.preview, "Attachment", "preview"),
            },
          },
        },
      });

      const noopExtension = plain.$extends({
        query: { $allModels: { $allOperations: ({ args, query }) => query(args) } },
      });

      // The variants must read the same rows, and s3Files must really map them.
      const [plainRows, fileRows, resultRows, laterRows] = await Promise.all([
        plain.attachment.findMany(),
        files.attachment.findMany(),
        resultExtension.attachment.findMany(),
        withLaterResult.attachment.findMany(),
      ]);
      if (!(laterRows[0]!.preview instanceof FieldFile) || JSON.stringify(laterRows) !== JSON.stringify(plainRows)) {
        throw new Error("s3Files under a later result extension did not map the rows like s3Files");
      }
      if (plainRows.length !== ROWS || fileRows.length !== ROWS || resultRows.length !== ROWS) {
        throw new Error(`expected ${ROWS} rows, got ${plainRows.length}/${fileRows.length}/${resultRows.length}`);
      }
      if (!(fileRows[0]!.original instanceof FieldFile) || !(resultRows[0]!.preview instanceof FieldFile)) {
        throw new Error("the extended clients did not map the file columns");
      }
      if (JSON.stringify(fileRows) !== JSON.stringify(plainRows)) {
        throw new Error("s3Files rows do not serialize like the plain rows");
      }

      const read = await alternate({
        plain: () => plain.attachment.findMany(),
        s3Files: () => files.attachment.findMany(),
        "s3Files+later-result-extension": () => withLaterResult.attachment.findMany(),
        "noop-query-extension": () => noopExtension.attachment.findMany(),
      });
      const json = await alternate({
        plain: async () => JSON.stringify(await plain.attachment.findMany()),
        s3Files: async () => JSON.stringify(await files.attachment.findMany()),
      });
      // In a rotation of its own: its proxies leave several times the garbage of a plain read.
      const reference = await alternate({
        plain: () => plain.attachment.findMany(),
        "prisma-result-extension": () => resultExtension.attachment.findMany(),
      });

      const plainMs = median(read.plain!);
      const filesMs = median(read.s3Files!);
      const resultMs = median(reference["prisma-result-extension"]!);
      const resultPlainMs = median(reference.plain!);
      const noopMs = median(read["noop-query-extension"]!);
      const jsonRatio = ratio(median(json.s3Files!), median(json.plain!));
      ctx.report("plain", "median_ms", round(plainMs), "ms");
      ctx.report("s3Files", "median_ms", round(filesMs), "ms");
      ctx.report("s3Files", "ratio_vs_plain", ratio(filesMs, plainMs), "x");
      ctx.report("s3Files", "ratio_vs_plain_json", jsonRatio, "x");
      const laterMs = median(read["s3Files+later-result-extension"]!);
      ctx.report("s3Files+later-result-extension", "median_ms", round(laterMs), "ms");
      ctx.report("s3Files+later-result-extension", "ratio_vs_plain", ratio(laterMs, plainMs), "x");
      ctx.report("prisma-result-extension", "median_ms", round(resultMs), "ms");
      ctx.report("prisma-result-extension", "ratio_vs_plain", ratio(resultMs, resultPlainMs), "x");
      ctx.report("noop-query-extension", "median_ms", round(noopMs), "ms");
      ctx.report("noop-query-extension", "ratio_vs_plain", ratio(noopMs, plainMs), "x");
      if (filesMs / plainMs > GOAL || jsonRatio > JSON_GOAL) {
        console.error(
          `prisma-read: s3Files (default options) ratio_vs_plain ${ratio(filesMs, plainMs)} (goal ≤ ${GOAL}),` +
            ` ratio_vs_plain_json ${jsonRatio} (goal ≤ ${JSON_GOAL}); a no-op query extension alone: ${ratio(noopMs, plainMs)}`,
        );
      }
    } finally {
      await plain.$disconnect();
      await db.drop();
    }
  },
};

export default bench;
