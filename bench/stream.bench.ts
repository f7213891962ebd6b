import { type ChildProcess, fork } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { statfsSync } from "node:fs";
import { tmpdir } from "node:os";
import { Readable } from "node:stream";
import { fileURLToPath } from "node:url";
import { DeleteObjectCommand, GetObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { createSession } from "../src/session/session.js";
import { S3Storage } from "../src/storage/s3/s3-storage.js";
import { createTestS3, type S3Target, sessionOptionsFor } from "../test/harness/s3.js";
import type { Bench, BenchContext } from "./lib/report.js";

/**
 * A generated body (default 1 GiB) saved through `S3Storage.save()` and read back through
 * `open()`, against the same body through `@aws-sdk/lib-storage`'s `Upload` and a plain GetObject
 * (same server, same client configuration, same run).
 *
 * - The S3 server comes from `createTestS3()` (S3_ENDPOINT, else MinIO, else s3rver), run in a
 *   child process: an in-process s3rver would put its own buffers in the RSS measured and share
 *   the event loop with the client.
 * - Each measured run gets a fresh process (with `--expose-gc`): RSS growth is then what that
 *   run needs, not what the previous run left in the allocator. It first warms up with a small
 *   save/read of its own variant (modules, sockets, the conditional-write probe), then a full GC
 *   sets the baseline, then RSS is sampled every 20 ms through the write and the read.
 * - Rounds alternate which variant goes first. A throughput is all bytes over all seconds of its
 *   rounds (one slow round is not averaged away by a fast one); RSS growth is the worst round.
 *
 * Env: `BENCH_STREAM_MIB` (default 1024), `BENCH_STREAM_ROUNDS` (default 2),
 * `BENCH_STREAM_VERBOSE=1` (per-run numbers on stderr), `BENCH_STREAM_NODE_ARGS` (extra node
 * flags for the measured processes, e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`),
 * `BENCH_STREAM_TMPDIR` (where an s3rver keeps its files; default the OS temp dir).
 */

const MiB = 1024 * 1024;
const SIZE_MIB = Number(process.env.BENCH_STREAM_MIB ?? 1024);
const ROUNDS = Math.max(1, Math.floor(Number(process.env.BENCH_STREAM_ROUNDS ?? 2)));
const VERBOSE = process.env.BENCH_STREAM_VERBOSE === "1";
const PART_SIZE = Number(process.env.BENCH_STREAM_PART_MIB ?? 5) * MiB;
const QUEUE_SIZE = 4;
/** Chunk size of the generated body. */
const CHUNK = MiB;
/** Warm-up body: small (a single PutObject), so it does not pre-grow the allocator before the baseline. */
const WARMUP_BYTES = 256 * 1024;
const SAMPLE_MS = 20;
const ROLE_ENV = "PSF_BENCH_STREAM_ROLE";
/** Where s3rver keeps its files (default: the OS temp dir), e.g. /dev/shm to take the disk out of the numbers. */
const SERVER_TMPDIR = process.env.BENCH_STREAM_TMPDIR || undefined;

type VariantName = "storage" | "lib-storage";

interface Job {
  variant: VariantName;
  target: S3Target;
  total: number;
  key: string;
  /** The body's random pool, so every process generates (and checks) the same bytes. */
  seed: string;
}

interface RunResult {
  bytes: number;
  /** Seconds of the write (save() / Upload.done()). */
  writeSeconds: number;
  /** Seconds of the read (open() / GetObject to the end of the stream, every byte verified). */
  readSeconds: number;
  peakRssGrowthMiB: number;
  /** Heap and Buffer memory at the RSS peak, for the verbose output. */
  memoryAtPeak: string;
}

// ---------------------------------------------------------------- the body

/**
 * 1 MiB blocks, block `c` being the 1 MiB window of a 2 MiB random pool starting at
 * `(c × 104729) mod 1 MiB` (an odd factor: distinct windows for the first 2^20 blocks). Any byte
 * can be recomputed, so the read side checks every byte with a memcmp instead of hashing.
 */
class GeneratedBody {
  readonly #pool: Buffer;
  readonly total: number;

  constructor(pool: Buffer, total: number) {
    this.#pool = pool;
    this.total = total;
  }

  static #start(block: number): number {
    return (block * 104_729) % MiB;
  }

  /** A stream of fresh 1 MiB chunks (consumers may keep references); never the whole body. */
  stream(): Readable {
    let offset = 0;
    const { total } = this;
    const pool = this.#pool;
    return new Readable({
      highWaterMark: CHUNK,
      read() {
        if (offset >= total) {
          this.push(null);
          return;
        }
        const length = Math.min(CHUNK, total - offset);
        const start = GeneratedBody.#start(offset / CHUNK);
        const chunk = Buffer.allocUnsafe(length);
        pool.copy(chunk, 0, start, start + length);
        offset += length;
        this.push(chunk);
      },
    });
  }

  /** Consumes `stream`, comparing every byte with the body; throws on any difference or length mismatch. */
  async verify(stream: AsyncIterable<Uint8Array>): Promise<void> {
    const { total } = this;
    let position = 0;
    for await (const chunk of stream) {
      let i = 0;
      while (i < chunk.byteLength) {
        if (position >= total) throw new Error(`read back more than the ${total} bytes written`);
        const block = Math.floor(position / CHUNK);
        const inBlock = position - block * CHUNK;
        const n = Math.min(chunk.byteLength - i, Math.min(CHUNK, total - block * CHUNK) - inBlock);
        const start = GeneratedBody.#start(block) + inBlock;
        if (Buffer.compare(chunk.subarray(i, i + n), this.#pool.subarray(start, start + n)) !== 0) {
          throw new Error(`read back differs from what was written in bytes ${position}..${position + n - 1}`);
        }
        i += n;
        position += n;
      }
    }
    if (position !== total) throw new Error(`read back ${position} bytes, wrote ${total}`);
  }
}

// ---------------------------------------------------------------- memory

/** Samples the process RSS every SAMPLE_MS from a baseline taken after a full GC. */
class RssSampler {
  readonly #baseline: NodeJS.MemoryUsage;
  #peak: number;
  #phasePeak: number;
  readonly #phases: string[] = [];
  #atPeak = "";
  readonly #timer: NodeJS.Timeout;

  constructor() {
    const gc = (globalThis as { gc?: () => void }).gc;
    if (gc) {
      gc();
      gc();
    } else {
      console.error("stream bench: gc is not exposed; the RSS baseline includes uncollected garbage");
    }
    this.#baseline = process.memoryUsage();
    this.#peak = this.#baseline.rss;
    this.#phasePeak = this.#baseline.rss;
    this.#timer = setInterval(() => this.sample(), SAMPLE_MS);
  }

  sample(): void {
    const rss = process.memoryUsage.rss();
    if (rss > this.#phasePeak) this.#phasePeak = rss;
    if (rss <= this.#peak) return;
    this.#peak = rss;
    const m = process.memoryUsage();
    const b = this.#baseline;
    const mib = (n: number) => (n / MiB).toFixed(1);
    this.#atPeak =
      `heapUsed +${mib(m.heapUsed - b.heapUsed)}, heapTotal +${mib(m.heapTotal - b.heapTotal)}, ` +
      `arrayBuffers +${mib(m.arrayBuffers - b.arrayBuffers)} MiB`;
  }

  /** Ends a phase (for the verbose output): its own peak growth is noted under `name`. */
  endPhase(name: string): void {
    this.sample();
    this.#phases.push(`${name} +${((this.#phasePeak - this.#baseline.rss) / MiB).toFixed(1)}`);
    this.#phasePeak = 0;
  }

  /** Stops sampling; the peak growth in MiB and the memory breakdown at the peak. */
  stop(): { growthMiB: number; atPeak: string } {
    this.sample();
    clearInterval(this.#timer);
    return {
      growthMiB: (this.#peak - this.#baseline.rss) / MiB,
      atPeak: `${this.#atPeak}; phase peaks: ${this.#phases.join(", ")}`,
    };
  }
}

// ---------------------------------------------------------------- one measured run (own process)

function seconds(t0: bigint): number {
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

/** Writes then reads `body` once; `write` and `read` are the variant's two halves. */
async function timed(
  body: GeneratedBody,
  write: () => Promise<string>,
  read: (key: string) => Promise<Readable>,
  remove: (key: string) => Promise<void>,
  sampled: boolean,
): Promise<RunResult> {
  const rss = sampled ? new RssSampler() : undefined;
  const t0 = process.hrtime.bigint();
  const key = await write();
  const writeSeconds = seconds(t0);
  rss?.endPhase("write");
  const t1 = process.hrtime.bigint();
  await body.verify(await read(key));
  const readSeconds = seconds(t1);
  rss?.endPhase("read");
  const memory = rss?.stop();
  await remove(key);
  return {
    bytes: body.total,
    writeSeconds,
    readSeconds,
    peakRssGrowthMiB: memory?.growthMiB ?? 0,
    memoryAtPeak: memory?.atPeak ?? "",
  };
}

async function runJob(job: Job): Promise<RunResult> {
  const { target } = job;
  const pool = Buffer.from(job.seed, "base64");
  const session = createSession(sessionOptionsFor(target));
  try {
    const run =
      job.variant === "storage"
        ? storageRun(new S3Storage({ session, partSize: PART_SIZE, queueSize: QUEUE_SIZE }))
        : libStorageRun(session.client, target.bucket);
    await run(new GeneratedBody(pool, WARMUP_BYTES), `warmup/${job.key}`, false);
    return await run(new GeneratedBody(pool, job.total), job.key, true);
  } finally {
    await session.destroy();
  }
}

type Run = (body: GeneratedBody, key: string, sampled: boolean) => Promise<RunResult>;

/** `S3Storage.save()` of the stream, then `open()`. */
function storageRun(storage: S3Storage): Run {
  return async (body, key, sampled) => {
    let loaded = 0;
    const result = await timed(
      body,
      () =>
        storage.save(key, body.stream(), {
          contentType: "application/octet-stream",
          onProgress: (p) => {
            loaded = p.loaded;
          },
        }),
      (stored) => storage.open(stored),
      (stored) => storage.delete(stored),
      sampled,
    );
    if (loaded !== body.total) throw new Error(`save() reported ${loaded} of ${body.total} bytes`);
    return result;
  };
}

/** lib-storage's `Upload` of the stream on the same client, then a plain GetObject. */
function libStorageRun(client: S3Client, bucket: string): Run {
  return (body, key, sampled) =>
    timed(
      body,
      async () => {
        await new Upload({
          client,
          params: { Bucket: bucket, Key: key, Body: body.stream(), ContentType: "application/octet-stream" },
          partSize: PART_SIZE,
          queueSize: QUEUE_SIZE,
        }).done();
        return key;
      },
      async (k) => (await client.send(new GetObjectCommand({ Bucket: bucket, Key: k }))).Body as Readable,
      async (k) => {
        await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: k }));
      },
      sampled,
    );
}

/** Child side of a measured run: the job comes over IPC, the result goes back the same way. */
async function runnerMain(): Promise<void> {
  const [job] = (await once(process, "message")) as [Job];
  try {
    process.send?.({ result: await runJob(job) });
  } catch (error) {
    process.send?.({ error: error instanceof Error ? (error.stack ?? error.message) : String(error) });
  }
  process.disconnect?.();
}

// ---------------------------------------------------------------- child processes

function spawnSelf(role: "server" | "runner", execArgv: string[], env: NodeJS.ProcessEnv = {}): ChildProcess {
  return fork(fileURLToPath(import.meta.url), [], {
    execArgv: ["--import", "tsx", ...execArgv],
    env: { ...process.env, ...env, [ROLE_ENV]: role },
    stdio: ["ignore", "ignore", "inherit", "ipc"],
  });
}

/** The first IPC message of `child`; rejects if it exits first. */
function firstMessage<T>(child: ChildProcess, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    child.once("message", (m) => resolve(m as T));
    child.once("error", reject);
    child.once("exit", (code, signal) => reject(new Error(`${what} exited early (${signal ?? code})`)));
  });
}

async function runIsolated(job: Job): Promise<RunResult> {
  const extra = (process.env.BENCH_STREAM_NODE_ARGS ?? "").split(" ").filter((a) => a !== "");
  const child = spawnSelf("runner", ["--expose-gc", ...extra]);
  const exited = once(child, "exit");
  child.send(job);
  const message = await firstMessage<{ result?: RunResult; error?: string }>(child, `the ${job.variant} run`);
  await exited;
  if (message.error !== undefined || !message.result) throw new Error(`${job.variant} run failed: ${message.error}`);
  return message.result;
}

interface Server {
  target: S3Target;
  stop(): Promise<void>;
}

/** Child side of the server: start the harness's S3 server, hand its target over, stop when told. */
async function serverMain(): Promise<void> {
  const s3 = await createTestS3();
  const { stop, ...target } = s3;
  let stopping = false;
  const shutdown = () => {
    if (stopping) return;
    stopping = true;
    void stop()
      .catch((error: unknown) => console.error("stream bench: stopping the S3 server failed:", error))
      .finally(() => process.exit(0));
  };
  process.on("message", (message) => {
    if (message === "stop") shutdown();
  });
  process.once("disconnect", shutdown); // the bench process died: clean up anyway
  process.send?.({ target });
}

async function startServer(): Promise<Server> {
  // s3rver keeps its files under os.tmpdir(), which follows TMPDIR.
  const child = spawnSelf("server", [], SERVER_TMPDIR === undefined ? {} : { TMPDIR: SERVER_TMPDIR });
  const { target } = await firstMessage<{ target: S3Target }>(child, "the S3 server process");
  return {
    target,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, "exit");
      child.send("stop"); // empties and deletes the bucket, stops the server, removes s3rver's directory
      await exited;
    },
  };
}

