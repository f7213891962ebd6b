import { createServer } from "node:http";

/**
 * An HTTP server on 127.0.0.1 that answers every request with an empty 200 (enough for S3
 * HeadObject) and counts TCP connections: isolates the client side (credentials, signing,
 * socket pooling) from any S3 server's own cost.
 */
export async function startOkServer(): Promise<{
  endpoint: string;
  connections(): number;
  requests(): number;
  close(): Promise<void>;
}> {
  let connections = 0;
  let requests = 0;
  const server = createServer((req, res) => {
    requests++;
    req.resume();
    req.on("end", () => res.writeHead(200, { "content-length": "0", "last-modified": new Date().toUTCString() }).end());
  });
  server.on("connection", () => connections++);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    endpoint: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
    connections: () => connections,
    requests: () => requests,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
