/**
 * prisma-s3-files with Hono: an upload handler and a handler redirecting to the file's URL.
 * Serve it with `serve({ fetch: app.fetch })` from @hono/node-server (the AWS SDK needs Node).
 */
import { PrismaPg } from "@prisma/adapter-pg";
import { Hono } from "hono";
// In your application: from "prisma-s3-files" and "prisma-s3-files/s3".
import { FileValidationError } from "../../src/entries/index.js";
import { createSession } from "../../src/entries/s3.js";
// Your generators' outputs (here: the demo's, from `npm run demo:generate`); `s3Files` is the
// extension bound to your schema's file fields.
import { s3Files } from "../demo/generated/files/index.js";
import { PrismaClient } from "../demo/generated/prisma/client.js";

// Once per process, at module scope: one credential cache and one connection pool shared by
// every request. Credentials come from the AWS SDK's default chain (environment, profile,
// instance or container metadata) and are refreshed ahead of expiry.
const session = createSession({ bucket: process.env.S3_BUCKET });
export const prisma = new PrismaClient({
  adapter: new PrismaPg({ connectionString: process.env.DATABASE_URL }),
}).$extends(s3Files(session));

export const app = new Hono();

// A multipart form with an `avatar` file field.
app.post("/users/:id/avatar", async (c) => {
  const id = Number(c.req.param("id"));
  const file = (await c.req.formData()).get("avatar");
  if (!(file instanceof File)) return c.json({ error: "avatar: a file is required" }, 400);
  try {
    // Validates (size, type from the bytes), stores, updates the row, then deletes the old object.
    const avatar = await prisma.user.attach({ id }, "avatar", file);
    return c.json({ avatar: avatar.name }, 201);
  } catch (error) {
    if (error instanceof FileValidationError) return c.json({ error: error.message }, 422);
    throw error;
  }
});

// The file itself: a redirect to a short-lived signed URL (signed locally, no request to S3).
app.get("/users/:id/avatar", async (c) => {
  const user = await prisma.user.findUnique({ where: { id: Number(c.req.param("id")) } });
  if (!user?.avatar) return c.notFound();
  return c.redirect(await user.avatar.url(), 302);
});
