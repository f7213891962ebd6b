/**
 * The demo app (`npm run demo`) in a real browser: Debian's Chromium driven by playwright-core.
 * The server runs as a child process exactly as `npm run demo` starts it, on a free port, with
 * its embedded PGlite database and s3rver in a temporary data directory.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, S3Client } from "@aws-sdk/client-s3";
import { type BrowserContext, chromium, type Locator, type Page, type Response } from "playwright-core";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { UploadGrant } from "../../src/browser/index.js";
import { testBytes } from "../browser/bytes.js";
import { png } from "./png.js";

const CHROMIUM = "/usr/bin/chromium";
const ROOT = join(import.meta.dirname, "..", "..");
const ARTIFACTS = join(ROOT, "test", "artifacts");

interface Demo {
  url: string;
  child: ChildProcess;
  output: () => string;
}

/** Starts `examples/demo/server.ts` on a free port with only embedded backends; resolves once it prints its URL. */
function startDemo(dataDir: string): Promise<Demo> {
  const env: NodeJS.ProcessEnv = { ...process.env, PORT: "0", HOST: "127.0.0.1", DEMO_DATA_DIR: dataDir };
  // The embedded defaults are what this test is about, whatever the harness was given.
  for (const name of Object.keys(env)) if (name === "DATABASE_URL" || name.startsWith("S3_")) delete env[name];
  const child = spawn(process.execPath, ["--import", "tsx", "examples/demo/server.ts"], {
    cwd: ROOT,
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let log = "";
  const output = () => log;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the demo did not start in 90 s:\n${log}`)), 90_000);
    const onData = (data: Buffer) => {
      log += data.toString();
      const match = /demo: (http:\/\/127\.0\.0\.1:\d+\/)/.exec(log);
      if (match?.[1]) {
        clearTimeout(timer);
        resolve({ url: match[1], child, output });
      }
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`the demo exited with ${code}:\n${log}`));
    });
  });
}

/** SIGTERM (the demo closes its database cleanly on it), then waits for the exit. */
async function stopDemo(demo: Demo | undefined): Promise<void> {
  const child = demo?.child;
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGTERM");
  await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 15_000))]);
  if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
}

/** The demo's embedded s3rver (its port changes on every start), as the demo's log names it. */
function demoBucket(demo: Demo) {
  const endpoint = /files: s3rver at (http:\/\/127\.0\.0\.1:\d+), bucket (\S+),/.exec(demo.output());
  if (!endpoint) throw new Error(`the demo did not say where its s3rver is:\n${demo.output()}`);
  const bucket = endpoint[2]!;
  const client = () =>
    new S3Client({
      endpoint: endpoint[1],
      region: "us-east-1",
      forcePathStyle: true,
      credentials: { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" },
      requestChecksumCalculation: "WHEN_REQUIRED",
      responseChecksumValidation: "WHEN_REQUIRED",
    });
  return {
    /** Every key under `prefix`. */
    async list(prefix: string): Promise<string[]> {
      const c = client();
      try {
        const keys: string[] = [];
        let token: string | undefined;
        do {
          const page = await c.send(
            new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }),
          );
          for (const o of page.Contents ?? []) keys.push(o.Key!);
          token = page.IsTruncated ? page.NextContinuationToken : undefined;
        } while (token);
        return keys.sort();
      } finally {
        c.destroy();
      }
    },
    async bytes(key: string): Promise<Uint8Array> {
      const c = client();
      try {
        const out = await c.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
        return await out.Body!.transformToByteArray();
      } finally {
        c.destroy();
      }
    },
    async exists(key: string): Promise<boolean> {
      const c = client();
      try {
        await c.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
        return true;
      } catch (error) {
        if ((error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404) return false;
        throw error;
      } finally {
        c.destroy();
      }
    },
    /** The object key a presigned URL of this bucket points at. */
    keyOf(url: string): string {
      const path = decodeURIComponent(new URL(url).pathname);
      expect(path.startsWith(`/${bucket}/`)).toBe(true);
      return path.slice(bucket.length + 2);
    },
  };
}

function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** The first path segment of a pending key: where every grant's object waits until it is attached. */
function pendingPrefixOf(key: string): string {
  return key.slice(0, key.indexOf("/") + 1);
}

/** A used grant's marker: it stays beside the pending key until the grant expires (single use across processes). */
const usedMarkerOf = (key: string) => `${key.slice(0, key.lastIndexOf("/"))}.used`;
const withoutMarkers = (keys: string[]) => keys.filter((k) => !k.endsWith(".used"));

/** The `naturalWidth` of a row's avatar once the browser has loaded (or failed to load) it. */
async function loadedWidth(img: Locator): Promise<number> {
  await img.evaluate(
    (el: HTMLImageElement) =>
      el.complete ||
      new Promise((resolve) => {
        el.addEventListener("load", resolve, { once: true });
        el.addEventListener("error", resolve, { once: true });
      }),
  );
  return img.evaluate((el: HTMLImageElement) => el.naturalWidth);
}

/** The `naturalWidth` of `url` loaded as an image by the page (as the browser decodes it). */
async function naturalWidthOf(page: Page, url: string): Promise<number> {
  return page.evaluate(
    (src: string) =>
      new Promise<number>((resolve, reject) => {
        const img = new Image();
        img.onload = () => resolve(img.naturalWidth);
        img.onerror = () => reject(new Error(`the image did not load: ${src}`));
        img.src = src;
      }),
    url,
  );
}

// Skipped only without Chromium: there is no browser to drive. `.ci/run` installs
// Debian's `chromium` when it is missing; this skips only where that install could not happen
// (e.g. no package mirror). Install it with `apt-get install -y chromium`.
describe.skipIf(!existsSync(CHROMIUM))(`demo app in Chromium (skipped when ${CHROMIUM} is absent)`, () => {
  const NAME = `Ada <b>Lovelace</b> & "friends"`;
  let dataDir: string;
  let profileDir: string;
  let demo: Demo | undefined;
  let context: BrowserContext;
  let page: Page;
  let firstSrc: string;
  let firstOriginal: string;
  let secondSrc: string;

  const row = () => page.locator("li.user", { hasText: "Ada" });
  /** The list's avatar: the `thumb` variant (cover 64x64 webp), not the original. */
  const avatar = () => row().locator("img");
  /** The link to the original as uploaded. */
  const original = () => row().locator("a.original");

  beforeAll(async () => {
    // `npm test` generates the demo's client first (pretest); a direct `vitest run test/demo` may not have.
    if (!existsSync(join(ROOT, "examples", "demo", "generated", "prisma", "client.ts"))) {
      const r = spawnSync("npm", ["run", "demo:generate"], { cwd: ROOT, encoding: "utf8" });
      if (r.status !== 0) throw new Error(`npm run demo:generate failed:\n${r.stdout}${r.stderr}`);
    }
    dataDir = mkdtempSync(join(tmpdir(), "psf-demo-data-"));
    profileDir = mkdtempSync(join(tmpdir(), "psf-chromium-"));
    mkdirSync(ARTIFACTS, { recursive: true });
    demo = await startDemo(dataDir);
    context = await chromium.launchPersistentContext(profileDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
      viewport: { width: 900, height: 600 },
    });
    context.setDefaultTimeout(15_000);
    page = context.pages()[0] ?? (await context.newPage());
  });

  afterAll(async () => {
    await context?.close();
    await stopDemo(demo);
    for (const dir of [dataDir, profileDir]) if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("creates a user with a PNG avatar that loads through its presigned URL", async () => {
    await page.goto(demo!.url);
    expect(await page.locator("li.user").count()).toBe(0);
    await page.getByLabel("Name", { exact: true }).fill(NAME);
    await page
      .getByLabel("Avatar", { exact: true })
      .setInputFiles({ name: "ada.png", mimeType: "image/png", buffer: png(8, 4) });
    await page.getByRole("button", { name: "Add user" }).click();
    await page.waitForURL(demo!.url);

    // The name is shown as text, not markup.
    await expect(row().locator(".name").textContent()).resolves.toBe(NAME);
    await expect(row().locator("b").count()).resolves.toBe(0);

    // The <img> is the thumb variant: its key derives from the original's, and it is 64 px wide
    // although the upload is 8 × 4 (cover enlarges to fill the box).
    firstSrc = (await avatar().getAttribute("src"))!;
    expect(firstSrc).toMatch(
      /^http:\/\/127\.0\.0\.1:\d+\/demo\/variants\/avatars\/\d{4}\/\d{2}\/ada\.png\/thumb-[0-9a-f]{12}\.webp\?/,
    );
    expect(firstSrc).toContain("X-Amz-Signature=");
    expect(await loadedWidth(avatar())).toBe(64);
    expect(await avatar().evaluate((el: HTMLImageElement) => el.naturalHeight)).toBe(64);
    const served = await fetch(firstSrc);
    expect(served.headers.get("content-type")).toBe("image/webp");
    expect((await sharp(Buffer.from(await served.arrayBuffer())).metadata()).format).toBe("webp");

    // The original is untouched: the same bytes as uploaded, 8 px wide in the browser too.
    firstOriginal = (await original().getAttribute("href"))!;
    expect(firstOriginal).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/demo\/avatars\/\d{4}\/\d{2}\/ada\.png\?/);
    expect(sha256(new Uint8Array(await (await fetch(firstOriginal)).arrayBuffer()))).toBe(sha256(png(8, 4)));
    expect(await naturalWidthOf(page, firstOriginal)).toBe(8);
    // The footer shows the session: one credential fetch for the upload and every signed URL.
    const stats = (await page.locator("#session-stats").textContent())!.replace(/\s+/g, " ");
    expect(stats).toMatch(/credential source s3rver account .*; credential fetches 1 .*; expiry 20\d\d-/);
  });

  it("replaces the avatar; the old object is gone", async () => {
    await row()
      .getByLabel(/New avatar for/)
      .setInputFiles({ name: "ada-wide.png", mimeType: "image/png", buffer: png(16, 4, [40, 120, 220]) });
    await row().getByRole("button", { name: "Replace avatar" }).click();
    await page.waitForURL(demo!.url);

    secondSrc = (await avatar().getAttribute("src"))!;
    expect(secondSrc).toMatch(/\/variants\/avatars\/\d{4}\/\d{2}\/ada-wide\.png\/thumb-[0-9a-f]{12}\.webp\?/);
    expect(await loadedWidth(avatar())).toBe(64);
    const secondOriginal = (await original().getAttribute("href"))!;
    expect(secondOriginal).toContain("/ada-wide.png?");
    expect(await naturalWidthOf(page, secondOriginal)).toBe(16);
    // The first original and its thumb were deleted once the update committed: their signed URLs
    // (still valid) find nothing, and nothing is left under the old original's variants prefix.
    expect((await fetch(firstOriginal)).status).toBe(404);
    expect((await fetch(firstSrc)).status).toBe(404);
    const s3 = demoBucket(demo!);
    expect(await s3.list(`variants/${s3.keyOf(firstOriginal)}/`)).toEqual([]);
    expect(await s3.list(`variants/${s3.keyOf(secondOriginal)}/`)).toEqual([s3.keyOf(secondSrc)]);
  });

  it("rejects an HTML file named .png with a readable message, and keeps the avatar", async () => {
    await page.getByLabel("Name", { exact: true }).fill("Mallory");
    await page.getByLabel("Avatar", { exact: true }).setInputFiles({
      name: "cat.png",
      mimeType: "image/png",
      buffer: Buffer.from("<!doctype html><html><body><script>alert(1)</script></body></html>"),
    });
    await page.getByRole("button", { name: "Add user" }).click();

    const alert = page.getByRole("alert");
    await expect(alert.textContent()).resolves.toMatch(/^User\.avatar: file type text\/html .*is not accepted/);
    await expect(page.locator("li.user", { hasText: "Mallory" }).count()).resolves.toBe(0);
    expect(await loadedWidth(avatar())).toBe(64);
    await page.screenshot({ path: join(ARTIFACTS, "demo.png"), fullPage: true });
  });

  it("keeps users and files across a restart", async () => {
    await stopDemo(demo);
    demo = await startDemo(dataDir);
    await page.goto(demo.url);
    await expect(row().locator(".name").textContent()).resolves.toBe(NAME);
    // s3rver has a new port, so the URL is new; the object is the same one.
    expect(await avatar().getAttribute("src")).not.toBe(secondSrc);
    expect(await loadedWidth(avatar())).toBe(64);
    expect(await naturalWidthOf(page, (await original().getAttribute("href"))!)).toBe(16);
  });

  it("removes the avatar; the row stays and the object is gone", async () => {
    const src = (await avatar().getAttribute("src"))!;
    const href = (await original().getAttribute("href"))!;
    await row().getByRole("button", { name: "Remove avatar" }).click();
    await page.waitForURL(demo!.url);
    await expect(avatar().count()).resolves.toBe(0);
    await expect(original().count()).resolves.toBe(0);
    await expect(row().locator(".no-avatar").count()).resolves.toBe(1);
    expect((await fetch(href)).status).toBe(404);
    expect((await fetch(src)).status).toBe(404);
    // Every request of this server process so far was signed with the credentials of its one fetch.
    await expect(page.locator("#session-stats").textContent()).resolves.toMatch(/credential fetches 1\b/);
  });

  describe("Upload directly to S3", () => {
    /** Every grant the page received, in order (the JSON of `POST /grants`). */
    const grants: UploadGrant[] = [];
    const direct = () => page.locator("form#direct-upload");
    const isDirectPost = (r: Response) =>
      r.request().method() === "POST" && /\/users(\/\d+)?\/direct$/.test(new URL(r.url()).pathname);

    /** Fills the direct form and submits it; resolves with the app's answer to the token post. */
    async function submitDirect(
      name: string,
      files: { avatar?: Parameters<Locator["setInputFiles"]>[0]; attachment?: Parameters<Locator["setInputFiles"]>[0] },
    ): Promise<Response> {
      await direct().getByLabel("Your name").fill(name);
      if (files.avatar) await direct().getByLabel("Avatar image").setInputFiles(files.avatar);
      if (files.attachment)
        await direct()
          .getByLabel(/^Attachment/)
          .setInputFiles(files.attachment);
      const answered = page.waitForResponse(isDirectPost, { timeout: 60_000 });
      // The page's script reports a failed grant request or upload without posting to the app.
      const clientError = page
        .locator("[role=alert][data-source=client]")
        .waitFor({ timeout: 60_000 })
        .then(async () => {
          throw new Error(`the page says: ${await page.locator("[role=alert]").textContent()}`);
        });
      clientError.catch(() => {});
      await direct().getByRole("button", { name: "Upload directly" }).click();
      const response = await Promise.race([answered, clientError]);
      await page.waitForLoadState("load");
      return response;
    }

    beforeAll(async () => {
      page.on("response", async (r) => {
        if (r.request().method() === "POST" && new URL(r.url()).pathname === "/grants" && r.ok()) {
          grants.push((await r.json()) as UploadGrant);
        }
      });
      await page.goto(demo!.url);
    });

    it("uploads a small PNG with the form POST; the row shows it from its final key", async () => {
      const bytes = png(12, 4, [30, 160, 90]);
      const response = await submitDirect("Grace direct", {
        avatar: { name: "grace.png", mimeType: "image/png", buffer: bytes },
      });
      expect(response.status()).toBe(303);
      const grant = grants.at(-1)!;
      expect(grant.post).toBeDefined();
      expect(grant.multipart).toBeUndefined();

      const grace = page.locator("li.user", { hasText: "Grace direct" });
      // The thumb is made from the verified object when the token is attached.
      expect(await loadedWidth(grace.locator("img"))).toBe(64);
      const s3 = demoBucket(demo!);
      const key = s3.keyOf((await grace.locator("a.original").getAttribute("href"))!);
      expect(key).toMatch(/^avatars\/\d{4}\/\d{2}\/grace(_\w+)?\.png$/);
      expect(s3.keyOf((await grace.locator("img").getAttribute("src"))!)).toMatch(
        new RegExp(`^variants/${key.replaceAll(".", "\\.")}/thumb-[0-9a-f]{12}\\.webp$`),
      );
      expect(key).not.toBe(grant.key);
      expect(sha256(await s3.bytes(key))).toBe(sha256(bytes));
      expect(await s3.exists(grant.key)).toBe(false);
      expect(await s3.list(pendingPrefixOf(grant.key))).toContain(usedMarkerOf(grant.key));
      expect(withoutMarkers(await s3.list(pendingPrefixOf(grant.key)))).toEqual([]);
    });

    it("uploads a 12 MiB attachment through the multipart plan; the row links to it", async () => {
      const size = 12 * 1024 * 1024 + 3;
      const bytes = testBytes(size, 42);
      const response = await submitDirect("Hopper direct", {
        attachment: { name: "big.bin", mimeType: "application/octet-stream", buffer: Buffer.from(bytes) },
      });
      expect(response.status()).toBe(303);
      const grant = grants.at(-1)!;
      expect(grant.post).toBeUndefined();
      expect(grant.multipart?.partSize).toBe(5 * 1024 * 1024);
      expect(grant.multipart?.parts).toHaveLength(3);

      const hopper = page.locator("li.user", { hasText: "Hopper direct" });
      await expect(hopper.locator("a.attachment").textContent()).resolves.toBe("big.bin");
      await expect(hopper.locator(".attachment-size").textContent()).resolves.toBe("12.6 MB");
      const s3 = demoBucket(demo!);
      const href = (await hopper.locator("a.attachment").getAttribute("href"))!;
      const key = s3.keyOf(href);
      expect(key).toMatch(/^attachments\/\d{4}\/\d{2}\/big(_\w+)?\.bin$/);
      // The link downloads the object.
      const downloaded = await fetch(href);
      expect(downloaded.headers.get("content-disposition")).toMatch(/attachment/);
      expect(sha256(new Uint8Array(await downloaded.arrayBuffer()))).toBe(sha256(bytes));
      expect(await s3.exists(grant.key)).toBe(false);
      expect(await s3.list(pendingPrefixOf(grant.key))).toContain(usedMarkerOf(grant.key));
      expect(withoutMarkers(await s3.list(pendingPrefixOf(grant.key)))).toEqual([]);
    });

    it("rejects an HTML file named .png uploaded directly, with the message on the page, leaving nothing", async () => {
      const s3 = demoBucket(demo!);
      const before = await s3.list("");
      const response = await submitDirect("Mallory direct", {
        avatar: {
          name: "cat.png",
          mimeType: "image/png",
          buffer: Buffer.from("<!doctype html><html><body><script>alert(1)</script></body></html>"),
        },
      });
      expect(response.status()).toBe(422);
      await expect(page.getByRole("alert").textContent()).resolves.toMatch(/text\/html .*is not accepted/);
      await expect(page.locator("li.user", { hasText: "Mallory direct" }).count()).resolves.toBe(0);
      const grant = grants.at(-1)!;
      expect(await s3.exists(grant.key)).toBe(false);
      // Nothing but the grant's marker, so that the still-valid form cannot be attached again.
      expect((await s3.list("")).sort()).toEqual([...before, usedMarkerOf(grant.key)].sort());
    });

    it("shows the app's refusal of a grant (an avatar over 5 MB) and uploads nothing", async () => {
      const s3 = demoBucket(demo!);
      const before = await s3.list("");
      const count = grants.length;
      const big = Buffer.concat([png(4, 4), Buffer.alloc(5_000_001)]);
      await expect(
        submitDirect("Too big direct", { avatar: { name: "huge.png", mimeType: "image/png", buffer: big } }),
      ).rejects.toThrow(/the page says: User\.avatar: /);
      expect(grants.length).toBe(count);
      await expect(page.locator("li.user", { hasText: "Too big direct" }).count()).resolves.toBe(0);
      expect(await s3.list("")).toEqual(before);
    });

    it("rejects a token used a second time, and the first row keeps its file", async () => {
      const used = grants[0]!;
      const grace = page.locator("li.user", { hasText: "Grace direct" });
      await page.goto(demo!.url);
      const src = (await grace.locator("a.original").getAttribute("href"))!;
      const answered = page.waitForResponse(isDirectPost);
      // The form as the page's script submits it, with the token of the first upload again.
      await direct().evaluate((form: HTMLFormElement, token: string) => {
        (form.elements.namedItem("name") as HTMLInputElement).value = "Replay direct";
        (form.elements.namedItem("avatar") as HTMLInputElement).value = token;
        form.submit();
      }, used.token);
      expect((await answered).status()).toBe(422);
      await page.waitForLoadState("load");
      await expect(page.getByRole("alert").textContent()).resolves.toMatch(/^User\.avatar: .*already used/);
      await expect(page.locator("li.user", { hasText: "Replay direct" }).count()).resolves.toBe(0);
      const s3 = demoBucket(demo!);
      expect(await s3.exists(s3.keyOf(src))).toBe(true);
    });

    it("replaces an attachment from the row's own direct form; the old object is gone", async () => {
      await page.goto(demo!.url);
      const hopper = page.locator("li.user", { hasText: "Hopper direct" });
      const s3 = demoBucket(demo!);
      const oldKey = s3.keyOf((await hopper.locator("a.attachment").getAttribute("href"))!);
      const bytes = Buffer.from("Notes for the second version.\n");
      await hopper
        .getByLabel(/New attachment for/)
        .setInputFiles({ name: "notes.txt", mimeType: "text/plain", buffer: bytes });
      const answered = page.waitForResponse(isDirectPost);
      await hopper.getByRole("button", { name: "Upload attachment" }).click();
      expect((await answered).status()).toBe(303);
      await page.waitForLoadState("load");
      await expect(hopper.locator("a.attachment").textContent()).resolves.toBe("notes.txt");
      const key = s3.keyOf((await hopper.locator("a.attachment").getAttribute("href"))!);
      expect(key).toMatch(/^attachments\/\d{4}\/\d{2}\/notes(_\w+)?\.txt$/);
      expect(Buffer.from(await s3.bytes(key)).equals(bytes)).toBe(true);
      // The replaced object was deleted once the update committed.
      expect(await s3.exists(oldKey)).toBe(false);
      expect(withoutMarkers(await s3.list(pendingPrefixOf(grants.at(-1)!.key)))).toEqual([]);
      await page.screenshot({ path: join(ARTIFACTS, "demo-direct.png"), fullPage: true });
    });
  });
});
