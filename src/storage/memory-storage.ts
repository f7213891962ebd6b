import { Readable } from "node:stream";
import { FileNotFoundError, StorageError } from "../errors.js";
import {
  BaseStorage,
  type BaseStorageOptions,
  type ByteRange,
  joinBaseUrl,
  type MoveObjectRequest,
  type ObjectStat,
  type WriteObjectRequest,
} from "./base-storage.js";
import { readAll } from "./content.js";
import type { ListResult, UrlOptions } from "./storage.js";

/** Options of {@link MemoryStorage}. */
export interface MemoryStorageOptions extends BaseStorageOptions {
  /** URL prefix for `url()`; without it `url()` throws, as in Django's `InMemoryStorage`. */
  baseUrl?: string;
}

/** One stored object. */
export interface MemoryObject {
  bytes: Uint8Array;
  contentType: string;
  metadata: Record<string, string>;
  modifiedTime: Date;
}

/** Chunk size of `open()` streams, so reads behave like a real backend's. */
const CHUNK_SIZE = 64 * 1024;

/**
 * Objects in a `Map` of this process (Django's `InMemoryStorage`): for tests and development.
 * Keys are flat like S3's; "directories" are the `/`-separated prefixes of the keys. Content
 * type and metadata are kept and readable through {@link MemoryStorage.getObject}.
 */
export class MemoryStorage extends BaseStorage {
  /** Base URL with a trailing `/`, or `undefined`. */
  readonly baseUrl: string | undefined;
  readonly #objects = new Map<string, MemoryObject>();

  constructor(options: MemoryStorageOptions = {}) {
    super(options);
    this.baseUrl = options.baseUrl;
  }

  /** The stored object with its content type and metadata (a copy), or `undefined`. */
  getObject(name: string): MemoryObject | undefined {
    const object = this.#objects.get(name);
    return object && { ...object, bytes: object.bytes.slice(), metadata: { ...object.metadata } };
  }

  /** Every stored name, sorted. */
  keys(): string[] {
    return [...this.#objects.keys()].sort();
  }

  protected async writeObject(request: WriteObjectRequest): Promise<string> {
    // readAll returns a fresh buffer: later changes to the caller's bytes do not reach us.
    const bytes = await readAll(request.body);
    request.signal?.throwIfAborted();
    let name = request.name;
    // The check and the set below run without an await in between: atomic in this process.
    if (request.exclusive) while (this.#objects.has(name)) name = await request.nextName();
    this.#objects.set(name, {
      bytes,
      contentType: request.contentType,
      metadata: { ...request.metadata },
      modifiedTime: new Date(),
    });
    return name;
  }

  /** Moves the entry: content type, metadata and modification time go with it. */
  protected async moveObject(request: MoveObjectRequest): Promise<string> {
    if (!this.#objects.has(request.from)) throw new FileNotFoundError(request.from);
    let name = request.name;
    if (request.exclusive) while (this.#objects.has(name)) name = await request.nextName();
    // From here to the end no await: the source read, the target check and the move are atomic.
    const object = this.#objects.get(request.from);
    if (!object) throw new FileNotFoundError(request.from); // deleted while we looked for a name
    this.#objects.delete(request.from);
    this.#objects.set(name, object);
    return name;
  }

  protected async openObject(name: string, range: ByteRange): Promise<Readable> {
    const object = this.#get(name);
    const end = Math.min(range.end === undefined ? Number.POSITIVE_INFINITY : range.end + 1, object.bytes.byteLength);
    const bytes = object.bytes;
    function* chunks(): Generator<Buffer> {
      for (let offset = range.start; offset < end; offset += CHUNK_SIZE) {
        // Copies: a consumer that writes into a chunk must not change the stored object.
        yield Buffer.from(bytes.subarray(offset, Math.min(offset + CHUNK_SIZE, end)));
      }
    }
    return Readable.from(chunks(), { objectMode: false });
  }

  protected async statObject(name: string): Promise<ObjectStat> {
    const object = this.#get(name);
    return {
      size: object.bytes.byteLength,
      modifiedTime: new Date(object.modifiedTime),
      contentType: object.contentType,
      metadata: { ...object.metadata },
    };
  }

  protected override async objectExists(name: string): Promise<boolean> {
    return this.#objects.has(name);
  }

  protected async deleteObject(name: string): Promise<void> {
    this.#objects.delete(name);
  }

  protected async listObjects(path: string): Promise<ListResult> {
    const prefix = path === "" ? "" : `${path}/`;
    const directories = new Set<string>();
    const files: string[] = [];
    for (const key of this.#objects.keys()) {
      if (!key.startsWith(prefix)) continue;
      const rest = key.slice(prefix.length);
      const slash = rest.indexOf("/");
      if (slash === -1) files.push(rest);
      else directories.add(rest.slice(0, slash));
    }
    return { directories: [...directories].sort(), files: files.sort() };
  }

  /** `baseUrl` + the percent-encoded name; `download`, `contentType` and `expiresIn` are ignored. */
  protected objectUrl(name: string, _options: UrlOptions): string {
    if (this.baseUrl === undefined) {
      throw new StorageError("This file is not accessible via a URL.", { fileName: name, code: "URL_UNAVAILABLE" });
    }
    return joinBaseUrl(this.baseUrl, name);
  }

  #get(name: string): MemoryObject {
    const object = this.#objects.get(name);
    if (!object) throw new FileNotFoundError(name);
    return object;
  }
}
