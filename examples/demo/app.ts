/**
 * The demo's pages and form handlers: a list of users with their avatars, a form to add one,
 * and buttons to replace or remove an avatar. Every file goes through the library: `upload(file)`
 * in a create, `attach` / `detach` on the model, `url()` for the `<img>`.
 */
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { html } from "hono/html";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { FileValidationError, type S3Session, upload } from "../../src/index.js";
import { s3Files } from "./generated/files/index.js";
import type { PrismaClient } from "./generated/prisma/client.js";

/** The Prisma client with file fields: `user.avatar` reads as a `FieldFile` (or `null`). */
export function withFiles(prisma: PrismaClient, session: S3Session) {
  return prisma.$extends(s3Files(session));
}
export type FilesClient = ReturnType<typeof withFiles>;

export interface DemoOptions {
  prisma: FilesClient;
  session: S3Session;
  /** Lines for the footer: where rows and files are kept. */
  backends: string[];
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

export function createApp({ prisma, session, backends }: DemoOptions): Hono {
  const app = new Hono();

  /** The page: every user with their avatar, the forms, and an error message when there is one. */
  async function page(error?: string) {
    const users = await prisma.user.findMany({ orderBy: { id: "asc" } });
    const rows = await Promise.all(
      users.map(async (user) => ({ id: user.id, name: user.name, avatarUrl: await user.avatar?.url() })),
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
  img { height: 48px; image-rendering: pixelated; border: 1px solid #ccc; }
  .no-avatar { display: inline-block; width: 48px; height: 48px; background: #eee; }
  .name { min-width: 8rem; font-weight: 600; }
  .error { background: #fde8e8; border: 1px solid #e0a0a0; padding: .6rem .8rem; }
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
<ul>
${rows.map(
  (u) => html`<li class="user" data-id="${u.id}">
  ${u.avatarUrl ? html`<img src="${u.avatarUrl}" alt="${u.name}'s avatar">` : html`<span class="no-avatar" title="no avatar"></span>`}
  <span class="name">${u.name}</span>
  <form method="post" action="/users/${u.id}/avatar" enctype="multipart/form-data">
    <input type="file" name="avatar" accept="image/png,image/jpeg,image/webp" required aria-label="New avatar for ${u.name}">
    <button>Replace avatar</button>
  </form>
  ${u.avatarUrl ? html`<form method="post" action="/users/${u.id}/avatar/delete"><button>Remove avatar</button></form>` : ""}
  <form method="post" action="/users/${u.id}/delete"><button>Delete user</button></form>
</li>`,
)}
</ul>
${footer()}
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
    if (error instanceof FileValidationError) return c.html(await page(error.message), 422);
    if (error instanceof FormError) return c.html(await page(error.message), error.status);
    if ((error as { code?: string }).code === "P2025") return c.html(await page("No such user"), 404);
    console.error(error);
    return c.html(await page("Something went wrong; the server's log has the details."), 500);
  });

  return app;
}
