import { IncomingMessage } from "node:http";
import { finished, Readable } from "node:stream";
import mime from "mime";
import { StorageError } from "../errors.js";
import { peekIterable, peekReadable, peekWebStream } from "./peek.js";
import type { FileContent, SaveProgress } from "./storage.js";

/**
 * Every {@link FileContent} kind reduced to one shape, so a backend handles a single case:
 * an async iterable of bytes, with what is known about it up front.
 */
export interface NormalizedContent {
  /**
   * Opens the bytes for reading. Replayable content (bytes, `Blob`) may be opened again, e.g. to
   * retry under another name; a one-shot stream throws on the second call.
   */
  open(): AsyncIterable<Uint8Array>;
  /** Byte length when known before reading (bytes, `Blob`); `undefined` for streams. */
  length: number | undefined;
  /** `Blob.type` when it is non-empty. */
  blobType: string | undefined;
  /** `File.name`, when the content is a `File`. */
  fileName: string | undefined;
  /** Whether {@link NormalizedContent.open} may be called more than once. */
  replayable: boolean;
  /** The whole content when it was given in memory (Buffer, Uint8Array, ArrayBuffer). */
  bytes: Uint8Array | undefined;
  /**
   * Stops a stream source for good (destroys a `Readable`, cancels a web stream). Needed after
   * an abort: closing an async iterator that is waiting on a stalled stream does not reach it.
   */
  destroy(reason?: unknown): void;
  /**
   * The first `bytes` bytes (fewer if the content is shorter), without losing them, and the
   * content to read in place of the original:
   *
   * - bytes (`Buffer`, `Uint8Array`, `ArrayBuffer`, views): a view of the start; the content as is;
   * - `Blob`/`File`: `blob.slice(0, bytes)` is read; the same `Blob` (name and type intact);
   * - Node `Readable`: chunks are read until there are enough, and a new `Readable` is returned
   *   that yields them and then the rest of the source, reading the source only as it is read
   *   itself (backpressure), failing with the source's errors, and destroying the source when
   *   destroyed; a byte `Readable` is asked for exactly `bytes` bytes, so a big first chunk
   *   stays in the source;
   * - web `ReadableStream`: likewise, as a new `ReadableStream` that cancels the source when cancelled;
   * - other async iterables: likewise, as a one-shot async iterable whose `destroy()` reaches the source.
   *
   * A stream is read once: after `peek` this object is spent (`open` and `peek` throw
   * `CONTENT_CONSUMED`); read the returned content instead. `bytes` must be a non-negative integer.
   */
  peek(bytes: number): Promise<{ head: Uint8Array; content: FileContent }>;
}

/** The content exceeded the byte limit given to {@link meterContent}. */
export class ContentTooLargeError extends StorageError {
  /** The limit in bytes. */
  readonly limit: number;
  constructor(limit: number, options?: { fileName?: string; cause?: unknown }) {
    super(`Content is larger than the limit of ${limit} bytes`, { ...options, code: "CONTENT_TOO_LARGE" });
    this.limit = limit;
  }
}

/** Chunk size used when slicing in-memory content, so consumers never see one giant chunk. */
const CHUNK_SIZE = 64 * 1024;

function* sliceBytes(bytes: Uint8Array): Generator<Uint8Array> {
  for (let offset = 0; offset < bytes.byteLength; offset += CHUNK_SIZE) {
    yield bytes.subarray(offset, Math.min(offset + CHUNK_SIZE, bytes.byteLength));
  }
}

async function* fromBytes(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  yield* sliceBytes(bytes);
}

/** A `Blob` (or `File`), also from another realm or a polyfill: duck-typed on the parts we use. */
export function isBlob(value: unknown): value is Blob {
  if (typeof Blob !== "undefined" && value instanceof Blob) return true;
  const v = value as Partial<Blob> | null;
  return (
    typeof v === "object" &&
    v !== null &&
    typeof v.stream === "function" &&
    typeof v.slice === "function" &&
    typeof v.arrayBuffer === "function" &&
    typeof v.size === "number" &&
    typeof v.type === "string"
  );
}

export function isWebReadableStream(value: unknown): value is ReadableStream<Uint8Array> {
  if (typeof ReadableStream !== "undefined" && value instanceof ReadableStream) return true;
  const v = value as { getReader?: unknown; pipeTo?: unknown } | null;
  return typeof v === "object" && v !== null && typeof v.getReader === "function" && typeof v.pipeTo === "function";
}

