import type { AwsCredentialIdentity, AwsCredentialIdentityProvider } from "@smithy/types";
import { CredentialsError } from "../errors.js";
import { describeCredentials, RedactedCredentials } from "./redacted-credentials.js";

/** Refresh windows and retry pacing, all in seconds. */
export interface RefreshOptions {
  /** From this long before expiry, refresh in the background (botocore: 900). */
  advisorySeconds?: number;
  /** From this long before expiry, callers wait for a refresh already in flight (botocore: 600). */
  mandatorySeconds?: number;
  /** Never start two fetches closer than this, so a source handing out short-lived credentials cannot cause a storm. */
  minIntervalSeconds?: number;
  /** First retry delay after a failed refresh; doubles per failure (with jitter) up to `retryMaxSeconds`. */
  retryBaseSeconds?: number;
  retryMaxSeconds?: number;
}

/** Counters and times of a credential cache; safe to log (no secrets). */
export interface CredentialStats {
  /** Where credentials come from, e.g. `instance-metadata`, `static`. */
  source: string;
  /** Fetch attempts made (each may be several HTTP requests, e.g. 3 for IMDSv2). */
  credentialFetches: number;
  /** Fetch attempts that failed. */
  refreshFailures: number;
  consecutiveFailures: number;
  lastFetchAt: Date | undefined;
  expiresAt: Date | undefined;
  nextRefreshAt: Date | undefined;
  refreshInFlight: boolean;
  /** Message of the last failure (our wording plus the provider's message; never a secret). */
  lastError: string | undefined;
}

export interface CredentialCacheOptions {
  /** Name shown in errors and stats. */
  source: string;
  refresh?: RefreshOptions;
  /** Called for refresh failures while valid credentials remain. */
  onRefreshError?: (error: CredentialsError) => void;
}

const DEFAULTS: Required<RefreshOptions> = {
  advisorySeconds: 900,
  mandatorySeconds: 600,
  minIntervalSeconds: 1,
  retryBaseSeconds: 1,
  retryMaxSeconds: 60,
};

/**
 * Holds one credential set and keeps it fresh off the request path.
 *
 * - Cold start: the first caller fetches; concurrent callers share that fetch.
 * - Valid credentials are returned at once. A timer (unref'd) refreshes them in the background
 *   when the advisory window opens, with jitter; failures are retried with exponential backoff.
 * - Inside the mandatory window a caller waits for a refresh already in flight (and still gets
 *   the current credentials if it fails); it never starts a second one. It waits at most until
 *   shortly before the credentials it holds stop being usable, then gets them: a refresh over a
 *   hanging source may outlive them, and must not fail a request that arrived while they were
 *   usable. The refresh keeps running and replaces them when it lands.
 * - Without valid credentials callers wait for a fetch; right after a failed one they get its
 *   error at once instead of hammering a source that is down.
 *
 * It calls the provider with `{ forceRefresh: true }` so a memoizing provider (the SDK's default
 * chain) really fetches: this cache, not the SDK's memoizer, decides when.
 */
export class RefreshingCredentialCache {
  readonly #provider: AwsCredentialIdentityProvider;
  readonly #opts: Required<RefreshOptions>;
  readonly #source: string;
  readonly #onRefreshError: ((error: CredentialsError) => void) | undefined;
  #current: RedactedCredentials | undefined;
  #inFlight: Promise<RedactedCredentials> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #nextRefreshAt: number | undefined;
  #lastFetchStartedAt = Number.NEGATIVE_INFINITY;
  #lastFetchAt: number | undefined;
  #lastFailureAt = Number.NEGATIVE_INFINITY;
  #lastError: CredentialsError | undefined;
  #fetches = 0;
  #failures = 0;
  #consecutiveFailures = 0;
  #closed = false;

  constructor(provider: AwsCredentialIdentityProvider, options: CredentialCacheOptions) {
    this.#provider = provider;
    this.#source = options.source;
    this.#onRefreshError = options.onRefreshError;
    this.#opts = { ...DEFAULTS, ...stripUndefined(options.refresh ?? {}) };
    if (this.#opts.mandatorySeconds > this.#opts.advisorySeconds) {
      throw new RangeError("refresh.mandatorySeconds must not exceed refresh.advisorySeconds");
    }
  }

