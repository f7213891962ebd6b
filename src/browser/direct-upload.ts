/**
 * Uploads a file from the browser straight to S3 with an {@link UploadGrant} the app created.
 *
 * Dependency-free and free of Node APIs: it uses `fetch`, `XMLHttpRequest` (only for progress,
 * which `fetch` cannot report for uploads), `FormData`, `Blob` and `AbortSignal`.
 *
 * The bucket needs a CORS rule for the page's origin allowing `POST` (form uploads) and `PUT`
 * (multipart parts), and it must expose the `ETag` header: the multipart plan's complete request
 * lists every part's ETag, which a browser can read only when the bucket exposes it.
 *
 * @module
 */
import type { UploadGrant } from "./upload-grant.js";

export type { UploadGrant, UploadGrantMultipart, UploadGrantPart, UploadGrantPost } from "./upload-grant.js";

/** Options of {@link uploadWithGrant}. */
export interface UploadWithGrantOptions {
  /**
   * Called as bytes of the file leave the browser, with the bytes sent so far and `file.size`; the
   * last call before the promise resolves has `loaded === total`. Giving it makes the upload use
   * `XMLHttpRequest`, the only browser API that reports upload progress. A part that is sent again
   * after a failure counts from zero again, so `loaded` can go down.
   */
  onProgress?(loaded: number, total: number): void;
  /** Aborts every request in flight; the promise then rejects with `signal.reason`. */
  signal?: AbortSignal;
  /** Multipart parts sent at once (default 3). */
  concurrency?: number;
}

/**
 * Codes of failures that happen before or without an S3 error response. Any other code is the
 * one S3 sent (`AccessDenied`, `EntityTooLarge`, `NoSuchUpload`, …).
 */
export type DirectUploadClientErrorCode =
  /** The grant has neither `post` nor a usable `multipart` plan. */
  | "InvalidGrant"
  /** The file's size does not fit the multipart plan's parts. */
  | "SizeMismatch"
  /** No response: the network failed, or the bucket's CORS rules refused the page's origin. */
  | "NetworkError"
  /** A part's response carried no readable `ETag`: the bucket's CORS rule must expose `ETag`. */
  | "MissingETag"
  /** An error status without an S3 error document. */
  | "UnexpectedResponse";

/**
 * A failed direct upload. `code` and `s3Message` come from S3's XML error document when it sent
 * one; otherwise `code` is one of {@link DirectUploadClientErrorCode}. Aborts are not this error:
 * they reject with the signal's reason.
 */
export class DirectUploadError extends Error {
  override readonly name = "DirectUploadError";
  /** S3's error code (e.g. `AccessDenied`), or a {@link DirectUploadClientErrorCode}. */
  readonly code: string;
  /** HTTP status of the failed response; 0 when there was none. */
  readonly status: number;
  /** S3's `<Message>`, when it sent one. */
  readonly s3Message: string | undefined;
  /** S3's `<RequestId>`, when it sent one (quote it to AWS support). */
  readonly requestId: string | undefined;
  /** The multipart part that failed, when one did. */
  readonly partNumber: number | undefined;

  constructor(
    message: string,
    init: {
      code: string;
      status?: number;
      s3Message?: string;
      requestId?: string;
      partNumber?: number;
      cause?: unknown;
    },
  ) {
    super(message, init.cause === undefined ? undefined : { cause: init.cause });
    this.code = init.code;
    this.status = init.status ?? 0;
    this.s3Message = init.s3Message;
    this.requestId = init.requestId;
    this.partNumber = init.partNumber;
  }
}

/** The fields of an S3 `<Error>` document. */
export interface S3ErrorDocument {
  code: string;
  message: string | undefined;
  requestId: string | undefined;
}

/**
 * Reads S3's XML error document (`<Error><Code>…</Code><Message>…</Message>…</Error>`); `undefined`
 * when `xml` is not one. Uses no `DOMParser`, so it also works in workers.
 */
export function parseS3Error(xml: string): S3ErrorDocument | undefined {
  if (!/<Error[\s>]/.test(xml)) return undefined;
  const code = element(xml, "Code");
  if (code === undefined) return undefined;
  return { code, message: element(xml, "Message"), requestId: element(xml, "RequestId") };
}

