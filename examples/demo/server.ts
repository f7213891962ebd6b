/**
 * `npm run demo`: the demo app on http://127.0.0.1:3000/.
 *
 * Environment (all optional):
 * - PORT (default 3000; 0 picks a free port), HOST (default 127.0.0.1)
 * - DEMO_DATA_DIR: where the embedded database and S3 server keep their data (default .demo-data)
 * - DATABASE_URL: use this PostgreSQL database instead of the embedded one (migrated on start)
 * - S3_ENDPOINT, S3_REGION, S3_BUCKET, S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY, S3_FORCE_PATH_STYLE:
 *   use this S3 service instead of the embedded one
 */
import { resolve } from "node:path";
import { serve } from "@hono/node-server";
import { createApp, withFiles } from "./app.js";
import { openDatabase, openStorage } from "./backends.js";

const dataDir = resolve(process.env.DEMO_DATA_DIR ?? ".demo-data");
const port = Number(process.env.PORT ?? 3000);
const hostname = process.env.HOST ?? "127.0.0.1";

const [database, storage] = await Promise.all([openDatabase(dataDir), openStorage(dataDir)]);
// One session and one extended client for the whole process.
const prisma = withFiles(database.prisma, storage.session);
const app = createApp({ prisma, session: storage.session, backends: [database.label, storage.label] });

const server = serve({ fetch: app.fetch, port, hostname }, (info) => {
  const host = info.family === "IPv6" ? `[${info.address}]` : info.address;
  console.log(`prisma-s3-files demo: http://${host}:${info.port}/`);
  console.log(`  rows:  ${database.label}`);
  console.log(`  files: ${storage.label}`);
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
