import { Agent as HttpAgent } from "node:http";
import { Agent as HttpsAgent } from "node:https";
import { inspect } from "node:util";
import { S3Client, type S3ClientConfig } from "@aws-sdk/client-s3";
import { fromNodeProviderChain } from "@aws-sdk/credential-providers";
import { NodeHttpHandler } from "@smithy/node-http-handler";
import type { AwsCredentialIdentity, AwsCredentialIdentityProvider } from "@smithy/types";
import { CredentialsError, type TimeoutError } from "../errors.js";
import { type CredentialStats, RefreshingCredentialCache, type RefreshOptions } from "./credential-cache.js";
import type { RedactedCredentials } from "./redacted-credentials.js";
import { applyTimeouts, type TimeoutStats } from "./timeouts.js";

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
   * Idle timeout of each S3 request in ms (default {@link DEFAULT_IDLE_TIMEOUT_MS}; `0` turns it
   * off): a request fails with {@link TimeoutError} (`phase: "idle"`) once it has waited this long
   * on the server without a byte moving either way (a hung server, a dead peer, a body that stops
   * mid-way). It bounds silence, not duration: an upload or download that keeps moving is never
   * cut off, whatever its size, and silence that is ours does not count (a body we are still
   * producing, a download whose reader has stopped reading). The SDK retries a timed-out request
   * like any transient failure (`clientConfig.maxAttempts`, default 3). Does not apply when
   * `clientConfig.requestHandler` is given.
   */
  idleTimeoutMs?: number;
  /**
   * Connect timeout in ms (default {@link DEFAULT_CONNECT_TIMEOUT_MS}; `0` turns it off): opening a
   * new connection (TLS included) that takes longer fails with {@link TimeoutError}
   * (`phase: "connect"`). Time a request waits for a pooled socket does not count. Does not apply
   * when `clientConfig.requestHandler` is given.
   */
  connectTimeoutMs?: number;
  /** @deprecated The former name of {@link idleTimeoutMs} (used when that is not given). */
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
  /** What the connect and idle timeouts did (zeros with `clientConfig.requestHandler`). */
  timeouts: TimeoutStats;
}

/**
 * Default idle timeout: six times the longest silence measured while waiting on a server, 10 s,
 * the completion of a 1 GiB multipart upload on s3rver (which concatenates the parts before it
 * answers) on a loaded 2-core machine (`npm run bench -- stream`, `write_longest_server_silence_ms`);
 * botocore's read timeout is the same 60 s. AWS S3 sends whitespace while a long completion or copy
 * runs. With the SDK's 3 attempts a hung server fails an operation after about three times this.
 */
export const DEFAULT_IDLE_TIMEOUT_MS = 60_000;
/**
 * Default connect timeout: 17 times the longest connect measured in bursts of 200 new connections
 * to a local S3 server at load 14 (294 ms; p50 178 ms), and room for two lost SYNs (Linux
 * retransmits after 1 s, then 2 s more).
 */
export const DEFAULT_CONNECT_TIMEOUT_MS = 5_000;

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
  readonly #timeoutStats: TimeoutStats = { connectTimeouts: 0, idleTimeouts: 0, longestSilenceMs: 0 };
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
        const timeouts = {
          idleTimeoutMs: timeoutMs("idleTimeoutMs", o.idleTimeoutMs ?? o.requestTimeoutMs, DEFAULT_IDLE_TIMEOUT_MS),
          connectTimeoutMs: timeoutMs("connectTimeoutMs", o.connectTimeoutMs, DEFAULT_CONNECT_TIMEOUT_MS),
        };
        this.#handler = new NodeHttpHandler({
          httpAgent: applyTimeouts(new HttpAgent(agentOptions), timeouts, this.#timeoutStats),
          httpsAgent: applyTimeouts(new HttpsAgent(agentOptions), timeouts, this.#timeoutStats),
          // Our own timeouts, on the agents, instead of smithy's: its `requestTimeout` caps the whole
          // request (it would cut off large transfers), its `connectionTimeout` also counts the wait
          // for a pooled socket (it fails queued requests under load), and its `socketTimeout` is
          // registered late on sockets the pool may already have handed on (ECONNRESET under load).
          socketTimeout: 0,
        });
      } else {
        this.#handler = undefined;
        const given = [o.maxSockets, o.idleTimeoutMs, o.connectTimeoutMs, o.requestTimeoutMs];
        if (given.some((v) => v !== undefined)) {
          this.#logger.warn(
            "prisma-s3-files: clientConfig.requestHandler is used as given; the session's maxSockets and timeouts do not apply to it",
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
      timeouts: { ...this.#timeoutStats },
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

/** Validates a timeout option; 0 turns it off. */
function timeoutMs(option: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value < 0) {
    throw new RangeError(`${option} must be a finite number of milliseconds >= 0, got ${value}`);
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