function element(xml: string, name: string): string | undefined {
  const match = new RegExp(`<${name}>([^<]*)</${name}>`).exec(xml);
  return match ? decodeXml(match[1]!) : undefined;
}

const XML_ENTITIES: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };

function decodeXml(text: string): string {
  return text.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|[a-z]+);/g, (whole, ref: string) => {
    if (ref.startsWith("#x")) return String.fromCodePoint(Number.parseInt(ref.slice(2), 16));
    if (ref.startsWith("#")) return String.fromCodePoint(Number.parseInt(ref.slice(1), 10));
    return XML_ENTITIES[ref] ?? whole;
  });
}

/** What one request got back. */
interface Reply {
  status: number;
  etag: string | null;
  body: string;
}

/** Reports bytes of one request's body as they are sent (its own total, not the file's). */
type SendProgress = (loaded: number, total: number) => void;

/** Thrown inside {@link send} when there was no response at all. */
class NoResponse extends Error {}

const DEFAULT_CONCURRENCY = 3;
/** Pause before the one retry of a request that met a network error or a 5xx. */
const RETRY_DELAY_MS = 300;

/**
 * Uploads `file` with `grant` — a form POST for small files, the presigned multipart plan for
 * large ones — and resolves with `grant.token` once S3 holds the whole object. The app then passes
 * the token where the column takes an upload (e.g. `prisma.user.update({ data: { avatar: token } })`),
 * and the server verifies the object before the row points at it.
 *
 * Multipart parts go `concurrency` at a time; a part that meets a network error or a 5xx is sent
 * once more (as is a form POST; the complete request only after a 5xx). The first failure aborts
 * the requests still in flight and rejects with a {@link DirectUploadError}. An abort through
 * `opts.signal` rejects with the signal's reason. A multipart upload that was started but not
 * completed is not aborted here (the grant has no abort URL); a bucket lifecycle rule
 * (`AbortIncompleteMultipartUpload`) removes its parts.
 *
 * @param grant What the app's `uploadGrant(...)` returned.
 * @param file The file (or any Blob) of the size the grant was made for.
 * @returns `grant.token`.
 */
export async function uploadWithGrant(
  grant: UploadGrant,
  file: Blob,
  opts: UploadWithGrantOptions = {},
): Promise<string> {
  const { signal, onProgress } = opts;
  const concurrency = opts.concurrency ?? DEFAULT_CONCURRENCY;
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    throw new RangeError("uploadWithGrant: concurrency must be a whole number of at least 1");
  }
  signal?.throwIfAborted();

  const total = file.size;
  let reported = -1;
  const report = onProgress
    ? (loaded: number) => {
        reported = loaded;
        onProgress(loaded, total);
      }
    : undefined;

  if (grant.multipart) await uploadMultipart(grant.multipart, file, concurrency, signal, report);
  else if (grant.post) await uploadPost(grant.post, file, signal, report);
  else
    throw new DirectUploadError("The upload grant has neither a form POST nor a multipart plan", {
      code: "InvalidGrant",
    });

  if (report && reported !== total) report(total);
  return grant.token;
}

async function uploadPost(
  post: NonNullable<UploadGrant["post"]>,
  file: Blob,
  signal: AbortSignal | undefined,
  report: ((loaded: number) => void) | undefined,
): Promise<void> {
  const form = (): FormData => {
    const data = new FormData();
    for (const [name, value] of Object.entries(post.fields)) data.append(name, value);
    // S3 ignores everything after the file, so it goes last.
    data.append("file", file);
    return data;
  };
  // The form's total includes the fields and multipart framing; scale it to the file's bytes.
  const progress: SendProgress | undefined = report
    ? (loaded, bodyTotal) => report(bodyTotal > 0 ? Math.floor((file.size * loaded) / bodyTotal) : 0)
    : undefined;
  await withRetry(
    () => send("POST", post.url, form(), signal, progress),
    { what: "form upload", retryNetworkErrors: true, signal },
    () => report?.(0),
  );
}

