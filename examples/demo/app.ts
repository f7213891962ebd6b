/**
 * The demo's pages and form handlers: a list of users with their avatars and attachments, a form
 * to add one, and buttons to replace or remove an avatar. Every file goes through the library:
 * `upload(file)` in a create, `attach` / `detach` on the model, `url()` for the links and
 * `variant("thumb").url()` for the `<img>` (a thumbnail made in the same write as the avatar).
 *
 * A second form uploads straight from the browser to S3: the page asks `POST /grants` for an
 * upload grant (`prisma.user.uploadGrant`), uploads with `uploadWithGrant` from
 * `prisma-s3-files/browser` (examples/demo/client.ts), then posts the grant's token, which the app
 * writes like any upload; the library verifies the object before the row points at it.
 */
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { html } from "hono/html";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { FileValidationError, isGrantToken, PrismaS3FilesError, type S3Session, upload } from "../../src/index.js";
import { s3Files } from "./generated/files/index.js";
import type { PrismaClient } from "./generated/prisma/client.js";

/**
 * The Prisma client with file fields: `user.avatar` reads as a `FieldFile` (or `null`). Direct
 * uploads over 8 MiB get a multipart plan with 5 MiB parts, smaller ones a form POST; `secret`
 * signs their grant tokens (at least 32 characters, the same in every process of the app).
 * `files` is the generated `s3Files` of the database's provider (`openDatabase` gives it): its
 * metadata says which SQL the file journal is written in.
 */
export function withFiles(prisma: PrismaClient, session: S3Session, secret: string, files: typeof s3Files = s3Files) {
  return prisma.$extends(
    files(session, {
      directUploads: { secret, multipartThreshold: 8 * 1024 * 1024, partSize: 5 * 1024 * 1024 },
    }),
  );
}
export type FilesClient = ReturnType<typeof withFiles>;

export interface DemoOptions {
  prisma: FilesClient;
  session: S3Session;
  /** Lines for the footer: where rows and files are kept. */
  backends: string[];
  /** examples/demo/client.ts bundled for the browser (see `bundleClient`), served as /direct-upload.js. */
  clientScript: string;
}

/** A problem with what the form sent; shown on the page. */
class FormError extends Error {
  constructor(
    message: string,
    readonly status: ContentfulStatusCode = 400,
  ) {
    super(message);
  }
}

/** Requests larger than this are refused before they are read; the avatar's own limit (5 MB) is checked by the library. */
const MAX_REQUEST_BYTES = 20 * 1024 * 1024;

/** The file columns the page may ask upload grants for. */
const DIRECT_FIELDS = ["avatar", "attachment"] as const;
type DirectField = (typeof DIRECT_FIELDS)[number];

/**
 * The message to show for an error the library raises about what was uploaded: a file it
 * rejected (`FileValidationError`), or an upload grant token that is invalid, expired, already
 * used, made for another field, or whose upload never arrived (`GRANT_*` codes). `undefined` for
 * anything else (configuration, credentials, storage outages), which the page does not spell out.
 */
function rejectionMessage(error: unknown): string | undefined {
  if (error instanceof FileValidationError) return error.message;
  if (error instanceof PrismaS3FilesError && error.code.startsWith("GRANT_")) return error.message;
  return undefined;
}

function megabytes(bytes: number): string {
  return `${(bytes / 1e6).toFixed(1)} MB`;
}

