/**
 * Image variants (issue #18, second part), against the harness's S3 server and the project's
 * database: made in the write with their original, under keys derived from it and a digest of
 * their spec; replaced and deleted with it; nothing left by a rollback, a failed write or a bad
 * image; kept by the sweep exactly while a row holds the original; rebuilt by `rebuildVariants`
 * when missing or made from an old spec, without touching originals; lazy variants made on
 * request through a signed URL; a process killed mid-write. The test schema's `Photo.picture`:
 * `variants: { thumb: "cover 32x32 webp", card: "inside 64x48 avif q50", big: "inside 100x100 png lazy" }`.
 */
import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { parseVariantKey } from "../../src/files/variants.js";
import {
  createVariantHandler,
  FileValidationError,
  LazyVariantFile,
  PrismaS3FilesError,
  type S3Session,
  S3Storage,
  StoredFile,
} from "../../src/index.js";
import { s3Files } from "../../src/prisma/extension.js";
import { drainFiles } from "../../src/prisma/journal/drain.js";
import type { FileFieldsMetadataShape } from "../../src/prisma/metadata-types.js";
import { sweepOrphans } from "../../src/prisma/sweep.js";
import { upload } from "../../src/prisma/upload.js";
import { rebuildVariants } from "../../src/prisma/variants-rebuild.js";
import { pngHeader } from "../files/images.js";
import { listKeys } from "../harness/s3.js";
import { fileFields, harnessSession, plainClient, provider } from "./client.js";
import { postUpload } from "./direct-upload-support.js";

const s3 = inject("s3");
const tag = randomBytes(4).toString("hex");
const location = `variants-${tag}`;
const plain = plainClient();
let session: S3Session;
let storage: FailingS3Storage;
let prisma: ReturnType<typeof makeClient>;

/** An S3 storage whose saves of keys matching `failSaves` fail, and that counts saves. */
class FailingS3Storage extends S3Storage {
  failSaves: RegExp | undefined;
  saves = 0;
  override async save(...args: Parameters<S3Storage["save"]>) {
    this.saves++;
    if (this.failSaves?.test(args[0])) throw new Error(`refused by the test: ${args[0]}`);
    return super.save(...args);
  }
}

function makeClient(fields: FileFieldsMetadataShape = fileFields) {
  return plainClient().$extends(
    s3Files(session, {
      fields: fields as typeof fileFields,
      storages: { default: storage, private: storage, public: storage },
    }),
  );
}

const keys = () => listKeys(s3, location);
const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");

/** A real PNG of `width` × `height` (a gradient, so the encoders have something to do). */
async function picture(width: number, height: number): Promise<Buffer> {
  const raw = Buffer.alloc(width * height * 3);
  for (let i = 0; i < width * height; i++) {
    raw[i * 3] = (i * 7) % 256;
    raw[i * 3 + 1] = Math.floor(i / width) % 256;
    raw[i * 3 + 2] = 128;
  }
  return sharp(raw, { raw: { width, height, channels: 3 } })
    .png()
    .toBuffer();
}

/** The keys stored for an original and its variants. */
async function storedFor(key: string): Promise<string[]> {
  const all = await keys();
  return all.filter((k) => k === key || parseVariantKey(k)?.original === key).sort();
}

beforeAll(() => {
  session = harnessSession();
  storage = new FailingS3Storage({ session, location });
  prisma = makeClient();
});
afterAll(async () => {
  await prisma.$disconnect();
  await plain.$disconnect();
  await session.destroy();
});

