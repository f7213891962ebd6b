/**
 * The demo app (`npm run demo`) on MariaDB and on SQLite, chosen by `DATABASE_URL` as the README
 * shows: the server runs as a child process as `npm run demo` starts it, and the test talks to it
 * over HTTP (no browser): a user is added with an avatar through the page's form, listed back,
 * its avatar and its thumb variant served from the URLs the page shows; the row is read from the database itself; after
 * a restart on the same database (migrations already applied) the user is still listed; deleting
 * the user deletes the object.
 *
 * MariaDB: DATABASE_URL_MYSQL's server, else 127.0.0.1:3306 as root without a password (what
 * `.ci/run` starts); the demo creates a fresh database there itself, dropped after. SQLite: a
 * file in a temporary folder, removed after.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LOCAL_MYSQL_URL, mysqlConnection } from "../harness/mysql.js";
import { rawDb } from "../harness/sql.js";
import { png } from "./png.js";

const ROOT = join(import.meta.dirname, "..", "..");

interface Demo {
  url: string;
  child: ChildProcess;
  output: () => string;
}

/** Starts `examples/demo/server.ts` on a free port with `DATABASE_URL` and the embedded s3rver; resolves once it prints its URL. */
function startDemo(dataDir: string, databaseUrl: string): Promise<Demo> {
  const env: NodeJS.ProcessEnv = { ...process.env, PORT: "0", HOST: "127.0.0.1", DEMO_DATA_DIR: dataDir };
  for (const name of Object.keys(env)) if (name.startsWith("S3_")) delete env[name];
  env.DATABASE_URL = databaseUrl;
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
      // The URL line comes first; wait for the two lines after it (rows, files).
      const match = /demo: (http:\/\/127\.0\.0\.1:\d+\/)\n.*\n\s*files: .*\n/.exec(log);
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

/**
 * The users the page lists: id, name (as the page escapes it), and when there is an avatar the
 * original's URL (the "original" link) and its thumb variant's (the `<img>`).
 */
async function listedUsers(demo: Demo): Promise<{ id: number; name: string; avatarUrl?: string; thumbUrl?: string }[]> {
  const response = await fetch(demo.url);
  expect(response.status).toBe(200);
  const page = await response.text();
  return [...page.matchAll(/<li class="user" data-id="(\d+)">([\s\S]*?)<\/li>/g)].map((m) => {
    const body = m[2] ?? "";
    const src = /<img src="([^"]+)"/.exec(body)?.[1];
    const href = /<a class="original" href="([^"]+)"/.exec(body)?.[1];
    return {
      id: Number(m[1]),
      name: /<span class="name">([^<]*)<\/span>/.exec(body)?.[1] ?? "",
      ...(href ? { avatarUrl: href.replaceAll("&amp;", "&") } : {}),
      ...(src ? { thumbUrl: src.replaceAll("&amp;", "&") } : {}),
    };
  });
}

/** Posts a form as the page's forms do (`fetch` does not follow the 303, so its status shows). */
async function post(demo: Demo, path: string, form?: FormData): Promise<Response> {
  const response = await fetch(new URL(path, demo.url), {
    method: "POST",
    ...(form ? { body: form } : {}),
    redirect: "manual",
  });
  return response;
}

interface Case {
  provider: "mysql" | "sqlite";
  /** What the footer and the start-up log call the database. */
  label: RegExp;
  /** A fresh database's URL for `DATABASE_URL`, and how to remove it. */
  create(): Promise<{ url: string; drop(): Promise<void> }>;
}

const CASES: Case[] = [
  {
    provider: "mysql",
    label: /rows: {2}MySQL\/MariaDB at /,
    async create() {
      const server = new URL(process.env.DATABASE_URL_MYSQL ?? LOCAL_MYSQL_URL);
      const name = `psf_demo_${Date.now().toString(36)}_${process.pid}`;
      const url = new URL(server);
      url.pathname = `/${name}`;
      return {
        // The demo creates the database on its first start (it does not exist yet).
        url: url.toString(),
        async drop() {
          const admin = await mysqlConnection(server.toString());
          try {
            await admin.query(`DROP DATABASE IF EXISTS \`${name}\``);
          } finally {
            await admin.end();
          }
        },
      };
    },
  },
  {
    provider: "sqlite",
    label: /rows: {2}SQLite in \//,
    async create() {
      const dir = mkdtempSync(join(tmpdir(), "psf-demo-sqlite-"));
      return {
        url: `file:${join(dir, "demo.db")}`,
        async drop() {
          rmSync(dir, { recursive: true, force: true });
        },
      };
    },
  },
];

