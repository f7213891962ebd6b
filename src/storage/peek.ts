/**
 * Peeking at the first bytes of a stream without losing them: the head is read, and a stream of
 * the same kind is handed back that yields it and then the rest of the source. Used by
 * {@link NormalizedContent.peek}; each content kind picks its helper there, so there is one
 * dispatch over content kinds.
 */
import { Readable } from "node:stream";
import { chunkBytes, stopReadable } from "./content.js";

/** The first `n` bytes of `chunks`, copying only when they span more than one chunk. */
function headOf(chunks: readonly Uint8Array[], n: number): Uint8Array {
  const first = chunks[0];
  if (first === undefined) return new Uint8Array(0);
  if (first.byteLength >= n || chunks.length === 1) return first.subarray(0, n);
  let size = 0;
  for (const chunk of chunks) size += chunk.byteLength;
  const head = new Uint8Array(Math.min(size, n));
  let offset = 0;
  for (const chunk of chunks) {
    if (offset >= head.length) break;
    const part = chunk.subarray(0, head.length - offset);
    head.set(part, offset);
    offset += part.byteLength;
  }
  return head;
}

function prematureClose(): Error {
  return Object.assign(new Error("Premature close"), { code: "ERR_STREAM_PREMATURE_CLOSE" });
}

/**
 * Listens to a source `Readable` for the whole time we own it (peek, then the replaying stream):
 * listeners added and removed around each wait could miss an `end` emitted in between.
 */
class SourceTap {
  ended = false;
  closed = false;
  error: unknown;
  errored = false;
  /** Called on every event once the replaying stream has taken over. */
  onChange: (() => void) | undefined;
  #wake: (() => void) | undefined;
  readonly #listeners: [string, (...args: unknown[]) => void][];

  constructor(readonly source: Readable) {
    this.#listeners = [
      ["readable", () => this.#notify()],
      [
        "end",
        () => {
          this.ended = true;
          this.#notify();
        },
      ],
      [
        "error",
        (error) => {
          this.errored = true;
          this.error = error;
          this.#notify();
        },
      ],
      [
        "close",
        () => {
          this.closed = true;
          this.#notify();
        },
      ],
    ];
    for (const [event, listener] of this.#listeners) source.on(event, listener);
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
    this.onChange?.();
  }

  /** Resolves at the next event (data, end, error, close). */
  next(): Promise<void> {
    return new Promise((resolve) => {
      this.#wake = resolve;
    });
  }

  /** The error the source failed with, if it failed or closed before its end. */
  failure(): unknown {
    if (this.errored) return this.error ?? prematureClose();
    if (this.closed && !this.ended) return prematureClose();
    return undefined;
  }

  detach(): void {
    for (const [event, listener] of this.#listeners) this.source.off(event, listener);
    this.onChange = undefined;
  }
}

/**
 * Replays the peeked chunks, then the rest of the source, chunk by chunk as the consumer asks
 * (the source is read only while this stream wants data). Errors of the source destroy this
 * stream with them; destroying this stream destroys the source.
 */
class ReplayReadable extends Readable {
  readonly #tap: SourceTap;
  readonly #pending: Uint8Array[];
  #wantData = false;

  constructor(tap: SourceTap, peeked: Uint8Array[]) {
    const source = tap.source;
    super(source.readableObjectMode ? {} : { highWaterMark: source.readableHighWaterMark });
    this.#tap = tap;
    this.#pending = peeked;
    tap.onChange = () => this.#sourceChanged();
  }

  override _read(): void {
    this.#wantData = true;
    this.#pump();
  }

  #sourceChanged(): void {
    const failure = this.#tap.failure();
    if (failure !== undefined) this.destroy(failure as Error);
    else if (this.#wantData) this.#pump();
  }

  #pump(): void {
    while (this.#wantData && !this.destroyed) {
      let chunk: Uint8Array | undefined = this.#pending.shift();
      if (chunk === undefined) {
        const failure = this.#tap.failure();
        if (failure !== undefined) {
          this.destroy(failure as Error);
          return;
        }
        const raw: unknown = this.#tap.source.read();
        if (raw === null) {
          if (this.#tap.ended) {
            this.#wantData = false;
            this.push(null);
          }
          // Else wait: the tap's next `readable`/`end` event calls #sourceChanged.
          return;
        }
        try {
          chunk = chunkBytes(raw);
        } catch (error) {
          this.destroy(error as Error);
          return;
        }
      }
      if (chunk.byteLength > 0) this.#wantData = this.push(chunk);
    }
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#tap.detach();
    this.#pending.length = 0;
    stopReadable(this.#tap.source);
    callback(error);
  }
}

export async function peekReadable(source: Readable, n: number): Promise<{ head: Uint8Array; content: Readable }> {
  const tap = new SourceTap(source);
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    if (source.readableEnded) tap.ended = true;
    if (source.errored) {
      tap.errored = true;
      tap.error = source.errored;
    } else if (source.destroyed && !tap.ended) tap.closed = true;
    while (size < n && !tap.ended) {
      const failure = tap.failure();
      if (failure !== undefined) throw failure;
      // Byte streams: read(n) returns exactly the bytes asked for once they are buffered (or what
      // is left at the end), leaving the rest of a big chunk in the source, which then does not
      // read ahead. Object mode streams give one chunk per read(); decoded (string) streams all
      // they have, as their length counts characters, not bytes.
      const whole = source.readableObjectMode || source.readableEncoding !== null;
      const raw: unknown = whole ? source.read() : source.read(n - size);
      if (raw === null) {
        await tap.next();
        continue;
      }
      const bytes = chunkBytes(raw);
      chunks.push(bytes);
      size += bytes.byteLength;
    }
  } catch (error) {
    tap.detach();
    stopReadable(source);
    throw error;
  }
  return { head: headOf(chunks, n), content: new ReplayReadable(tap, chunks) };
}

export async function peekWebStream(
  stream: ReadableStream<Uint8Array>,
  n: number,
): Promise<{ head: Uint8Array; content: ReadableStream<Uint8Array> }> {
  const reader = stream.getReader();
  const peeked: Uint8Array[] = [];
  const heads: Uint8Array[] = [];
  let size = 0;
  let done = false;
  try {
    while (size < n) {
      const result = await reader.read();
      if (result.done) {
        done = true;
        break;
      }
      const bytes = chunkBytes(result.value);
      peeked.push(result.value);
      heads.push(bytes);
      size += bytes.byteLength;
    }
  } catch (error) {
    await reader.cancel(error).catch(() => undefined);
    reader.releaseLock();
    throw error;
  }
  if (done) reader.releaseLock();
  const content = new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        const next = peeked.shift();
        if (next !== undefined) {
          controller.enqueue(next);
          return;
        }
        if (done) {
          controller.close();
          return;
        }
        const result = await reader.read();
        if (result.done) {
          done = true;
          reader.releaseLock();
          controller.close();
        } else controller.enqueue(result.value);
      },
      async cancel(reason) {
        peeked.length = 0;
        if (!done) await reader.cancel(reason);
      },
    },
    // Pull only when the consumer reads: backpressure reaches the source unchanged.
    { highWaterMark: 0 },
  );
  return { head: headOf(heads, n), content };
}

