import { type ChildProcess, fork } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { PutObjectCommand } from "@aws-sdk/client-s3";
import { PrismaPg } from "@prisma/adapter-pg";
import sharp from "sharp";
import { ImageProcessor } from "../src/files/image-processor.js";
import { DEFAULT_MAX_PIXELS } from "../src/files/validation.js";
import { parseVariantKey, parseVariantSpec, type VariantSpec } from "../src/files/variants.js";
import { createSession, S3Storage } from "../src/index.js";
import { s3Files } from "../src/prisma/extension.js";
import type { FileFieldsMetadataShape } from "../src/prisma/metadata-types.js";
import { upload } from "../src/prisma/upload.js";
import { fileFields } from "../test/generated/files/index.js";
import { PrismaClient } from "../test/generated/prisma/client.js";
import { createTestDatabase, type TestDatabase } from "../test/harness/postgres.js";
import { createTestS3, type S3Target, sessionOptionsFor, type TestS3 } from "../test/harness/s3.js";
import type { Bench } from "./lib/report.js";

/**
 * Issue #18 item 7: uploads of a 12 MP JPEG (4000 × 3000, deterministic gradient and noise,
 * about 4 MB) each made into 2 variants (`cover 128x128 webp`, `inside 640x640 avif`), through
 * `ImageProcessor.makeVariants` against calling sharp directly on the same inputs (one pipeline
 * per variant, `Promise.all`, as an application would write it). Goals: throughput ≥ 0.9× sharp,
 * peak RSS growth ≤ 256 MiB.
 *
 * - Every variant runs in a fresh process (`--expose-gc`), so its RSS growth is its own: it warms
 *   up on two uploads, a full GC sets the baseline, then RSS is sampled every 20 ms.
 * - The same number of uploads are in flight in every variant (`BENCH_IMAGES_IN_FLIGHT`, default
 *   2 × cores), each with its own copy of the bytes as a request would bring them; 4 distinct
 *   images are cycled (generated once, in the parent).
 * - Rounds alternate the order of the variants; a throughput is all uploads over all seconds.
 *   CPU time per upload (all the process's threads) is reported too: on a shared machine the
 *   wall-clock ratio also measures the neighbours, and a variant running more threads at once
 *   (plain sharp: every pipeline of every upload in flight) takes a larger share of the cores.
 *
 * A variant is a function that prepares a runner in the child (see {@link VARIANTS}): adding one
 * is adding an entry. `s3Files` is the full write path: `prisma.photo.create` with `upload()` of
 * the JPEG into the test schema's `Photo.picture`, given the same 2 specs as the others (the
 * bench passes its own copy of the generated metadata with that field's `variants` replaced),
 * against PostgreSQL and the harness's S3 server (test/harness: `createTestDatabase`,
 * `createTestS3`), both started by the parent so that neither's memory nor CPU time is counted
 * in the measured process (an in-process s3rver would be). Each create stores the original, its
 * journal record and the 2 variants, then the row. `hand-written` does the same write by hand
 * (sharp, 3 PutObjects, a plain create): not in the default set; it tells the cost of storing at
 * all from the library's own.
 *
 * Env: `BENCH_IMAGES_UPLOADS` (default 100), `BENCH_IMAGES_ROUNDS` (default 1),
 * `BENCH_IMAGES_IN_FLIGHT`, `BENCH_IMAGES_VARIANTS` (comma-separated; default
 * `sharp,processor,s3Files`; also `sharp-decode-once`: one full decode per upload, the variants
 * made from its pixels),
 * `BENCH_IMAGES_SHARP_CACHE=off` (`sharp.cache(false)` in every variant's process),
 * `BENCH_IMAGES_CONCURRENCY` (the processor's bound; default the cores).
 */

const MiB = 1024 * 1024;
const UPLOADS = positive("BENCH_IMAGES_UPLOADS", 100);
const ROUNDS = positive("BENCH_IMAGES_ROUNDS", 1);
const IN_FLIGHT = positive("BENCH_IMAGES_IN_FLIGHT", 2 * availableParallelism());
const SHARP_CACHE = process.env.BENCH_IMAGES_SHARP_CACHE !== "off";
/** The processor's bound on pipelines at once (default: its own, the cores). */
const PROCESSOR_CONCURRENCY =
  process.env.BENCH_IMAGES_CONCURRENCY === undefined ? undefined : positive("BENCH_IMAGES_CONCURRENCY", 1);
