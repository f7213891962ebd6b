import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand } from "@aws-sdk/client-s3";
import { fromContainerMetadata, fromInstanceMetadata } from "@aws-sdk/credential-providers";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { cephAvailable, startCephRgw } from "./ceph-rgw.js";
import { MetadataFixture } from "./metadata-fixture.js";
import { harnessClient } from "./s3.js";

describe("S3 server from the harness", () => {
  it("stores and returns an object in this run's bucket", async () => {
    const s3 = inject("s3");
    const client = harnessClient(s3);
    try {
      await client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: "harness/hello.txt", Body: "hello" }));
      const got = await client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: "harness/hello.txt" }));
      expect(await got.Body?.transformToString()).toBe("hello");
    } finally {
      client.destroy();
    }
  });
});

describe("credential metadata fixture", () => {
  let fixture: MetadataFixture;
  let restoreEnv: () => void;
  beforeAll(async () => {
    fixture = await MetadataFixture.start();
    restoreEnv = fixture.useEnv();
  });
  afterAll(async () => {
    restoreEnv();
    await fixture.stop();
  });

  it("serves IMDSv2 to the SDK's own provider in exactly 3 requests", async () => {
    fixture.resetCounts();
    const creds = await fromInstanceMetadata({ timeout: 1000 })();
    expect(fixture.total).toBe(3);
    expect(fixture.counts.get("PUT /latest/api/token")).toBe(1);
    expect(fixture.counts.get("GET /latest/meta-data/iam/security-credentials/")).toBe(1);
    expect(fixture.counts.get("GET /latest/meta-data/iam/security-credentials/psf-test-role")).toBe(1);
    expect(creds.accessKeyId).toBe(fixture.issued[0]?.AccessKeyId);
    expect(creds.sessionToken).toBe(fixture.issued[0]?.Token);
    expect(creds.expiration?.getTime()).toBeGreaterThan(Date.now() + 5 * 3600_000);
  });

  it("serves the ECS container protocol in one request", async () => {
    fixture.resetCounts();
    await fixture.set({ lifetimeSeconds: 120 });
    const creds = await fromContainerMetadata({ timeout: 1000 })();
    expect(fixture.total).toBe(1);
    expect(creds.accessKeyId).toBe(fixture.issued[0]?.AccessKeyId);
    expect(creds.expiration!.getTime() - Date.now()).toBeLessThanOrEqual(120_000);
    await fixture.set({ lifetimeSeconds: 6 * 3600 });
  });

  it("adds latency per request", async () => {
    await fixture.set({ latencyMs: 100 });
    const t0 = performance.now();
    await fromInstanceMetadata({ timeout: 2000 })();
    // Three sequential requests, each delayed: a lower bound, not a timing assertion on our code.
    expect(performance.now() - t0).toBeGreaterThanOrEqual(290);
    await fixture.set({ latencyMs: 0 });
  });

  it("fails the way a broken metadata service does", async () => {
    await fixture.set({ failure: "http500" });
    await expect(fromContainerMetadata({ timeout: 500 })()).rejects.toThrow(/Error response received/);
    await fixture.set({ failure: "hang" });
    await expect(fromContainerMetadata({ timeout: 200 })()).rejects.toThrow(/TimeoutError/);
    await fixture.set({ failure: "refuse" });
    await expect(fromInstanceMetadata({ timeout: 500 })()).rejects.toThrow(/Unable to connect|ECONNREFUSED/);
    await fixture.set({ failure: "none" });
    fixture.resetCounts();
    await expect(fromInstanceMetadata({ timeout: 500 })()).resolves.toHaveProperty("accessKeyId");
    expect(fixture.total).toBe(3);
  });

  it("a stopped fixture produces the SDK's error", async () => {
    const f = await MetadataFixture.start();
    const port = f.port;
    await f.stop();
    const prev = process.env.AWS_CONTAINER_CREDENTIALS_FULL_URI;
    process.env.AWS_CONTAINER_CREDENTIALS_FULL_URI = `http://127.0.0.1:${port}/v2/credentials/psf-test`;
    try {
      await expect(fromContainerMetadata({ timeout: 500 })()).rejects.toMatchObject({
        name: "ProviderError",
        code: "ECONNREFUSED",
      });
    } finally {
      process.env.AWS_CONTAINER_CREDENTIALS_FULL_URI = prev;
    }
  });
});

// The harness's own Ceph RGW (test/harness/ceph-rgw.ts): skipped only where Ceph is not installed.
describe.skipIf(!cephAvailable(false))("Ceph RGW started by the harness (skipped when Ceph is not installed)", () => {
  const alive = (pid: number) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  const until = async (what: () => boolean, ms: number) => {
    const end = Date.now() + ms;
    while (!what() && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
    return what();
  };

  it("answers signed S3 requests; stop() kills its daemons by PID and removes its directory", async () => {
    const rgw = await startCephRgw();
    expect(rgw.pids).toHaveLength(3);
    expect(rgw.pids.every(alive)).toBe(true);
    const target = {
      ...inject("s3"),
      endpoint: rgw.endpoint,
      accessKeyId: rgw.accessKeyId,
      secretAccessKey: rgw.secretAccessKey,
    };
    const client = harnessClient(target);
    try {
      await client.send(new CreateBucketCommand({ Bucket: "harness-own" }));
      await client.send(new PutObjectCommand({ Bucket: "harness-own", Key: "k", Body: "v" }));
      const got = await client.send(new GetObjectCommand({ Bucket: "harness-own", Key: "k" }));
      expect(await got.Body?.transformToString()).toBe("v");
      // A wrong secret is refused: it is a real server.
      const wrong = harnessClient({ ...target, secretAccessKey: "wrong" });
      await expect(wrong.send(new GetObjectCommand({ Bucket: "harness-own", Key: "k" }))).rejects.toMatchObject({
        name: "SignatureDoesNotMatch",
      });
      wrong.destroy();
    } finally {
      client.destroy();
      await rgw.stop();
    }
    expect(rgw.pids.some(alive)).toBe(false);
    expect(existsSync(rgw.directory)).toBe(false);
  }, 120_000);

  it("a run killed with SIGKILL leaves no daemon: the watchdog stops them", async () => {
    const script = `
      import { startCephRgw } from ${JSON.stringify(join(import.meta.dirname, "ceph-rgw.ts"))};
      const rgw = await startCephRgw();
      process.stdout.write(JSON.stringify({ pids: rgw.pids, directory: rgw.directory }) + "\\n");
      setInterval(() => {}, 1000);
    `;
    const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    const line = await new Promise<string>((resolve, reject) => {
      let out = "";
      child.stdout.on("data", (d: Buffer) => {
        out += d.toString();
        if (out.includes("\n")) resolve(out.split("\n")[0] as string);
      });
      child.once("exit", (code) => reject(new Error(`exited with ${code} before starting RGW`)));
    });
    const { pids, directory } = JSON.parse(line) as { pids: number[]; directory: string };
    expect(pids.every(alive)).toBe(true);
    child.kill("SIGKILL");
    expect(await until(() => !pids.some(alive), 15_000)).toBe(true);
    expect(await until(() => !existsSync(directory), 5_000)).toBe(true);
  }, 120_000);
});