  /** A cache over fixed credentials: never fetches. */
  static fromStatic(credentials: AwsCredentialIdentity): RefreshingCredentialCache {
    const frozen = new RedactedCredentials(credentials);
    const cache = new RefreshingCredentialCache(async () => frozen, { source: "static" });
    cache.#current = frozen;
    return cache;
  }

  /** Current credentials, fetching only when no usable ones exist (see the class comment). */
  async get(): Promise<RedactedCredentials> {
    if (this.#closed)
      throw new CredentialsError(this.#source, "The session was destroyed; credentials are no longer served");
    const now = Date.now();
    const current = this.#current;
    if (current && this.#isUsable(current, now)) {
      if (!current.expiration) return current;
      const remaining = current.expiration.getTime() - now;
      if (remaining <= this.#opts.mandatorySeconds * 1000 && this.#inFlight) {
        // Released a little before they stop being usable: the SDK asks again while signing the
        // same request (credentials expiring within 5 min are re-resolved by its signer), and that
        // second ask must still find them usable.
        const margin = this.#usableMargin();
        const giveUpAt = current.expiration.getTime() - margin - Math.min(1000, margin / 2);
        return this.#awaitFetch(current, this.#inFlight, giveUpAt);
      }
      // Safety net for a timer that fired late (suspended process, blocked event loop).
      if (remaining <= this.#opts.advisorySeconds * 1000 && !this.#inFlight && this.#mayFetch(now)) {
        this.#fetch().catch(() => {});
      }
      return current;
    }
    // Nothing usable: wait for a fetch, but never start two, nor more than one per interval.
    if (this.#inFlight) return this.#awaitFetch(current);
    const wait = this.#lastFetchStartedAt + this.#opts.minIntervalSeconds * 1000 - now;
    if (wait > 0) {
      // A short-lived source: what we hold still works, so use it rather than refetch.
      if (current && isUnexpired(current, now)) return current;
      // The last attempt failed moments ago: fail fast instead of hammering a source that is down.
      if (this.#lastError && this.#lastFailureAt >= this.#lastFetchStartedAt) throw this.#lastError;
      await sleep(wait);
      return this.get();
    }
    return this.#awaitFetch(current, this.#fetch());
  }

  /**
   * Waits for a fetch; if it fails, credentials that have not expired yet are still returned.
   * With `giveUpAt` (epoch ms), stops waiting then and returns `fallback`; the fetch runs on.
   */
  async #awaitFetch(
    fallback: RedactedCredentials | undefined,
    fetch: Promise<RedactedCredentials> | undefined = this.#inFlight,
    giveUpAt?: number,
  ): Promise<RedactedCredentials> {
    const pending = fetch as Promise<RedactedCredentials>;
    let timer: NodeJS.Timeout | undefined;
    try {
      if (giveUpAt === undefined || fallback === undefined) return await pending;
      const held = fallback;
      const givenUp = new Promise<RedactedCredentials>((resolve) => {
        timer = setTimeout(() => resolve(held), Math.max(0, giveUpAt - Date.now()));
      });
      return await Promise.race([pending, givenUp]);
    } catch (error) {
      if (fallback && isUnexpired(fallback, Date.now())) return fallback;
      throw error;
    } finally {
      // A refresh landing first must not leave one timer per waiting caller behind.
      if (timer) clearTimeout(timer);
    }
  }

  /** The current credentials if they are usable right now, without waiting; for synchronous fast paths. */
  peek(): RedactedCredentials | undefined {
    const c = this.#current;
    return c && this.#isUsable(c, Date.now()) ? c : undefined;
  }

  stats(): CredentialStats {
    return {
      source: this.#source,
      credentialFetches: this.#fetches,
      refreshFailures: this.#failures,
      consecutiveFailures: this.#consecutiveFailures,
      lastFetchAt: this.#lastFetchAt === undefined ? undefined : new Date(this.#lastFetchAt),
      expiresAt: this.#current?.expiration,
      nextRefreshAt: this.#nextRefreshAt === undefined ? undefined : new Date(this.#nextRefreshAt),
      refreshInFlight: this.#inFlight !== undefined,
      lastError: this.#lastError?.message,
    };
  }

  /** Stops the refresh timer; later `get()` calls fail. Idempotent. */
  close(): void {
    this.#closed = true;
    this.#clearTimer();
  }

  get source(): string {
    return this.#source;
  }

  /**
   * Usable = not within a small margin of expiry, so a request is never signed with credentials
   * that expire on the wire. The margin is 5 s, less for very short mandatory windows.
   */
  #isUsable(c: AwsCredentialIdentity, now: number): boolean {
    if (!c.expiration) return true;
    return c.expiration.getTime() - now > this.#usableMargin();
  }

  #usableMargin(): number {
    return Math.min(5000, (this.#opts.mandatorySeconds * 1000) / 4);
  }

  #mayFetch(now: number): boolean {
    return now - this.#lastFetchStartedAt >= this.#opts.minIntervalSeconds * 1000;
  }

  #fetch(): Promise<RedactedCredentials> {
    this.#clearTimer();
    this.#fetches++;
    this.#lastFetchStartedAt = Date.now();
    const attempt = (async () => {
      try {
        const raw = await this.#provider({ forceRefresh: true });
        if (!raw || typeof raw.accessKeyId !== "string" || typeof raw.secretAccessKey !== "string") {
          throw new TypeError("the provider returned no access key id / secret access key");
        }
        const fresh = raw instanceof RedactedCredentials ? raw : new RedactedCredentials(raw);
        this.#current = fresh;
        this.#lastFetchAt = Date.now();
        this.#consecutiveFailures = 0;
        this.#scheduleAfterSuccess(fresh);
        return fresh;
      } catch (cause) {
        this.#failures++;
        this.#consecutiveFailures++;
        this.#lastFailureAt = Date.now();
        const held = this.#current && this.#isUsable(this.#current, Date.now()) ? this.#current : undefined;
        const error = new CredentialsError(
          this.#source,
          `Could not obtain AWS credentials from ${this.#source}: ${messageOf(cause)}` +
            (held ? ` (still using credentials ${describeCredentials(held)})` : ""),
          { cause },
        );
        this.#lastError = error;
        this.#scheduleRetry();
        if (held) this.#onRefreshError?.(error);
        throw error;
      } finally {
        this.#inFlight = undefined;
      }
    })();
    this.#inFlight = attempt;
    return attempt;
  }

  #scheduleAfterSuccess(c: AwsCredentialIdentity): void {
    if (!c.expiration) return; // static: never refreshed
    const now = Date.now();
    const remaining = c.expiration.getTime() - now;
    const advisory = this.#opts.advisorySeconds * 1000;
    const minInterval = this.#opts.minIntervalSeconds * 1000;
    let delay: number;
    if (remaining > advisory) {
      // Spread refreshes of many processes over the first half of the advisory-only span.
      const spread = Math.min(advisory - this.#opts.mandatorySeconds * 1000, remaining - advisory) / 2;
      delay = remaining - advisory + Math.random() * Math.max(0, spread);
    } else {
      // Arrived already inside the advisory window (a short-lived source): refresh halfway.
      delay = remaining / 2;
    }
    this.#schedule(Math.max(delay, minInterval));
  }

  #scheduleRetry(): void {
    const base = this.#opts.retryBaseSeconds * 1000;
    const max = this.#opts.retryMaxSeconds * 1000;
    const exp = Math.min(max, base * 2 ** Math.min(30, this.#consecutiveFailures - 1));
    const delay = exp / 2 + Math.random() * (exp / 2); // "equal jitter"
    this.#schedule(Math.max(delay, this.#opts.minIntervalSeconds * 1000));
  }

  #schedule(delayMs: number): void {
    if (this.#closed) return;
    this.#clearTimer();
    this.#nextRefreshAt = Date.now() + delayMs;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#nextRefreshAt = undefined;
      if (!this.#inFlight) this.#fetch().catch(() => {});
    }, delayMs);
    this.#timer.unref(); // a pending refresh must not keep the process alive
  }

  #clearTimer(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#nextRefreshAt = undefined;
  }
}

function isUnexpired(c: AwsCredentialIdentity, now: number): boolean {
  return !c.expiration || c.expiration.getTime() > now;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function messageOf(e: unknown): string {
  if (e instanceof Error) {
    const code = (e as { code?: unknown }).code;
    return typeof code === "string" && !e.message.includes(code) ? `${e.message} (${code})` : e.message;
  }
  return String(e);
}
