/**
 * The demo page's script (bundled by the server with esbuild, served as /direct-upload.js): every
 * `form.direct-upload` sends its files straight to S3 instead of through the app.
 *
 * For each chosen file (`input[type=file][data-field]`, which has no `name`, so the file itself is
 * never posted to the app) it asks the app for a grant (`POST /grants`), uploads with
 * `uploadWithGrant`, and puts the grant's token into the form's hidden input of the same field.
 * Then the form is submitted as usual: the app creates or updates the row with the tokens, and the
 * server verifies each uploaded object before the row points at it.
 */
import { DirectUploadError, type UploadGrant, uploadWithGrant } from "../../src/browser/index.js";

function showError(message: string): void {
  let alert = document.querySelector<HTMLElement>("[role=alert]");
  if (!alert) {
    alert = document.createElement("p");
    alert.className = "error";
    alert.setAttribute("role", "alert");
    document.querySelector("h1")!.after(alert);
  }
  alert.textContent = message;
  // Tells this message (no request to the app was made) from one the app's page carries.
  alert.dataset.source = "client";
}

function megabytes(bytes: number): string {
  return `${(bytes / 1e6).toFixed(1)} MB`;
}

async function requestGrant(field: string, file: File): Promise<UploadGrant> {
  const response = await fetch("/grants", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      field,
      filename: file.name,
      contentType: file.type || "application/octet-stream",
      size: file.size,
    }),
  });
  const body = (await response.json().catch(() => ({}))) as UploadGrant & { error?: string };
  if (!response.ok) throw new Error(body.error ?? `The app refused an upload grant (HTTP ${response.status})`);
  return body;
}

async function uploadDirectly(form: HTMLFormElement): Promise<void> {
  const inputs = [...form.querySelectorAll<HTMLInputElement>("input[type=file][data-field]")];
  const chosen = inputs.flatMap((input) => {
    const file = input.files?.[0];
    return file ? [{ field: input.dataset.field!, file }] : [];
  });
  if (form.dataset.requireFile !== undefined && chosen.length === 0) throw new Error("Choose a file to upload");
  const progress = form.querySelector("progress");
  const status = form.querySelector("output");
  const total = chosen.reduce((sum, c) => sum + c.file.size, 0);
  let done = 0;
  if (progress && chosen.length > 0) progress.hidden = false;
  for (const { field, file } of chosen) {
    const grant = await requestGrant(field, file);
    const token = await uploadWithGrant(grant, file, {
      onProgress(loaded) {
        if (progress) {
          progress.max = total || 1;
          progress.value = done + loaded;
        }
        if (status) status.textContent = `${file.name}: ${megabytes(loaded)} of ${megabytes(file.size)}`;
      },
    });
    done += file.size;
    form.querySelector<HTMLInputElement>(`input[type=hidden][name="${field}"]`)!.value = token;
  }
  if (status) status.textContent = chosen.length > 0 ? "uploaded; saving" : "";
}

for (const form of document.querySelectorAll<HTMLFormElement>("form.direct-upload")) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button");
    if (button) button.disabled = true;
    try {
      await uploadDirectly(form);
      // A plain form submission: the app answers with the page, or with the page and a message.
      form.submit();
    } catch (error) {
      showError(
        error instanceof DirectUploadError
          ? `The upload to S3 failed: ${error.message}`
          : (error as Error).message || String(error),
      );
      if (button) button.disabled = false;
    }
  });
}