const WIDTH = 4000;
const HEIGHT = 3000;
const DISTINCT_IMAGES = 4;
const WARMUP_UPLOADS = 2;
const SAMPLE_MS = 20;
const ROLE_ENV = "PSF_BENCH_IMAGES_ROLE";
const SPECS = { thumb: "cover 128x128 webp", card: "inside 640x640 avif" } as const;

function positive(name: string, fallback: number): number {
  const raw = process.env[name];
  const value = raw === undefined || raw === "" ? fallback : Number(raw);
  if (!Number.isInteger(value) || value < 1) throw new Error(`${name} must be a positive integer, got ${raw}`);
  return value;
}

function spec(text: string): VariantSpec {
  const parsed = parseVariantSpec(text);
  if ("error" in parsed) throw new Error(parsed.error);
  return parsed;
}

const REQUESTS = Object.entries(SPECS).map(([name, text]) => ({ name, spec: spec(text) }));

// ---------------------------------------------------------------- the inputs

/** A 12 MP JPEG: gradients in each channel, a diagonal wave and xorshift noise (seeded), quality 90. */
async function photo(seed: number): Promise<Buffer> {
  // Clamped: out-of-range values saturate instead of wrapping round.
  const raw = new Uint8ClampedArray(WIDTH * HEIGHT * 3);
  let s = (0x9e3779b9 ^ seed) >>> 0 || 1;
  const amplitude = 16;
  for (let y = 0; y < HEIGHT; y++) {
    for (let x = 0; x < WIDTH; x++) {
      s ^= s << 13;
      s ^= s >>> 17;
      s ^= s << 5;
      const n = ((s >>> 0) % (2 * amplitude + 1)) - amplitude;
      const i = (y * WIDTH + x) * 3;
      raw[i] = (x * 255) / WIDTH + n;
      raw[i + 1] = (y * 255) / HEIGHT + n;
      raw[i + 2] = 128 + 100 * Math.sin((x + y + seed * 97) / 200) + n;
    }
  }
  return sharp(raw, { raw: { width: WIDTH, height: HEIGHT, channels: 3 } })
    .jpeg({ quality: 90 })
    .toBuffer();
}

// ---------------------------------------------------------------- the variants

/**
 * What a variant does with one upload: makes its 2 variants, resolves with their total size in
 * bytes. `close` (optional) releases what the runner holds once the run is measured.
 */
type Runner = ((input: Uint8Array) => Promise<number>) & { close?: () => Promise<void> };

/** Where the `s3Files` variant writes: started by the parent, handed to the child in its job. */
interface Services {
  s3: S3Target;
  databaseUrl: string;
}

/** The generated metadata with `Photo.picture` declaring {@link SPECS} instead of the test schema's. */
function benchFields(): typeof fileFields {
  const photo = (fileFields as FileFieldsMetadataShape).Photo;
  const picture = photo?.fileFields.picture;
  if (!photo || !picture) throw new Error("the test schema has no Photo.picture");
  const fields: FileFieldsMetadataShape = {
    ...fileFields,
    Photo: { ...photo, fileFields: { ...photo.fileFields, picture: { ...picture, variants: { ...SPECS } } } },
  };
  return fields as typeof fileFields;
}

/** An S3 storage that adds up the bytes of every variant it saves, by original key. */
class CountingS3Storage extends S3Storage {
  readonly variantBytes = new Map<string, { count: number; bytes: number }>();
  override async save(...args: Parameters<S3Storage["save"]>) {
    const [name, content] = args;
    const original = parseVariantKey(name)?.original;
    if (original !== undefined) {
      // The processor hands variants over as bytes; anything else would not be counted.
      if (!(content instanceof Uint8Array)) throw new Error(`variant ${name} saved from a ${typeof content}`);
      const seen = this.variantBytes.get(original) ?? { count: 0, bytes: 0 };
      this.variantBytes.set(original, { count: seen.count + 1, bytes: seen.bytes + content.length });
    }
    return super.save(...args);
  }
}

/**
 * The variants measured, each a function preparing its runner in its own process. The baseline,
 * `sharp`, is the code an application would write without this package.
 */
/** The baseline's work: one sharp pipeline per variant, all at once. */
function sharpVariants(input: Uint8Array): Promise<Buffer[]> {
  return Promise.all(
    REQUESTS.map(({ spec: s }) =>
      sharp(input)
        .rotate()
        .resize(s.width, s.height, { fit: s.fit })
        .toFormat(s.format, s.quality === undefined ? {} : { quality: s.quality })
        .toBuffer(),
    ),
  );
}

