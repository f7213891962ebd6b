/**
 * A process that dies in the middle of a write with variants (image-variants.test.ts): the
 * original and the first variant are stored and recorded, the second variant's save never ends,
 * and the parent SIGKILLs this process then. Configuration: JSON in `VARIANTS_CRASH` (provider,
 * databaseUrl, s3, location). Prints `STORED <key>` once the hanging save starts.
 */
import sharp from "sharp";
import { createSession, S3Storage } from "../../src/index.js";
import { s3Files } from "../../src/prisma/extension.js";
import { upload } from "../../src/prisma/upload.js";
import { type S3Target, sessionOptionsFor } from "../harness/s3.js";
import { clientFor, loadGenerated, type Provider } from "./providers.js";

const config = JSON.parse(process.env.VARIANTS_CRASH ?? "{}") as {
  provider: Provider;
  databaseUrl: string;
  s3: S3Target;
  location: string;
};

/** Saves of the `card` variant never end: the process is killed while it waits. */
class HangingS3Storage extends S3Storage {
  override async save(...args: Parameters<S3Storage["save"]>): Promise<string> {
    if (/\/card-/.test(args[0])) {
      process.stdout.write(`STORED ${args[0]}\n`);
      return new Promise<string>(() => undefined);
    }
    return super.save(...args);
  }
}

const generated = await loadGenerated(config.provider);
const session = createSession(sessionOptionsFor(config.s3));
const storage = new HangingS3Storage({ session, location: config.location });
const prisma = clientFor(generated, config.provider, config.databaseUrl).$extends(
  s3Files(session, {
    fields: generated.fileFields,
    storages: { default: storage, private: storage, public: storage },
    uploadExpirySeconds: 1,
    drain: false,
  }),
);
const png = await sharp({ create: { width: 40, height: 30, channels: 3, background: "#884422" } })
  .png()
  .toBuffer();
await prisma.photo.create({ data: { title: "crashed", picture: upload(png, { filename: "crashed.png" }) } });
process.stdout.write("UNEXPECTED: the write finished\n");
