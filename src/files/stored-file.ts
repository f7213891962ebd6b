import type { Readable } from "node:stream";
import { inspect } from "node:util";
import type { OpenOptions, Storage, UrlOptions } from "../storage/storage.js";

/**
 * A lazy handle on one stored object: a name in a storage (flydrive's file object, Shrine's
 * uploaded file). Nothing touches the storage until a method is called.
 *
 * Serializes as its name (`toJSON()`), so a JSON response never carries a signed URL unless the
 * application asks for one. The storage is held privately: `structuredClone` and logs see the
 * name only.
 */
export class StoredFile {
  /** The object's name (key) in its storage: what the column holds. */
  readonly name: string;
  readonly #storage: Storage;

  constructor(storage: Storage, name: string) {
    this.name = name;
    this.#storage = storage;
  }

  /** The storage the object lives in. */
  get storage(): Storage {
    return this.#storage;
  }

  /** A URL for the object: presigned or public, per the storage. No I/O for S3. */
  url(options?: UrlOptions): Promise<string> {
    return this.#storage.url(this.name, options);
  }

  /** A stream of the object or of a byte range; never buffers the whole object. */
  open(options?: OpenOptions): Promise<Readable> {
    return this.#storage.open(this.name, options);
  }

  /** The whole object in memory: for small files. */
  read(): Promise<Uint8Array> {
    return this.#storage.read(this.name);
  }

  /** Size in bytes. */
  size(): Promise<number> {
    return this.#storage.size(this.name);
  }

  exists(): Promise<boolean> {
    return this.#storage.exists(this.name);
  }

  modifiedTime(): Promise<Date> {
    return this.#storage.modifiedTime(this.name);
  }

  /** The name, as the column stores it. */
  toJSON(): string {
    return this.name;
  }

  toString(): string {
    return this.name;
  }

  [inspect.custom](): string {
    return `${this.constructor.name}(${JSON.stringify(this.name)})`;
  }
}