const VARIANTS: Record<string, (services?: Services) => Promise<Runner>> = {
  async sharp() {
    return async (input) => (await sharpVariants(input)).reduce((sum, b) => sum + b.length, 0);
  },
  /**
   * The same write by hand, as an application without this package would write it: the
   * baseline's sharp calls, then PutObject of the original and both variants at once, then a
   * plain create. What s3Files costs over this is the library's; what this costs over `sharp`
   * is storing and recording the files at all.
   */
  async "hand-written"(services?: Services) {
    if (!services) throw new Error("the hand-written variant needs the services its parent started");
    const session = createSession(sessionOptionsFor(services.s3));
    const plain = new PrismaClient({ adapter: new PrismaPg({ connectionString: services.databaseUrl }) });
    const prefix = `bench-images-hand-${process.pid}`;
    let n = 0;
    const put = (key: string, body: Uint8Array, contentType: string) =>
      session.client.send(
        new PutObjectCommand({
          Bucket: services.s3.bucket,
          Key: `${prefix}/${key}`,
          Body: body,
          ContentLength: body.length,
          ContentType: contentType,
        }),
      );
    const runner: Runner = async (input) => {
      const key = `pictures/photo-${n++}.jpg`;
      const outputs = await sharpVariants(input);
      await Promise.all([
        put(key, input, "image/jpeg"),
        ...outputs.map((b, i) =>
          put(
            `variants/${key}/${REQUESTS[i]!.name}.${REQUESTS[i]!.spec.format}`,
            b,
            `image/${REQUESTS[i]!.spec.format}`,
          ),
        ),
      ]);
      await plain.photo.create({ data: { picture: key } });
      return outputs.reduce((sum, b) => sum + b.length, 0);
    };
    runner.close = async () => {
      await plain.$disconnect();
      await session.destroy();
    };
    return runner;
  },
  /** One full-size decode per upload, the variants resized from its pixels (a "decode once" design). */
  async "sharp-decode-once"() {
    return async (input) => {
      const { data, info } = await sharp(input).rotate().raw().toBuffer({ resolveWithObject: true });
      const raw = { width: info.width, height: info.height, channels: info.channels };
      const outputs = await Promise.all(
        REQUESTS.map(({ spec: s }) =>
          sharp(data, { raw })
            .resize(s.width, s.height, { fit: s.fit })
            .toFormat(s.format, s.quality === undefined ? {} : { quality: s.quality })
            .toBuffer(),
        ),
      );
      return outputs.reduce((sum, b) => sum + b.length, 0);
    };
  },
  async processor() {
    const processor = new ImageProcessor(
      PROCESSOR_CONCURRENCY === undefined ? {} : { concurrency: PROCESSOR_CONCURRENCY },
    );
    return async (input) => {
      const made = await processor.makeVariants(input, REQUESTS, {
        maxPixels: DEFAULT_MAX_PIXELS,
        contentType: "image/jpeg",
      });
      return made.reduce((sum, v) => sum + v.bytes.length, 0);
    };
  },
  /** The whole write through the library: `photo.create` with the upload, its 2 variants made and stored in the write. */
  async s3Files(services?: Services) {
    if (!services) throw new Error("the s3Files variant needs the services its parent started");
    const session = createSession(sessionOptionsFor(services.s3));
    const storage = new CountingS3Storage({ session, location: `bench-images-${process.pid}` });
    const plain = new PrismaClient({ adapter: new PrismaPg({ connectionString: services.databaseUrl }) });
    const prisma = plain.$extends(
      s3Files(session, { fields: benchFields(), storages: { default: storage, public: storage, private: storage } }),
    );
    let n = 0;
    const runner: Runner = async (input) => {
      const photo = await prisma.photo.create({
        data: { picture: upload(input, { filename: `photo-${n++}.jpg`, contentType: "image/jpeg" }) },
      });
      const key = photo.picture!.name;
      const made = storage.variantBytes.get(key);
      storage.variantBytes.delete(key);
      // Both variants stored in the write, or the measurement is of something else.
      if (made?.count !== REQUESTS.length) throw new Error(`${key}: ${made?.count ?? 0} variants stored`);
      return made.bytes;
    };
    runner.close = async () => {
      await prisma.$disconnect();
      await session.destroy();
    };
    return runner;
  },
};

const SELECTED = (process.env.BENCH_IMAGES_VARIANTS ?? "sharp,processor,s3Files").split(",").filter((v) => v !== "");
/** The variants that need PostgreSQL and S3 (the parent starts them once for all runs). */
const NEEDS_SERVICES = new Set(["s3Files", "hand-written"]);
for (const name of SELECTED) {
  if (!(name in VARIANTS)) {
    throw new Error(`BENCH_IMAGES_VARIANTS: unknown variant ${name}; known: ${Object.keys(VARIANTS).join(", ")}`);
  }
}

