/**
 * Shared pieces of the torture suite: sizes from the environment, a seeded PRNG, tiny valid
 * files, a session whose S3 client has short timeouts and no retries (so injected faults are
 * seen by the code under test, not absorbed), and a memory sampler.
 *
 * Sizes: the defaults are the CI sizes that run inside `npm test`; `npm run torture`
 * (scripts/torture.mjs) raises them through the same variables.
 */
import { randomInt } from "node:crypto";
import { Agent } from "node:http";
import { S3Client } from "@aws-sdk/client-s3";
import { NodeHttpHandler } from "@smithy/node-http-handler";
import { S3Session } from "../../src/index.js";
import type { S3Target } from "../harness/s3.js";

/** A positive integer from the environment, else `fallback`. */
export function envInt(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`${name} must be a non-negative integer, got ${raw}`);
  return n;
}

/** `TORTURE_SEED` when set (reproduces a run), else a fresh random seed. */
export function tortureSeed(): number {
  const raw = process.env.TORTURE_SEED;
  if (raw !== undefined && raw !== "") return Number(raw) >>> 0;
  return randomInt(2 ** 31);
}

/** sfc32: a small, fast, well-distributed 32-bit PRNG; the whole run follows from the seed. */
export class Rng {
  #a: number;
  #b: number;
  #c: number;
  #d: number;
  constructor(readonly seed: number) {
    this.#a = 0x9e3779b9;
    this.#b = 0x243f6a88;
    this.#c = 0xb7e15162;
    this.#d = seed >>> 0;
    for (let i = 0; i < 15; i++) this.next();
  }
  /** Uniform in [0, 2^32). */
  next(): number {
    this.#a >>>= 0;
    this.#b >>>= 0;
    this.#c >>>= 0;
    this.#d >>>= 0;
    let t = (this.#a + this.#b) | 0;
    this.#a = this.#b ^ (this.#b >>> 9);
    this.#b = (this.#c + (this.#c << 3)) | 0;
    this.#c = (this.#c << 21) | (this.#c >>> 11);
    this.#d = (this.#d + 1) | 0;
    t = (t + this.#d) | 0;
    this.#c = (this.#c + t) | 0;
    return t >>> 0;
  }
  /** Uniform in [0, 1). */
  float(): number {
    return this.next() / 2 ** 32;
  }
  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.float() * n);
  }
  chance(p: number): boolean {
    return this.float() < p;
  }
  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error("pick() from an empty list");
    return items[this.int(items.length)] as T;
  }
  /** Picks a key of `weights` with probability proportional to its weight. */
  weighted<K extends string>(weights: Readonly<Record<K, number>>): K {
    const entries = Object.entries(weights) as [K, number][];
    const total = entries.reduce((s, [, w]) => s + w, 0);
    let x = this.float() * total;
    for (const [k, w] of entries) {
      x -= w;
      if (x < 0) return k;
    }
    return entries[entries.length - 1]![0];
  }
  /** A random subset (each element with probability `p`). */
  subset<T>(items: readonly T[], p: number): T[] {
    return items.filter(() => this.chance(p));
  }
}

/** A real 1×1 PNG; `variant` appends bytes after IEND so contents differ (sniffers read the head only). */
const PNG_1x1 = Buffer.from(
  "89504e470d0a1a0a0000000d4948445200000001000000010806000000" +
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082",
  "hex",
);
export function png(variant = 0): Buffer<ArrayBuffer> {
  return variant === 0 ? PNG_1x1 : Buffer.concat([PNG_1x1, Buffer.from(`#${variant}`)]);
}
export function pdf(variant = 0): Buffer<ArrayBuffer> {
  return Buffer.from(`%PDF-1.7\n% torture ${variant}\n%%EOF\n`);
}

export interface ProxiedSessionOptions {
  /** Socket idle timeout of each request, ms: what turns an injected hang into an error (a whole request gets at least 5 s). */
  requestTimeoutMs?: number;
  /** SDK attempts per request; 1 means an injected fault is never retried away. */
  maxAttempts?: number;
}

/**
 * A session whose client talks to `endpoint` (a fault-injecting proxy) with short timeouts.
 * `createSession` owns its request handler and exposes no timeouts, so the client is built
 * here and adopted with `S3Session.fromClient`: the storages under test run exactly the same
 * code, and an injected hang becomes a timeout instead of a stuck test.
 */
export function proxiedSession(s3: S3Target, endpoint: string, options: ProxiedSessionOptions = {}) {
  const timeout = options.requestTimeoutMs ?? 250;
  const agent = new Agent({ keepAlive: true, maxSockets: 64 });
  const client = new S3Client({
    endpoint,
    region: s3.region,
    forcePathStyle: true,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
    maxAttempts: options.maxAttempts ?? 1,
    requestHandler: new NodeHttpHandler({
      httpAgent: agent,
      connectionTimeout: timeout,
      socketTimeout: timeout,
      requestTimeout: Math.max(timeout, 5000),
      throwOnRequestTimeout: true,
    }),
  });
  const session = S3Session.fromClient(client, {
    region: s3.region,
    bucket: s3.bucket,
    endpoint,
    forcePathStyle: true,
    checksums: "when_required",
  });
  return {
    session,
    client,
    async destroy() {
      await session.destroy();
      client.destroy();
      agent.destroy();
    },
  };
}

/** Samples `process.memoryUsage().rss` every `intervalMs`; `stop()` returns the peak growth over the baseline. */
export function rssSampler(intervalMs = 20) {
  const first = process.memoryUsage();
  const baseline = first.rss;
  let peak = baseline;
  /** Peak of `arrayBuffers` (Buffers, outside the JS heap) over its baseline: what the bytes in flight take. */
  let peakBuffers = first.arrayBuffers;
  let samples = 0;
  const sample = () => {
    const m = process.memoryUsage();
    samples++;
    if (m.rss > peak) peak = m.rss;
    if (m.arrayBuffers > peakBuffers) peakBuffers = m.arrayBuffers;
  };
  const timer = setInterval(sample, intervalMs);
  return {
    baseline,
    stop() {
      clearInterval(timer);
      sample();
      return { baseline, peak, growth: peak - baseline, buffersGrowth: peakBuffers - first.arrayBuffers, samples };
    },
  };
}

export const MiB = 1024 * 1024;
