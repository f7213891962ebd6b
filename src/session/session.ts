import { Agent as HttpAgent } from "node:http";
import { Agent as HttpsAgent } from "node:https";
import { inspect } from "node:util";
import { S3Client, type S3ClientConfig } from "@aws-sdk/client-s3";
import { fromNodeProviderChain } from "@aws-sdk/credential-providers";
import { NodeHttpHandler } from "@smithy/node-http-handler";
import type { AwsCredentialIdentity, AwsCredentialIdentityProvider } from "@smithy/types";
import { CredentialsError } from "../errors.js";
// For its side effect: the Prisma binding builds its default S3Storage through it.
import "../storage/s3/register-default.js";
import { type CredentialStats, RefreshingCredentialCache, type RefreshOptions } from "./credential-cache.js";
import type { RedactedCredentials } from "./redacted-credentials.js";

/** Options of {@link createSession}. */
export interface SessionOptions {
  /** AWS region; default: the SDK's resolution (AWS_REGION, profile, ...). */
  region?: string;
  /** Default bucket for storages built on this session. */
  bucket?: string;
  /** Custom endpoint (MinIO, R2, s3rver, ...). */
  endpoint?: string;
  /** Path-style addressing (`endpoint/bucket/key`), needed by most S3-compatible servers. */
  forcePathStyle?: boolean;
  /** Fixed credentials or a provider; default: the SDK's Node provider chain. */
  credentials?: AwsCredentialIdentity | AwsCredentialIdentityProvider;
  /** Name of the credential source for errors and stats (default: derived, e.g. `default chain (instance metadata)`). */
  credentialSource?: string;
  /** Shared-config profile to take credentials from (ignored when `credentials` is given). */
  profile?: string;
  /** Keep-alive pool size per protocol (default 50, as the SDK). */
  maxSockets?: number;
  /**
   * Idle timeout of each S3 request in ms: a request fails with the SDK's `TimeoutError` once its
   * connection has carried no bytes, in either direction, for this long (a hung server, a dead
   * peer). It bounds silence, not duration, so an upload or download that keeps moving is never
   * cut off, whatever its size; a download whose reader stops reading for this long does fail.
   * The SDK retries a timed-out request like any transient failure (`clientConfig.maxAttempts`).
   * Time spent waiting for a pooled socket does not count. Default `0`: none, as the SDK's own
   * handler (a hung server then hangs the request). Values of 6000 and more go through smithy's
   * deferred timeout registration, which under heavy concurrency against a server with a short
   * keep-alive timeout (s3rver: 5 s) made pooled requests fail with ECONNRESET in our torture
   * race test; values below 6000 did not. Does not apply when `clientConfig.requestHandler` is given.
   */
  requestTimeoutMs?: number;
  /** Refresh windows (defaults 900 s / 600 s as botocore) and retry pacing. */
  refresh?: RefreshOptions;
  /** Timeout of one credential fetch in ms for the default chain's metadata providers (default 1000). */
  credentialTimeoutMs?: number;
  /**
   * Checksums on requests and validation on responses. `"when_required"` turns off the SDK's
   * default CRC32 (some S3-compatible servers reject it). Default: the SDK's (`"when_supported"`).
   */
  checksums?: "when_supported" | "when_required";
  /**
   * Anything else for the S3Client. `credentials` here is ignored: the session owns it. A
   * `requestHandler` here replaces the session's, as given: `maxSockets` and `requestTimeoutMs`
   * then do not apply (set its own timeouts), and `destroy()` closes it with the session's clients.
   */
  clientConfig?: Partial<S3ClientConfig>;
  /** Where warnings go (refresh failures while credentials remain valid, region mismatches). Default: `console`. */
  logger?: { warn(message: string): void };
}

/** Counters of a session; safe to log. */
export interface SessionStats extends CredentialStats {
  /** S3 clients this session made (one, plus one per extra region asked for). */
  clients: number;
  maxSockets: number;
  destroyed: boolean;
}

/**
 * One credential cache, one keep-alive socket pool and one S3 client, shared by every storage
 * and request. Build it once at module scope with {@link createSession}.
 */
export class S3Session {
  /** Default bucket of storages built on this session. */
  readonly bucket: string | undefined;
  readonly endpoint: string | undefined;
  readonly forcePathStyle: boolean;
  /** Whether the SDK adds/validates CRC32 checksums (`when_supported`) or only where required. */
  readonly checksums: "when_supported" | "when_required";
  readonly #cache: RefreshingCredentialCache;
  readonly #clients = new Map<string, S3Client>();
  readonly #primary: S3Client;
  readonly #ownsClient: boolean;
  readonly #handler: NodeHttpHandler | undefined;
  readonly #maxSockets: number;
  readonly #baseConfig: Partial<S3ClientConfig>;
  readonly #logger: { warn(message: string): void };
  readonly #warnedRegions = new Set<string>();
  #region: string | undefined;
  #destroyed = false;