// ---------------------------------------------------------------- one measured run (own process)

interface Job {
  variant: string;
  /** The files of the distinct inputs (written once by the parent). */
  inputs: string[];
  services?: Services;
}

interface RunResult {
  uploads: number;
  seconds: number;
  peakRssGrowthMiB: number;
  bytesOut: number;
  /** CPU seconds of the process (all its threads: libvips' and libuv's too), user + system. */
  cpuSeconds: number;
}

/** `uploads` uploads, `IN_FLIGHT` at a time, each a fresh copy of one of `inputs`. */
async function drive(runner: Runner, inputs: Buffer[], uploads: number): Promise<number> {
  let next = 0;
  let bytesOut = 0;
  const worker = async () => {
    while (next < uploads) {
      const i = next++;
      // Not `bytesOut += await …`: that reads bytesOut before the await and loses other workers' sums.
      const made = await runner(Buffer.from(inputs[i % inputs.length]!));
      bytesOut += made;
    }
  };
  await Promise.all(Array.from({ length: Math.min(IN_FLIGHT, uploads) }, worker));
  return bytesOut;
}

async function runJob(job: Job): Promise<RunResult> {
  if (!SHARP_CACHE) sharp.cache(false);
  const inputs = job.inputs.map((file) => readFileSync(file));
  const runner = await VARIANTS[job.variant]!(job.services);
  await drive(runner, inputs, WARMUP_UPLOADS);
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc) {
    gc();
    gc();
  } else console.error("images bench: gc is not exposed; the RSS baseline includes uncollected garbage");
  const baseline = process.memoryUsage.rss();
  let peak = baseline;
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage.rss());
  }, SAMPLE_MS);
  const t0 = process.hrtime.bigint();
  const cpu0 = process.cpuUsage();
  const bytesOut = await drive(runner, inputs, UPLOADS);
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  clearInterval(timer);
  peak = Math.max(peak, process.memoryUsage.rss());
  await runner.close?.();
  const cpuSeconds = (cpu.user + cpu.system) / 1e6;
  return { uploads: UPLOADS, seconds, peakRssGrowthMiB: (peak - baseline) / MiB, bytesOut, cpuSeconds };
}

async function runnerMain(): Promise<void> {
  const [job] = (await once(process, "message")) as [Job];
  try {
    process.send?.({ result: await runJob(job) });
  } catch (error) {
    process.send?.({ error: error instanceof Error ? (error.stack ?? error.message) : String(error) });
  }
  process.disconnect?.();
}

async function runIsolated(job: Job): Promise<RunResult> {
  const child: ChildProcess = fork(fileURLToPath(import.meta.url), [], {
    execArgv: ["--import", "tsx", "--expose-gc"],
    env: { ...process.env, [ROLE_ENV]: "runner" },
    stdio: ["ignore", "ignore", "inherit", "ipc"],
  });
  const exited = once(child, "exit");
  child.send(job);
  const message = await new Promise<{ result?: RunResult; error?: string }>((resolve, reject) => {
    child.once("message", (m) => resolve(m as { result?: RunResult; error?: string }));
    child.once("error", reject);
    child.once("exit", (code, signal) => reject(new Error(`the ${job.variant} run exited early (${signal ?? code})`)));
  });
  await exited;
  if (message.error !== undefined || !message.result) throw new Error(`${job.variant} run failed: ${message.error}`);
  return message.result;
}

// ---------------------------------------------------------------- the benchmark

