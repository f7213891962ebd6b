import { createServer, type IncomingMessage, request, type ServerResponse } from "node:http";
import type { S3Target } from "./s3.js";

/** One request seen by the proxy. */
export interface ProxiedRequest {
  method: string;
  /** Path without the query, e.g. `/bucket/key`. */
  path: string;
  query: URLSearchParams;
  headers: IncomingMessage["headers"];
  status: number;
  /** The keys of a DeleteObjects request (`POST ?delete`), from its XML body. */
  deleteKeys?: string[];
  /** What the proxy did instead of forwarding, if anything. */
  handled?: "fault" | "conditional-emulation" | "abort-emulation";
}

export interface Fault {
  /** Which requests to affect. */
  match: (req: { method: string; path: string; query: URLSearchParams }) => boolean;
  /**
   * `status`: answer with this HTTP status and an S3 error body (`InternalError`, or `code`), or,
   * with `headers`, with exactly these headers and no body (e.g. a HeadObject of a size the
   * server could not hold), or with `body` as XML (e.g. a DeleteObjects result with per-key
   * errors); `hang`: never answer; `reset`: destroy the socket; `before`: run it, then forward
   * the request as usual (another client's write landing just before this request).
   */
  action:
    | { status: number; headers?: Record<string, string>; code?: string; body?: string }
    | { before: () => Promise<void> }
    | "hang"
    | "reset";
  /** How many matching requests to affect (default: all). */
  times?: number;
}

export interface S3ProxyOptions {
  /**
   * Give `If-None-Match: *` on PutObject / CompleteMultipartUpload its S3 meaning (412 when the
   * key exists), serialised per key, for servers that ignore the header (s3rver). Emulation of a
   * server feature, labelled as such: real S3 and MinIO do this themselves.
   */
  emulateConditionalWrites?: boolean;
  /** Answer AbortMultipartUpload with 204 for servers that lack it (s3rver answers 405). */
  emulateAbortMultipart?: boolean;
}

/**
 * An HTTP proxy in front of the harness's S3 server: records every request, injects faults
 * (5xx, hangs, resets), and can emulate what s3rver lacks. Headers are forwarded unchanged, so
 * signatures made for the proxy's host stay valid on servers that verify them.
 */
