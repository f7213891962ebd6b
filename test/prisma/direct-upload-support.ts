/** What the direct-upload tests share: a real PNG and the browser's side of a POST grant. */
import type { UploadGrant } from "../../src/index.js";

/** A real 1×1 PNG. */
export const PNG = Buffer.from(
  "89504e470d0a1a0a0000000d4948445200000001000000010806000000" +
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082",
  "hex",
);

/** What a browser does with a POST grant: the fields in order, the file last. */
export async function postUpload(grant: UploadGrant, bytes: Buffer, type: string): Promise<Response> {
  const form = new FormData();
  for (const [k, v] of Object.entries(grant.post!.fields)) form.append(k, v);
  form.append("file", new Blob([new Uint8Array(bytes)], { type }), "upload");
  return fetch(grant.post!.url, { method: "POST", body: form });
}
