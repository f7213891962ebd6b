/**
 * The demo app (`npm run demo`) in a real browser: Debian's Chromium driven by playwright-core.
 * The server runs as a child process exactly as `npm run demo` starts it, on a free port, with
 * its embedded PGlite database and s3rver in a temporary data directory.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type BrowserContext, chromium, type Locator, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
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

// The only skip in the suite: without Chromium there is no browser to drive. `.ci/run` installs
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
  let secondSrc: string;

  const row = () => page.locator("li.user", { hasText: "Ada" });
  const avatar = () => row().locator("img");

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

    firstSrc = (await avatar().getAttribute("src"))!;
    expect(firstSrc).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/demo\/avatars\/\d{4}\/\d{2}\/ada\.png\?/);
    expect(firstSrc).toContain("X-Amz-Signature=");
    expect(await loadedWidth(avatar())).toBe(8);
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
    expect(secondSrc).toContain("/ada-wide.png?");
    expect(await loadedWidth(avatar())).toBe(16);
    // The first object was deleted once the update committed: its signed URL (still valid) finds nothing.
    expect((await fetch(firstSrc)).status).toBe(404);
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
    expect(await loadedWidth(avatar())).toBe(16);
    await page.screenshot({ path: join(ARTIFACTS, "demo.png"), fullPage: true });
  });

  it("keeps users and files across a restart", async () => {
    await stopDemo(demo);
    demo = await startDemo(dataDir);
    await page.goto(demo.url);
    await expect(row().locator(".name").textContent()).resolves.toBe(NAME);
    // s3rver has a new port, so the URL is new; the object is the same one.
    expect(await avatar().getAttribute("src")).not.toBe(secondSrc);
    expect(await loadedWidth(avatar())).toBe(16);
  });

  it("removes the avatar; the row stays and the object is gone", async () => {
    const src = (await avatar().getAttribute("src"))!;
    await row().getByRole("button", { name: "Remove avatar" }).click();
    await page.waitForURL(demo!.url);
    await expect(avatar().count()).resolves.toBe(0);
    await expect(row().locator(".no-avatar").count()).resolves.toBe(1);
    expect((await fetch(src)).status).toBe(404);
    // Every request of this server process so far was signed with the credentials of its one fetch.
    await expect(page.locator("#session-stats").textContent()).resolves.toMatch(/credential fetches 1\b/);
  });
});
