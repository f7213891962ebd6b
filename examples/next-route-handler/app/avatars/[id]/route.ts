/**
 * `app/avatars/[id]/route.ts` of a Next.js app (App Router): web `Request` / `Response` only.
 * POST a multipart form with an `avatar` file; GET redirects to the avatar's signed URL.
 */
// In your application: from "prisma-s3-files", and `import { prisma } from "@/lib/prisma"`.
import { FileValidationError } from "../../../../../src/entries/index.js";
import { prisma } from "../../../lib/prisma.js";

// The AWS SDK and Prisma's driver adapters need the Node.js runtime, not the Edge runtime.
export const runtime = "nodejs";

/** What Next passes as the second argument (its params are a promise since Next 15). */
interface RouteContext {
  params: Promise<{ id: string }>;
}

export async function POST(request: Request, { params }: RouteContext): Promise<Response> {
  const id = Number((await params).id);
  const file = (await request.formData()).get("avatar");
  if (!(file instanceof File)) return Response.json({ error: "avatar: a file is required" }, { status: 400 });
  try {
    // Validates (size, type from the bytes), stores, updates the row, then deletes the old object.
    const avatar = await prisma.user.attach({ id }, "avatar", file);
    return Response.json({ avatar: avatar.name }, { status: 201 });
  } catch (error) {
    if (error instanceof FileValidationError) return Response.json({ error: error.message }, { status: 422 });
    throw error;
  }
}

export async function GET(_request: Request, { params }: RouteContext): Promise<Response> {
  const user = await prisma.user.findUnique({ where: { id: Number((await params).id) } });
  if (!user?.avatar) return new Response("Not found", { status: 404 });
  // A short-lived signed URL, computed locally from the session's cached credentials.
  return Response.redirect(await user.avatar.url(), 302);
}