function isAsyncIterable(value: unknown): value is AsyncIterable<unknown> {
  return (
    typeof value === "object" &&
    value !== null &&
    typeof (value as { [Symbol.asyncIterator]?: unknown })[Symbol.asyncIterator] === "function"
  );
}

/**
 * Reads a web stream with a reader (not its async iterator, which TS's DOM lib does not declare).
 * `onReader` hands the reader out so the stream can be cancelled while a read is pending.
 */
async function* fromWebStream(
  stream: ReadableStream<Uint8Array>,
  onReader?: (reader: ReadableStreamDefaultReader<Uint8Array>) => void,
): AsyncGenerator<Uint8Array> {
  const reader = stream.getReader();
  onReader?.(reader);
  let done = false;
  try {
    while (true) {
      const result = await reader.read();
      if (result.done) {
        done = true;
        return;
      }
      yield result.value;
    }
  } finally {
    // Stopped early (abort, error downstream): cancel so the producer stops too.
    if (!done) await reader.cancel().catch(() => undefined);
    reader.releaseLock();
  }
}

/**
 * The chunks of a `Readable` one at a time, each as it was pushed. Readable's own async iterator
 * calls `read()`, which joins everything buffered into one new Buffer: a copy of bytes we copy
 * again into a part, and garbage (a 2 MiB join about once per 5 MiB part when saving a stream of
 * 1 MiB chunks, ~40% more bytes allocated). In flowing mode each 'data' event hands over one
 * pushed chunk as is; the stream is paused while a chunk waits, so backpressure is kept.
 * A stream with a 'readable' listener of someone else's cannot flow: it is read the usual way.
 * On an early return the stream is destroyed (`destroyOnReturn`) or only paused.
 */
export async function* readableChunks(stream: Readable, destroyOnReturn = true): AsyncGenerator<unknown> {
  if (stream.listenerCount("readable") > 0) {
    yield* stream.iterator({ destroyOnReturn });
    return;
  }
  const queue: unknown[] = [];
  let ended = false;
  let failure: { error: unknown } | undefined;
  let wake: (() => void) | undefined;
  const notify = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  const onData = (chunk: unknown) => {
    queue.push(chunk);
    stream.pause(); // one chunk at a time: the consumer's pace, not the source's
    notify();
  };
  // End, error, or a close before the end (ERR_STREAM_PREMATURE_CLOSE), however it comes.
  const stopWatching = finished(stream, (error) => {
    if (error) failure = { error };
    else ended = true;
    notify();
  });
  stream.on("data", onData);
  try {
    for (;;) {
      if (queue.length > 0) {
        // An object-mode stream's undefined is a chunk too: asBytes refuses it, as before.
        yield queue.shift();
        continue;
      }
      if (failure) throw failure.error;
      if (ended) return;
      const next = new Promise<void>((resolve) => {
        wake = resolve;
      });
      stream.resume();
      await next;
    }
  } finally {
    stream.off("data", onData);
    stopWatching();
    if (!ended && !failure) {
      if (destroyOnReturn) stream.destroy();
      else stream.pause();
    }
  }
}

/**
 * Stops a stream we will not read to the end. A server request body is only paused: destroying
 * it would close the socket before the application can answer (413, 422), which clients see as
 * a connection reset. Other streams are destroyed, without an error (destroy(err) would emit
 * 'error', fatal for a stream nobody listens to).
 */
export function stopReadable(stream: Readable): void {
  if (stream instanceof IncomingMessage) stream.pause();
  else if (!stream.destroyed) stream.destroy();
}

/** A chunk as bytes: streams in text mode yield strings, which we store as UTF-8. */
export function chunkBytes(chunk: unknown): Uint8Array {
  if (chunk instanceof Uint8Array) return chunk;
  if (typeof chunk === "string") return Buffer.from(chunk, "utf8");
  if (chunk instanceof ArrayBuffer) return new Uint8Array(chunk);
  throw new TypeError(`File content yielded a chunk that is not bytes: ${Object.prototype.toString.call(chunk)}`);
}

async function* asBytes(source: AsyncIterable<unknown>): AsyncGenerator<Uint8Array> {
  for await (const chunk of source) yield chunkBytes(chunk);
}

