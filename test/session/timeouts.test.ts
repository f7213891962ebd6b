/**
 * The session's own timeouts: an idle timeout that counts only the server's silence, and a
 * connect timeout that does not count the wait for a pooled socket. Fake servers on 127.0.0.1
 * play the failures; the last test runs the defaults against the harness's S3 server.
 */
import { randomBytes } from "node:crypto";
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from "node:http";
import { connect, createServer, type Socket } from "node:net";
import { Readable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { inspect } from "node:util";
import { Worker } from "node:worker_threads";
import { HeadObjectCommand, PutObjectCommand } from "@aws-sdk/client-s3";
import { afterEach, describe, expect, inject, it } from "vitest";
import { createSession, type S3Session, S3Storage, type SessionOptions, TimeoutError } from "../../src/index.js";
import { sessionOptionsFor } from "../harness/s3.js";

const SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
// Generous against a loaded machine: a trickle 0.5 × IDLE apart must never look idle.
const IDLE = 1_000;
const closers: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

function fakeSession(endpoint: string, options: Partial<SessionOptions> = {}): S3Session {
  const session = createSession({
    region: "us-east-1",
    endpoint,
    forcePathStyle: true,
    bucket: "b",
    credentials: { accessKeyId: "AKIDEXAMPLE", secretAccessKey: SECRET },
    checksums: "when_required",
    ...options,
  });
  closers.push(() => session.destroy());
  return session;
}

/** An HTTP server whose handler plays the S3 side; counts the requests it got. */
async function httpServer(handler: (req: IncomingMessage, res: ServerResponse) => void) {
  let requests = 0;
  let connections = 0;
  const sockets = new Set<Socket>();
  const server = createHttpServer((req, res) => {
    requests++;
    handler(req, res);
  });
  server.on("connection", (s) => {
    connections++;
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  closers.push(
    () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  );
  return {
    endpoint: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
    requests: () => requests,
    connections: () => connections,
  };
}

/** Rejects if `p` has not settled after `ms`: a hang, not a slow run. */
async function within<T>(ms: number, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`still pending after ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

describe("idle timeout", () => {
  it("a server that accepts and never answers: TimeoutError (idle), retried by the SDK, no secret in it", async () => {
    let connections = 0;
    const server = createServer((socket) => {
      connections++;
      socket.resume(); // reads the request, never answers
      socket.on("error", () => {});
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const sockets: Socket[] = [];
    server.on("connection", (s) => sockets.push(s));
    closers.push(() => {
      for (const s of sockets) s.destroy();
      server.close();
    });
    const session = fakeSession(`http://127.0.0.1:${(server.address() as { port: number }).port}`, {
      idleTimeoutMs: IDLE,
    });
    const storage = new S3Storage({ session });
    const error = await within(20_000, storage.size("a/b.txt")).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TimeoutError);
    expect(error).toMatchObject({ code: "TIMEOUT", phase: "idle", timeoutMs: IDLE });
    // Transient for the SDK: its default three attempts, each on a new connection (the timed-out one is destroyed).
    expect(connections).toBe(3);
    expect(session.stats().timeouts).toMatchObject({ idleTimeouts: 3, connectTimeouts: 0 });
    expect(`${inspect(error)} ${JSON.stringify(error)}`).not.toContain(SECRET);
  });

  it("a server that stops mid-body: the open() stream fails with TimeoutError after the bytes that came", async () => {
    const sent = 64 * 1024;
    const server = await httpServer((_req, res) => {
      res.writeHead(200, { "content-length": String(1024 * 1024), "content-type": "application/octet-stream" });
      res.write(Buffer.alloc(sent, 1)); // and never the rest
    });
    const session = fakeSession(server.endpoint, { idleTimeoutMs: IDLE, clientConfig: { maxAttempts: 1 } });
    const stream = await new S3Storage({ session }).open("big.bin");
    let received = 0;
    stream.on("data", (c: Buffer) => {
      received += c.length;
    });
    const error = await within(
      10_000,
      new Promise((resolve, reject) => {
        stream.on("error", resolve);
        stream.on("end", () => reject(new Error("the stream ended")));
      }),
    );
    expect(error).toBeInstanceOf(TimeoutError);
    expect(error).toMatchObject({ phase: "idle" });
    expect(received).toBe(sent);
    expect(server.requests()).toBe(1);
  });

  it("never cuts a download that trickles one chunk below the idle limit, nor one whose reader pauses", async () => {
    const chunk = Buffer.alloc(16 * 1024, 2);
    const chunks = 8; // 8 gaps of 0.5 × IDLE: the whole body takes 4 × IDLE
    const trickle = await httpServer(async (_req, res) => {
      res.writeHead(200, { "content-length": String(chunk.length * chunks) });
      for (let i = 0; i < chunks; i++) {
        res.write(chunk);
        await sleep(IDLE * 0.5);
      }
      res.end();
    });
    const session = fakeSession(trickle.endpoint, { idleTimeoutMs: IDLE, clientConfig: { maxAttempts: 1 } });
    const body = await within(20_000, readAll(await new S3Storage({ session }).open("slow.bin")));
    expect(body.length).toBe(chunk.length * chunks);

    // A fast server, a reader that stops for 3 × IDLE: the silence is ours (the server is blocked on us).
    const size = 16 * 1024 * 1024;
    const fast = await httpServer((_req, res) => {
      res.writeHead(200, { "content-length": String(size) });
      res.end(Buffer.alloc(size, 3));
    });
    const paused = fakeSession(fast.endpoint, { idleTimeoutMs: IDLE, clientConfig: { maxAttempts: 1 } });
    const stream = await new S3Storage({ session: paused }).open("big.bin");
    const first = await new Promise<Buffer>((resolve) =>
      stream.once("data", (c: Buffer) => {
        stream.pause();
        resolve(c);
      }),
    );
    await sleep(IDLE * 3);
    const rest = await within(20_000, readAll(stream));
    expect(first.length + rest.length).toBe(size);
    expect(session.stats().timeouts.idleTimeouts + paused.stats().timeouts.idleTimeouts).toBe(0);
  });

  it("never cuts an upload whose body we produce slower than the idle limit", async () => {
    const server = await httpServer((req, res) => {
      req.resume();
      req.on("end", () => res.writeHead(200, { etag: '"x"' }).end());
    });
    const session = fakeSession(server.endpoint, { idleTimeoutMs: IDLE, clientConfig: { maxAttempts: 1 } });
    const part = Buffer.alloc(1024, 4);
    async function* slowly() {
      for (let i = 0; i < 3; i++) {
        await sleep(IDLE * 1.5); // each gap longer than the idle timeout: our silence, not the server's
        yield part;
      }
    }
    await within(
      20_000,
      session.client.send(
        new PutObjectCommand({ Bucket: "b", Key: "slow.bin", Body: Readable.from(slowly()), ContentLength: 3 * 1024 }),
      ),
    );
    expect(server.requests()).toBe(1);
    expect(session.stats().timeouts.idleTimeouts).toBe(0);
  });
});

