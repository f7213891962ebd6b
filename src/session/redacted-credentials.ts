import { inspect } from "node:util";
import type { AwsCredentialIdentity } from "@smithy/types";

/** What may be shown of a credential set: the key id's first 4 characters (its kind: AKIA/ASIA) and the expiry. */
export function describeCredentials(c: AwsCredentialIdentity | undefined): string {
  if (!c) return "none";
  const kind = typeof c.accessKeyId === "string" ? `${c.accessKeyId.slice(0, 4)}…` : "?";
  return c.expiration ? `${kind} expiring ${c.expiration.toISOString()}` : `${kind} (no expiry)`;
}

/**
 * A credential set that prints without its secrets. The fields are ordinary own properties,
 * so the SDK's signers (which read or spread them) work unchanged; only `util.inspect`,
 * `console.log`, `String()` and `JSON.stringify` are redacted.
 */
export class RedactedCredentials implements AwsCredentialIdentity {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly sessionToken?: string;
  readonly expiration?: Date;
  readonly credentialScope?: string;
  readonly accountId?: string;

  constructor(c: AwsCredentialIdentity) {
    this.accessKeyId = c.accessKeyId;
    this.secretAccessKey = c.secretAccessKey;
    if (c.sessionToken) this.sessionToken = c.sessionToken;
    if (c.expiration) this.expiration = new Date(c.expiration.getTime());
    if (c.credentialScope) this.credentialScope = c.credentialScope;
    if (c.accountId) this.accountId = c.accountId;
    Object.freeze(this);
  }

  toJSON(): Record<string, string | undefined> {
    return { credentials: describeCredentials(this) };
  }

  toString(): string {
    return `RedactedCredentials(${describeCredentials(this)})`;
  }

  [inspect.custom](): string {
    return this.toString();
  }
}