export async function startS3Proxy(target: S3Target, options: S3ProxyOptions = {}) {
  const upstream = new URL(target.endpoint);
  const log: ProxiedRequest[] = [];
  const faults: (Fault & { used: number })[] = [];
  const keyLocks = new Map<string, Promise<void>>();

  const forward = (req: IncomingMessage, body: Buffer, res: ServerResponse, entry: ProxiedRequest) =>
    new Promise<void>((resolve) => {
      const up = request(
        {
          host: upstream.hostname,
          port: upstream.port,
          method: req.method,
          path: req.url,
          headers: req.headers,
        },
        (upRes) => {
          entry.status = upRes.statusCode ?? 0;
          res.writeHead(upRes.statusCode ?? 502, upRes.headers);
          upRes.pipe(res);
          upRes.on("end", resolve);
          upRes.on("error", resolve);
        },
      );
      up.on("error", (e) => {
        entry.status = 502;
        if (!res.headersSent) res.writeHead(502).end(String(e));
        else res.destroy();
        resolve();
      });
      up.end(body);
    });

  const objectExists = (path: string, headers: IncomingMessage["headers"]) =>
    new Promise<boolean>((resolve, reject) => {
      const up = request(
        {
          host: upstream.hostname,
          port: upstream.port,
          method: "HEAD",
          path,
          headers: {
            authorization: headers.authorization ?? "",
            "x-amz-date": headers["x-amz-date"] ?? "",
            "x-amz-content-sha256": "UNSIGNED-PAYLOAD",
          },
        },
        (r) => {
          r.resume();
          resolve(r.statusCode === 200);
        },
      );
      up.on("error", reject);
      up.end();
    });

  /** Runs `fn` with the key's lock held: emulated conditional writes must not interleave. */
  const withKeyLock = async (key: string, fn: () => Promise<void>) => {
    const previous = keyLocks.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    const chained = previous.then(() => mine);
    keyLocks.set(key, chained);
    await previous;
    try {
      await fn();
    } finally {
      release();
      if (keyLocks.get(key) === chained) keyLocks.delete(key);
    }
  };

  const server = createServer(async (req, res) => {
    const url = new URL(req.url ?? "/", "http://proxy");
    const entry: ProxiedRequest = {
      method: req.method ?? "GET",
      path: decodeURIComponent(url.pathname),
      query: url.searchParams,
      headers: req.headers,
      status: 0,
    };
    log.push(entry);
    const chunks: Buffer[] = [];
    try {
      for await (const c of req) chunks.push(c as Buffer);
    } catch {
      // The client went away mid-body (an aborted upload's part): there is no one to answer.
      return;
    }
    const body = Buffer.concat(chunks);
    if (req.method === "POST" && url.searchParams.has("delete")) {
      entry.deleteKeys = [...body.toString("utf8").matchAll(/<Key>([^<]*)<\/Key>/g)].map((m) =>
        xmlText(m[1] as string),
      );
    }

    const fault = faults.find((f) => (f.times === undefined || f.used < f.times) && f.match(entry));
    if (fault && typeof fault.action === "object" && "before" in fault.action) {
      fault.used++;
      await fault.action.before();
    } else if (fault) {
      fault.used++;
      entry.handled = "fault";
      if (fault.action === "hang") return;
      if (fault.action === "reset") {
        req.socket.destroy();
        return;
      }
      const { status, headers, code, body } = fault.action as {
        status: number;
        headers?: Record<string, string>;
        code?: string;
        body?: string;
      };
      entry.status = status;
      if (headers) {
        res.writeHead(status, headers).end();
        return;
      }
      res.writeHead(status, { "content-type": "application/xml" });
      res.end(
        body ??
          `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code ?? "InternalError"}</Code><Message>injected by the test proxy</Message></Error>`,
      );
      return;
    }

    const q = url.searchParams;
    if (options.emulateAbortMultipart && req.method === "DELETE" && q.has("uploadId")) {
      entry.handled = "abort-emulation";
      entry.status = 204;
      res.writeHead(204).end();
      return;
    }
    const conditional =
      options.emulateConditionalWrites &&
      req.headers["if-none-match"] === "*" &&
      ((req.method === "PUT" && !q.has("uploadId")) || (req.method === "POST" && q.has("uploadId")));
    if (conditional) {
      await withKeyLock(url.pathname, async () => {
        if (await objectExists(url.pathname, req.headers)) {
          entry.handled = "conditional-emulation";
          entry.status = 412;
          res.writeHead(412, { "content-type": "application/xml" });
          res.end(
            `<?xml version="1.0" encoding="UTF-8"?><Error><Code>PreconditionFailed</Code><Message>At least one of the pre-conditions you specified did not hold</Message></Error>`,
          );
          return;
        }
        await forward(req, body, res, entry);
      });
      return;
    }
    await forward(req, body, res, entry);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;

  return {
    endpoint: `http://127.0.0.1:${port}`,
    /** Every request, in arrival order. */
    log,
    addFault(fault: Fault) {
      faults.push({ ...fault, used: 0 });
    },
    clearFaults() {
      faults.length = 0;
    },
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

export type S3Proxy = Awaited<ReturnType<typeof startS3Proxy>>;

/** The text of an XML text node: the five named entities and numeric character references. */
function xmlText(raw: string): string {
  const named: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };
  return raw.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|amp|lt|gt|quot|apos);/g, (_, e: string) =>
    e.startsWith("#x")
      ? String.fromCodePoint(Number.parseInt(e.slice(2), 16))
      : e.startsWith("#")
        ? String.fromCodePoint(Number(e.slice(1)))
        : (named[e] as string),
  );
}