  /** Use {@link createSession} or {@link S3Session.fromClient}. */
  private constructor(init: {
    cache: RefreshingCredentialCache;
    client?: S3Client;
    options: SessionOptions;
  }) {
    const o = init.options;
    this.#cache = init.cache;
    this.bucket = o.bucket;
    this.endpoint = o.endpoint;
    this.forcePathStyle = o.forcePathStyle ?? false;
    this.checksums = o.checksums ?? "when_supported";
    this.#maxSockets = o.maxSockets ?? 50;
    this.#logger = o.logger ?? console;
    this.#region = o.region;
    if (init.client) {
      this.#primary = init.client;
      this.#ownsClient = false;
      this.#handler = undefined;
      this.#baseConfig = {};
    } else {
      const ownHandler = o.clientConfig?.requestHandler;
      if (ownHandler === undefined) {
        const agentOptions = { keepAlive: true, maxSockets: this.#maxSockets };
        this.#handler = new NodeHttpHandler({
          httpAgent: new HttpAgent(agentOptions),
          httpsAgent: new HttpsAgent(agentOptions),
          // An idle timeout, not smithy's `requestTimeout` (a cap on the whole request, which would
          // cut off large transfers) nor its `connectionTimeout` (it also counts the wait for a
          // pooled socket, so it fails queued requests under load).
          socketTimeout: requestTimeoutMs(o.requestTimeoutMs),
        });
      } else {
        this.#handler = undefined;
        if (o.maxSockets !== undefined || o.requestTimeoutMs !== undefined) {
          this.#logger.warn(
            "prisma-s3-files: clientConfig.requestHandler is used as given; the session's maxSockets and requestTimeoutMs do not apply to it",
          );
        }
      }
      this.#baseConfig = {
        ...o.clientConfig,
        ...(o.endpoint === undefined ? {} : { endpoint: o.endpoint }),
        forcePathStyle: this.forcePathStyle,
        ...(this.checksums === "when_required"
          ? { requestChecksumCalculation: "WHEN_REQUIRED", responseChecksumValidation: "WHEN_REQUIRED" }
          : {}),
        // The client's own memoizer sits in front of this provider; it is cheap to call, and the
        // cache behind it decides when to fetch.
        credentials: () => this.#cache.get(),
        requestHandler: ownHandler ?? this.#handler,
      };
      this.#primary = new S3Client({ ...this.#baseConfig, ...(o.region === undefined ? {} : { region: o.region }) });
      this.#ownsClient = true;
    }
    this.#clients.set(o.region ?? "", this.#primary);
  }

  /** Adopts a client the application already has: its credentials are cached and refreshed by this session. */
  static fromClient(client: S3Client, options: Omit<SessionOptions, "credentials" | "clientConfig"> = {}): S3Session {
    const provider: AwsCredentialIdentityProvider = (props) => client.config.credentials(props);
    const cache = new RefreshingCredentialCache(provider, {
      source: "adopted S3Client",
      ...(options.refresh === undefined ? {} : { refresh: options.refresh }),
      onRefreshError: (e) => (options.logger ?? console).warn(e.message),
    });
    const cfg = client.config as { forcePathStyle?: boolean; endpoint?: unknown; isCustomEndpoint?: boolean };
    return new S3Session({
      cache,
      client,
      options: { ...options, forcePathStyle: options.forcePathStyle ?? cfg.forcePathStyle ?? false },
    });
  }

  /** @internal */
  static create(options: SessionOptions): S3Session {
    const logger = options.logger ?? console;
    const onRefreshError = (e: CredentialsError) => logger.warn(e.message);
    let cache: RefreshingCredentialCache;
    const c = options.credentials;
    if (c && typeof c !== "function") {
      cache = RefreshingCredentialCache.fromStatic(c);
    } else if (typeof c === "function") {
      cache = new RefreshingCredentialCache(c, {
        source: options.credentialSource ?? (c.name ? `provider ${c.name}` : "custom provider"),
        ...(options.refresh === undefined ? {} : { refresh: options.refresh }),
        onRefreshError,
      });
    } else {
      const timeout = options.credentialTimeoutMs ?? 1000;
      const provider = fromNodeProviderChain({
        timeout,
        maxRetries: 0,
        ...(options.profile === undefined ? {} : { profile: options.profile }),
      });
      cache = new RefreshingCredentialCache(provider, {
        source: options.credentialSource ?? (options.profile ? `profile ${options.profile}` : defaultChainSource()),
        ...(options.refresh === undefined ? {} : { refresh: options.refresh }),
        onRefreshError,
      });
    }
    return new S3Session({ cache, options });
  }

  /** The one S3 client of this session (keep-alive handler, the session's credentials). */
  get client(): S3Client {
    this.#assertOpen();
    return this.#primary;
  }

  /**
   * A client for another region that shares this session's credentials and socket pool; made
   * once per region. Warns once per region, since a storage in another region than its session
   * is usually a configuration slip.
   */
  async clientForRegion(region: string): Promise<S3Client> {
    this.#assertOpen();
    if (region === (await this.region())) return this.#primary;
    let client = this.#clients.get(region);
    if (!client) {
      if (!this.#ownsClient) {
        throw new CredentialsError(
          this.#cache.source,
          `A session adopted from a client cannot make a client for region ${region}`,
        );
      }
      client = new S3Client({ ...this.#baseConfig, region });
      this.#clients.set(region, client);
    }
    if (!this.#warnedRegions.has(region)) {
      this.#warnedRegions.add(region);
      this.#logger.warn(
        `prisma-s3-files: a storage uses region ${region} but its session is in ${await this.region()}; ` +
          "a second client sharing the session's credentials and sockets serves it",
      );
    }
    return client;
  }

  /** The session's region (resolved by the SDK when not given). */
  async region(): Promise<string> {
    if (this.#region === undefined) this.#region = await this.#primary.config.region();
    return this.#region;
  }

  /** The region if already known, without waiting. */
  regionIfKnown(): string | undefined {
    return this.#region;
  }

  /** Current credentials; fetches only when none are valid. Prints redacted. */
  credentials(): Promise<RedactedCredentials> {
    return this.#cache.get();
  }

  /** Credentials usable right now, or `undefined` (then await {@link credentials}); for synchronous fast paths. */
  peekCredentials(): RedactedCredentials | undefined {
    return this.#destroyed ? undefined : this.#cache.peek();
  }

  stats(): SessionStats {
    return {
      ...this.#cache.stats(),
      clients: this.#clients.size,
      maxSockets: this.#maxSockets,
      destroyed: this.#destroyed,
    };
  }

  /** Closes sockets and stops timers. An adopted client is left open (its owner closes it). Idempotent. */
  async destroy(): Promise<void> {
    if (this.#destroyed) return;
    this.#destroyed = true;
    this.#cache.close();
    if (this.#ownsClient) for (const client of this.#clients.values()) client.destroy();
    this.#clients.clear();
  }

  get destroyed(): boolean {
    return this.#destroyed;
  }

  toJSON(): Record<string, unknown> {
    const s = this.stats();
    return {
      session: "S3Session",
      region: this.#region,
      bucket: this.bucket,
      endpoint: this.endpoint,
      source: s.source,
      credentialFetches: s.credentialFetches,
      expiresAt: s.expiresAt?.toISOString(),
    };
  }

  [inspect.custom](): string {
    return `S3Session ${inspect(this.toJSON())}`;
  }

  #assertOpen(): void {
    if (this.#destroyed) throw new CredentialsError(this.#cache.source, "The session was destroyed");
  }
}

/**
 * Creates the one session an application needs. Credentials are resolved on first use,
 * shared by every storage and request, and refreshed ahead of expiry off the request path.
 */
export function createSession(options: SessionOptions = {}): S3Session {
  return S3Session.create(options);
}

/** Validates {@link SessionOptions.requestTimeoutMs}; 0 means none, as for the SDK's handler. */
function requestTimeoutMs(value: number | undefined): number {
  if (value === undefined) return 0;
  if (!Number.isFinite(value) || value < 0) {
    throw new RangeError(`requestTimeoutMs must be a finite number of milliseconds >= 0, got ${value}`);
  }
  return value;
}

/** Best guess of which link of the SDK's default chain will answer, for messages and stats. */
function defaultChainSource(): string {
  const env = process.env;
  if (env.AWS_PROFILE) return `default chain (profile ${env.AWS_PROFILE})`;
  if (env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY) return "default chain (environment)";
  if (env.AWS_WEB_IDENTITY_TOKEN_FILE) return "default chain (web identity)";
  if (env.AWS_CONTAINER_CREDENTIALS_FULL_URI || env.AWS_CONTAINER_CREDENTIALS_RELATIVE_URI) {
    return "default chain (container metadata)";
  }
  return "default chain (instance metadata)";
}