/** The rest of an async iterable after peeking, with a `destroy()` that reaches the source. */
function replayIterable(
  source: AsyncIterable<unknown>,
  iterator: AsyncIterator<unknown>,
  peeked: unknown[],
  sourceDone: boolean,
): AsyncIterable<Uint8Array> & { destroy(reason?: unknown): void } {
  let finished = sourceDone;
  let started = false;
  const close = async () => {
    if (finished) return;
    finished = true;
    peeked.length = 0;
    await iterator.return?.();
  };
  return {
    [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
      if (started) throw new TypeError("Peeked file content can only be read once");
      started = true;
      return {
        async next(): Promise<IteratorResult<Uint8Array>> {
          if (peeked.length > 0) return { value: peeked.shift() as Uint8Array, done: false };
          if (finished) return { value: undefined, done: true };
          const result = await iterator.next();
          if (result.done) finished = true;
          return result as IteratorResult<Uint8Array>;
        },
        async return(): Promise<IteratorResult<Uint8Array>> {
          await close();
          return { value: undefined, done: true };
        },
      };
    },
    destroy(reason?: unknown) {
      const destroy = (source as { destroy?: unknown }).destroy;
      if (typeof destroy === "function") destroy.call(source, reason);
      else void close().catch(() => undefined);
    },
  };
}

export async function peekIterable(
  source: AsyncIterable<unknown>,
  n: number,
): Promise<{ head: Uint8Array; content: AsyncIterable<Uint8Array> }> {
  const iterator = source[Symbol.asyncIterator]();
  const peeked: unknown[] = [];
  const heads: Uint8Array[] = [];
  let size = 0;
  let done = false;
  while (size < n) {
    const result = await iterator.next();
    if (result.done) {
      done = true;
      break;
    }
    let bytes: Uint8Array;
    try {
      bytes = chunkBytes(result.value);
    } catch (error) {
      await iterator.return?.()?.catch?.(() => undefined);
      throw error;
    }
    peeked.push(result.value);
    heads.push(bytes);
    size += bytes.byteLength;
  }
  return { head: headOf(heads, n), content: replayIterable(source, iterator, peeked, done) };
}
