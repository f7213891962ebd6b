/**
 * prisma-s3-files with Express 5: an upload handler that streams the request body to S3, and a
 * handler redirecting to the file's URL. (For multipart forms, parse with multer or busboy and
 * pass the file's buffer or stream to `attach` / `upload` the same way.)
 */
import { PrismaPg } from "@prisma/adapter-pg";
import express, { type NextFunction, type Request, type Response } from "express";
// In your application: from "prisma-s3-files" and "prisma-s3-files/s3".
import { FileValidationError } from "../../src/entries/index.js";
import { createSession } from "../../src/entries/s3.js";
// Your generators' outputs (here: the demo's, from `npm run demo:generate`); `s3Files` is the
// extension bound to your schema's file fields.
import { fileFields, s3Files } from "../demo/generated/files/index.js";
import { PrismaClient } from "../demo/generated/prisma/client.js";

// Once per process, at module scope: one credential cache and one connection pool shared by
// every request. Credentials come from the AWS SDK's default chain (environment, profile,
// instance or container metadata) and are refreshed ahead of expiry.
const session = createSession({ bucket: process.env.S3_BUCKET });
export const prisma = new PrismaClient({
  adapter: new PrismaPg({ connectionString: process.env.DATABASE_URL }),
}).$extends(s3Files(session));

export const app = express();

// `curl -T photo.png -H 'content-type: image/png' 'http://host/users/1/avatar?filename=photo.png'`
// The body streams through validation (size counted, type sniffed from the first bytes) to S3.
app.put("/users/:id/avatar", async (req: Request<{ id: string }>, res: Response) => {
  // A body over the field's `maxSize` is refused while it streams, and the request stream is
  // destroyed (the client sees a reset connection): answer a declared length up front instead.
  const limit = fileFields.User.fileFields.avatar.maxSize;
  if (limit !== null && Number(req.get("content-length")) > limit) {
    res.status(413).json({ error: `avatar: larger than ${limit} bytes` });
    return;
  }
  const filename = typeof req.query.filename === "string" ? req.query.filename : undefined;
  const avatar = await prisma.user.attach({ id: Number(req.params.id) }, "avatar", req, {
    filename,
    contentType: req.get("content-type"),
  });
  res.status(201).json({ avatar: avatar.name });
});

// The file itself: a redirect to a short-lived signed URL (signed locally, no request to S3).
app.get("/users/:id/avatar", async (req: Request<{ id: string }>, res: Response) => {
  const user = await prisma.user.findUnique({ where: { id: Number(req.params.id) } });
  if (!user?.avatar) {
    res.sendStatus(404);
    return;
  }
  res.redirect(302, await user.avatar.url());
});

// Express 5 passes rejected promises of async handlers here.
app.use((error: unknown, _req: Request, res: Response, next: NextFunction) => {
  if (error instanceof FileValidationError) {
    res.status(422).json({ error: error.message });
    return;
  }
  next(error);
});