/**
 * A listening socket that never accepts: a worker thread listens with a backlog of 1 and then
 * blocks its event loop, so nothing accepts; once the kernel's accept queue is full (filled here
 * by a few plain connections), further SYNs are dropped and a connect hangs, as with a firewall
 * dropping packets or a server too overloaded to accept.
 */
async function neverAccepts(): Promise<{ port: number }> {
  const lock = new Int32Array(new SharedArrayBuffer(4));
  const worker = new Worker(
    `const { parentPort, workerData } = require("node:worker_threads");
     const server = require("node:net").createServer();
     server.listen({ port: 0, host: "127.0.0.1", backlog: 1 }, () => {
       parentPort.postMessage(server.address().port);
       Atomics.wait(workerData, 0, 0); // the loop is blocked: no accept() until released
       server.close();
     });`,
    { eval: true, workerData: lock },
  );
  const port = await new Promise<number>((r) => worker.once("message", r));
  const fillers = Array.from({ length: 4 }, () => connect(port, "127.0.0.1").on("error", () => {}));
  closers.push(async () => {
    for (const f of fillers) f.destroy();
    Atomics.store(lock, 0, 1);
    Atomics.notify(lock, 0);
    await worker.terminate();
  });
  await sleep(100); // the fillers' handshakes, completed by the kernel
  return { port };
}

