/** Classifies SDK errors by what they mean for a storage, whatever the server's wording. */

interface SdkErrorLike {
  name?: string;
  Code?: string;
  $metadata?: { httpStatusCode?: number };
}

function status(error: unknown): number | undefined {
  return (error as SdkErrorLike | null)?.$metadata?.httpStatusCode;
}

function name(error: unknown): string | undefined {
  const e = error as SdkErrorLike | null;
  return e?.name ?? e?.Code;
}

/** The object (or upload) does not exist. */
export function isNotFound(error: unknown): boolean {
  const n = name(error);
  return n === "NoSuchKey" || n === "NotFound" || status(error) === 404;
}

/** A conditional write found the key taken (`If-None-Match: *`). */
export function isPreconditionFailed(error: unknown): boolean {
  const n = name(error);
  return n === "PreconditionFailed" || status(error) === 412;
}

/** Another conditional write to the same key is in progress (S3 answers 409 to the loser). */
export function isConditionalConflict(error: unknown): boolean {
  const n = name(error);
  return n === "ConditionalRequestConflict" || status(error) === 409;
}

/** The request was aborted through its AbortSignal. */
export function isAbort(error: unknown): boolean {
  return name(error) === "AbortError";
}

/** The server does not implement the operation (s3rver: 501 NotImplemented, or 405 MethodNotAllowed). */
export function isNotImplemented(error: unknown): boolean {
  const n = name(error);
  const s = status(error);
  return n === "NotImplemented" || n === "MethodNotAllowed" || s === 501 || s === 405;
}
