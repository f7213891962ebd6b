import { createServer, request } from "node:http";

/** One request the proxy saw (preflights included). */
export interface SeenRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  /** The status the browser got. */
  status: number;
  faulted: boolean;
}

export interface BrowserFault {
  match: (req: { method: string; path: string; query: URLSearchParams }) => boolean;
  /** HTTP status and S3 error code of the injected answer. */
  status: number;
  code: string;
  /** How many matching requests to answer so (default 1). */
  times?: number;
}

/**
 * A proxy in front of the S3 server for browser tests: forwards requests unchanged, and answers
 * chosen ones with an S3 error document *with* CORS headers, so the page can read the error, as it
 * can read real S3's errors (the harness's proxy answers without CORS headers: a network error to a browser).
 */
export async function startFaultProxy(upstreamEndpoint: string) {
  const upstream = new URL(upstreamEndpoint);
  const seen: SeenRequest[] = [];
  const faults: (BrowserFault & { used: number })[] = [];
  const inFlight = new Map<string, number>();
  const maxInFlight = new Map<string, number>();
  const server = createServer((req, res) => {
    const method = req.method ?? "GET";
    const now = (inFlight.get(method) ?? 0) + 1;
    inFlight.set(method, now);
    maxInFlight.set(method, Math.max(maxInFlight.get(method) ?? 0, now));
    res.on("close", () => inFlight.set(method, (inFlight.get(method) ?? 1) - 1));
    const url = new URL(req.url ?? "/", "http://proxy");
    const entry: SeenRequest = {
      method,
      path: decodeURIComponent(url.pathname),
      query: url.searchParams,
      status: 0,
      faulted: false,
    };
    seen.push(entry);
    const fault =
      entry.method === "OPTIONS" ? undefined : faults.find((f) => f.used < (f.times ?? 1) && f.match(entry));
    if (fault) {
      fault.used++;
      entry.faulted = true;
      entry.status = fault.status;
      req.resume();
      req.on("end", () => {
        res.writeHead(fault.status, {
          "content-type": "application/xml",
          "access-control-allow-origin": req.headers.origin ?? "*",
          "access-control-expose-headers": "ETag",
        });
        res.end(
          `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${fault.code}</Code><Message>injected by the test &amp; its proxy</Message><RequestId>TEST123</RequestId></Error>`,
        );
      });
      return;
    }
    const up = request(
      { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers },
      (upRes) => {
        entry.status = upRes.statusCode ?? 0;
        res.writeHead(upRes.statusCode ?? 502, upRes.headers);
        upRes.pipe(res);
      },
    );
    up.on("error", () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  return {
    endpoint: `http://127.0.0.1:${port}`,
    seen,
    addFault(fault: BrowserFault) {
      faults.push({ ...fault, used: 0 });
    },
    /** The most requests of `method` that were open at once since the last reset. */
    maxInFlight: (method: string) => maxInFlight.get(method) ?? 0,
    reset() {
      faults.length = 0;
      seen.length = 0;
      maxInFlight.clear();
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
