import { HeadObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { fromInstanceMetadata } from "@aws-sdk/credential-providers";
import { createSession, type S3Session } from "../src/index.js";
import { MetadataFixture } from "../test/harness/metadata-fixture.js";
import { startOkServer } from "../test/harness/ok-server.js";
import { type Bench, quantile } from "./lib/report.js";

const OPS = 1000;
const CONCURRENCY = 25;

/** Runs `op` OPS times with CONCURRENCY in flight; returns per-op latencies in µs. */
async function drive(op: (i: number) => Promise<unknown>, ops = OPS, concurrency = CONCURRENCY): Promise<number[]> {
  const latencies: number[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < ops) {
        const i = next++;
        const t0 = performance.now();
        await op(i);
        latencies.push((performance.now() - t0) * 1000);
      }
    }),
  );
  return latencies;
}

/**
 * Credential cost per operation: signed HEAD requests to a local server that answers at once,
 * credentials from the IMDSv2 fixture at 50 ms per request (300 ms for the refresh variants).
 */
const bench: Bench = {
  baseline: "client-per-op",
  description: "metadata calls and per-operation latency: client per op vs shared SDK client vs session",
  async run(ctx) {
    const server = await startOkServer();
    const fixture = await MetadataFixture.start({ latencyMs: 50 });
    const restore = fixture.useEnv("imds");
    const base = { region: "us-east-1", endpoint: server.endpoint, forcePathStyle: true } as const;
    const noChecksums = {
      requestChecksumCalculation: "WHEN_REQUIRED",
      responseChecksumValidation: "WHEN_REQUIRED",
    } as const;
    const head = (client: S3Client, i: number) =>
      client.send(new HeadObjectCommand({ Bucket: "b", Key: `avatars/${i}.png` }));
    const report = (variant: string, latencies: number[]) => {
      ctx.report(variant, "metadata_calls", fixture.total, "requests");
      ctx.report(variant, "op_p50_us", Math.round(quantile(latencies, 0.5)), "us");
      ctx.report(variant, "op_p99_us", Math.round(quantile(latencies, 0.99)), "us");
    };
    try {
      // What the seed README describes for django-storages: a new client (and credential resolution) per operation.
      fixture.resetCounts();
      let connections = server.connections();
      report(
        "client-per-op",
        await drive(async (i) => {
          const client = new S3Client({ ...base, ...noChecksums });
          try {
            await head(client, i);
          } finally {
            client.destroy();
          }
        }),
      );
      ctx.report("client-per-op", "tcp_connections", server.connections() - connections, "connections");

      fixture.resetCounts();
      connections = server.connections();
      const shared = new S3Client({ ...base, ...noChecksums });
      report("sdk-shared-client", await drive((i) => head(shared, i)));
      ctx.report("sdk-shared-client", "tcp_connections", server.connections() - connections, "connections");
      shared.destroy();

      fixture.resetCounts();
      connections = server.connections();
      const session = createSession({ ...base, checksums: "when_required" });
      report("session", await drive((i) => head(session.client, i)));
      ctx.report("session", "tcp_connections", server.connections() - connections, "connections");
      await session.destroy();

      // A refresh falls due while operations run; the fixture answers each request in 300 ms.
      await fixture.set({ latencyMs: 300 });
      const steady = await refreshVariant(ctx, "session-steady", fixture, async () => {
        const s = createSession({
          ...base,
          checksums: "when_required",
          credentials: fromInstanceMetadata({ timeout: 2000 }),
        });
        await s.credentials();
        return { client: s.client, done: () => s.destroy(), session: s };
      });
      const due = await refreshVariant(ctx, "session-refresh", fixture, async () => {
        // Credentials for 20 minutes with the advisory window opening 0.5 s after the fetch.
        await fixture.set({ lifetimeSeconds: 1200 });
        const s = createSession({
          ...base,
          checksums: "when_required",
          credentials: fromInstanceMetadata({ timeout: 2000 }),
          refresh: { advisorySeconds: 1199.5, mandatorySeconds: 60 },
        });
        await s.credentials();
        return { client: s.client, done: () => s.destroy(), session: s };
      });
      ctx.report("session-refresh", "p99_delta_vs_steady_us", Math.round(due - steady), "us");
      await refreshVariant(ctx, "sdk-imds-provider", fixture, async () => {
        // 299 s of validity: inside the SDK memoizer's 5-minute window, so its refresh is due at once.
        await fixture.set({ lifetimeSeconds: 299 });
        const client = new S3Client({ ...base, ...noChecksums, credentials: fromInstanceMetadata({ timeout: 2000 }) });
        await client.config.credentials();
        return { client, done: async () => client.destroy() };
      });
    } finally {
      restore();
      await fixture.stop();
      await server.close();
    }
  },
};

/** Ops issued over ~2 s at a steady pace after setup; reports op_p99_us and returns it. */
async function refreshVariant(
  ctx: Parameters<Bench["run"]>[0],
  variant: string,
  fixture: MetadataFixture,
  setup: () => Promise<{ client: S3Client; done: () => Promise<void>; session?: S3Session }>,
): Promise<number> {
  const { client, done, session } = await setup();
  fixture.resetCounts();
  const latencies: number[] = [];
  const until = performance.now() + 2000;
  let i = 0;
  const inFlight: Promise<void>[] = [];
  while (performance.now() < until) {
    const t0 = performance.now();
    inFlight.push(
      client.send(new HeadObjectCommand({ Bucket: "b", Key: `k${i++}` })).then(() => {
        latencies.push((performance.now() - t0) * 1000);
      }),
    );
    await new Promise((r) => setTimeout(r, 2));
  }
  await Promise.all(inFlight);
  const p99 = Math.round(quantile(latencies, 0.99));
  ctx.report(variant, "op_p99_us", p99, "us");
  ctx.report(variant, "op_p50_us", Math.round(quantile(latencies, 0.5)), "us");
  ctx.report(variant, "metadata_calls", fixture.total, "requests");
  if (session) ctx.report(variant, "credential_fetches", session.stats().credentialFetches, "fetches");
  await done();
  return p99;
}

export default bench;