describe("variants made in the write", () => {
  it("create: the original and each variant are stored, at the size, in the format, under the derived keys", async () => {
    const photo = await prisma.photo.create({
      data: { picture: upload(await picture(200, 100), { filename: "dog.png" }) },
    });
    const key = photo.picture!.name;
    expect(key).toBe("pictures/dog.png");
    const thumb = photo.picture!.variant("thumb");
    const card = photo.picture!.variant("card");
    expect(thumb).toBeInstanceOf(StoredFile);
    expect(thumb.name).toMatch(/^variants\/pictures\/dog\.png\/thumb-[0-9a-f]{12}\.webp$/);
    expect(card.name).toMatch(/^variants\/pictures\/dog\.png\/card-[0-9a-f]{12}\.avif$/);
    expect(await storedFor(key)).toEqual([key, card.name, thumb.name].sort());
    const t = await sharp(await storage.read(thumb.name)).metadata();
    expect([t.format, t.width, t.height]).toEqual(["webp", 32, 32]);
    const c = await sharp(await storage.read(card.name)).metadata();
    expect([c.format, c.width, c.height]).toEqual(["heif", 64, 32]); // inside 64x48 keeps 2:1
    expect((await storage.stat(thumb.name)).contentType).toBe("image/webp");
    expect((await storage.stat(card.name)).contentType).toBe("image/avif");
    // Read back later, the names are derived from the row alone: no storage call.
    const before = storage.saves;
    const read = await prisma.photo.findUniqueOrThrow({ where: { id: photo.id } });
    expect(read.picture!.variant("thumb").name).toBe(thumb.name);
    expect(await read.picture!.variant("card").size()).toBeGreaterThan(0);
    expect(storage.saves).toBe(before);
  });

  it("a variant name the field does not declare is a type error, and CONFIGURATION at run time", async () => {
    const photo = await prisma.photo.create({
      data: { picture: upload(await picture(20, 20), { filename: "n.png" }) },
    });
    // @ts-expect-error: "huge" is not one of the field's variants.
    const call = () => photo.picture!.variant("huge");
    expect(call).toThrow(PrismaS3FilesError);
    expect(call).toThrow(/Photo\.picture: no variant "huge" \(this field's: "thumb", "card", "big"\)/);
    const scanned = await prisma.photo.create({ data: { scan: upload(Buffer.from("x"), { filename: "x.txt" }) } });
    // @ts-expect-error: a field without variants takes no name.
    expect(() => scanned.scan!.variant("thumb")).toThrow(/no variant "thumb" \(this field's: none\)/);
  });

  it("replace: the old original and its variants go after the commit; the new ones stay", async () => {
    const photo = await prisma.photo.create({
      data: { picture: upload(await picture(40, 40), { filename: "old.png" }) },
    });
    const old = photo.picture!.name;
    expect(await storedFor(old)).toHaveLength(3);
    const updated = await prisma.photo.update({
      where: { id: photo.id },
      data: { picture: upload(await picture(50, 30), { filename: "new.png" }) },
    });
    expect(await storedFor(old)).toEqual([]);
    expect(await storedFor(updated.picture!.name)).toHaveLength(3);
  });

  it("delete: the row's original and variants go", async () => {
    const photo = await prisma.photo.create({
      data: { picture: upload(await picture(30, 30), { filename: "del.png" }) },
    });
    await prisma.photo.delete({ where: { id: photo.id } });
    expect(await storedFor(photo.picture!.name)).toEqual([]);
  });

  it("an interactive transaction that rolls back leaves neither the original nor its variants", async () => {
    const bytes = await picture(30, 20);
    let key = "";
    await expect(
      prisma.$transaction(async (tx) => {
        const photo = await tx.photo.create({ data: { picture: upload(bytes, { filename: "rolled.png" }) } });
        key = photo.picture!.name;
        expect(await storedFor(key)).toHaveLength(3);
        throw new Error("roll back");
      }),
    ).rejects.toThrow("roll back");
    expect(key).not.toBe("");
    expect(await storedFor(key)).toEqual([]);
  });

  it("a variant that cannot be stored fails the write and removes the original and the variants stored", async () => {
    storage.failSaves = /\/card-/;
    try {
      await expect(
        prisma.photo.create({
          data: { title: "half", picture: upload(await picture(30, 20), { filename: "half.png" }) },
        }),
      ).rejects.toThrow(/refused by the test/);
    } finally {
      storage.failSaves = undefined;
    }
    expect(await storedFor("pictures/half.png")).toEqual([]);
    expect(await plain.photo.count({ where: { title: "half" } })).toBe(0);
  });

  it("upsert: the branch taken keeps its original and variants; the other branch's go", async () => {
    const photo = await prisma.photo.create({ data: { title: "upsert" } });
    const taken = await prisma.photo.upsert({
      where: { id: photo.id },
      create: { picture: upload(await picture(20, 20), { filename: "up-create.png" }) },
      update: { picture: upload(await picture(20, 20), { filename: "up-update.png" }) },
    });
    expect(taken.picture!.name).toBe("pictures/up-update.png");
    expect(await storedFor("pictures/up-update.png")).toHaveLength(3);
    expect(await storedFor("pictures/up-create.png")).toEqual([]);
  });

  it("a failed row write (a missing row to update) removes the original and its variants", async () => {
    await expect(
      prisma.photo.update({
        where: { id: 2_000_000_000 },
        data: { picture: upload(await picture(10, 10), { filename: "ghost.png" }) },
      }),
    ).rejects.toThrow();
    expect(await storedFor("pictures/ghost.png")).toEqual([]);
  });
});

describe("direct uploads", () => {
  it("an attached direct upload gets its variants from the verified object", async () => {
    const secret = randomBytes(32).toString("hex");
    const client = plainClient().$extends(
      s3Files(session, {
        fields: fileFields,
        storages: { default: storage, private: storage, public: storage },
        directUploads: { secret },
      }),
    );
    try {
      const bytes = await picture(90, 60);
      const grant = await client.photo.uploadGrant("picture", {
        filename: "direct.png",
        contentType: "image/png",
        size: bytes.length,
      });
      expect((await postUpload(grant, bytes, "image/png")).status).toBeLessThan(300);
      const photo = await client.photo.create({ data: { picture: grant.token } });
      const key = photo.picture!.name;
      expect(await storedFor(key)).toEqual(
        [key, photo.picture!.variant("card").name, photo.picture!.variant("thumb").name].sort(),
      );
      const card = await sharp(await storage.read(photo.picture!.variant("card").name)).metadata();
      expect([card.width, card.height]).toEqual([64, 43]);
    } finally {
      await client.$disconnect();
    }
  });
});

describe("what a field with variants refuses, before anything is stored", () => {
  it("a corrupt image that sniffs as PNG: FileValidationError corrupt_image", async () => {
    const before = await keys();
    const corrupt = Buffer.concat([pngHeader(64, 64), randomBytes(300)]);
    const error = await prisma.photo
      .create({ data: { picture: upload(corrupt, { filename: "corrupt.png" }) } })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(FileValidationError);
    expect((error as FileValidationError).reason).toBe("corrupt_image");
    expect(await keys()).toEqual(before);
  });

  it("a file that is not an image: type_not_accepted, naming the variants", async () => {
    const saves = storage.saves;
    const error = await prisma.photo
      .create({ data: { picture: upload(Buffer.from("just text"), { filename: "notes.txt" }) } })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(FileValidationError);
    expect((error as FileValidationError).reason).toBe("type_not_accepted");
    expect((error as Error).message).toMatch(/makes image variants/);
    expect(storage.saves).toBe(saves);
  });

  it("an SVG is not rasterised: the field does not accept image/svg+xml by name", async () => {
    const saves = storage.saves;
    const svg = Buffer.from(
      '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>',
    );
    const error = await prisma.photo
      .create({ data: { picture: upload(svg, { filename: "logo.svg" }) } })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(FileValidationError);
    expect((error as Error).message).toMatch(
      /SVG is only rasterised where the field accepts "image\/svg\+xml" by name/,
    );
    expect(storage.saves).toBe(saves);
  });

  it("a 20,000 × 20,000 PNG is refused from its header (too_many_pixels), before any decode or save", async () => {
    const saves = storage.saves;
    const bomb = Buffer.concat([pngHeader(20_000, 20_000), randomBytes(64)]);
    const started = performance.now();
    const error = await prisma.photo
      .create({ data: { picture: upload(bomb, { filename: "bomb.png" }) } })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(FileValidationError);
    expect((error as FileValidationError).reason).toBe("too_many_pixels");
    expect(performance.now() - started).toBeLessThan(2000);
    expect(storage.saves).toBe(saves);
  });
});

describe("the sweep and the drain keep variants with their original", () => {
  it("a variant whose original no row holds is an orphan; one whose original a row holds is kept", async () => {
    const photo = await prisma.photo.create({
      data: { picture: upload(await picture(24, 24), { filename: "kept.png" }) },
    });
    const kept = photo.picture!.variant("thumb").name;
    const lost = "variants/pictures/lost.png/thumb-0123456789ab.webp";
    await storage.save(lost, Buffer.from("left by a crash"), { overwrite: true });
    const report = await sweepOrphans(plain, session, {
      fields: fileFields,
      storages: { default: storage, private: storage, public: storage },
      olderThan: 0,
    });
    const orphans = report.orphans.map((o) => o.key);
    expect(orphans).toContain(lost);
    expect(orphans).not.toContain(kept);
    expect(orphans).not.toContain(photo.picture!.name);
    expect(await storage.exists(lost)).toBe(false);
    expect(await storage.exists(kept)).toBe(true);
  });

  it("the drain deletes an original's variants with it, an old spec's included", async () => {
    const photo = await prisma.photo.create({
      data: { picture: upload(await picture(24, 24), { filename: "drained.png" }) },
    });
    const key = photo.picture!.name;
    const older = `variants/${key}/thumb-000000000000.webp`;
    await storage.save(older, Buffer.from("an old spec's"), { overwrite: true });
    await prisma.photo.update({ where: { id: photo.id }, data: { picture: null } });
    expect(await storedFor(key)).toEqual([]);
  });
});

describe("rebuildVariants (`variants --stale`)", () => {
  const storages = () => ({ default: storage, private: storage, public: storage });

  it("builds a missing variant and deletes an old spec's; a second run finds nothing; the original is untouched", async () => {
    const photo = await prisma.photo.create({
      data: { picture: upload(await picture(60, 40), { filename: "stale.png" }) },
    });
    const key = photo.picture!.name;
    const original = sha256(await storage.read(key));
    const thumb = photo.picture!.variant("thumb").name;
    await storage.delete(thumb);
    const older = `variants/${key}/card-000000000000.avif`;
    await storage.save(older, Buffer.from("an old spec's"), { overwrite: true });

    const dry = await rebuildVariants(plain, session, { fields: fileFields, storages: storages(), dryRun: true });
    expect(dry.failed).toEqual([]);
    expect(await storage.exists(thumb)).toBe(false);
    expect(await storage.exists(older)).toBe(true);

    const first = await rebuildVariants(plain, session, { fields: fileFields, storages: storages() });
    expect(first.failed).toEqual([]);
    expect(first.built).toBeGreaterThanOrEqual(1);
    expect(first.deleted).toBeGreaterThanOrEqual(1);
    expect(await storage.exists(thumb)).toBe(true);
    expect(await storage.exists(older)).toBe(false);
    const t = await sharp(await storage.read(thumb)).metadata();
    expect([t.format, t.width, t.height]).toEqual(["webp", 32, 32]);

    const second = await rebuildVariants(plain, session, { fields: fileFields, storages: storages() });
    expect([second.built, second.deleted, second.failed]).toEqual([0, 0, []]);
    expect(sha256(await storage.read(key))).toBe(original);
  });

  it("a changed spec rebuilds exactly that variant, under its new digest, and removes the old one", async () => {
    const photo = await prisma.photo.create({
      data: { picture: upload(await picture(80, 80), { filename: "respec.png" }) },
    });
    const oldThumb = photo.picture!.variant("thumb").name;
    const card = photo.picture!.variant("card").name;
    const cardBytes = sha256(await storage.read(card));
    // The schema as it would be after `thumb` changed to 16x16.
    const changed = structuredClone(fileFields) as unknown as {
      Photo: { fileFields: { picture: { variants: Record<string, string> } } };
    };
    changed.Photo.fileFields.picture.variants.thumb = "cover 16x16 webp";
    const fields = changed as unknown as FileFieldsMetadataShape;
    await rebuildVariants(plain, session, { fields, storages: storages() });
    const after = makeClient(fields);
    try {
      const read = await after.photo.findUniqueOrThrow({ where: { id: photo.id } });
      const newThumb = read.picture!.variant("thumb").name;
      expect(newThumb).not.toBe(oldThumb);
      expect(await storage.exists(oldThumb)).toBe(false);
      const t = await sharp(await storage.read(newThumb)).metadata();
      expect([t.width, t.height]).toEqual([16, 16]);
      // The unchanged variant is the same object.
      expect(read.picture!.variant("card").name).toBe(card);
      expect(sha256(await storage.read(card))).toBe(cardBytes);
    } finally {
      await after.$disconnect();
    }
  });
});

describe("lazy variants: made on the first request through a signed URL", () => {
  const secret = randomBytes(32).toString("hex");
  const baseUrl = "http://app.test/files/variants";
  const storages = () => ({ default: storage, private: storage, public: storage });
  const lazyClient = () =>
    plainClient().$extends(
      s3Files(session, { fields: fileFields, storages: storages(), lazyVariants: { secret, baseUrl } }),
    );
  const handler = () =>
    createVariantHandler(plain, session, {
      fields: fileFields,
      storages: storages(),
      lazyVariants: { secret, baseUrl },
    });

  it("not made in the write; the URL is the app's, signed; the first GET makes it and redirects to it", async () => {
    const client = lazyClient();
    try {
      const photo = await client.photo.create({
        data: { picture: upload(await picture(200, 100), { filename: "lazy.png" }) },
      });
      const big = photo.picture!.variant("big");
      expect(big).toBeInstanceOf(LazyVariantFile);
      expect(big.name).toMatch(/^variants\/pictures\/lazy\.png\/big-[0-9a-f]{12}\.png$/);
      expect(await storage.exists(big.name)).toBe(false);
      const url = await big.url();
      expect(url).toMatch(/^http:\/\/app\.test\/files\/variants\/psfv1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}$/);

      const response = await handler()(new Request(url));
      expect(response.status).toBe(302);
      expect(response.headers.get("location")).toBe(await storage.url(big.name));
      const made = await sharp(await storage.read(big.name)).metadata();
      expect([made.format, made.width, made.height]).toEqual(["png", 100, 50]);
      // The second request finds it: no save.
      const saves = storage.saves;
      expect((await handler()(new Request(url, { method: "HEAD" }))).status).toBe(302);
      expect(storage.saves).toBe(saves);
      // It goes with its original.
      await client.photo.delete({ where: { id: photo.id } });
      expect(await storedFor(photo.picture!.name)).toEqual([]);
    } finally {
      await client.$disconnect();
    }
  });

  it("refused (404) without a valid signature, for another secret's token, or once no row holds the original; nothing made", async () => {
    const client = lazyClient();
    try {
      const photo = await client.photo.create({
        data: { picture: upload(await picture(50, 50), { filename: "guarded.png" }) },
      });
      const big = photo.picture!.variant("big");
      const url = await big.url();
      const token = url.split("/").pop()!;
      const [prefix, payload, signature] = token.split(".");
      // The payload asking for another original, with the signature kept.
      const other = Buffer.from(JSON.stringify(["Photo", "picture", "pictures/other.png", "big", "x"])).toString(
        "base64url",
      );
      const forged = [
        `${baseUrl}/${prefix}.${other}.${signature}`,
        `${baseUrl}/${prefix}.${payload}.${"A".repeat(43)}`,
        `${baseUrl}/not-a-token`,
      ];
      for (const u of forged) expect((await handler()(new Request(u))).status, u).toBe(404);
      const elsewhere = createVariantHandler(plain, session, {
        fields: fileFields,
        storages: storages(),
        lazyVariants: { secret: randomBytes(32).toString("hex"), baseUrl },
      });
      expect((await elsewhere(new Request(url))).status).toBe(404);
      expect((await handler()(new Request(url, { method: "POST" }))).status).toBe(405);
      expect(await storage.exists(big.name)).toBe(false);

      await plain.photo.update({ where: { id: photo.id }, data: { picture: null } });
      expect((await handler()(new Request(url))).status).toBe(404);
      expect(await storage.exists(big.name)).toBe(false);
    } finally {
      await client.$disconnect();
    }
  });

  it("404 when a row holds the original but the storage lost it; nothing made", async () => {
    const client = lazyClient();
    try {
      const photo = await client.photo.create({
        data: { picture: upload(await picture(30, 30), { filename: "lost.png" }) },
      });
      await storage.delete(photo.picture!.name);
      const big = photo.picture!.variant("big");
      expect((await handler()(new Request(await big.url()))).status).toBe(404);
      expect(await storage.exists(big.name)).toBe(false);
    } finally {
      await client.$disconnect();
    }
  });

  it("a lazy variant's url() without lazyVariants configured: CONFIGURATION, naming the option", async () => {
    const photo = await prisma.photo.create({
      data: { picture: upload(await picture(20, 20), { filename: "nocfg.png" }) },
    });
    await expect(photo.picture!.variant("big").url()).rejects.toThrow(
      /Photo\.picture: variant "big" is lazy; its URL needs s3Files\(session, \{ lazyVariants/,
    );
  });

  it("a secret under 32 bytes is refused", () => {
    expect(() =>
      createVariantHandler(plain, session, {
        fields: fileFields,
        storages: storages(),
        lazyVariants: { secret: "short", baseUrl },
      }),
    ).toThrow(/at least 32 bytes/);
  });
});

describe("a process that dies mid-write", () => {
  it("leaves records; once they expire the drain removes the original and the variant it stored, and no row names them", async () => {
    const child = spawn(
      process.execPath,
      ["--import", "tsx", fileURLToPath(new URL("./variants-crash-worker.ts", import.meta.url))],
      {
        env: {
          ...process.env,
          VARIANTS_CRASH: JSON.stringify({ provider, databaseUrl: inject("databaseUrl"), s3, location }),
        },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let out = "";
    let err = "";
    child.stderr.on("data", (c: Buffer) => {
      err += c.toString();
    });
    const stored = await new Promise<string>((resolve, reject) => {
      child.stdout.on("data", (c: Buffer) => {
        out += c.toString();
        const m = /STORED (\S+)\n/.exec(out);
        if (m) resolve(m[1]!);
      });
      child.on("exit", (code) => reject(new Error(`the worker exited (${code}) before the hang: ${out}${err}`)));
    });
    const exited = new Promise((resolve) => child.on("exit", resolve));
    child.kill("SIGKILL");
    await exited;
    const original = parseVariantKey(stored)!.original;
    // What the dead process left: the original and the thumbnail, no row.
    expect(await storedFor(original)).toHaveLength(2);
    expect(await plain.photo.count({ where: { title: "crashed" } })).toBe(0);
    await new Promise((resolve) => setTimeout(resolve, 1500)); // its uploadExpirySeconds: 1
    const report = await drainFiles(plain, session, {
      fields: fileFields,
      storages: { default: storage, private: storage, public: storage },
    });
    expect(report.failed).toEqual([]);
    expect(await storedFor(original)).toEqual([]);
  }, 60_000);
});