/** s3rver keeps the parts and then the assembled object on disk: about twice the body, plus slack. */
function assertDiskRoom(total: number): void {
  const dir = SERVER_TMPDIR ?? tmpdir();
  const fs = statfsSync(dir);
  const free = fs.bavail * fs.bsize;
  const need = 2 * total + 512 * MiB;
  if (free < need) {
    throw new Error(`stream bench: ${dir} has ${(free / MiB).toFixed(0)} MiB free, needs ${need / MiB} MiB`);
  }
}

// ---------------------------------------------------------------- the benchmark

const bench: Bench = {
  baseline: "lib-storage",
  description:
    `${SIZE_MIB} MiB generated body: S3Storage.save()+open() vs lib-storage Upload + GetObject ` +
    `(partSize ${PART_SIZE / MiB} MiB, queueSize 4, ${ROUNDS} rounds, one process per run)`,
  async run(ctx) {
    const total = Math.round(SIZE_MIB * MiB);
    if (!(total > 0))
      throw new Error(`BENCH_STREAM_MIB must be a positive number, got ${process.env.BENCH_STREAM_MIB}`);
    assertDiskRoom(total);
    const seed = randomBytes(2 * MiB).toString("base64");
    const server = await startServer();
    try {
      const results: Record<VariantName, RunResult[]> = { storage: [], "lib-storage": [] };
      for (let round = 0; round < ROUNDS; round++) {
        const order: VariantName[] = round % 2 === 0 ? ["storage", "lib-storage"] : ["lib-storage", "storage"];
        for (const variant of order) {
          const r = await runIsolated({
            variant,
            target: server.target,
            total,
            key: `stream/${variant}-${round}.bin`,
            seed,
          });
          results[variant].push(r);
          if (VERBOSE) {
            console.error(
              `round ${round} ${variant}: write ${mibPerSecond(r.bytes, r.writeSeconds).toFixed(1)} MiB/s, ` +
                `read ${mibPerSecond(r.bytes, r.readSeconds).toFixed(1)} MiB/s, ` +
                `peak RSS growth ${r.peakRssGrowthMiB.toFixed(1)} MiB (at the peak: ${r.memoryAtPeak})`,
            );
          }
        }
      }
      const ours = summarize(results.storage);
      const theirs = summarize(results["lib-storage"]);
      report(ctx, "storage", "save_mib_s", ours.writeMiBs);
      report(ctx, "storage", "open_mib_s", ours.readMiBs);
      report(ctx, "storage", "peak_rss_growth_mib", ours.peakRssGrowthMiB, "MiB");
      ctx.report("storage", "throughput_ratio_vs_lib_storage", round3(ours.writeMiBs / theirs.writeMiBs), "x");
      report(ctx, "lib-storage", "upload_mib_s", theirs.writeMiBs);
      report(ctx, "lib-storage", "get_mib_s", theirs.readMiBs);
      report(ctx, "lib-storage", "peak_rss_growth_mib", theirs.peakRssGrowthMiB, "MiB");
    } finally {
      await server.stop();
    }
  },
};
export default bench;