beforeAll(() => {
  // `npm test` generates the demo's clients first (pretest); a direct `vitest run test/demo` may not have.
  const generated = join(ROOT, "examples", "demo", "generated");
  if (!["mysql", "sqlite"].every((p) => existsSync(join(generated, p, "prisma", "client.ts")))) {
    const r = spawnSync("npm", ["run", "demo:generate"], { cwd: ROOT, encoding: "utf8" });
    if (r.status !== 0) throw new Error(`npm run demo:generate failed:\n${r.stdout}${r.stderr}`);
  }
}, 120_000);

describe.each(CASES)("the demo on $provider through DATABASE_URL", ({ provider, label, create }) => {
  let database: { url: string; drop(): Promise<void> } | undefined;
  let dataDir: string;
  let demo: Demo | undefined;

  beforeAll(async () => {
    database = await create();
    dataDir = mkdtempSync(join(tmpdir(), `psf-demo-${provider}-data-`));
    demo = await startDemo(dataDir, database.url);
  }, 120_000);

  afterAll(async () => {
    await stopDemo(demo);
    await database?.drop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it("says which database it uses, migrated on start", async () => {
    expect(demo!.output()).toMatch(label);
    const db = await rawDb(provider, database!.url);
    try {
      const applied = await db.query<{ name: string }>(`SELECT name FROM _demo_migrations ORDER BY name`);
      expect(applied.map((r) => r.name)).toEqual([
        "20261125000000_init",
        "20261125180000_user_attachment",
        "20261207000000_file_journal",
      ]);
      if (provider === "sqlite") {
        const [mode] = await db.query<{ journal_mode: string }>("PRAGMA journal_mode");
        expect(mode?.journal_mode).toBe("wal");
      }
    } finally {
      await db.end();
    }
  });

  it("adds a user with an avatar, lists it, serves the avatar, keeps it over a restart, deletes it", async () => {
    const image = png(3, 2, [10, 200, 30]);
    const form = new FormData();
    form.set("name", "Grace Hopper");
    form.set("avatar", new File([new Uint8Array(image)], "grace.png", { type: "image/png" }));
    const created = await post(demo!, "/users", form);
    expect(created.status, await created.clone().text()).toBe(303);

    const [user] = (await listedUsers(demo!)).filter((u) => u.name === "Grace Hopper");
    expect(user?.avatarUrl).toBeDefined();
    const served = await fetch(user!.avatarUrl!);
    expect(served.status).toBe(200);
    expect(Buffer.from(await served.arrayBuffer()).equals(image)).toBe(true);
    // The list's <img> is the thumb variant made in the same write: 64 × 64 WebP.
    const thumb = await fetch(user!.thumbUrl!);
    expect(thumb.status).toBe(200);
    const t = await sharp(Buffer.from(await thumb.arrayBuffer())).metadata();
    expect([t.format, t.width, t.height]).toEqual(["webp", 64, 64]);

    // The row is in this database, its column holding the object's key.
    const db = await rawDb(provider, database!.url);
    try {
      const rows = await db.query<{ name: string; avatar: string | null }>(
        `SELECT ${db.id("name")}, ${db.id("avatar")} FROM ${db.id("User")} WHERE ${db.id("id")} = ?`,
        [user!.id],
      );
      expect(rows).toHaveLength(1);
      expect(rows[0]!.name).toBe("Grace Hopper");
      expect(rows[0]!.avatar).toMatch(/^avatars\/\d{4}\/\d{2}\/grace.*\.png$/);
      expect(decodeURIComponent(new URL(user!.avatarUrl!).pathname)).toContain(rows[0]!.avatar!);
      expect(decodeURIComponent(new URL(user!.thumbUrl!).pathname)).toMatch(
        new RegExp(`/variants/${rows[0]!.avatar!.replaceAll(".", "\\.")}/thumb-[0-9a-f]{12}\\.webp$`),
      );
    } finally {
      await db.end();
    }

    // A second start on the same database: nothing to migrate, the user still there.
    await stopDemo(demo);
    demo = await startDemo(dataDir, database!.url);
    const again = (await listedUsers(demo)).filter((u) => u.name === "Grace Hopper");
    expect(again.map((u) => u.id)).toEqual([user!.id]);
    const reread = await fetch(again[0]!.avatarUrl!);
    expect(Buffer.from(await reread.arrayBuffer()).equals(image)).toBe(true);

    // Deleting the user deletes the object (through the file journal, after the row's commit).
    expect((await post(demo, `/users/${user!.id}/delete`)).status).toBe(303);
    expect((await listedUsers(demo)).some((u) => u.id === user!.id)).toBe(false);
    await expect
      .poll(async () => (await fetch(again[0]!.avatarUrl!)).status, { timeout: 15_000, interval: 250 })
      .toBe(404);
    await expect
      .poll(async () => (await fetch(again[0]!.thumbUrl!)).status, { timeout: 15_000, interval: 250 })
      .toBe(404);
  });
});
