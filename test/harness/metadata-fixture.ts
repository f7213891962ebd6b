import { randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { Socket } from "node:net";

/**
 * A credential metadata endpoint on 127.0.0.1 speaking the real wire protocols the AWS SDK's
 * providers use: EC2 instance metadata v2 (PUT token, GET role, GET role credentials) and the
 * ECS container-credentials endpoint (one GET). Knobs for latency, lifetime and failures;
 * counters per path. Nothing in the SDK is mocked: point its providers here.
 */
export type FailureMode = "none" | "refuse" | "http500" | "hang";

export interface MetadataFixtureOptions {
  /** Added before answering each request. */
  latencyMs?: number;
  /** Lifetime of each credential set handed out (seconds). Default 6 hours, as IMDS. */
  lifetimeSeconds?: number;
  failure?: FailureMode;
  roleName?: string;
  /** Hand out these keys (e.g. the test S3 server's) instead of random ones. */
  accessKeyId?: string;
  secretAccessKey?: string;
  /** `false`: hand out an empty session token, for servers that reject unknown tokens. */
  sessionToken?: boolean;
  /** Path of the ECS endpoint. */
  ecsPath?: string;
}

export interface IssuedCredentials {
  AccessKeyId: string;
  SecretAccessKey: string;
  Token: string;
  Expiration: string;
}

const TOKEN_PATH = "/latest/api/token";
const ROLE_PATH = "/latest/meta-data/iam/security-credentials/";

export class MetadataFixture {
  private server: Server;
  private sockets = new Set<Socket>();
  private tokens = new Set<string>();
  private opts: Required<MetadataFixtureOptions>;
  private _port = 0;
  /** Requests seen per path (method + path), including failed ones. */
  readonly counts = new Map<string, number>();
  /** Every credential set handed out, in order. */
  readonly issued: IssuedCredentials[] = [];

  private constructor(opts: MetadataFixtureOptions) {
    this.opts = {
      latencyMs: 0,
      lifetimeSeconds: 6 * 3600,
      failure: "none",
      roleName: "psf-test-role",
      accessKeyId: "",
      secretAccessKey: "",
      sessionToken: true,
      ecsPath: "/v2/credentials/psf-test",
      ...opts,
    };
    this.server = this.makeServer();
  }

  static async start(opts: MetadataFixtureOptions = {}): Promise<MetadataFixture> {
    const f = new MetadataFixture(opts);
    await f.listen(0);
    return f;
  }

  get port(): number {
    return this._port;
  }
  /** Value for AWS_EC2_METADATA_SERVICE_ENDPOINT. */
  get imdsEndpoint(): string {
    return `http://127.0.0.1:${this._port}`;
  }
  /** Value for AWS_CONTAINER_CREDENTIALS_FULL_URI. */
  get ecsUri(): string {
    return `http://127.0.0.1:${this._port}${this.opts.ecsPath}`;
  }

  /** Total requests received (all paths). */
  get total(): number {
    let n = 0;
    for (const v of this.counts.values()) n += v;
    return n;
  }

  /** Credential sets handed out (successful credential responses). */
  get credentialResponses(): number {
    return this.issued.length;
  }

  resetCounts(): void {
    this.counts.clear();
    this.issued.length = 0;
  }

  /** Changes knobs at run time. Switching to/from `refuse` closes/reopens the listening socket. */
  async set(opts: Partial<MetadataFixtureOptions>): Promise<void> {
    const wasRefusing = this.opts.failure === "refuse";
    Object.assign(this.opts, opts);
    const refusing = this.opts.failure === "refuse";
    if (refusing && !wasRefusing) await this.close();
    if (!refusing && wasRefusing) {
      this.server = this.makeServer();
      await this.listen(this._port);
    }
  }

  /**
   * Points the SDK's environment-driven providers at this fixture and returns a function that
   * restores the previous values. `imds` alone makes the SDK's default chain use IMDSv2 (it
   * prefers the container endpoint when that is set); `ecs` makes it use the container protocol.
   */
  useEnv(which: "imds" | "ecs" | "both" = "both"): () => void {
    const keys = [
      "AWS_EC2_METADATA_SERVICE_ENDPOINT",
      "AWS_CONTAINER_CREDENTIALS_FULL_URI",
      "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
      "AWS_EC2_METADATA_DISABLED",
      "AWS_ACCESS_KEY_ID",
      "AWS_SECRET_ACCESS_KEY",
      "AWS_SESSION_TOKEN",
      "AWS_PROFILE",
    ] as const;
    const previous = keys.map((k) => process.env[k]);
    for (const k of keys) delete process.env[k];
    if (which !== "ecs") process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT = this.imdsEndpoint;
    if (which !== "imds") process.env.AWS_CONTAINER_CREDENTIALS_FULL_URI = this.ecsUri;
    return () => {
      keys.forEach((k, i) => {
        if (previous[i] === undefined) delete process.env[k];
        else process.env[k] = previous[i];
      });
    };
  }

  async stop(): Promise<void> {
    if (this.opts.failure !== "refuse") await this.close();
    this.opts.failure = "refuse";
  }

  private makeServer(): Server {
    const server = createServer((req, res) => void this.handle(req, res));
    server.on("connection", (s) => {
      this.sockets.add(s);
      s.on("close", () => this.sockets.delete(s));
    });
    return server;
  }

  private listen(port: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(port, "127.0.0.1", () => {
        this._port = (this.server.address() as { port: number }).port;
        resolve();
      });
    });
  }

  private close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? "/").split("?")[0] as string;
    const key = `${req.method} ${path}`;
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
    for await (const _ of req) {
      // drain the body
    }
    if (this.opts.latencyMs > 0) await new Promise((r) => setTimeout(r, this.opts.latencyMs));
    if (this.opts.failure === "hang") return; // never answer; the client's timeout fires
    if (this.opts.failure === "http500") return this.send(res, 500, "internal error");

    if (req.method === "PUT" && path === TOKEN_PATH) {
      if (!req.headers["x-aws-ec2-metadata-token-ttl-seconds"]) return this.send(res, 400, "missing ttl");
      const token = randomBytes(24).toString("base64url");
      this.tokens.add(token);
      return this.send(res, 200, token);
    }
    if (req.method === "GET" && path.startsWith(ROLE_PATH)) {
      const token = req.headers["x-aws-ec2-metadata-token"];
      if (typeof token !== "string" || !this.tokens.has(token)) return this.send(res, 401, "unauthorized");
      const role = path.slice(ROLE_PATH.length);
      if (role === "") return this.send(res, 200, this.opts.roleName);
      if (role !== this.opts.roleName) return this.send(res, 404, "not found");
      return this.send(
        res,
        200,
        JSON.stringify({ Code: "Success", LastUpdated: new Date().toISOString(), Type: "AWS-HMAC", ...this.issue() }),
      );
    }
    if (req.method === "GET" && path === this.opts.ecsPath) {
      return this.send(res, 200, JSON.stringify(this.issue()));
    }
    return this.send(res, 404, "not found");
  }

  private issue(): IssuedCredentials {
    const creds: IssuedCredentials = {
      AccessKeyId: this.opts.accessKeyId || `ASIA${randomBytes(8).toString("hex").toUpperCase()}`,
      SecretAccessKey: this.opts.secretAccessKey || randomBytes(30).toString("base64"),
      Token: this.opts.sessionToken ? randomBytes(48).toString("base64") : "",
      Expiration: new Date(Date.now() + this.opts.lifetimeSeconds * 1000).toISOString(),
    };
    this.issued.push(creds);
    return creds;
  }

  private send(res: ServerResponse, status: number, body: string): void {
    res.writeHead(status, { "content-type": body.startsWith("{") ? "application/json" : "text/plain" });
    res.end(body);
  }
}