const bench: Bench = {
  baseline: "sharp",
  description:
    `${UPLOADS} uploads of a 12 MP JPEG, variants ${Object.values(SPECS).join(" + ")}: ` +
    `${SELECTED.join(" vs ")} (${IN_FLIGHT} uploads in flight, ${ROUNDS} round(s), one process per run` +
    `${SHARP_CACHE ? "" : ", sharp.cache(false)"}` +
    `${PROCESSOR_CONCURRENCY === undefined ? "" : `, processor concurrency ${PROCESSOR_CONCURRENCY}`})`,
  async run(ctx) {
    const dir = mkdtempSync(join(tmpdir(), "psf-bench-images-"));
    let db: TestDatabase | undefined;
    let s3: TestS3 | undefined;
    try {
      let services: Services | undefined;
      if (SELECTED.some((v) => NEEDS_SERVICES.has(v))) {
        [db, s3] = await Promise.all([createTestDatabase("psf_bench_images"), createTestS3()]);
        // Only the target's fields: it crosses to the child as JSON.
        const { stop: _stop, ...target } = s3;
        services = { s3: target, databaseUrl: db.url };
        console.error(`images: s3Files writes to PostgreSQL (${db.source}) and S3 (${s3.server})`);
      }
      const inputs: string[] = [];
      for (let seed = 0; seed < DISTINCT_IMAGES; seed++) {
        const file = join(dir, `photo-${seed}.jpg`);
        writeFileSync(file, await photo(seed));
        inputs.push(file);
      }
      const sizes = inputs.map((f) => readFileSync(f).length / 1e6);
      console.error(`images: inputs ${WIDTH} × ${HEIGHT}, ${sizes.map((s) => s.toFixed(2)).join(", ")} MB`);

      const results = new Map<string, RunResult[]>(SELECTED.map((v) => [v, []]));
      for (let round = 0; round < ROUNDS; round++) {
        const order = round % 2 === 0 ? SELECTED : [...SELECTED].reverse();
        for (const variant of order) {
          const r = await runIsolated({ variant, inputs, ...(NEEDS_SERVICES.has(variant) ? { services } : {}) });
          results.get(variant)!.push(r);
          console.error(
            `images: round ${round} ${variant}: ${(r.uploads / r.seconds).toFixed(2)} uploads/s, ` +
              `${((1000 * r.cpuSeconds) / r.uploads).toFixed(0)} CPU ms/upload, ` +
              `peak RSS growth ${r.peakRssGrowthMiB.toFixed(1)} MiB`,
          );
        }
      }
      const throughput = (runs: RunResult[]) =>
        runs.reduce((s, r) => s + r.uploads, 0) / runs.reduce((s, r) => s + r.seconds, 0);
      for (const [variant, runs] of results) {
        ctx.report(variant, "uploads_per_s", round(throughput(runs), 3), "uploads/s");
        ctx.report(variant, "ms_per_upload", round(1000 / throughput(runs), 1), "ms");
        // CPU time is what a busy (shared) machine distorts least: wall time also measures the neighbours.
        ctx.report(variant, "cpu_ms_per_upload", round(1000 * cpuPerUpload(runs), 1), "ms");
        ctx.report(variant, "peak_rss_growth_mib", round(Math.max(...runs.map((r) => r.peakRssGrowthMiB)), 1), "MiB");
        const last = runs[runs.length - 1]!;
        ctx.report(variant, "variant_kib_per_upload", round(last.bytesOut / last.uploads / 1024, 1), "KiB");
      }
      const base = results.get("sharp");
      // The library's variants, each against plain sharp on the same inputs.
      for (const variant of ["processor", "s3Files"]) {
        const ours = results.get(variant);
        if (!base || !ours) continue;
        const ratio = throughput(ours) / throughput(base);
        const rss = Math.max(...ours.map((r) => r.peakRssGrowthMiB));
        const cpuRatio = cpuPerUpload(ours) / cpuPerUpload(base);
        ctx.report(variant, "throughput_ratio_vs_sharp", round(ratio, 3), "x");
        console.error(
          `images: ${variant} ${ratio.toFixed(3)}× sharp (goal ≥ 0.9: ${ratio >= 0.9 ? "met" : "MISSED"}; ` +
            `CPU per upload ${cpuRatio.toFixed(3)}× sharp's), ` +
            `peak RSS growth ${rss.toFixed(1)} MiB (goal ≤ 256: ${rss <= 256 ? "met" : "MISSED"})`,
        );
      }
      const hand = results.get("hand-written");
      const full = results.get("s3Files");
      if (hand && full) {
        // The library's own cost: the same stores and row, written by hand.
        const ratio = throughput(full) / throughput(hand);
        ctx.report("s3Files", "throughput_ratio_vs_hand_written", round(ratio, 3), "x");
        console.error(
          `images: s3Files ${ratio.toFixed(3)}× hand-written (CPU per upload ` +
            `${(cpuPerUpload(full) / cpuPerUpload(hand)).toFixed(3)}× hand-written's)`,
        );
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
      await Promise.allSettled([db?.drop(), s3?.stop()]);
    }
  },
};
export default bench;

function cpuPerUpload(runs: RunResult[]): number {
  return runs.reduce((s, r) => s + r.cpuSeconds, 0) / runs.reduce((s, r) => s + r.uploads, 0);
}

function round(n: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

// This file is also the entry point of its child processes.
if (process.env[ROLE_ENV] === "runner") await runnerMain();
