/**
 * Credential outages at scale: a session on the SDK's default chain (IMDSv2, from the metadata
 * fixture, handing out the S3 server's own keys), with short lifetimes and shrunken refresh
 * windows, runs `TORTURE_OUTAGE_OPS` operations (default 10,000: mostly `storage.url()`, some
 * `exists()` and `save()`) through this timeline:
 *
 * 1. healthy;
 * 2. the fixture goes down (refusing, then HTTP 500, then hanging) for longer than the whole
 *    refresh window while the credentials stay valid → zero failed operations;
 * 3. it comes back → fresh credentials, zero failures;
 * 4. it goes down again (refusing, then hanging) until after the credentials expire → before
 *    expiry zero failures, after it only `CredentialsError`s (each within a bound far above the
 *    provider's timeout);
 * 5. it comes back → operations succeed again.
 */
import { randomBytes } from "node:crypto";
import { PutObjectCommand } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { CredentialsError, createSession, type S3Session, S3Storage } from "../../src/index.js";
import { type FailureMode, MetadataFixture } from "../harness/metadata-fixture.js";
import { harnessClient, listKeys } from "../harness/s3.js";
import { envInt } from "./support.js";

const s3 = inject("s3");
const OPS = envInt("TORTURE_OUTAGE_OPS", 10_000);
const LIFETIME = 6; // seconds
const REFRESH = {
  advisorySeconds: 2.4,
  mandatorySeconds: 1,
  minIntervalSeconds: 0.1,
  retryBaseSeconds: 0.1,
  retryMaxSeconds: 0.4,
};
const location = `torture/outage-${randomBytes(3).toString("hex")}`;
const PROBE = `${location}/probe.txt`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let fixture: MetadataFixture;
let restoreEnv: () => void;
let session: S3Session;
let storage: S3Storage;
const warnings: string[] = [];

beforeAll(async () => {
  const c = harnessClient(s3);
  await c.send(new PutObjectCommand({ Bucket: s3.bucket, Key: PROBE, Body: "probe" }));
  c.destroy();
  fixture = await MetadataFixture.start({
    accessKeyId: s3.accessKeyId,
    secretAccessKey: s3.secretAccessKey,
    sessionToken: false,
    lifetimeSeconds: LIFETIME,
  });
  restoreEnv = fixture.useEnv("imds");
  session = createSession({
    region: s3.region,
    endpoint: s3.endpoint,
    forcePathStyle: s3.forcePathStyle,
    bucket: s3.bucket,
    checksums: "when_required",
    // Per metadata request; a fetch over a hanging IMDSv2 makes several (token, then v1 fallback).
    credentialTimeoutMs: 600,
    credentialSource: "instance-metadata",
    refresh: REFRESH,
    logger: { warn: (m) => warnings.push(m) },
  });
  storage = new S3Storage({ session, location });
});

afterAll(async () => {
  restoreEnv?.();
  await session?.destroy();
  await fixture?.stop();
});

interface Result {
  at: number;
  ok: boolean;
  error?: unknown;
  ms: number;
}

