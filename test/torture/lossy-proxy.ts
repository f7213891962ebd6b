/**
 * A pass-through HTTP proxy that can lose responses: a matching request IS forwarded (so the
 * server acts on it), and then the client's socket is reset instead of answering. This is the
 * timeout that matters for consistency — the client cannot know whether its write landed —
 * and the harness proxy (whose faults all happen before forwarding) cannot produce it.
 *
 * Chain it in front of the harness proxy: client → lossy proxy → s3-proxy → S3 server.
 * Headers go through unchanged, so signatures stay valid.
 */
import { createServer, type IncomingMessage, request } from "node:http";

export interface LostResponse {
  method: string;
  /** Decoded path without the query, `/bucket/key`. */
  path: string;
  query: URLSearchParams;
  /** What the server answered before the response was dropped; -1: the client gave up first (outcome unknown). */
  upstreamStatus: number;
}

export interface LossyFault {
  match: (req: { method: string; path: string; query: URLSearchParams }) => boolean;
  /** How many matching requests lose their response (default 1). */
  times?: number;
}

export async function startLossyProxy(target: string) {
  const upstream = new URL(target);
  const faults: (LossyFault & { used: number })[] = [];
  const lost: LostResponse[] = [];
  let active = 0;
  let lastActivity = Date.now();

  const server = createServer(async (req: IncomingMessage, res) => {
    active++;
    lastActivity = Date.now();
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      active--;
      lastActivity = Date.now();
    };
    const url = new URL(req.url ?? "/", "http://proxy");
    const entry = { method: req.method ?? "GET", path: decodeURIComponent(url.pathname), query: url.searchParams };
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    const fault = faults.find((f) => f.used < (f.times ?? 1) && f.match(entry));
    if (fault) fault.used++;
    const up = request(
      { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers },
      (upRes) => {
        answered = true;
        if (fault) {
          // Let the server finish, then drop the answer on the floor.
          upRes.resume();
          upRes.on("end", () => {
            lost.push({ ...entry, upstreamStatus: upRes.statusCode ?? 0 });
            req.socket.destroy();
          });
          return;
        }
        res.writeHead(upRes.statusCode ?? 502, upRes.headers);
        upRes.pipe(res);
      },
    );
    // The client gave up (its timeout, a reset): stop waiting for the server too.
    // If the server had not answered yet, it may still act on the request (store the object):
    // that is a lost response too, with an unknown outcome.
    let answered = false;
    res.on("close", () => {
      if (!res.writableFinished) {
        if (!answered && !fault) lost.push({ ...entry, upstreamStatus: -1 });
        up.destroy();
      }
      finish();
    });
    up.on("error", (e) => {
      if (!res.headersSent) res.writeHead(502).end(String(e));
      else res.destroy();
    });
    up.end(body);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    /** Requests whose response was dropped, in order. */
    lost,
    addFault(fault: LossyFault) {
      faults.push({ ...fault, used: 0 });
    },
    clearFaults() {
      faults.length = 0;
    },
    /**
     * Resolves once no request has been open for `settleMs` (or after `maxMs`): lets work that
     * outlives a failed call (an upload still in flight) land before the bucket is listed.
     */
    async idle(settleMs = 25, maxMs = 3000): Promise<boolean> {
      const deadline = Date.now() + maxMs;
      while (Date.now() < deadline) {
        if (active === 0 && Date.now() - lastActivity >= settleMs) return true;
        await new Promise((r) => setTimeout(r, 5));
      }
      return false;
    },
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

export type LossyProxy = Awaited<ReturnType<typeof startLossyProxy>>;
