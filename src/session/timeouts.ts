import type { ClientRequest, Agent as HttpAgent, IncomingMessage } from "node:http";
import type { Socket } from "node:net";
import { TimeoutError } from "../errors.js";

/** The two timeouts of a session's sockets, in ms; `0` turns one off. */
export interface RequestTimeouts {
  /** From opening a new connection to its being usable (TLS included). Time queued for a pooled socket does not count. */
  connectTimeoutMs: number;
  /** How long a request may wait on the server without a byte moving either way. */
  idleTimeoutMs: number;
}

/** What the timeouts did, for {@link S3Session.stats}. */
export interface TimeoutStats {
  /** Connections that did not open within `connectTimeoutMs`. */
  connectTimeouts: number;
  /** Requests failed after `idleTimeoutMs` of waiting on a silent server. */
  idleTimeouts: number;
  /**
   * The longest a finished request waited on its server without a byte moving (at the watch's
   * granularity: a quarter of the idle timeout, at most 1 s): how close the idle timeout came.
   */
  longestSilenceMs: number;
}

interface Watch {
  req: ClientRequest;
  socket: Socket | undefined;
  res: IncomingMessage | undefined;
  /** Bytes read + written on the socket at the last look. */
  bytes: number;
  /** When bytes last moved, or the wait last started to be the server's. */
  since: number;
  longest: number;
}

/**
 * Adds the session's timeouts to a keep-alive agent (HTTP or HTTPS), in place.
 *
 * Connect: armed in `createConnection`, which the agent calls only when it really opens a socket,
 * so requests queued for a pooled socket never count their wait (smithy's `connectionTimeout`
 * runs from the request's creation and fails queued requests under load).
 *
 * Idle: one shared, unref'd ticker looks at each request in flight and counts only silence that
 * is the server's: the request body written (or the socket not draining) and no response yet, or
 * a response the reader wants more of (its buffer below the high-water mark). A body we are still
 * producing slowly, or a response whose reader has stopped reading, is not the server's silence.
 * Activity is the socket's byte counters in both directions, so a transfer that moves is never
 * cut, however long it takes. Nothing calls `socket.setTimeout`: the agent's own keep-alive
 * timeout on free sockets stays as it set it (smithy's deferred `socketTimeout` overwrote it on
 * pooled sockets, which then outlived the server's keep-alive and failed with ECONNRESET).
 */
export function applyTimeouts(agent: HttpAgent, timeouts: RequestTimeouts, stats: TimeoutStats): HttpAgent {
  const { connectTimeoutMs, idleTimeoutMs } = timeouts;
  const internal = agent as unknown as {
    createConnection(options: object, callback: unknown): Socket | undefined;
    addRequest(req: ClientRequest, options: object): void;
  };
  expireFreeSockets(agent);
  if (connectTimeoutMs > 0) {
    const createConnection = internal.createConnection;
    internal.createConnection = function (this: unknown, options, callback) {
      const socket = createConnection.call(this, options, callback);
      if (socket) armConnect(socket, connectTimeoutMs, stats);
      return socket;
    };
  }
  if (idleTimeoutMs > 0) {
    const watches = new Set<Watch>();
    const tickMs = Math.max(10, Math.min(1000, Math.floor(idleTimeoutMs / 4)));
    let ticker: NodeJS.Timeout | undefined;
    const tick = () => {
      const now = performance.now();
      for (const w of watches) {
        const socket = w.socket;
        if (!socket) continue; // queued for a pooled socket: not the server's silence
        if (socket.connecting) {
          w.since = now; // the connect timeout's business
          continue;
        }
        const bytes = socket.bytesRead + socket.bytesWritten;
        if (bytes !== w.bytes || !waitingOnServer(w)) {
          w.bytes = bytes;
          w.since = now;
          continue;
        }
        const silent = now - w.since;
        if (silent > w.longest) w.longest = silent;
        if (silent >= idleTimeoutMs) {
          watches.delete(w);
          stats.idleTimeouts++;
          const error = new TimeoutError(
            "idle",
            idleTimeoutMs,
            `${w.req.method} to ${w.req.host} got no byte either way for ${idleTimeoutMs} ms while waiting on the server (idle timeout)`,
          );
          if (w.res && !w.res.complete) w.res.destroy(error);
          w.req.destroy(error);
        }
      }
      if (watches.size === 0 && ticker) {
        clearInterval(ticker);
        ticker = undefined;
      }
    };
    const addRequest = internal.addRequest;
    internal.addRequest = function (this: unknown, req, options) {
      const w: Watch = { req, socket: undefined, res: undefined, bytes: 0, since: 0, longest: 0 };
      req.once("socket", (socket: Socket) => {
        w.socket = socket;
        w.bytes = socket.bytesRead + socket.bytesWritten;
        w.since = performance.now();
      });
      req.once("response", (res: IncomingMessage) => {
        w.res = res;
      });
      req.once("close", () => {
        if (watches.delete(w) && w.longest > stats.longestSilenceMs) stats.longestSilenceMs = Math.round(w.longest);
      });
      watches.add(w);
      if (!ticker) {
        ticker = setInterval(tick, tickMs);
        ticker.unref();
      }
      addRequest.call(this, req, options);
    };
  }
  return agent;
}