function consumed(label: string): StorageError {
  return new StorageError(`${label} content can only be read once`, { code: "CONTENT_CONSUMED" });
}

function checkPeekBytes(bytes: number): void {
  if (!Number.isInteger(bytes) || bytes < 0) throw new RangeError(`bytes must be a non-negative integer: ${bytes}`);
}

/**
 * Reduces any {@link FileContent} to a {@link NormalizedContent}. Nothing is read here; a
 * value of another type throws a `TypeError`.
 */
export function normalizeContent(content: FileContent): NormalizedContent {
  if (content instanceof Uint8Array) return inMemory(content, content);
  if (content instanceof ArrayBuffer) return inMemory(new Uint8Array(content), content);
  if (ArrayBuffer.isView(content)) {
    // Other typed arrays / DataView: not in the type, but harmless to accept as their bytes.
    const view = content as ArrayBufferView;
    return inMemory(new Uint8Array(view.buffer, view.byteOffset, view.byteLength), content);
  }
  if (isBlob(content)) {
    const name = (content as { name?: unknown }).name;
    return {
      // Blob.stream() may be called any number of times: a Blob is replayable.
      open: () => fromWebStream(content.stream() as ReadableStream<Uint8Array>),
      length: content.size,
      blobType: content.type === "" ? undefined : content.type,
      fileName: typeof name === "string" && name !== "" ? name : undefined,
      replayable: true,
      bytes: undefined,
      // Each open() makes its own stream, closed by its iterator: nothing shared to stop.
      destroy: noop,
      async peek(bytes) {
        checkPeekBytes(bytes);
        return { head: new Uint8Array(await content.slice(0, bytes).arrayBuffer()), content };
      },
    };
  }
  if (content instanceof Readable) {
    // An HTTP request body must survive an early stop (the server still has to answer), so its
    // iterator must not destroy it on return.
    const destroyOnReturn = !(content instanceof IncomingMessage);
    return streamed(
      content,
      "Readable",
      () => asBytes(readableChunks(content, destroyOnReturn)),
      (bytes) => peekReadable(content, bytes),
      () => stopReadable(content),
    );
  }
  if (isWebReadableStream(content)) {
    let reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
    return streamed(
      content,
      "ReadableStream",
      () => fromWebStream(content, (r) => (reader = r)),
      (bytes) => peekWebStream(content, bytes),
      (reason) => {
        // Not yet opened: cancel the stream itself; opened: cancel through its reader.
        const cancelled = reader ? reader.cancel(reason) : content.locked ? undefined : content.cancel(reason);
        void cancelled?.catch(() => undefined);
      },
    );
  }
  if (isAsyncIterable(content)) {
    // Also covers Readable-like streams from other copies of `stream`.
    const source = content;
    return streamed(
      content,
      "AsyncIterable",
      () => asBytes(source),
      (bytes) => peekIterable(source, bytes),
      () => {
        const destroy = (source as { destroy?: unknown }).destroy;
        if (typeof destroy === "function") destroy.call(source);
      },
    );
  }
  throw new TypeError(`Unsupported file content: ${Object.prototype.toString.call(content)}`);
}

const noop = () => undefined;

/** In-memory `bytes`; `original` is what was given, handed back as is by `peek`. */
function inMemory(bytes: Uint8Array, original: FileContent): NormalizedContent {
  return {
    open: () => fromBytes(bytes),
    length: bytes.byteLength,
    blobType: undefined,
    fileName: undefined,
    replayable: true,
    bytes,
    destroy: noop,
    async peek(n) {
      checkPeekBytes(n);
      return { head: bytes.subarray(0, n), content: original };
    },
  };
}

/**
 * A one-shot stream: `open` or `peek` may be called once, then the content is spent. `peek`
 * hands back a stream of the same kind to read in its place (`original` itself for 0 bytes).
 */
function streamed(
  original: FileContent,
  label: string,
  open: () => AsyncIterable<Uint8Array>,
  peek: (bytes: number) => Promise<{ head: Uint8Array; content: FileContent }>,
  destroy: (reason?: unknown) => void,
): NormalizedContent {
  let used = false;
  const take = () => {
    if (used) throw consumed(label);
    used = true;
  };
  return {
    open: () => {
      take();
      return open();
    },
    length: undefined,
    blobType: undefined,
    fileName: undefined,
    replayable: false,
    bytes: undefined,
    destroy,
    async peek(bytes) {
      checkPeekBytes(bytes);
      take();
      if (bytes === 0) return { head: new Uint8Array(0), content: original };
      return peek(bytes);
    },
  };
}