function mibPerSecond(bytes: number, seconds: number): number {
  return bytes / MiB / seconds;
}

/** Throughputs: all bytes over all seconds; RSS growth: the worst round. */
function summarize(runs: RunResult[]): { writeMiBs: number; readMiBs: number; peakRssGrowthMiB: number } {
  if (runs.length === 0) throw new Error("no runs");
  const sum = (f: (r: RunResult) => number) => runs.reduce((s, r) => s + f(r), 0);
  const bytes = sum((r) => r.bytes);
  return {
    writeMiBs: mibPerSecond(
      bytes,
      sum((r) => r.writeSeconds),
    ),
    readMiBs: mibPerSecond(
      bytes,
      sum((r) => r.readSeconds),
    ),
    peakRssGrowthMiB: Math.max(...runs.map((r) => r.peakRssGrowthMiB)),
  };
}

function report(ctx: BenchContext, variant: string, metric: string, value: number, unit = "MiB/s"): void {
  ctx.report(variant, metric, Math.round(value * 10) / 10, unit);
}

function round3(n: number): number {
  return Math.round(n * 1000) / 1000;
}

// This file is also the entry point of its child processes.
const role = process.env[ROLE_ENV];
if (role === "server") await serverMain();
else if (role === "runner") await runnerMain();