/**
 * Closes pooled sockets a second before the server's announced keep-alive timeout
 * (`Keep-Alive: timeout=5`), as Node does only when the agent has a `timeout` of its own: without
 * one it ignores the hint and keeps free sockets until the server closes them, and a request
 * that takes one as the server closes it fails with ECONNRESET (seen at the start of a burst
 * after a pause against s3rver, timeouts on or off). The timer is cleared when the socket is
 * taken again, so it never applies to a request.
 */
function expireFreeSockets(agent: HttpAgent): void {
  const internal = agent as unknown as { keepSocketAlive(socket: Socket): boolean };
  const keepSocketAlive = internal.keepSocketAlive;
  internal.keepSocketAlive = function (this: unknown, socket) {
    const keep = keepSocketAlive.call(this, socket);
    const res = (socket as { _httpMessage?: { res?: IncomingMessage } })._httpMessage?.res;
    const hint = /^timeout=(\d+)/.exec(String(res?.headers["keep-alive"] ?? ""))?.[1];
    if (keep && hint && !socket.timeout) {
      const ms = Number(hint) * 1000 - 1000;
      if (ms <= 0) return false; // too short to reuse safely, as Node decides
      socket.setTimeout(ms); // the agent destroys a free socket on its timeout
    }
    return keep;
  };
  const addRequest = (agent as unknown as { addRequest(req: ClientRequest, options: object): void }).addRequest;
  (agent as unknown as { addRequest(req: ClientRequest, options: object): void }).addRequest = function (
    this: unknown,
    req,
    options,
  ) {
    req.once("socket", (socket: Socket) => {
      if (socket.timeout) socket.setTimeout(0);
    });
    addRequest.call(this, req, options);
  };
}

/** Whether the request is waiting for the server to send or to take bytes (not for us). */
function waitingOnServer(w: Watch): boolean {
  const res = w.res;
  if (res) return !res.complete && res.readableLength < res.readableHighWaterMark;
  // No response yet: the server's turn once the body is written, or while it does not drain it.
  return w.req.writableEnded || w.req.writableNeedDrain;
}

function armConnect(socket: Socket, ms: number, stats: TimeoutStats): void {
  // TLS sockets are usable at `secureConnect`; a server that accepts and never handshakes counts too.
  const ready = (socket as { encrypted?: boolean }).encrypted === true ? "secureConnect" : "connect";
  const timer = setTimeout(() => {
    stats.connectTimeouts++;
    socket.destroy(new TimeoutError("connect", ms, `Could not connect within ${ms} ms (connect timeout)`));
  }, ms);
  timer.unref();
  const clear = () => clearTimeout(timer);
  socket.once(ready, clear);
  socket.once("close", clear);
}