export function createApp({ prisma, session, backends, clientScript }: DemoOptions): Hono {
  const app = new Hono();

  /** The page: every user with their avatar, the forms, and an error message when there is one. */
  async function page(error?: string) {
    const users = await prisma.user.findMany({ orderBy: { id: "asc" } });
    const rows = await Promise.all(
      users.map(async (user) => ({
        id: user.id,
        name: user.name,
        // The list shows the 64 × 64 thumbnail made with the avatar (its key derives from the
        // avatar's: no storage call); the original stays as uploaded, linked beside it.
        avatar: user.avatar
          ? { thumbUrl: await user.avatar.variant("thumb").url(), originalUrl: await user.avatar.url() }
          : undefined,
        attachment: user.attachment
          ? {
              name: user.attachment.name.split("/").pop(),
              url: await user.attachment.url({ download: true }),
              size: await user.attachment.size(),
            }
          : undefined,
      })),
    );
    return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>prisma-s3-files demo</title>
<style>
  body { font: 15px/1.5 system-ui, sans-serif; max-width: 46rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
  form { display: inline-flex; gap: .5rem; align-items: center; margin: 0; }
  ul { list-style: none; padding: 0; }
  li { display: flex; gap: 1rem; align-items: center; padding: .6rem 0; border-bottom: 1px solid #ddd; flex-wrap: wrap; }
  img { width: 64px; height: 64px; border: 1px solid #ccc; }
  .no-avatar { display: inline-block; width: 64px; height: 64px; background: #eee; }
  .original { font-size: 13px; }
  .name { min-width: 8rem; font-weight: 600; }
  .error { background: #fde8e8; border: 1px solid #e0a0a0; padding: .6rem .8rem; }
  h2 { font-size: 1.05rem; margin: 1.5rem 0 .5rem; }
  .direct-upload { flex-wrap: wrap; }
  .direct-upload output { color: #555; font-size: 13px; }
  footer { margin-top: 2rem; color: #555; font-size: 13px; }
</style>
</head>
<body>
<h1>Users</h1>
${error ? html`<p class="error" role="alert">${error}</p>` : ""}
<form method="post" action="/users" enctype="multipart/form-data">
  <label>Name <input name="name" required maxlength="100"></label>
  <label>Avatar <input type="file" name="avatar" accept="image/png,image/jpeg,image/webp"></label>
  <button>Add user</button>
</form>
<h2>Upload directly to S3</h2>
<form class="direct-upload" id="direct-upload" method="post" action="/users/direct">
  <label>Your name <input name="name" required maxlength="100"></label>
  <label>Avatar image <input type="file" data-field="avatar" accept="image/png,image/jpeg,image/webp"></label>
  <label>Attachment (up to 100 MB) <input type="file" data-field="attachment"></label>
  <input type="hidden" name="avatar"><input type="hidden" name="attachment">
  <button>Upload directly</button>
  <progress value="0" max="1" hidden></progress> <output></output>
</form>
<ul>
${rows.map(
  (u) => html`<li class="user" data-id="${u.id}">
  ${u.avatar ? html`<img src="${u.avatar.thumbUrl}" alt="${u.name}'s avatar">` : html`<span class="no-avatar" title="no avatar"></span>`}
  <span class="name">${u.name}</span>
  ${u.avatar ? html`<a class="original" href="${u.avatar.originalUrl}">original</a>` : ""}
  ${
    u.attachment
      ? html`<a class="attachment" href="${u.attachment.url}">${u.attachment.name}</a> <span class="attachment-size">${megabytes(u.attachment.size)}</span>`
      : ""
  }
  <form method="post" action="/users/${u.id}/avatar" enctype="multipart/form-data">
    <input type="file" name="avatar" accept="image/png,image/jpeg,image/webp" required aria-label="New avatar for ${u.name}">
    <button>Replace avatar</button>
  </form>
  ${u.avatar ? html`<form method="post" action="/users/${u.id}/avatar/delete"><button>Remove avatar</button></form>` : ""}
  <form class="direct-upload" method="post" action="/users/${u.id}/direct" data-require-file>
    <input type="file" data-field="attachment" aria-label="New attachment for ${u.name}">
    <input type="hidden" name="attachment">
    <button>Upload attachment</button>
    <progress value="0" max="1" hidden></progress> <output></output>
  </form>
  <form method="post" action="/users/${u.id}/delete"><button>Delete user</button></form>
</li>`,
)}
</ul>
${footer()}
<script type="module" src="/direct-upload.js"></script>
</body>
</html>`;
  }

  /** The point of the project: one session for every request and URL, its credentials fetched once and refreshed ahead of expiry. */
  function footer() {
    const s = session.stats();
    const expiry = s.expiresAt
      ? html`${s.expiresAt.toISOString()} (next refresh ${s.nextRefreshAt?.toISOString() ?? "-"})`
      : "none";
    return html`<footer>
  <p id="session-stats">S3 session: credential source <b>${s.source}</b>;
  credential fetches <b>${s.credentialFetches}</b> (for all requests and signed URLs so far);
  expiry ${expiry}${s.refreshFailures > 0 ? html`; refresh failures ${s.refreshFailures} (last: ${s.lastError ?? "-"})` : ""}.</p>
  <p>${backends.map((b, i) => html`${i > 0 ? html`<br>` : ""}${b}`)}</p>
</footer>`;
  }

  /** The form's `avatar` file, or `undefined` when none was chosen (browsers send an empty, nameless part). */
  function fileOf(form: FormData): File | undefined {
    const value = form.get("avatar");
    return value instanceof File && (value.size > 0 || value.name !== "") ? value : undefined;
  }

  /** The grant tokens a direct-upload form carries, by field; empty ones (no file chosen) left out. */
  function tokensOf(form: FormData): Partial<Record<DirectField, string>> {
    const tokens: Partial<Record<DirectField, string>> = {};
    for (const field of DIRECT_FIELDS) {
      const value = form.get(field);
      if (typeof value !== "string" || value === "") continue;
      // Only a grant token: any other string would be written as a key, unverified (another
      // user's file, say).
      if (!isGrantToken(value)) throw new FormError("Not an upload grant token");
      tokens[field] = value;
    }
    return tokens;
  }

  function userId(param: string): number {
    const id = Number(param);
    if (!Number.isSafeInteger(id) || id <= 0) throw new FormError("No such user", 404);
    return id;
  }

  app.use(
    bodyLimit({
      maxSize: MAX_REQUEST_BYTES,
      onError: async (c) => c.html(await page(`The upload is too large (this demo reads at most 20 MB).`), 413),
    }),
  );

  app.get("/", async (c) => c.html(await page()));

  app.get("/direct-upload.js", (c) => c.body(clientScript, 200, { "content-type": "text/javascript; charset=utf-8" }));

  /** The page's script asks for a grant per file: JSON `{ field, filename, contentType, size }`. */
  app.post("/grants", async (c) => {
    const body = (await c.req.json().catch(() => undefined)) as Record<string, unknown> | undefined;
    const field = body?.field;
    const { filename, contentType, size } = body ?? {};
    if (
      !DIRECT_FIELDS.includes(field as DirectField) ||
      typeof filename !== "string" ||
      filename === "" ||
      filename.length > 255 ||
      typeof contentType !== "string" ||
      contentType.length > 255 ||
      typeof size !== "number" ||
      !Number.isSafeInteger(size) ||
      size < 0
    ) {
      return c.json({ error: "A grant needs field (avatar or attachment), filename, contentType and size" }, 400);
    }
    try {
      // Pure computation for small files; for large ones the library starts the multipart upload.
      return c.json(await prisma.user.uploadGrant(field as DirectField, { filename, contentType, size }));
    } catch (error) {
      const message = rejectionMessage(error);
      if (message === undefined) throw error;
      return c.json({ error: message }, 422);
    }
  });

  /** The direct-upload form: the name and the grants' tokens (the files are already in S3). */
  app.post("/users/direct", async (c) => {
    const form = await c.req.formData();
    const name = String(form.get("name") ?? "").trim();
    if (name === "" || name.length > 100) throw new FormError("Name: enter 1 to 100 characters");
    // Each token is verified (object present, size, type, unused grant for this field) and the
    // object moved to its final key before the row is written.
    await prisma.user.create({ data: { name, ...tokensOf(form) } });
    return c.redirect("/", 303);
  });

  /** A row's direct-upload form: a new attachment (or avatar) from its grant's token. */
  app.post("/users/:id/direct", async (c) => {
    const id = userId(c.req.param("id"));
    const tokens = tokensOf(await c.req.formData());
    if (Object.keys(tokens).length === 0) throw new FormError("Choose a file to upload");
    // Verifies and moves the new object, updates the row, then deletes the old object.
    await prisma.user.update({ where: { id }, data: tokens });
    return c.redirect("/", 303);
  });

  app.post("/users", async (c) => {
    const form = await c.req.formData();
    const name = String(form.get("name") ?? "").trim();
    if (name === "" || name.length > 100) throw new FormError("Name: enter 1 to 100 characters");
    const file = fileOf(form);
    await prisma.user.create({ data: { name, avatar: file ? upload(file) : null } });
    return c.redirect("/", 303);
  });

  app.post("/users/:id/avatar", async (c) => {
    const id = userId(c.req.param("id"));
    const file = fileOf(await c.req.formData());
    if (!file) throw new FormError("Choose a file to replace the avatar with");
    // Stores the new object, updates the row, then deletes the old object.
    await prisma.user.attach({ id }, "avatar", file);
    return c.redirect("/", 303);
  });

  app.post("/users/:id/avatar/delete", async (c) => {
    // Sets the column to null, then deletes the object.
    await prisma.user.detach({ id: userId(c.req.param("id")) }, "avatar");
    return c.redirect("/", 303);
  });

  app.post("/users/:id/delete", async (c) => {
    // Deleting the row deletes its avatar too, once the delete has committed.
    await prisma.user.delete({ where: { id: userId(c.req.param("id")) } });
    return c.redirect("/", 303);
  });

  app.onError(async (error, c) => {
    const rejected = rejectionMessage(error);
    if (rejected !== undefined) return c.html(await page(rejected), 422);
    if (error instanceof FormError) return c.html(await page(error.message), error.status);
    if ((error as { code?: string }).code === "P2025") return c.html(await page("No such user"), 404);
    console.error(error);
    return c.html(await page("Something went wrong; the server's log has the details."), 500);
  });

  return app;
}
