import { createSession, type S3Session } from "./session.js";

let shared: S3Session | undefined;

/**
 * The session used by storages built without one: created on first use, then reused, so even
 * code that never passes a session fetches credentials once per process.
 */
export function getDefaultSession(): S3Session {
  if (!shared || shared.destroyed) shared = createSession();
  return shared;
}