/** Options of {@link meterContent}. */
export interface MeterOptions {
  /** Known total, passed through to `onProgress`. */
  total?: number | undefined;
  /** Stops reading and rejects with the signal's reason. */
  signal?: AbortSignal | undefined;
  /** Called after each chunk with the bytes read so far. */
  onProgress?: ((progress: SaveProgress) => void) | undefined;
  /** Rejects with {@link ContentTooLargeError} as soon as more bytes than this are read. */
  limit?: number | undefined;
  /** Names the file in {@link ContentTooLargeError}. */
  fileName?: string | undefined;
}

/** The reason an aborted signal carries, or a standard `AbortError` when it carries none. */
export function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException("This operation was aborted", "AbortError");
}

/** Resolves like `promise`, or rejects with the signal's reason as soon as it aborts. */
function raceAbort<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return promise;
  if (signal.aborted) return Promise.reject(abortReason(signal));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(abortReason(signal));
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(error);
      },
    );
  });
}

/**
 * A byte-counting pass-through: yields the source's chunks unchanged, reports progress, stops
 * (and closes the source) when `signal` aborts, even while the source is stalled, and rejects
 * with {@link ContentTooLargeError} as soon as `limit` is passed.
 */
export async function* meterContent(
  source: AsyncIterable<Uint8Array>,
  options: MeterOptions = {},
): AsyncGenerator<Uint8Array, void, undefined> {
  const { total, signal, onProgress, limit, fileName } = options;
  if (limit !== undefined && total !== undefined && total > limit) {
    throw new ContentTooLargeError(limit, { fileName });
  }
  signal?.throwIfAborted();
  const iterator = source[Symbol.asyncIterator]();
  let loaded = 0;
  let finished = false;
  try {
    while (true) {
      const result = await raceAbort(iterator.next(), signal);
      if (result.done) {
        finished = true;
        break;
      }
      const chunk = result.value;
      loaded += chunk.byteLength;
      if (limit !== undefined && loaded > limit) throw new ContentTooLargeError(limit, { fileName });
      onProgress?.(total === undefined ? { loaded } : { loaded, total });
      yield chunk;
      // The consumer may have taken long to write the chunk: do not read on after an abort.
      signal?.throwIfAborted();
    }
    // Empty content yields no chunk: report completion once anyway.
    if (loaded === 0) onProgress?.(total === undefined ? { loaded } : { loaded, total });
  } finally {
    // Early exit (abort, limit, consumer error): close the source so a stream stops producing.
    // Not awaited: a stalled source may never settle its return().
    if (!finished) void iterator.return?.()?.catch?.(() => undefined);
  }
}

/**
 * Wraps `onProgress` so it only ever sees growing `loaded` values: a retried save reads its
 * content again from zero, and callers expect one monotonic progress series.
 */
export function monotonicProgress(
  onProgress: ((progress: SaveProgress) => void) | undefined,
): ((progress: SaveProgress) => void) | undefined {
  if (!onProgress) return undefined;
  let last = -1;
  return (progress) => {
    if (progress.loaded <= last) return;
    last = progress.loaded;
    onProgress(progress);
  };
}

/** Reads a stream (Node `Readable` or any async iterable of bytes) into one new `Uint8Array`. */
export async function readAll(stream: AsyncIterable<Uint8Array | string>): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of stream) {
    const bytes = typeof chunk === "string" ? Buffer.from(chunk, "utf8") : chunk;
    chunks.push(bytes);
    size += bytes.byteLength;
  }
  // Always a fresh buffer, so the caller owns it even when there was a single chunk.
  const out = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return out;
}

/**
 * The content type to store: `explicit`, else the `Blob`'s type when non-empty, else a guess
 * from the name's extension (`mime`), else `application/octet-stream`.
 */
export function resolveContentType(name: string, options: { explicit?: string; blobType?: string } = {}): string {
  if (options.explicit) return options.explicit;
  if (options.blobType) return options.blobType;
  return mime.getType(name) ?? "application/octet-stream";
}
