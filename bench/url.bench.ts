import { GetObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import { QueryPresigner, s3BaseUrl } from "../src/storage/s3/presigner.js";
import { type Bench, quantile } from "./lib/report.js";

const CALLS = 20_000;
const WARMUP = 2_000;
const ENDPOINT = "http://127.0.0.1:9000";
const REGION = "us-east-1";
const BUCKET = "psf-bench";
const CREDENTIALS = { accessKeyId: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY" };
const keyOf = (i: number) => `avatars/2026/11/user-${i}.png`;

/**
 * Per-call latency of `fn` in microseconds, after a warm-up; nothing is sent over the network.
 * A synchronous result is not awaited, so the sync path is not charged for a microtask turn.
 */
async function measure(fn: (key: string) => string | Promise<string>): Promise<number[]> {
  for (let i = 0; i < WARMUP; i++) await fn(keyOf(i));
  const samples = new Array<number>(CALLS);
  for (let i = 0; i < CALLS; i++) {
    const key = keyOf(i);
    const t0 = process.hrtime.bigint();
    const url = fn(key);
    if (typeof url !== "string") await url;
    samples[i] = Number(process.hrtime.bigint() - t0) / 1000;
  }
  return samples;
}

/** Presigned GET URL latency: the SDK's getSignedUrl on a warm client vs. the query presigner. */
const bench: Bench = {
  description: `presigned GET URL latency, ${CALLS} warm calls each (SDK getSignedUrl vs storage.url)`,
  async run(ctx) {
    // Static credentials and a path-style local endpoint: pure computation, no I/O on either side.
    const client = new S3Client({ endpoint: ENDPOINT, region: REGION, forcePathStyle: true, credentials: CREDENTIALS });
    const sdk = await measure((key) =>
      getSignedUrl(client, new GetObjectCommand({ Bucket: BUCKET, Key: key }), { expiresIn: 3600 }),
    );
    client.destroy();

    // TODO(lead): switch to S3Storage.url once it wraps QueryPresigner.
    const presigner = new QueryPresigner();
    const target = {
      baseUrl: s3BaseUrl({ endpoint: ENDPOINT, region: REGION, bucket: BUCKET, forcePathStyle: true }),
      region: REGION,
    };
    const ours = await measure((key) => presigner.presignGet(target, key, CREDENTIALS, { expiresIn: 3600 }));

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
  },
};
export default bench;

function round2(n: number): number {
  return Math.round(n * 100) / 100;
}