async function uploadMultipart(
  plan: NonNullable<UploadGrant["multipart"]>,
  file: Blob,
  concurrency: number,
  outerSignal: AbortSignal | undefined,
  report: ((loaded: number) => void) | undefined,
): Promise<void> {
  const { partSize } = plan;
  const parts = [...plan.parts].sort((a, b) => a.partNumber - b.partNumber);
  if (!(Number.isInteger(partSize) && partSize > 0) || parts.length === 0) {
    throw new DirectUploadError("The upload grant's multipart plan has no parts or no part size", {
      code: "InvalidGrant",
    });
  }
  const expected = Math.max(1, Math.ceil(file.size / partSize));
  if (parts.length !== expected) {
    throw new DirectUploadError(
      `The file has ${file.size} bytes, ${expected} part(s) of ${partSize} bytes, but the grant has ${parts.length}: ` +
        "it was made for a file of another size",
      { code: "SizeMismatch" },
    );
  }

  // One failure stops the other parts: this controller aborts them, as does the caller's signal.
  const stop = new AbortController();
  const onOuterAbort = () => stop.abort(outerSignal?.reason);
  outerSignal?.addEventListener("abort", onOuterAbort, { once: true });
  const signal = stop.signal;

  const sent = new Array<number>(parts.length).fill(0);
  const sum = () => sent.reduce((a, b) => a + b, 0);
  const etags = new Array<string>(parts.length);
  let next = 0;

  const uploadPart = async (index: number): Promise<void> => {
    const part = parts[index]!;
    const body = file.slice(index * partSize, Math.min((index + 1) * partSize, file.size));
    const progress: SendProgress | undefined = report
      ? (loaded) => {
          sent[index] = Math.min(loaded, body.size);
          report(sum());
        }
      : undefined;
    const reply = await withRetry(
      () => send("PUT", part.url, body, signal, progress),
      { what: `part ${part.partNumber}`, partNumber: part.partNumber, retryNetworkErrors: true, signal },
      () => {
        sent[index] = 0;
        report?.(sum());
      },
    );
    if (!reply.etag) {
      throw new DirectUploadError(
        `S3 stored part ${part.partNumber} but the browser cannot read its ETag: the bucket's CORS rule must list ETag under ExposeHeaders`,
        { code: "MissingETag", status: reply.status, partNumber: part.partNumber },
      );
    }
    etags[index] = reply.etag;
    if (progress) progress(body.size, body.size);
  };

  const worker = async (): Promise<void> => {
    while (next < parts.length) {
      signal.throwIfAborted();
      await uploadPart(next++);
    }
  };

  try {
    const workers = Array.from({ length: Math.min(concurrency, parts.length) }, () =>
      worker().catch((error: unknown) => {
        // The first failure is the one reported; the rest are its aborts.
        if (!signal.aborted) stop.abort(error);
        throw error;
      }),
    );
    const settled = await Promise.allSettled(workers);
    if (signal.aborted) throw signal.reason;
    for (const s of settled) if (s.status === "rejected") throw s.reason;

    const body = `<CompleteMultipartUpload>${parts
      .map((p, i) => `<Part><PartNumber>${p.partNumber}</PartNumber><ETag>${escapeXml(etags[i]!)}</ETag></Part>`)
      .join("")}</CompleteMultipartUpload>`;
    // A complete request whose response was lost may have succeeded: only a 5xx is retried.
    await withRetry(() => send("POST", plan.completeUrl, body, signal, undefined), {
      what: "complete request",
      retryNetworkErrors: false,
      signal,
      // S3 can answer CompleteMultipartUpload with 200 and an error document.
      errorIn200: true,
    });
  } finally {
    outerSignal?.removeEventListener("abort", onOuterAbort);
  }
}

function escapeXml(text: string): string {
  return text.replace(/[&<>]/g, (c) => (c === "&" ? "&amp;" : c === "<" ? "&lt;" : "&gt;"));
}

/**
 * Runs `attempt`, and once more after a network error (when allowed) or a 5xx; turns an error
 * status into a {@link DirectUploadError}. `beforeRetry` resets progress.
 */
