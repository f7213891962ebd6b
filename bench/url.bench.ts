import { GetObjectCommand } from "@aws-sdk/client-s3";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import { createSession } from "../src/session/session.js";
import { S3Storage } from "../src/storage/s3/s3-storage.js";
import { type Bench, quantile } from "./lib/report.js";

const CALLS = 20_000;
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
  description: `presigned GET URL latency, ${CALLS} warm awaited calls each (SDK getSignedUrl vs S3Storage.url)`,
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
    } finally {
      await session.destroy();
    }
  },
};
export default bench;

function round2(n: number): number {
  return Math.round(n * 100) / 100;
}
