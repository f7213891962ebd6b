import { spawnSync } from "node:child_process";
import { Agent as HttpAgent } from "node:http";
import { createServer, type Socket } from "node:net";
import { inspect } from "node:util";
import { GetObjectCommand, HeadObjectCommand, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { fromContainerMetadata, fromInstanceMetadata } from "@aws-sdk/credential-providers";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import { NodeHttpHandler } from "@smithy/node-http-handler";
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from "vitest";
import { CredentialsError, createSession, S3Session, TimeoutError } from "../../src/index.js";
import { MetadataFixture } from "../harness/metadata-fixture.js";
import { startOkServer } from "../harness/ok-server.js";
import { harnessClient } from "../harness/s3.js";

const s3 = inject("s3");
const KEY = "session/probe.txt";

/** Session options that reach the harness's S3 server. */
function s3Options() {
  return {
    region: s3.region,
    endpoint: s3.endpoint,
    forcePathStyle: s3.forcePathStyle,
    bucket: s3.bucket,
    checksums: "when_required" as const,
  };
}

/** A fixture handing out the S3 server's own keys (with an empty token), so signed requests succeed on any server. */
function fixtureFor(opts: Parameters<typeof MetadataFixture.start>[0] = {}) {
  return MetadataFixture.start({
    accessKeyId: s3.accessKeyId,
    secretAccessKey: s3.secretAccessKey,
    sessionToken: false,
    ...opts,
  });
}

/** True when `p` settles before the event loop gets to a macrotask, i.e. without any I/O wait. */
async function settlesWithoutIo(p: Promise<unknown>): Promise<boolean> {
  const settled = p.then(
    () => "settled",
    () => "settled",
  );
  const io = new Promise((r) => setImmediate(() => r("waited")));
  return (await Promise.race([settled, io])) === "settled";
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A TCP server on 127.0.0.1 that accepts, reads and never answers; counts connections (total, open, peak). */
async function startHungServer() {
  let total = 0;
  let open = 0;
  let peak = 0;
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    total++;
    open++;
    peak = Math.max(peak, open);
    sockets.add(socket);
    socket.resume(); // swallow whatever is sent
    socket.on("error", () => {});
    socket.on("close", () => {
      open--;
      sockets.delete(socket);
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    endpoint: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
    counts: () => ({ total, open, peak }),
    close: () =>
      new Promise<void>((r) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => r());
      }),
  };
}

/** Settles `ps`, or fails the test if they are still pending after `ms` (a hang, not a slow run). */
async function settleWithin<T>(ms: number, ps: Promise<T>[]): Promise<PromiseSettledResult<T>[]> {
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`still pending after ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([Promise.allSettled(ps), hung]);
  } finally {
    clearTimeout(timer);
  }
}
const head = (session: S3Session) => session.client.send(new HeadObjectCommand({ Bucket: s3.bucket, Key: KEY }));

beforeAll(async () => {
  const c = harnessClient(s3);
  await c.send(new PutObjectCommand({ Bucket: s3.bucket, Key: KEY, Body: "probe" }));
  c.destroy();
});

describe("cold start", () => {
  let fixture: MetadataFixture;
  let restore: () => void;
  let session: S3Session | undefined;
  beforeAll(async () => {
    fixture = await fixtureFor({ latencyMs: 20 });
  });
  afterEach(async () => {
    restore?.();
    await session?.destroy();
  });
  afterAll(() => fixture.stop());

  it("1,000 concurrent operations through the SDK's default chain make one IMDSv2 fetch (3 requests)", async () => {
    restore = fixture.useEnv("imds");
    fixture.resetCounts();
    session = createSession(s3Options());
    const results = await Promise.allSettled(Array.from({ length: 1000 }, () => head(session!)));
    expect(results.filter((r) => r.status === "rejected")).toEqual([]);
    expect(fixture.total).toBe(3);
    expect(fixture.credentialResponses).toBe(1);
    expect(session.stats()).toMatchObject({ credentialFetches: 1, refreshFailures: 0 });
  });

  it("the container protocol: one request for any number of operations", async () => {
    restore = fixture.useEnv("ecs");
    fixture.resetCounts();
    session = createSession(s3Options());
    await Promise.all(Array.from({ length: 200 }, () => head(session!)));
    expect(fixture.total).toBe(1);
    expect(session.stats().source).toBe("default chain (container metadata)");
  });

  it("10,000 operations (signed requests and presigned URLs) on one session: one fetch", async () => {
    restore = fixture.useEnv("imds");
    fixture.resetCounts();
    session = createSession(s3Options());
    const s = session;
    for (let round = 0; round < 20; round++) {
      await Promise.all(
        Array.from({ length: 500 }, (_, i) =>
          i % 10 === 0
            ? head(s)
            : getSignedUrl(s.client, new GetObjectCommand({ Bucket: s3.bucket, Key: `k/${round}/${i}` }), {
                expiresIn: 60,
              }),
        ),
      );
    }
    expect(fixture.total).toBe(3);
    expect(s.stats().credentialFetches).toBe(1);
  });

  it("static credentials are never fetched or refetched", async () => {
    restore = fixture.useEnv("imds");
    fixture.resetCounts();
    session = createSession({
      ...s3Options(),
      credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    });
    await Promise.all(Array.from({ length: 300 }, () => head(session!)));
    expect(fixture.total).toBe(0);
    expect(session.stats()).toMatchObject({ source: "static", credentialFetches: 0, nextRefreshAt: undefined });
  });

  it("adopts an existing client: its provider is fetched once and cached by the session", async () => {
    restore = fixture.useEnv("imds");
    fixture.resetCounts();
    const provider = fromInstanceMetadata({ timeout: 1000 });
    const existing = new S3Client({
      ...s3Options(),
      credentials: provider,
      requestChecksumCalculation: "WHEN_REQUIRED",
      responseChecksumValidation: "WHEN_REQUIRED",
    });
    session = S3Session.fromClient(existing, { bucket: s3.bucket });
    expect(session.client).toBe(existing);
    const creds = await Promise.all(Array.from({ length: 100 }, () => session!.credentials()));
    expect(new Set(creds.map((c) => c.accessKeyId)).size).toBe(1);
    await head(session);
    expect(fixture.total).toBe(3);
    await session.destroy();
    // The app owns an adopted client: it still works after the session is gone.
    await expect(existing.send(new HeadObjectCommand({ Bucket: s3.bucket, Key: KEY }))).resolves.toBeDefined();
    existing.destroy();
  });
});

describe("refresh off the request path", () => {
  let fixture: MetadataFixture;
  let session: S3Session | undefined;
  afterEach(async () => {
    await session?.destroy();
    await fixture?.stop();
  });

  it("refreshes in the background; no caller waits while valid credentials exist", async () => {
    // Each metadata request takes 300 ms, so a fetch takes ~900 ms: any caller waiting for it would lose the race with setImmediate.
    fixture = await fixtureFor({ latencyMs: 300, lifetimeSeconds: 4 });
    session = createSession({
      ...s3Options(),
      credentials: fromInstanceMetadata({ timeout: 2000 }),
      refresh: { advisorySeconds: 3, mandatorySeconds: 0.4, minIntervalSeconds: 0.2 },
    });
    const restore = fixture.useEnv("imds");
    try {
      const first = await session.credentials(); // the cold fetch is the one wait
      let waited = 0;
      let ops = 0;
      const until = Date.now() + 5500;
      while (Date.now() < until) {
        if (!(await settlesWithoutIo(session.credentials()))) waited++;
        await head(session);
        ops++;
        await sleep(20);
      }
      expect(waited).toBe(0);
      expect(ops).toBeGreaterThan(50);
      expect(fixture.credentialResponses).toBeGreaterThanOrEqual(2);
      const now = await session.credentials();
      expect(now.expiration!.getTime()).toBeGreaterThan(first.expiration!.getTime());
      expect(session.stats().refreshFailures).toBe(0);
    } finally {
      restore();
    }
  });

  it("fixture down while credentials are valid: zero failed operations; after expiry a typed error; recovery when it returns", async () => {
    fixture = await fixtureFor({ lifetimeSeconds: 3 });
    const warnings: string[] = [];
    session = createSession({
      ...s3Options(),
      credentials: fromInstanceMetadata({ timeout: 300 }),
      credentialSource: "instance-metadata",
      refresh: {
        advisorySeconds: 2.5,
        mandatorySeconds: 1,
        minIntervalSeconds: 0.2,
        retryBaseSeconds: 0.1,
        retryMaxSeconds: 0.4,
      },
      logger: { warn: (m) => warnings.push(m) },
    });
    const restore = fixture.useEnv("imds");
    try {
      const first = await session.credentials();
      await fixture.set({ failure: "refuse" });
      let failed = 0;
      let ops = 0;
      while (first.expiration!.getTime() - Date.now() > 200) {
        await head(session).catch(() => failed++);
        ops++;
        await sleep(25);
      }
      expect(ops).toBeGreaterThan(20);
      expect(failed).toBe(0);
      expect(session.stats().refreshFailures).toBeGreaterThan(0);
      expect(warnings.length).toBeGreaterThan(0);

      // Expired and the source hangs: the error comes within the provider's timeout, typed and naming the source.
      await sleep(first.expiration!.getTime() - Date.now() + 50);
      await fixture.set({ failure: "hang" });
      const t0 = Date.now();
      const error = await session.credentials().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(CredentialsError);
      expect((error as CredentialsError).source).toBe("instance-metadata");
      expect((error as CredentialsError).message).toMatch(/Could not obtain AWS credentials from instance-metadata/);
      expect((error as CredentialsError).cause).toBeInstanceOf(Error);
      expect(Date.now() - t0).toBeLessThan(3000); // a bound against hanging, far above the 300 ms timeout
      await expect(head(session)).rejects.toBeInstanceOf(CredentialsError);

      // Back: the next call after the minimum interval recovers.
      await fixture.set({ failure: "none" });
      await sleep(250);
      await expect(head(session)).resolves.toBeDefined();
      expect((await session.credentials()).expiration!.getTime()).toBeGreaterThan(Date.now());
    } finally {
      restore();
    }
  });

  it("a refresh hanging past expiry: callers holding usable credentials get them; after expiry a typed error; recovery", async () => {
    // Credentials live 6 s and the mandatory window covers all of it (usable margin: 6 s / 4 = 1.5 s).
    // A fetch over the hanging source takes the provider's 7 s timeout: it outlives them.
    const LIFETIME = 6;
    fixture = await fixtureFor({ lifetimeSeconds: LIFETIME });
    const warnings: string[] = [];
    session = createSession({
      ...s3Options(),
      credentials: fromContainerMetadata({ timeout: 7000, maxRetries: 0 }),
      credentialSource: "container-metadata",
      refresh: { advisorySeconds: LIFETIME, mandatorySeconds: LIFETIME, minIntervalSeconds: 0.1, retryBaseSeconds: 30 },
      logger: { warn: (m) => warnings.push(m) },
    });
    const restore = fixture.useEnv("ecs");
    try {
      const s = session;
      const first = await s.credentials();
      const usableUntil = first.expiration!.getTime() - (LIFETIME * 1000) / 4;
      await fixture.set({ failure: "hang" });
      await sleep(150); // past minIntervalSeconds: the next call starts a background refresh (it hangs)
      await s.credentials();
      expect(s.stats()).toMatchObject({ refreshInFlight: true, credentialFetches: 2 });

      // Operations and credential calls arriving while the cached credentials are usable, a refresh in flight.
      const ops: Promise<unknown>[] = [];
      const creds: Promise<{ expiration?: Date }>[] = [];
      let inFlightAtIssue = 0;
      while (Date.now() < usableUntil - 300) {
        if (s.stats().refreshInFlight) inFlightAtIssue++;
        ops.push(head(s));
        creds.push(s.credentials());
        await sleep(100);
      }
      const opResults = await Promise.allSettled(ops);
      const credResults = await Promise.allSettled(creds);
      expect(ops.length).toBeGreaterThanOrEqual(20);
      expect(inFlightAtIssue).toBe(ops.length); // every one of them met the hanging refresh
      const failed = opResults.flatMap((r) => (r.status === "rejected" ? [String(r.reason)] : []));
      expect({ failed: failed.length, first: failed[0] }).toEqual({ failed: 0, first: undefined });
      expect(credResults.filter((r) => r.status === "rejected")).toEqual([]);
      for (const r of credResults) {
        expect((r as PromiseFulfilledResult<{ expiration?: Date }>).value.expiration).toEqual(first.expiration);
      }
      // The refresh kept running: nobody started a second one, and it has not landed.
      expect(s.stats()).toMatchObject({ refreshInFlight: true, credentialFetches: 2, refreshFailures: 0 });

      // Expired, the source still hanging: both wait for the one refresh and get a typed error naming the source.
      await sleep(first.expiration!.getTime() - Date.now() + 50);
      const [error, opError] = await Promise.all([
        s.credentials().catch((e: unknown) => e),
        head(s).catch((e: unknown) => e),
      ]);
      expect(error).toBeInstanceOf(CredentialsError);
      expect((error as CredentialsError).source).toBe("container-metadata");
      expect((error as CredentialsError).cause).toBeInstanceOf(Error);
      expect(opError).toBeInstanceOf(CredentialsError);
      expect(s.stats()).toMatchObject({ credentialFetches: 2, refreshFailures: 1 });

      // Back: the next fetch after the failed one delivers fresh credentials.
      await fixture.set({ failure: "none" });
      await sleep(150);
      await expect(head(s)).resolves.toBeDefined();
      expect((await s.credentials()).expiration!.getTime()).toBeGreaterThan(first.expiration!.getTime());
    } finally {
      restore();
    }
  });

  it("a source returning credentials already inside the mandatory window cannot cause a fetch storm", async () => {
    fixture = await fixtureFor({ lifetimeSeconds: 1 });
    session = createSession({
      ...s3Options(),
      credentials: fromContainerMetadata({ timeout: 1000 }),
      refresh: { advisorySeconds: 900, mandatorySeconds: 600, minIntervalSeconds: 0.5 },
    });
    const restore = fixture.useEnv("ecs");
    try {
      const start = Date.now();
      let failed = 0;
      const workers = Array.from({ length: 20 }, async () => {
        while (Date.now() - start < 3000) {
          await head(session!).catch(() => failed++);
          await sleep(5);
        }
      });
      await Promise.all(workers);
      const elapsed = Date.now() - start;
      // At most one fetch per 0.5 s (plus the cold one), where the SDK's memoizer would refetch on every request.
      expect(fixture.credentialResponses).toBeLessThanOrEqual(Math.floor(elapsed / 500) + 2);
      expect(fixture.credentialResponses).toBeGreaterThanOrEqual(2);
      expect(failed).toBe(0);
    } finally {
      restore();
    }
  });

  it("failed refreshes back off exponentially, one fetch at a time", async () => {
    fixture = await fixtureFor({ lifetimeSeconds: 30 });
    session = createSession({
      ...s3Options(),
      credentials: fromContainerMetadata({ timeout: 300 }),
      refresh: {
        advisorySeconds: 29.9,
        mandatorySeconds: 1,
        minIntervalSeconds: 0.05,
        retryBaseSeconds: 0.1,
        retryMaxSeconds: 0.8,
      },
      logger: { warn: () => {} },
    });
    const restore = fixture.useEnv("ecs");
    try {
      await session.credentials();
      await fixture.set({ failure: "http500" });
      fixture.resetCounts();
      await sleep(3000);
      // Retries at ~0.1, 0.2, 0.4, 0.8, 0.8 s (each halved at most by jitter): between 4 and 12 in 3 s, never a tight loop.
      const attempts = fixture.total;
      expect(attempts).toBeGreaterThanOrEqual(3);
      expect(attempts).toBeLessThanOrEqual(14);
      expect(session.stats().consecutiveFailures).toBe(attempts);
      expect((await session.credentials()).accessKeyId).toBe(s3.accessKeyId);
    } finally {
      restore();
    }
  });
});

describe("sockets, regions and lifecycle", () => {
  let server: Awaited<ReturnType<typeof startOkServer>>;
  let endpoint: string;
  beforeAll(async () => {
    server = await startOkServer();
    endpoint = server.endpoint;
  });
  afterAll(() => server.close());

  it("keeps one keep-alive pool of at most maxSockets connections", async () => {
    const before = server.connections();
    const session = createSession({
      region: "us-east-1",
      endpoint,
      forcePathStyle: true,
      credentials: { accessKeyId: "AKIDEXAMPLE", secretAccessKey: "secret" },
      maxSockets: 8,
      checksums: "when_required",
    });
    for (let round = 0; round < 5; round++) {
      await Promise.all(
        Array.from({ length: 100 }, (_, i) =>
          session.client.send(new HeadObjectCommand({ Bucket: "b", Key: `k${i}` })),
        ),
      );
    }
    expect(server.connections() - before).toBeLessThanOrEqual(8);
    expect(server.connections() - before).toBeGreaterThan(0);
    expect(server.requests()).toBeGreaterThanOrEqual(500);
    await session.destroy();
  });

  it("a hung S3 server: HeadObject and PutObject fail with our TimeoutError after idleTimeoutMs; sockets bounded and released", async () => {
    const hung = await startHungServer();
    const session = createSession({
      region: "us-east-1",
      endpoint: hung.endpoint,
      forcePathStyle: true,
      credentials: { accessKeyId: "AKIDEXAMPLE", secretAccessKey: "secret" },
      checksums: "when_required",
      maxSockets: 4,
      idleTimeoutMs: 300,
      clientConfig: { maxAttempts: 1 }, // one connection per operation: exact counts
    });
    try {
      const body = Buffer.alloc(1024 * 1024, 7);
      const ops = [
        ...Array.from({ length: 10 }, (_, i) =>
          session.client.send(new HeadObjectCommand({ Bucket: "b", Key: `k${i}` })),
        ),
        ...Array.from({ length: 2 }, (_, i) =>
          session.client.send(new PutObjectCommand({ Bucket: "b", Key: `p${i}`, Body: body })),
        ),
      ];
      // 12 operations, 4 at a time, each failing after 300 ms of silence: ~1 s. Without a timeout they never settle.
      const results = await settleWithin(10_000, ops);
      const reasons = results.map((r) => (r.status === "rejected" ? (r.reason as Error) : undefined));
      expect(reasons.filter((e) => e instanceof TimeoutError && e.phase === "idle")).toHaveLength(12);
      expect(reasons[0]).toMatchObject({ code: "TIMEOUT", timeoutMs: 300 });
      expect(reasons[11]?.message).toMatch(/no byte either way for 300 ms/);
      expect(session.stats().timeouts).toMatchObject({ idleTimeouts: 12, connectTimeouts: 0 });
      await sleep(50); // the server sees the client's closes
      expect(hung.counts()).toEqual({ total: 12, open: 0, peak: 4 });
    } finally {
      await session.destroy();
      await hung.close();
    }
  });

  it("a requestHandler in clientConfig is used as given; the session's pool options are reported as not applying", async () => {
    const hung = await startHungServer();
    const warnings: string[] = [];
    const agent = new HttpAgent({ keepAlive: true, maxSockets: 2 });
    const session = createSession({
      region: "us-east-1",
      endpoint: hung.endpoint,
      forcePathStyle: true,
      credentials: { accessKeyId: "AKIDEXAMPLE", secretAccessKey: "secret" },
      checksums: "when_required",
      maxSockets: 8,
      clientConfig: { maxAttempts: 1, requestHandler: new NodeHttpHandler({ httpAgent: agent, socketTimeout: 200 }) },
      logger: { warn: (m) => warnings.push(m) },
    });
    try {
      const ops = Array.from({ length: 4 }, (_, i) =>
        session.client.send(new HeadObjectCommand({ Bucket: "b", Key: `k${i}` })),
      );
      const results = await settleWithin(10_000, ops);
      for (const r of results) {
        expect(r.status).toBe("rejected");
        expect((r as PromiseRejectedResult).reason).toMatchObject({
          name: "TimeoutError",
          message: expect.stringMatching(/timed out after 200 ms of inactivity/),
        });
      }
      expect(hung.counts()).toMatchObject({ total: 4, peak: 2 }); // the given agent's pool, not the session's 8
      expect(warnings).toEqual([expect.stringMatching(/requestHandler is used as given/)]);
    } finally {
      await session.destroy();
      await hung.close();
    }
  });

  it("rejects a negative or non-finite timeout", () => {
    for (const value of [-1, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(() => createSession({ region: "us-east-1", idleTimeoutMs: value })).toThrow(/idleTimeoutMs/);
      expect(() => createSession({ region: "us-east-1", connectTimeoutMs: value })).toThrow(/connectTimeoutMs/);
      expect(() => createSession({ region: "us-east-1", requestTimeoutMs: value })).toThrow(RangeError);
    }
  });

  it("a storage in another region gets a client sharing the session's credentials; warned once", async () => {
    const warnings: string[] = [];
    const session = createSession({
      region: "us-east-1",
      endpoint,
      forcePathStyle: true,
      credentials: { accessKeyId: "AKIDEXAMPLE", secretAccessKey: "secret" },
      logger: { warn: (m) => warnings.push(m) },
    });
    const eu = await session.clientForRegion("eu-west-1");
    expect(await session.clientForRegion("eu-west-1")).toBe(eu);
    expect(await session.clientForRegion("us-east-1")).toBe(session.client);
    expect(await eu.config.region()).toBe("eu-west-1");
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/region eu-west-1 but its session is in us-east-1/);
    expect(session.stats().clients).toBe(2);
    await session.destroy();
  });

  it("destroy() is idempotent and stops serving credentials", async () => {
    const session = createSession({
      region: "us-east-1",
      credentials: { accessKeyId: "AKIDEXAMPLE", secretAccessKey: "s" },
    });
    await session.credentials();
    await session.destroy();
    await session.destroy();
    expect(session.stats().destroyed).toBe(true);
    await expect(session.credentials()).rejects.toBeInstanceOf(CredentialsError);
    expect(() => session.client).toThrow(CredentialsError);
  });

  it("a pending refresh timer does not keep the process alive", () => {
    const script = `
      import { createSession } from "./src/index.ts";
      const s = createSession({ region: "us-east-1", credentials: async () => ({
        accessKeyId: "AKIDEXAMPLE", secretAccessKey: "s", expiration: new Date(Date.now() + 3600_000) }) });
      await s.credentials();
      if (!s.stats().nextRefreshAt) throw new Error("no refresh scheduled");
      console.log("done");`;
    const r = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
      cwd: new URL("../..", import.meta.url).pathname,
      timeout: 20_000,
      encoding: "utf8",
    });
    expect(r.stderr).not.toMatch(/Error/);
    expect(r.stdout.trim()).toBe("done");
    expect(r.signal).toBeNull(); // not killed by the timeout: it exited by itself
    expect(r.status).toBe(0);
  });
});

describe("secrets never printed", () => {
  it("inspect, JSON and every error of the session are free of secrets", async () => {
    const fixture = await MetadataFixture.start({ lifetimeSeconds: 2 });
    const restore = fixture.useEnv("ecs");
    const session = createSession({
      ...s3Options(),
      credentials: fromContainerMetadata({ timeout: 200 }),
      refresh: {
        advisorySeconds: 1.5,
        mandatorySeconds: 1,
        minIntervalSeconds: 0.05,
        retryBaseSeconds: 0.05,
        retryMaxSeconds: 0.1,
      },
      logger: { warn: (m) => printed.push(m) },
    });
    const printed: string[] = [];
    try {
      const creds = await session.credentials();
      printed.push(inspect(session), JSON.stringify(session), String(session));
      printed.push(inspect(creds), JSON.stringify(creds), String(creds), `${creds}`, inspect({ creds }, { depth: 5 }));
      printed.push(inspect(session.stats()), JSON.stringify(session.stats()));
      await fixture.set({ failure: "http500" });
      await sleep(2100);
      const error = await session.credentials().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(CredentialsError);
      let e: unknown = error;
      while (e instanceof Error) {
        printed.push(e.message, inspect(e), JSON.stringify(e));
        e = e.cause;
      }
      printed.push(inspect(session.stats()), JSON.stringify(session));
      expect(fixture.issued.length).toBeGreaterThan(0);
      for (const issued of fixture.issued) {
        for (const text of printed) {
          expect(text).not.toContain(issued.SecretAccessKey);
          expect(text).not.toContain(issued.Token);
        }
      }
      // Redaction still shows what is useful.
      expect(inspect(creds)).toMatch(/ASIA…/);
      expect(creds.secretAccessKey).toBe(fixture.issued[0]?.SecretAccessKey); // the values themselves are intact
    } finally {
      restore();
      await session.destroy();
      await fixture.stop();
    }
  });
});