async function withRetry(
  attempt: () => Promise<Reply>,
  ctx: {
    what: string;
    partNumber?: number;
    retryNetworkErrors: boolean;
    signal: AbortSignal | undefined;
    errorIn200?: boolean;
  },
  beforeRetry?: () => void,
): Promise<Reply> {
  for (let round = 0; ; round++) {
    const last = round >= 1;
    let reply: Reply;
    try {
      reply = await attempt();
    } catch (error) {
      if (!(error instanceof NoResponse)) throw error;
      if (last || !ctx.retryNetworkErrors) {
        throw new DirectUploadError(
          `The ${ctx.what} got no response: a network failure, or the bucket's CORS rules do not allow this page's origin`,
          { code: "NetworkError", partNumber: ctx.partNumber, cause: error },
        );
      }
      await pause(RETRY_DELAY_MS, ctx.signal);
      beforeRetry?.();
      continue;
    }
    const ok = reply.status >= 200 && reply.status < 300;
    const doc = ok && !ctx.errorIn200 ? undefined : parseS3Error(reply.body);
    if (ok && !doc) return reply;
    const serverSide = reply.status >= 500 || (ok && doc !== undefined);
    if (serverSide && !last) {
      await pause(RETRY_DELAY_MS, ctx.signal);
      beforeRetry?.();
      continue;
    }
    throw new DirectUploadError(
      doc
        ? `S3 refused the ${ctx.what}: ${doc.code}${doc.message ? ` (${doc.message})` : ""}`
        : `S3 answered the ${ctx.what} with HTTP ${reply.status}`,
      {
        code: doc?.code ?? "UnexpectedResponse",
        status: reply.status,
        s3Message: doc?.message,
        requestId: doc?.requestId,
        partNumber: ctx.partNumber,
      },
    );
  }
}

function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * One request: `XMLHttpRequest` when upload progress is wanted, `fetch` otherwise. Resolves with
 * any HTTP response; rejects with {@link NoResponse} when there was none, and with the signal's
 * reason on abort.
 */
function send(
  method: "POST" | "PUT",
  url: string,
  body: Blob | FormData | string,
  signal: AbortSignal | undefined,
  progress: SendProgress | undefined,
): Promise<Reply> {
  if (progress && typeof XMLHttpRequest !== "undefined") return sendXhr(method, url, body, signal, progress);
  return sendFetch(method, url, body, signal);
}

async function sendFetch(
  method: string,
  url: string,
  body: Blob | FormData | string,
  signal: AbortSignal | undefined,
): Promise<Reply> {
  signal?.throwIfAborted();
  let response: Response;
  let text: string;
  try {
    response = await fetch(url, { method, body, signal, credentials: "omit", mode: "cors", redirect: "follow" });
    text = await response.text();
  } catch (error) {
    if (signal?.aborted) throw signal.reason;
    throw new NoResponse(String(error), { cause: error });
  }
  return { status: response.status, etag: response.headers.get("ETag"), body: text };
}

function sendXhr(
  method: string,
  url: string,
  body: Blob | FormData | string,
  signal: AbortSignal | undefined,
  progress: SendProgress,
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const xhr = new XMLHttpRequest();
    const onAbort = () => xhr.abort();
    const done = () => signal?.removeEventListener("abort", onAbort);
    xhr.open(method, url);
    xhr.withCredentials = false;
    // A listener on `upload` makes a cross-origin request preflighted; the bucket's CORS rule allows it.
    xhr.upload.onprogress = (e) => progress(e.loaded, e.lengthComputable ? e.total : 0);
    xhr.onload = () => {
      done();
      resolve({ status: xhr.status, etag: xhr.getResponseHeader("ETag"), body: xhr.responseText });
    };
    xhr.onerror = () => {
      done();
      reject(new NoResponse(`${method} ${new URL(url).origin}: network error`));
    };
    xhr.ontimeout = xhr.onerror;
    xhr.onabort = () => {
      done();
      reject(signal?.aborted ? signal.reason : new NoResponse("request aborted"));
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    xhr.send(body);
  });
}