describe("credential outages at scale", () => {
  it(`${OPS} operations: an outage longer than the refresh window fails none; expiry fails only typed; recovery`, async () => {
    const results: Result[] = [];
    let saves = 0;
    const op = async (kind: "url" | "exists" | "save", i: number) => {
      const t0 = Date.now();
      try {
        if (kind === "url") await storage.url(`objects/${i % 997}.png`, { expiresIn: 60 });
        else if (kind === "exists") {
          if (!(await storage.exists("probe.txt"))) throw new Error("probe.txt vanished");
        } else await storage.save("saved.txt", Buffer.from(`save ${saves++}`));
        results.push({ at: t0, ok: true, ms: Date.now() - t0 });
      } catch (error) {
        results.push({ at: t0, ok: false, error, ms: Date.now() - t0 });
      }
    };

    const c1 = await session.credentials();
    const t0 = c1.expiration!.getTime() - LIFETIME * 1000; // when the fixture issued them
    const at = (s: number) => t0 + s * 1000;

    // The timeline, in seconds after the first credentials were issued.
    const outageStart = LIFETIME - REFRESH.advisorySeconds - 0.3; // before the advisory window opens
    // Longer than the whole refresh window, ending as the credentials stop being usable (the
    // cache's margin before expiry): operations up to then must all succeed.
    const outageEnd = LIFETIME - Math.min(5, REFRESH.mandatorySeconds / 4);
    const secondOutage = LIFETIME + 0.8;
    const modes: FailureMode[] = ["refuse", "http500", "hang"];

    let done = 0;
    let tick = 0;
    const totalPlanned = () => OPS;
    /** Runs ticks of operations until `until` (ms), keeping pace so that `OPS` are done by `finish`. */
    const drive = async (until: number, finish: number, start: number) => {
      while (Date.now() < until) {
        const fraction = Math.min(1, (Date.now() - start) / (finish - start));
        const behind = Math.ceil(totalPlanned() * fraction) - done;
        const n = Math.max(5, Math.min(400, behind));
        const batch: Promise<void>[] = [];
        for (let k = 0; k < n; k++) batch.push(op(k === 0 ? "exists" : "url", done + k));
        if (tick % 25 === 0) batch.push(op("save", tick));
        tick++;
        done += batch.length;
        await Promise.all(batch);
        await sleep(8);
      }
    };
    const runStart = Date.now();

    // 1-2. Healthy, then down for longer than the refresh window, cycling failure modes.
    // Paced to finish the planned operations a little before the timeline ends (it runs ~2 × LIFETIME + 2 s).
    const plannedEnd = at(LIFETIME * 2 - 1);
    await drive(at(outageStart), plannedEnd, runStart);
    const outageSpan = outageEnd - outageStart;
    for (const [k, mode] of modes.entries()) {
      await fixture.set({ failure: mode });
      await drive(at(outageStart + (outageSpan * (k + 1)) / modes.length), plannedEnd, runStart);
    }
    const failuresDuringOutage = session.stats().refreshFailures;
    // 3. Back.
    await fixture.set({ failure: "none" });
    await drive(at(secondOutage), plannedEnd, runStart);
    const c2 = await session.credentials();

    // 4. Down again until the credentials expire, and a while after.
    await fixture.set({ failure: "refuse" });
    const expiry = c2.expiration!.getTime();
    await drive(expiry + 700, plannedEnd, runStart);
    // Hanging, each fetch takes the provider's timeouts: fewer operations, each failing later.
    await fixture.set({ failure: "hang" });
    await drive(expiry + 1500, plannedEnd, runStart);
    // 5. Back again.
    const back = Date.now();
    await fixture.set({ failure: "none" });
    await drive(back + 1000, plannedEnd, runStart);

    // Soft: every phase is judged and reported, even when an earlier one fails.
    // Counted, not timed: the run really did this many operations.
    expect.soft(results.length).toBeGreaterThanOrEqual(OPS);
    expect.soft(failuresDuringOutage, "the outage was seen by refresh attempts").toBeGreaterThan(0);
    expect.soft(warnings.length, "refresh failures were reported while credentials were valid").toBeGreaterThan(0);
    expect
      .soft(c2.expiration!.getTime(), "fresh credentials after the first outage")
      .toBeGreaterThan(c1.expiration!.getTime());

    // Every operation that arrived while usable credentials existed succeeded. Usable: more than
    // the cache's safety margin before expiry (min(5 s, mandatory / 4)); operations arriving in
    // that last margin, with no fresh credentials yet, are judged by neither rule.
    // `at` is taken when the operation is called; the SDK resolves credentials a few ms later,
    // and asks again while signing. Arrivals within SDK_SLACK_MS of the boundary are judged by neither rule.
    const SDK_SLACK_MS = 100;
    const margin = Math.min(5000, (REFRESH.mandatorySeconds * 1000) / 4) + SDK_SLACK_MS;
    const e1 = c1.expiration!.getTime();
    const c2Issued = expiry - LIFETIME * 1000;
    const usable = (r: Result) => r.at < e1 - margin || (r.at >= c2Issued && r.at < expiry - margin);
    const failed = results.filter((r) => usable(r) && !r.ok);
    expect
      .soft(
        failed
          .map(
            (r) =>
              `arrived at t+${((r.at - t0) / 1000).toFixed(3)}s, failed after ${r.ms} ms (first credentials expire at t+${LIFETIME}s, ` +
              `second at t+${((expiry - t0) / 1000).toFixed(3)}s): ${(r.error as Error)?.constructor?.name}: ${(r.error as Error)?.message}`,
          )
          .slice(0, 5),
        "failures while credentials were valid",
      )
      .toEqual([]);

    // Expired and the source down: every operation fails, and only with CredentialsError, promptly.
    const expired = results.filter((r) => r.at > expiry + 50 && r.at + r.ms < back);
    expect.soft(expired.length, "operations after expiry").toBeGreaterThan(20);
    expect.soft(expired.filter((r) => r.ok).length, "successes without valid credentials").toBe(0);
    const untyped = expired.filter((r) => !(r.error instanceof CredentialsError));
    expect
      .soft(
        untyped.slice(0, 3).map((r) => `${(r.error as Error)?.constructor?.name}: ${(r.error as Error)?.message}`),
        "errors other than CredentialsError after expiry",
      )
      .toEqual([]);
    expect.soft((expired[0]?.error as CredentialsError | undefined)?.source).toBe("instance-metadata");
    expect.soft(Math.max(...expired.map((r) => r.ms)), "each failure arrives promptly").toBeLessThan(5000);

    // Recovery: operations succeed again shortly after the source returns, and keep succeeding.
    const after = results.filter((r) => r.at >= back);
    const firstOk = after.find((r) => r.ok);
    expect(firstOk, "an operation succeeds after the source returns").toBeDefined();
    expect.soft(firstOk!.at - back).toBeLessThan(1000);
    expect.soft(after.filter((r) => r.at > firstOk!.at + 100 && !r.ok)).toEqual([]);

    const byKind = {
      saved: saves,
      keys: (await listKeys(s3, location)).length,
    };
    console.log(
      `[torture:outage] ${results.length} operations (${byKind.saved} saves) in ${((Date.now() - runStart) / 1000).toFixed(1)}s; ` +
        `refresh failures ${session.stats().refreshFailures}, fetches ${session.stats().credentialFetches}; ` +
        `after expiry ${expired.length} operations, all CredentialsError; recovered ${firstOk ? firstOk.at - back : "never"} ms after the source returned`,
    );
  }, 120_000);
});
