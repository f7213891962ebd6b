/**
 * `npm run demo`: the demo app on http://127.0.0.1:3000/.
 *
 * Environment (all optional):
 * - PORT (default 3000; 0 picks a free port), HOST (default 127.0.0.1)
 * - DEMO_DATA_DIR: where the embedded database and S3 server keep their data (default .demo-data)
 * - PRISMA_S3_FILES_SECRET: signs direct-upload grant tokens (default: a random secret kept in
 *   DEMO_DATA_DIR/grant-secret)
 * - DATABASE_URL: use this database instead of the embedded one, migrated on start:
 *   postgresql://... (PostgreSQL), mysql://... or mariadb://... (MySQL, or MariaDB 10.6+; the
 *   database is created if missing), file:./demo.db (SQLite, created if missing)
 * - S3_ENDPOINT, S3_REGION, S3_BUCKET, S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY, S3_FORCE_PATH_STYLE:
 *   use this S3 service instead of the embedded one
 *
 * The page's "Upload directly to S3" form sends files from the browser straight to the bucket. The
 * embedded s3rver gets a CORS rule for the demo's origin on start; a real bucket needs one too
 * (see README, "Direct uploads from the browser"): the page's origin, methods PUT, POST and GET,
 * headers *, and ExposeHeaders ETag.
 */
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { serve } from "@hono/node-server";
import { createApp, withFiles } from "./app.js";
import { openDatabase, openStorage } from "./backends.js";
import { bundleClient } from "./client-bundle.js";

const dataDir = resolve(process.env.DEMO_DATA_DIR ?? ".demo-data");
const port = Number(process.env.PORT ?? 3000);
const hostname = process.env.HOST ?? "127.0.0.1";

const [database, storage, clientScript] = await Promise.all([
  openDatabase(dataDir),
  openStorage(dataDir),
  bundleClient(),
]);
// One session and one extended client for the whole process.
const prisma = withFiles(database.prisma, storage.session, grantSecret(dataDir), database.s3Files);
const app = createApp({
  prisma,
  session: storage.session,
  backends: [database.label, storage.label],
  clientScript,
});

const server = serve({ fetch: app.fetch, port, hostname }, (info) => {
  const host = info.family === "IPv6" ? `[${info.address}]` : info.address;
  const origin = `http://${host}:${info.port}`;
  // The page reaches the bucket from its own origin; localhost names the same server.
  const origins = host === "127.0.0.1" ? [origin, `http://localhost:${info.port}`] : [origin];
  storage.allowBrowserUploads(origins).then(
    () => {
      console.log(`prisma-s3-files demo: ${origin}/`);
      console.log(`  rows:  ${database.label}`);
      console.log(`  files: ${storage.label}`);
    },
    (error: unknown) => {
      console.error("could not set the bucket's CORS rule for direct uploads:", error);
      process.exit(1);
    },
  );
});

let stopping = false;
async function stop(signal: string) {
  if (stopping) return;
  stopping = true;
  console.log(`${signal}: stopping`);
  server.close();
  // Close the embedded database cleanly so its files stay consistent for the next start.
  await Promise.allSettled([database.close(), storage.close()]);
  process.exit(0);
}
process.on("SIGINT", () => void stop("SIGINT"));
process.on("SIGTERM", () => void stop("SIGTERM"));

/** The secret that signs grant tokens: PRISMA_S3_FILES_SECRET, else one made once and kept with the demo's data. */
function grantSecret(dir: string): string {
  if (process.env.PRISMA_S3_FILES_SECRET) return process.env.PRISMA_S3_FILES_SECRET;
  const file = join(dir, "grant-secret");
  if (!existsSync(file)) {
    mkdirSync(dir, { recursive: true });
    writeFileSync(file, randomBytes(32).toString("hex"), { mode: 0o600 });
  }
  return readFileSync(file, "utf8").trim();
}
