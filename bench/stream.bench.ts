import { type ChildProcess, fork } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { statfsSync } from "node:fs";
import { tmpdir } from "node:os";
import { Readable } from "node:stream";
import { fileURLToPath } from "node:url";
import { getHeapStatistics } from "node:v8";
import { DeleteObjectCommand, GetObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { createSession } from "../src/session/session.js";
import { readableChunks } from "../src/storage/content.js";
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
 * - Each measured phase gets a fresh process (with `--expose-gc`): the write (`save()` /
 *   `Upload`) in one, the read of what it wrote (`open()` / GetObject, every byte verified) in
 *   the next, so each phase's RSS growth is its own, not what the other left in the allocator.
 *   A run first warms up with a small save/read of its own variant (modules, sockets, the
 *   conditional-write probe), then a full GC sets the baseline, then RSS is sampled every 20 ms.
 * - Rounds alternate which variant goes first. A throughput is all bytes over all seconds of its
 *   rounds (one slow round is not averaged away by a fast one); RSS growth is the worst round,
 *   reported with what it was made of at its peak: ArrayBuffers (for a write, the part buffers in
 *   flight, queueSize × partSize, and the source's chunks not yet collected; for a read, the
 *   socket's read buffers not yet collected), the JS heap (pages in use, not reserved), and the
 *   native rest. The highest ArrayBuffer growth seen at any sample is reported too: the C
 *   allocator keeps the pages of buffers the GC freed, so an earlier ArrayBuffer high-water mark
 *   shows up later as "native". Summary lines on stderr spell it out.
 * - The library's own share of a write: the `…/recycled-source` variants (first round only) save
 *   the same bytes from a source that cycles through a fixed ring of 1 MiB buffers, so the source
 *   leaves no garbage and what the write holds is the uploader's own (part buffers, requests,
 *   sockets). The read phase checks every byte, so a consumer that kept a chunk past the ring's
 *   reuse would fail the run.
 * - The floor: the `floor` variant (write only, every round) reads the same source the way
 *   `save()` does and copies it into `queueSize` part buffers of `partSize` at the rate the
 *   storage wrote at in that round, with no request at all. What it peaks at, any consumer of
 *   that stream that keeps queueSize parts pays: the parts, plus the source's dead chunks,
 *   which V8 frees only when a scavenge runs. V8 forces one when
 *   the young generation's ArrayBuffers reach 2 × its default max semi-space (16 MiB on 64-bit:
 *   32 MiB, a compile-time value that `--max-semi-space-size` does not move), so up to ~32 MiB of
 *   used chunks wait whoever reads them. `storage` minus `floor` is what the upload path adds.
 *
 * Env: `BENCH_STREAM_MIB` (default 1024), `BENCH_STREAM_ROUNDS` (default 2),
 * `BENCH_STREAM_STORAGE_QUEUE` (the storage's queueSize; lib-storage keeps 4),
 * `BENCH_STREAM_VERBOSE=1` (per-run numbers on stderr), `BENCH_STREAM_NODE_ARGS` (extra node
 * flags for the measured processes, e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`),
 * `BENCH_STREAM_TMPDIR` (where an s3rver keeps its files; default the OS temp dir),
 * `BENCH_STREAM_FIRST=lib-storage` (round 0 starts with lib-storage). Against a Ceph RGW, deleted
 * objects stay in RADOS until its garbage collection (2 h by default): on a small store (the dev
 * RGW's memstore holds 4 GiB) run one round at a time and `radosgw-admin gc process --include-all`
 * between runs, or the OSD fills and stops taking writes.
 */

const MiB = 1024 * 1024;
const SIZE_MIB = Number(process.env.BENCH_STREAM_MIB ?? 1024);
const ROUNDS = Math.max(1, Math.floor(Number(process.env.BENCH_STREAM_ROUNDS ?? 2)));
const VERBOSE = process.env.BENCH_STREAM_VERBOSE === "1";
/** `BENCH_STREAM_FIRST=lib-storage` starts round 0 with lib-storage (a one-round run on a small server, the other order). */
const FIRST = process.env.BENCH_STREAM_FIRST === "lib-storage" ? 1 : 0;
const PART_SIZE = Number(process.env.BENCH_STREAM_PART_MIB ?? 5) * MiB;
const QUEUE_SIZE = 4;
/** The storage's queueSize (`BENCH_STREAM_STORAGE_QUEUE`, default 4 like lib-storage's): the memory/throughput trade-off. */
const STORAGE_QUEUE = Math.max(1, Math.floor(Number(process.env.BENCH_STREAM_STORAGE_QUEUE ?? QUEUE_SIZE)));
/** Chunk size of the generated body. */
const CHUNK = MiB;
/** Warm-up body: small (a single PutObject), so it does not pre-grow the allocator before the baseline. */
const WARMUP_BYTES = 256 * 1024;
const SAMPLE_MS = 20;
const ROLE_ENV = "PSF_BENCH_STREAM_ROLE";
/** Where s3rver keeps its files (default: the OS temp dir), e.g. /dev/shm to take the disk out of the numbers. */
const SERVER_TMPDIR = process.env.BENCH_STREAM_TMPDIR || undefined;

type VariantName = "storage" | "lib-storage";
/** A write variant: a library, and whether its source recycles its chunks (the library's own share). */
type WriteVariant = VariantName | `${VariantName}/recycled-source` | "floor";
/** Buffers in the recycled source's ring: more than any uploader here keeps of a source (about a part's worth, 5-6 chunks). */
const RING = 16;

interface Job {
  variant: WriteVariant;
  /** A run measures one half: `write` saves the body under `key`, `read` reads it back and deletes it. */
  phase: "write" | "read";
  target: S3Target;
  total: number;
  key: string;
  /** The body's random pool, so every process generates (and checks) the same bytes. */
  seed: string;
  /** `floor` only: the rate to copy at (MiB/s), the storage write's of the same round. */
  paceMiBs?: number;
}

interface RunResult {
  bytes: number;
  /** Seconds of the phase: the write (save() / Upload.done()) or the read (open() / GetObject to the end of the stream, every byte verified). */
  seconds: number;
  peakRssGrowthMiB: number;
  /** Growth of the JS heap (pages in use) and of ArrayBuffer memory at the RSS peak (MiB): what the RSS peak is made of. */
  atPeak: { heapMiB: number; arrayBuffersMiB: number };
  /** The highest ArrayBuffer growth seen at any sample (MiB), peak or not. */
  maxArrayBuffersMiB: number;
  /** The write phase's stored key (the read phase reads it). */
  key: string;
  /** The longest a request of the phase waited on the server with no byte moving (what the idle timeout must allow). */
  longestSilenceMs: number;
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

  /**
   * The same bytes from a ring of RING fixed 1 MiB buffers, each refilled when its turn comes
   * again: no garbage from the source, so a write's memory is the uploader's own. A consumer that
   * keeps a chunk longer than RING - 1 further chunks sends wrong bytes, which the read catches.
   */
  recycledStream(): Readable {
    let offset = 0;
    let turn = 0;
    const { total } = this;
    const pool = this.#pool;
    // Written through now, before the baseline: zero-filled memory is mapped lazily, and pages
    // first touched during the write would count as its growth.
    const ring = Array.from({ length: RING }, () => Buffer.allocUnsafeSlow(CHUNK).fill(0xa5));
    return new Readable({
      highWaterMark: CHUNK,
      read() {
        if (offset >= total) {
          this.push(null);
          return;
        }
        const length = Math.min(CHUNK, total - offset);
        const start = GeneratedBody.#start(offset / CHUNK);
        const chunk = (ring[turn++ % RING] as Buffer).subarray(0, length);
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
  /** JS heap pages in use at the baseline: heapTotal counts reserved semi-space pages never touched. */
  readonly #baselineHeap: number;
  #peak: number;
  #atPeak = { heapMiB: 0, arrayBuffersMiB: 0 };
  #maxArrayBuffers = 0;
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
    this.#baselineHeap = getHeapStatistics().total_physical_size;
    this.#peak = this.#baseline.rss;
    this.#timer = setInterval(() => this.sample(), SAMPLE_MS);
  }

  sample(): void {
    const m = process.memoryUsage();
    const arrayBuffers = (m.arrayBuffers - this.#baseline.arrayBuffers) / MiB;
    if (arrayBuffers > this.#maxArrayBuffers) this.#maxArrayBuffers = arrayBuffers;
    if (m.rss <= this.#peak) return;
    this.#peak = m.rss;
    this.#atPeak = {
      heapMiB: (getHeapStatistics().total_physical_size - this.#baselineHeap) / MiB,
      arrayBuffersMiB: arrayBuffers,
    };
  }

  /** Stops sampling; the peak growth in MiB and what it was made of. */
  stop(): { growthMiB: number; atPeak: RunResult["atPeak"]; maxArrayBuffersMiB: number } {
    this.sample();
    clearInterval(this.#timer);
    return {
      growthMiB: (this.#peak - this.#baseline.rss) / MiB,
      atPeak: this.#atPeak,
      maxArrayBuffersMiB: this.#maxArrayBuffers,
    };
  }
}

// ---------------------------------------------------------------- one measured run (own process)

function seconds(t0: bigint): number {
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

/** One measured phase: `action` (a write or a read of the whole body), sampled from a fresh baseline. */
async function timed(total: number, key: string, action: () => Promise<unknown>): Promise<RunResult> {
  const rss = new RssSampler();
  const t0 = process.hrtime.bigint();
  const stored = await action();
  const elapsed = seconds(t0);
  const memory = rss.stop();
  return {
    bytes: total,
    seconds: elapsed,
    peakRssGrowthMiB: memory.growthMiB,
    atPeak: memory.atPeak,
    maxArrayBuffersMiB: memory.maxArrayBuffersMiB,
    key: typeof stored === "string" ? stored : key,
    longestSilenceMs: 0,
  };
}

async function runJob(job: Job): Promise<RunResult> {
  const { target } = job;
  const pool = Buffer.from(job.seed, "base64");
  if (job.variant === "floor") {
    // No request: no session either.
    const body = new GeneratedBody(pool, job.total);
    const source = body.stream();
    return timed(job.total, job.key, () => copyIntoParts(source, body.total, job.paceMiBs));
  }
  const session = createSession(sessionOptionsFor(target));
  try {
    const library = job.variant.startsWith("storage") ? "storage" : "lib-storage";
    const variant =
      library === "storage"
        ? storageVariant(new S3Storage({ session, partSize: PART_SIZE, queueSize: STORAGE_QUEUE }))
        : libStorageVariant(session.client, target.bucket);
    // Warm-up on a small body of its own (modules, sockets, the conditional-write probe).
    const warm = new GeneratedBody(pool, WARMUP_BYTES);
    const warmKey = await variant.write(warm.stream(), warm.total, `warmup/${job.key}`);
    await warm.verify(await variant.read(warmKey));
    await variant.remove(warmKey);
    const body = new GeneratedBody(pool, job.total);
    const silence = () => session.stats().timeouts.longestSilenceMs;
    if (job.phase === "write") {
      // Made before the baseline: the recycled source's ring is the source's memory, not the write's.
      const source = job.variant.endsWith("/recycled-source") ? body.recycledStream() : body.stream();
      const result = await timed(job.total, job.key, () => variant.write(source, body.total, job.key));
      return { ...result, longestSilenceMs: silence() };
    }
    const result = await timed(job.total, job.key, async () => body.verify(await variant.read(job.key)));
    await variant.remove(job.key);
    return { ...result, longestSilenceMs: silence() };
  } finally {
    await session.destroy();
  }
}

/**
 * The floor of a write: the source read as `save()` reads it (`readableChunks`) and copied into
 * STORAGE_QUEUE part buffers of PART_SIZE, taken in turn and allocated as first needed, as the
 * uploader's are; no request is made. Paced at `paceMiBs` (after each part, it waits until the
 * bytes copied match the rate): the GC frees used chunks at its own pace, so a consumer 40×
 * faster than the upload would measure a different (higher) peak.
 */
async function copyIntoParts(source: Readable, total: number, paceMiBs: number | undefined): Promise<void> {
  const t0 = process.hrtime.bigint();
  const parts: Buffer[] = [];
  let part = 0;
  let filled = 0;
  let copied = 0;
  for await (const raw of readableChunks(source)) {
    const chunk = raw as Buffer;
    let offset = 0;
    while (offset < chunk.byteLength) {
      parts[part] ??= Buffer.allocUnsafe(PART_SIZE);
      const n = Math.min(PART_SIZE - filled, chunk.byteLength - offset);
      chunk.copy(parts[part] as Buffer, filled, offset, offset + n);
      filled += n;
      offset += n;
      if (filled === PART_SIZE) {
        part = (part + 1) % STORAGE_QUEUE;
        filled = 0;
        const due = paceMiBs ? ((copied + offset) / MiB / paceMiBs) * 1000 - seconds(t0) * 1000 : 0;
        if (due > 0) await new Promise((resolve) => setTimeout(resolve, due));
      }
    }
    copied += chunk.byteLength;
  }
  if (copied !== total) throw new Error(`floor: copied ${copied} of ${total} bytes`);
}

interface Variant {
  /** Writes the `total` bytes of `source` under (about) `key`; resolves with the key it was stored under. */
  write(source: Readable, total: number, key: string): Promise<string>;
  read(key: string): Promise<Readable>;
  remove(key: string): Promise<void>;
}

/** `S3Storage.save()` of the stream; `open()`. */
function storageVariant(storage: S3Storage): Variant {
  return {
    async write(source, total, key) {
      let loaded = 0;
      // The storage's exact name: the read phase (another process) opens it as is.
      const stored = await storage.save(key, source, {
        contentType: "application/octet-stream",
        onProgress: (p) => {
          loaded = p.loaded;
        },
      });
      if (loaded !== total) throw new Error(`save() reported ${loaded} of ${total} bytes`);
      return stored;
    },
    read: (key) => storage.open(key),
    remove: (key) => storage.delete(key),
  };
}

/** lib-storage's `Upload` of the stream on the same client; a plain GetObject. */
function libStorageVariant(client: S3Client, bucket: string): Variant {
  return {
    async write(source, _total, key) {
      await new Upload({
        client,
        params: { Bucket: bucket, Key: key, Body: source, ContentType: "application/octet-stream" },
        partSize: PART_SIZE,
        queueSize: QUEUE_SIZE,
      }).done();
      return key;
    },
    read: async (key) => (await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }))).Body as Readable,
    async remove(key) {
      await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
    },
  };
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
    `(partSize ${PART_SIZE / MiB} MiB, queueSize ${STORAGE_QUEUE} / 4, ${ROUNDS} rounds, one process per run)`,
  async run(ctx) {
    const total = Math.round(SIZE_MIB * MiB);
    if (!(total > 0))
      throw new Error(`BENCH_STREAM_MIB must be a positive number, got ${process.env.BENCH_STREAM_MIB}`);
    assertDiskRoom(total);
    const seed = randomBytes(2 * MiB).toString("base64");
    const server = await startServer();
    try {
      type Phases = { write: RunResult[]; read: RunResult[] };
      const results: Record<WriteVariant, Phases> = {
        storage: { write: [], read: [] },
        "lib-storage": { write: [], read: [] },
        "storage/recycled-source": { write: [], read: [] },
        "lib-storage/recycled-source": { write: [], read: [] },
        floor: { write: [], read: [] },
      };
      for (let round = 0; round < ROUNDS; round++) {
        const libraries: VariantName[] =
          (round + FIRST) % 2 === 0 ? ["storage", "lib-storage"] : ["lib-storage", "storage"];
        const order: WriteVariant[] = [...libraries];
        // The library's own share needs one round: without source garbage the peak hardly varies.
        if (round === 0) order.push(...libraries.map((v) => `${v}/recycled-source` as const));
        order.push("floor");
        for (const variant of order) {
          const key = `stream/${variant.replace("/", "-")}-${round}.bin`;
          const storageWrite = results.storage.write[round];
          const paceMiBs = storageWrite ? mibPerSecond(storageWrite.bytes, storageWrite.seconds) : undefined;
          const job = {
            variant,
            target: server.target,
            total,
            key,
            seed,
            ...(variant === "floor" ? { paceMiBs } : {}),
          };
          const w = await runIsolated({ ...job, phase: "write" });
          results[variant].write.push(w);
          const measured: [string, RunResult][] = [["write", w]];
          if (variant !== "floor") {
            const r = await runIsolated({ ...job, key: w.key, phase: "read" });
            results[variant].read.push(r);
            measured.push(["read", r]);
          }
          if (VERBOSE) {
            for (const [phase, x] of measured) {
              console.error(
                `round ${round} ${variant} ${phase}: ${mibPerSecond(x.bytes, x.seconds).toFixed(1)} MiB/s, ` +
                  `peak RSS growth ${x.peakRssGrowthMiB.toFixed(1)} MiB (at the peak: JS heap +${x.atPeak.heapMiB.toFixed(1)}, ` +
                  `ArrayBuffers +${x.atPeak.arrayBuffersMiB.toFixed(1)} MiB; ArrayBuffers at most +${x.maxArrayBuffersMiB.toFixed(1)})`,
              );
            }
          }
        }
      }
      const worstOf = (runs: RunResult[]) => runs.reduce((a, b) => (b.peakRssGrowthMiB > a.peakRssGrowthMiB ? b : a));
      const phasesOf = (variant: WriteVariant) =>
        variant.endsWith("/recycled-source") || variant === "floor"
          ? (["write"] as const)
          : (["write", "read"] as const);
      for (const variant of Object.keys(results) as WriteVariant[]) {
        for (const phase of phasesOf(variant)) {
          const runs = results[variant][phase];
          const worst = worstOf(runs);
          report(ctx, variant, `${phase}_mib_s`, throughput(runs));
          report(ctx, variant, `${phase}_peak_rss_growth_mib`, worst.peakRssGrowthMiB, "MiB");
          // What the worst peak is made of: ArrayBuffers (for a write: the part buffers in flight,
          // queueSize × partSize, plus source chunks and socket reads not yet collected), the JS
          // heap's pages in use, and the rest (native: the allocator keeping the pages of buffers
          // the GC freed, code, sockets).
          report(ctx, variant, `${phase}_peak_array_buffers_mib`, worst.atPeak.arrayBuffersMiB, "MiB");
          report(ctx, variant, `${phase}_peak_js_heap_mib`, worst.atPeak.heapMiB, "MiB");
          report(ctx, variant, `${phase}_peak_native_other_mib`, nativeRest(worst), "MiB");
          // The ArrayBuffer high-water mark of that run, peak or not: the "native" rest is mostly
          // its excess over the ArrayBuffers at the peak (freed by the GC, kept by the allocator).
          report(ctx, variant, `${phase}_max_array_buffers_mib`, worst.maxArrayBuffersMiB, "MiB");
          const silent = Math.max(...runs.map((r) => r.longestSilenceMs));
          ctx.report(variant, `${phase}_longest_server_silence_ms`, silent, "ms");
        }
      }
      const ratio = (phase: "write" | "read") =>
        round3(throughput(results.storage[phase]) / throughput(results["lib-storage"][phase]));
      ctx.report("storage", "write_throughput_ratio_vs_lib_storage", ratio("write"), "x");
      ctx.report("storage", "read_throughput_ratio_vs_lib_storage", ratio("read"), "x");
      const w = worstOf(results.storage.write);
      const own = worstOf(results["storage/recycled-source"].write);
      const parts = (STORAGE_QUEUE * PART_SIZE) / MiB;
      console.error(
        `stream: storage write peak RSS growth ${w.peakRssGrowthMiB.toFixed(1)} MiB = ArrayBuffers ` +
          `${w.atPeak.arrayBuffersMiB.toFixed(1)} (part buffers ${parts}: ${STORAGE_QUEUE} × ${PART_SIZE / MiB} MiB; ` +
          `the rest the source's chunks awaiting GC) + JS heap ${w.atPeak.heapMiB.toFixed(1)} + native ` +
          `${nativeRest(w).toFixed(1)} (ArrayBuffers reached +${w.maxArrayBuffersMiB.toFixed(1)} during the run: the ` +
          `allocator keeps the pages of the chunks the GC freed). With a source that recycles its buffers the same ` +
          `save peaks at ${own.peakRssGrowthMiB.toFixed(1)} MiB (ArrayBuffers ${own.atPeak.arrayBuffersMiB.toFixed(1)}, ` +
          `JS heap ${own.atPeak.heapMiB.toFixed(1)}): the uploader's own share; the difference is the source's garbage.`,
      );
      const floor = worstOf(results.floor.write);
      for (const library of ["storage", "lib-storage"] as const) {
        const over = worstOf(results[library].write).peakRssGrowthMiB - floor.peakRssGrowthMiB;
        report(ctx, library, "write_peak_rss_growth_over_floor_mib", over, "MiB");
      }
      console.error(
        `stream: the floor (the same source copied into ${STORAGE_QUEUE} × ${PART_SIZE / MiB} MiB part buffers at the storage's ` +
          `rate, no request) peaks at ${floor.peakRssGrowthMiB.toFixed(1)} MiB (ArrayBuffers reached ` +
          `+${floor.maxArrayBuffersMiB.toFixed(1)}: the parts plus up to 32 MiB of used chunks, V8's young-generation ` +
          `ArrayBuffer threshold for a scavenge); the upload path adds ${(w.peakRssGrowthMiB - floor.peakRssGrowthMiB).toFixed(1)} MiB to it.`,
      );
      const r = worstOf(results.storage.read);
      console.error(
        `stream: storage read (open(): the SDK's GetObject body, as the lib-storage variant reads) peak RSS growth ` +
          `${r.peakRssGrowthMiB.toFixed(1)} MiB = ArrayBuffers ${r.atPeak.arrayBuffersMiB.toFixed(1)} (Node's socket ` +
          `read buffers, a fresh one of up to 64 KiB per read, awaiting GC) + JS heap ${r.atPeak.heapMiB.toFixed(1)} + ` +
          `native ${nativeRest(r).toFixed(1)} (ArrayBuffers reached +${r.maxArrayBuffersMiB.toFixed(1)})`,
      );
    } finally {
      await server.stop();
    }
  },
};
export default bench;

/** RSS growth at the peak that is neither ArrayBuffers nor JS heap pages. */
function nativeRest(run: RunResult): number {
  return run.peakRssGrowthMiB - run.atPeak.arrayBuffersMiB - run.atPeak.heapMiB;
}

function mibPerSecond(bytes: number, seconds: number): number {
  return bytes / MiB / seconds;
}

/** All bytes over all seconds: one slow round is not averaged away by a fast one. */
function throughput(runs: RunResult[]): number {
  if (runs.length === 0) throw new Error("no runs");
  return mibPerSecond(
    runs.reduce((s, r) => s + r.bytes, 0),
    runs.reduce((s, r) => s + r.seconds, 0),
  );
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