describe("connect timeout", () => {
  it("a server that never accepts: TimeoutError (connect) for each attempt", async () => {
    const { port } = await neverAccepts();
    const session = fakeSession(`http://127.0.0.1:${port}`, {
      connectTimeoutMs: 300,
      clientConfig: { maxAttempts: 2 },
    });
    const error = await within(20_000, new S3Storage({ session }).exists("x.txt")).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TimeoutError);
    expect(error).toMatchObject({ code: "TIMEOUT", phase: "connect", timeoutMs: 300 });
    expect(session.stats().timeouts).toMatchObject({ connectTimeouts: 2, idleTimeouts: 0 });
  });

  it("does not count the wait for a pooled socket", async () => {
    const server = await httpServer((_req, res) => {
      setTimeout(() => res.writeHead(200, { "content-length": "0" }).end(), 500); // 4 × 500 ms queued behind one socket
    });
    const session = fakeSession(server.endpoint, {
      maxSockets: 1,
      connectTimeoutMs: 400,
      clientConfig: { maxAttempts: 1 },
    });
    const results = await within(
      20_000,
      Promise.allSettled(
        Array.from({ length: 4 }, (_, i) => session.client.send(new HeadObjectCommand({ Bucket: "b", Key: `k${i}` }))),
      ),
    );
    expect(results.map((r) => r.status)).toEqual(["fulfilled", "fulfilled", "fulfilled", "fulfilled"]);
    expect(server.requests()).toBe(4);
    expect(session.stats().timeouts.connectTimeouts).toBe(0);
  });
});

describe("keep-alive", () => {
  it("drops a pooled socket a second before the server's announced keep-alive timeout, reuses it before", async () => {
    // Announces 2 s and never closes: only the client's pool decides.
    const server = await httpServer((_req, res) => {
      res.writeHead(200, { "content-length": "0", "keep-alive": "timeout=2" }).end();
    });
    const session = fakeSession(server.endpoint, { clientConfig: { maxAttempts: 1 } });
    const head = () => session.client.send(new HeadObjectCommand({ Bucket: "b", Key: "k" }));
    await head();
    await sleep(300);
    await head(); // idle 0.3 s: the same socket
    expect(server.connections()).toBe(1);
    await sleep(1_500);
    await head(); // idle 1.5 s, past 2 s − 1 s: a new socket (Node alone would reuse the old one)
    expect(server.requests()).toBe(3);
    expect(server.connections()).toBe(2);
  });
});

describe("the defaults against the harness's S3 server", () => {
  it("200-way concurrency, twice across the server's keep-alive window: no spurious failure", async () => {
    const session = createSession(sessionOptionsFor(inject("s3")));
    closers.push(() => session.destroy());
    const storage = new S3Storage({ session, location: `timeouts-${randomBytes(4).toString("hex")}` });
    const body = randomBytes(64 * 1024);
    let failures = 0;
    for (let round = 0; round < 2; round++) {
      const results = await Promise.allSettled(
        Array.from({ length: 200 }, async (_, i) => {
          const name = await storage.save(`r${round}/f${i}.bin`, body);
          const back = await readAll(await storage.open(name));
          if (!back.equals(body)) throw new Error(`${name} read back different bytes`);
          await storage.delete(name);
        }),
      );
      const rejected = results.filter((r) => r.status === "rejected") as PromiseRejectedResult[];
      failures += rejected.length;
      // Each failure with its cause (the SDK's error), to say what failed.
      expect(rejected.map((r) => `${r.reason} ← ${(r.reason as Error).cause}`)).toEqual([]);
      // Pooled sockets sit idle past s3rver's 5 s keep-alive before the second round reuses the pool.
      if (round === 0) await sleep(5_500);
    }
    expect(failures).toBe(0);
    expect(session.stats().timeouts).toMatchObject({ connectTimeouts: 0, idleTimeouts: 0 });
  }, 120_000);
});
