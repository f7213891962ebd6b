import type { Readable } from "node:stream";
import {
  FileExistsError,
  FileNotFoundError,
  LeftBehindError,
  type LeftBehindObject,
  PrismaS3FilesError,
  StorageError,
} from "../errors.js";
import {
  abortReason,
  meterContent,
  monotonicProgress,
  normalizeContent,
  readAll,
  resolveContentType,
} from "./content.js";
import {
  assertNameFits,
  assertSafeKey,
  generateFilename,
  getAvailableName,
  getValidFilename,
  type NameByteLimits,
  normalizeName,
  validateFileName,
} from "./naming.js";
import type {
  DeleteManyResult,
  FileContent,
  ListResult,
  MoveOptions,
  ObjectInfo,
  ObjectStat,
  OpenOptions,
  SaveOptions,
  Storage,
  UrlOptions,
} from "./storage.js";

/** Options every backend shares. */
export interface BaseStorageOptions {
  /**
   * Replace an object that already has the requested name instead of storing under another
   * available name. Default `false` (Django's `FileSystemStorage`; django-storages' S3 default of
   * `true` silently loses data).
   */
  fileOverwrite?: boolean;
  /**
   * Told about objects an operation that succeeded could not remove (a moved object's source
   * whose delete failed, a probe object); each is still stored, under the directory of the name
   * the operation was about. A call's own callback ({@link MoveOptions.onLeftBehind}) takes
   * precedence. Default: `console.warn` with the names. Failures that leave objects behind throw
   * {@link LeftBehindError} instead.
   */
  onLeftBehind?: (error: LeftBehindError) => void;
  /**
   * The longest path segment (each directory and the file name) the backend stores, in UTF-8
   * bytes. `save()` and `move()` meet it before any I/O: a longer file name has its root cut
   * between characters (extension kept, room left for `_XXXXXXX` when the name is taken); a
   * longer directory segment is refused with {@link StorageError} code `NAME_TOO_LONG`.
   * `Infinity`: no limit. Default: `FileSystemStorage` 255 (`NAME_MAX` of ext4, APFS, NTFS
   * and most others), `S3Storage` and `MemoryStorage` none. Set 255 for MinIO.
   */
  maxSegmentBytes?: number | undefined;
}

/** What {@link BaseStorage.statObject} returns for an existing object (the contract's, re-exported). */
export type { ObjectStat } from "./storage.js";

/** A byte range with defaults applied: `end` is inclusive, `undefined` means to the end. */
export interface ByteRange {
  start: number;
  end: number | undefined;
}

/** Everything a backend needs to write one object; built by {@link BaseStorage.save}. */
export interface WriteObjectRequest {
  /** Validated name to write; reserved in this process while the write runs. */
  name: string;
  /**
   * The content, to be iterated once. Already metered: it reports progress, rejects with the
   * signal's reason on abort and closes its source on early exit.
   */
  body: AsyncIterable<Uint8Array>;
  /** Byte length when known up front (bytes, `Blob`), else `undefined`. */
  length: number | undefined;
  /**
   * `true` when the object must not replace an existing one (`fileOverwrite: false`). The
   * backend then creates exclusively and signals a clash either by throwing
   * {@link FileExistsError} (the base retries under another name when the content can be read
   * again) or, once the body is consumed, by asking {@link WriteObjectRequest.nextName}.
   */
  exclusive: boolean;
  /** Resolved content type (explicit, `Blob.type`, extension, `application/octet-stream`). */
  contentType: string;
  /** User metadata to store with the object. */
  metadata: Record<string, string>;
  /** The caller's abort signal, for the backend's own I/O (requests, multipart uploads). */
  signal: AbortSignal | undefined;
  /**
   * After an exclusive create found the name taken: returns another available, validated and
   * reserved name to publish the already-written content under.
   */
  nextName(): Promise<string>;
}

/** Everything a backend needs to move one object; built by {@link BaseStorage.move}. */
export interface MoveObjectRequest {
  /** Validated name of the object to move. */
  from: string;
  /** Validated target name, reserved in this process while the move runs; never `from`. */
  name: string;
  /** `true` when the target must not replace an existing object (see {@link WriteObjectRequest.exclusive}). */
  exclusive: boolean;
  /** After an exclusive create found the target taken: another available, validated, reserved name. */
  nextName(): Promise<string>;
  /**
   * Records an object the move could not remove (the source, after the copy succeeded); the move
   * then still succeeds and the caller is told through `onLeftBehind`.
   */
  leftBehind(object: LeftBehindObject): void;
}

/** Single deletes in flight at once in the default {@link BaseStorage.deleteObjects}. */
const DELETE_CONCURRENCY = 8;
/** How often `save()` re-reads replayable content after a clash before giving up. */
const MAX_CLASH_RETRIES = 10;
/** How often a name is re-picked because another save in this process holds it. */
const MAX_NAME_CLAIMS = 100;

/**
 * Names being written right now, per storage scope. An exists() check cannot see a write that
 * has not finished; this set can, so concurrent saves in one process never pick the same name
 * even on backends without an exclusive create. `finished` counts writes that released their
 * names, so a claim can tell whether its exists() answers may predate one of them.
 */
interface ScopeState {
  reserved: Set<string>;
  finished: number;
}
const scopes = new Map<string, ScopeState>();
let instanceCounter = 0;

/**
 * Django's `Storage`: the naming and `save()` pipeline, written once for every backend.
 * Subclasses implement the storage-agnostic primitives (`writeObject`, `openObject`,
 * `statObject`, `deleteObject`, `listObjects`, `objectUrl`); the public methods validate every
 * name first, so no primitive ever sees a name that failed validation.
 */
export abstract class BaseStorage implements Storage {
  /** See {@link BaseStorageOptions.fileOverwrite}. */
  readonly fileOverwrite: boolean;
  /** See {@link BaseStorageOptions.maxSegmentBytes}; `undefined`: no limit. */
  readonly maxSegmentBytes: number | undefined;
  readonly #instanceScope = `instance:${++instanceCounter}`;
  readonly #onLeftBehind: ((error: LeftBehindError) => void) | undefined;

  constructor(options: BaseStorageOptions = {}) {
    this.fileOverwrite = options.fileOverwrite ?? false;
    this.#onLeftBehind = options.onLeftBehind;
    const limit = options.maxSegmentBytes;
    if (limit !== undefined && limit !== Number.POSITIVE_INFINITY && !(Number.isSafeInteger(limit) && limit > 0)) {
      throw new RangeError(`maxSegmentBytes must be a positive whole number of bytes or Infinity, got ${limit}`);
    }
    this.maxSegmentBytes = limit === Number.POSITIVE_INFINITY ? undefined : limit;
  }

  /**
   * Hands `error` to `callback`, else the storage's `onLeftBehind`, else `console.warn`. Called
   * after an operation succeeded, so a throwing callback must not turn it into a failure.
   */
  protected reportLeftBehind(error: LeftBehindError, callback?: (error: LeftBehindError) => void): void {
    const report = callback ?? this.#onLeftBehind;
    if (report) {
      try {
        report(error);
        return;
      } catch (callbackError) {
        console.warn(`prisma-s3-files: onLeftBehind threw: ${(callbackError as Error)?.message ?? callbackError}`);
      }
    }
    console.warn(`prisma-s3-files: ${error.message}`);
  }

  // ---------------------------------------------------------------- primitives (backends)

  /**
   * Writes `request.body` under `request.name` and returns the name actually stored (the
   * storage-relative key). Must leave nothing behind when it fails or the body rejects, and must
   * not replace an existing object when `request.exclusive` is set.
   */
  protected abstract writeObject(request: WriteObjectRequest): Promise<string>;

  /**
   * Moves `request.from` to `request.name` (or a later {@link MoveObjectRequest.nextName}) and
   * returns the name stored. Must throw {@link FileNotFoundError} before writing anything when
   * the source is missing, must not replace an existing object when `request.exclusive` is set,
   * and must not lose the object: the source is removed only once the target holds it.
   */
  protected abstract moveObject(request: MoveObjectRequest): Promise<string>;

  /** A stream of the object's bytes in `range`; {@link FileNotFoundError} when it is missing. */
  protected abstract openObject(name: string, range: ByteRange): Promise<Readable>;

  /** Size and modification time; {@link FileNotFoundError} (with the backend's cause) when missing. */
  protected abstract statObject(name: string): Promise<ObjectStat>;

  /** Deletes the object; a missing object is not an error. */
  protected abstract deleteObject(name: string): Promise<void>;

  /**
   * Deletes `names` (validated, distinct) and returns the backend's error for each name it
   * could not delete; a missing object is not an error. Defaults to
   * {@link BaseStorage.deleteObject} per name, a few at a time; backends with a batch delete
   * (S3's DeleteObjects) override it.
   */
  protected async deleteObjects(names: string[]): Promise<Map<string, unknown>> {
    const failed = new Map<string, unknown>();
    let next = 0;
    const worker = async () => {
      while (next < names.length) {
        const name = names[next++]!;
        try {
          await this.deleteObject(name);
        } catch (error) {
          failed.set(name, error);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(DELETE_CONCURRENCY, names.length) }, worker));
    return failed;
  }

  /** Immediate children of `path` (`""` for the root, else no leading or trailing `/`). */
  protected abstract listObjects(path: string): Promise<ListResult>;

  /** A URL for the object; no I/O is expected. */
  protected abstract objectUrl(name: string, options: UrlOptions): string | Promise<string>;

  /** Whether `name` exists. Defaults to {@link BaseStorage.statObject}; override when cheaper. */
  protected async objectExists(name: string): Promise<boolean> {
    try {
      await this.statObject(name);
      return true;
    } catch (error) {
      if (error instanceof FileNotFoundError) return false;
      throw error;
    }
  }

  /**
   * Storages with the same scope share in-flight name reservations. Defaults to this instance;
   * backends override it with what identifies their namespace (a directory, a bucket + prefix)
   * so two instances over the same place in one process do not race each other either.
   */
  protected reservationScope(): string {
    return this.#instanceScope;
  }

  /**
   * Where this storage's objects live (a bucket and prefix on an endpoint, a directory; for
   * memory, this instance): two storages with one namespace hold the same objects. The Prisma
   * binding's journal names storages by it, so a process configured differently never acts on
   * another's records.
   */
  get namespace(): string {
    return this.reservationScope();
  }

  // ---------------------------------------------------------------- naming (Django)

  /** Django's `get_valid_name`: `get_valid_filename`. */
  getValidName(name: string): string {
    return getValidFilename(name);
  }

  /** Django's `Storage.generate_filename`: rejects `..` in the directory, cleans the base name. */
  generateFilename(filename: string): string {
    return generateFilename(filename, { getValidName: (n) => this.getValidName(n) });
  }

  /**
   * Django's `get_available_name`: `name` when free, else `root_XXXXXXX.ext`, shortened to fit
   * `maxLength` and the backend's byte limits ({@link BaseStorage.nameByteLimits}; a directory
   * segment over them is refused with code `NAME_TOO_LONG` before any I/O). Names being written
   * by this process count as taken. With `fileOverwrite` the name is only shortened.
   */
  async getAvailableName(name: string, maxLength?: number): Promise<string> {
    return getAvailableName(name, {
      exists: async (candidate) => this.#isReserved(candidate) || (await this.exists(candidate)),
      overwrite: this.fileOverwrite,
      ...(maxLength === undefined ? {} : { maxLength }),
      ...this.nameByteLimits(),
    });
  }

  /**
   * What the backend can store, in UTF-8 bytes: {@link BaseStorage.getAvailableName} fits names
   * to it. Backends with a limit on whole names (S3's 1024-byte keys) add `maxNameBytes`.
   */
  protected nameByteLimits(): NameByteLimits {
    return { maxSegmentBytes: this.maxSegmentBytes };
  }

  /**
   * For names used exactly as given (a presigned upload's key): refuses, before any I/O, a name
   * over {@link BaseStorage.nameByteLimits} with {@link StorageError} code `NAME_TOO_LONG`.
   */
  protected assertNameFits(name: string): void {
    assertNameFits(name, this.nameByteLimits());
  }

  /**
   * The check run on every name before it reaches a backend: Django's `validate_file_name` with
   * relative paths allowed (no absolute path, no `..` part, a real base name), plus
   * `assertSafeKey` for what Django leaves to the OS (control characters, NUL, `\` traversal,
   * drive and UNC paths), since a key may end up on any OS.
   */
  protected validateName(name: string): void {
    validateFileName(name, { allowRelativePath: true });
    assertSafeKey(name);
  }

  /**
   * What every public method does first: Django's validation of the name as given, then its
   * normal form (`./a//b.txt` → `a/b.txt`, as Django's and django-storages' `safe_join` do), then
   * our key check on that. A URL or another process must find the object under the same key.
   */
  protected cleanName(name: string): string {
    validateFileName(name, { allowRelativePath: true });
    const normal = typeof name === "string" ? normalizeName(name) : name;
    assertSafeKey(normal);
    return normal;
  }

  // ---------------------------------------------------------------- save (Django's pipeline)

  /**
   * Django's `Storage.save`: validate → `getAvailableName` → validate → backend write →
   * validate the returned name. With `fileOverwrite: false` concurrent saves of one name all
   * land under distinct names. Returns the name stored.
   */
  async save(requested: string, content: FileContent, options: SaveOptions = {}): Promise<string> {
    const { signal, maxLength } = options;
    // Before anything touches the storage: a bad name or content type never causes I/O.
    const name = this.cleanName(requested);
    const body = normalizeContent(content);
    signal?.throwIfAborted();

    const exact = options.overwrite === true;
    const exclusive = !this.fileOverwrite && !exact;
    const contentType = resolveContentType(name, { explicit: options.contentType, blobType: body.blobType });
    const metadata = { ...options.metadata };
    const onProgress = monotonicProgress(options.onProgress);
    const held: string[] = [];
    let sourceFailed = false;
    let sourceError: unknown;

    try {
      // Where the backend's write refuses a taken name (and moves on through nextName), the
      // requested name is tried as it is: no existence check before the first write.
      // From the requested name, like Django's FileSystemStorage._save loop.
      const another = () => this.#claimName(name, maxLength, held);
      let target = exact ? name : await this.#claimName(name, maxLength, held, exclusive && this.clashesOnWrite());
      target = await this.#announce(options, target, exclusive, another);
      const nextName = async (): Promise<string> => {
        if (!exclusive) throw new StorageError("nextName() is only for exclusive writes", { fileName: target });
        signal?.throwIfAborted();
        target = await this.#announce(options, await another(), exclusive, another);
        return target;
      };

      for (let attempt = 1; ; attempt++) {
        const source = tapErrors(body.open(), (error) => {
          sourceFailed = true;
          sourceError = error;
        });
        const metered = meterContent(source, {
          total: body.length,
          signal,
          onProgress,
          fileName: target,
          limit: options.maxSize,
        });
        let stored: string;
        try {
          stored = await this.writeObject({
            name: target,
            body: metered,
            length: body.length,
            exclusive,
            contentType,
            metadata,
            signal,
            nextName,
          });
        } catch (error) {
          // A clash the backend found before publishing: pick another name and write again,
          // which needs content that can be read a second time.
          const retry =
            error instanceof FileExistsError &&
            exclusive &&
            body.replayable &&
            attempt < MAX_CLASH_RETRIES &&
            !signal?.aborted;
          if (!retry) throw error;
          await nextName();
          continue;
        }
        // The backend may have changed the name: it must still be valid (Django, CVE-2021-45452).
        this.validateName(stored);
        return stored;
      }
    } catch (error) {
      body.destroy(error);
      // Something is still stored: the caller must learn that, whatever else went wrong. The
      // error carries the abort's reason or the content's error as its cause.
      if (error instanceof LeftBehindError) throw error;
      if (signal?.aborted) throw abortReason(signal);
      // The content's own failure (a broken upload stream) is the caller's error, not ours.
      if (sourceFailed && error === sourceError) throw error;
      throw wrapError(error, "save", name);
    } finally {
      this.#release(held);
    }
  }

  /**
   * Moves `from` to an available name derived from `toName`: the naming and name claiming of
   * {@link BaseStorage.save} (validate → `getAvailableName` → reserve → backend move → validate
   * the returned name), so concurrent moves and saves of one name all land under distinct names.
   * Returns the name stored.
   * @throws FileNotFoundError when `from` does not exist; nothing is created.
   * @throws SuspiciousFileOperationError when either name is unsafe, before any I/O.
   */
  async move(fromRequested: string, toName: string, options: MoveOptions = {}): Promise<string> {
    const from = this.cleanName(fromRequested);
    const name = this.cleanName(toName);
    const { maxLength } = options;
    const held: string[] = [];
    const left: LeftBehindObject[] = [];
    let stored: string;
    try {
      const exclusive = !this.fileOverwrite;
      const another = () => this.#claimName(name, maxLength, held);
      let target = await another();
      if (target !== from) target = await this.#announce(options, target, exclusive, another);
      if (target === from) {
        // Only with fileOverwrite (else an existing source's name is never available): a no-op.
        if (!(await this.objectExists(from))) throw new FileNotFoundError(from);
        return from;
      }
      stored = await this.moveObject({
        from,
        name: target,
        exclusive,
        nextName: async () => {
          target = await this.#announce(options, await another(), exclusive, another);
          return target;
        },
        leftBehind: (object) => left.push(object),
      });
      this.validateName(stored);
    } catch (error) {
      throw wrapError(error, "move", from);
    } finally {
      this.#release(held);
    }
    if (left.length > 0) {
      const names = left.map((l) => JSON.stringify(l.name)).join(", ");
      this.reportLeftBehind(
        new LeftBehindError(
          `Moved ${JSON.stringify(from)} to ${JSON.stringify(stored)}, but could not remove ${names}; delete it or let a sweep remove it`,
          left,
          { cause: left[0]?.cause, fileName: from },
        ),
        options.onLeftBehind,
      );
    }
    return stored;
  }

  /**
   * Whether {@link BaseStorage.writeObject} refuses a name that is taken when it writes (an
   * exclusive write the server enforces) and then asks `nextName` for another: `save()` then
   * tries the requested name without asking the backend whether it exists first. Default `false`.
   */
  protected clashesOnWrite(): boolean {
    return false;
  }

  /**
   * Tells the caller's `beforeWrite` hook the name about to be written, and returns it. A
   * `FileExistsError` from the hook says the name is taken in a way only the caller knows (the
   * Prisma binding's journal: a drain is deleting that name): another is claimed, as for a clash
   * in the storage (the refused one stays reserved until the save ends, so it is not picked
   * again). Not for writes that must keep their name (`overwrite`, `fileOverwrite`).
   */
  async #announce(
    options: { beforeWrite?: (name: string) => Promise<void> | void },
    target: string,
    exclusive: boolean,
    another: () => Promise<string>,
  ): Promise<string> {
    for (let attempt = 1; ; attempt++) {
      try {
        await beforeWrite(options, target);
        return target;
      } catch (error) {
        const refused = error instanceof HookError && error.error instanceof FileExistsError;
        if (!refused || !exclusive || attempt >= MAX_NAME_CLAIMS) throw error;
        target = await another();
      }
    }
  }

  /**
   * Picks an available name and reserves it for this save; validated like Django does.
   * `optimistic`: names being written by this process count as taken, the backend is not asked
   * (its write refuses a taken one; see {@link BaseStorage.clashesOnWrite}).
   */
  async #claimName(name: string, maxLength: number | undefined, held: string[], optimistic = false): Promise<string> {
    const state = this.#scope();
    for (let i = 0; i < MAX_NAME_CLAIMS; i++) {
      const finishedBefore = state.finished;
      const candidate = optimistic
        ? await getAvailableName(name, {
            exists: async (c) => this.#isReserved(c),
            overwrite: this.fileOverwrite,
            ...(maxLength === undefined ? {} : { maxLength }),
            ...this.nameByteLimits(),
          })
        : await this.getAvailableName(name, maxLength);
      this.validateName(candidate);
      // Overwriting: concurrent writers of one name are fine, the last one wins.
      if (this.fileOverwrite) return candidate;
      // Check and add in one synchronous step: no other save can slip in between.
      if (state.reserved.has(candidate)) continue;
      state.reserved.add(candidate);
      held.push(candidate);
      // A write that finished while we were checking may have taken the name after our
      // exists() said it was free; with our reservation in place, a second look is final.
      if (!optimistic && state.finished !== finishedBefore && (await this.exists(candidate))) {
        state.reserved.delete(candidate);
        held.pop();
        continue;
      }
      return candidate;
    }
    throw new StorageError(`Could not find an available name for ${JSON.stringify(name)}`, {
      fileName: name,
      code: "NO_AVAILABLE_NAME",
    });
  }

  #scope(): ScopeState {
    const key = this.reservationScope();
    let state = scopes.get(key);
    if (!state) {
      state = { reserved: new Set(), finished: 0 };
      scopes.set(key, state);
    }
    return state;
  }

  /**
   * Whether a `save()` or `move()` of this process (on a storage of the same reservation scope)
   * is writing `name` right now: its object may exist before the write returns, and belongs to
   * that write. The sweeper leaves such names alone.
   */
  isWriting(name: string): boolean {
    return this.#isReserved(name);
  }

  #isReserved(name: string): boolean {
    return scopes.get(this.reservationScope())?.reserved.has(name) ?? false;
  }

  #release(names: string[]): void {
    if (names.length === 0) return;
    const state = scopes.get(this.reservationScope());
    if (!state) return;
    for (const n of names) state.reserved.delete(n);
    state.finished++;
  }

  // ---------------------------------------------------------------- the rest of the contract

  /** A stream of the object or of `start`..`end` (inclusive); never buffers the whole object. */
  async open(requested: string, options: OpenOptions = {}): Promise<Readable> {
    const name = this.cleanName(requested);
    const range = normalizeRange(options);
    return guard("open", name, () => this.openObject(name, range));
  }

  /** The whole object in memory, through {@link BaseStorage.open}. */
  async read(name: string): Promise<Uint8Array> {
    const stream = await this.open(name);
    return guard("read", name, () => readAll(stream));
  }

  /** Deletes the object; a missing object is not an error. */
  async delete(requested: string): Promise<void> {
    const name = this.cleanName(requested);
    return guard("delete", name, () => this.deleteObject(name));
  }

  /**
   * Deletes several objects: every name is validated first (one bad name deletes nothing), then
   * the backend deletes them (S3: DeleteObjects, 1,000 keys a request). Never throws for a
   * failed deletion: each is in `failed`, with the {@link StorageError} `delete()` would throw.
   */
  async deleteMany(requested: readonly string[]): Promise<DeleteManyResult> {
    const names = [...new Set(requested.map((n) => this.cleanName(n)))];
    if (names.length === 0) return { deleted: [], failed: [] };
    let errors: Map<string, unknown>;
    try {
      errors = await this.deleteObjects(names);
    } catch (error) {
      // A backend that gave up on the whole batch: every name failed the same way.
      errors = new Map(names.map((n) => [n, error]));
    }
    const result: DeleteManyResult = { deleted: [], failed: [] };
    for (const name of names) {
      if (!errors.has(name)) result.deleted.push(name);
      else {
        const error = wrapError(errors.get(name), "delete", name);
        result.failed.push({
          name,
          error:
            error instanceof StorageError
              ? error
              : new StorageError(`Could not delete ${JSON.stringify(name)}`, { cause: error, fileName: name }),
        });
      }
    }
    return result;
  }

  async exists(requested: string): Promise<boolean> {
    const name = this.cleanName(requested);
    return guard("check", name, () => this.objectExists(name));
  }

  /** Size in bytes; {@link FileNotFoundError} when missing. */
  async size(requested: string): Promise<number> {
    const name = this.cleanName(requested);
    return (await guard("stat", name, () => this.statObject(name))).size;
  }

  /** Size, modification time, and content type and metadata where the backend keeps them; {@link FileNotFoundError} when missing. */
  async stat(requested: string): Promise<ObjectStat> {
    const name = this.cleanName(requested);
    return guard("stat", name, () => this.statObject(name));
  }

  /** Last modification time; {@link FileNotFoundError} when missing. */
  async modifiedTime(requested: string): Promise<Date> {
    const name = this.cleanName(requested);
    return (await guard("stat", name, () => this.statObject(name))).modifiedTime;
  }

  async url(requested: string, options: UrlOptions = {}): Promise<string> {
    const name = this.cleanName(requested);
    return guard("build a URL for", name, async () => this.objectUrl(name, options));
  }

  /** Immediate sub-directories and files of `path` (`""` is the root), sorted. */
  async listdir(path: string): Promise<ListResult> {
    const dir = this.normalizeDirectory(path);
    return guard("list", path, () => this.listObjects(dir));
  }

  /** Every object under `prefix`, at any depth. */
  listAll(prefix = ""): AsyncIterable<ObjectInfo> {
    return this.listObjectsDeep(this.normalizeDirectory(prefix));
  }

  /**
   * Walks {@link BaseStorage.listObjects} and stats each file. Backends with a flat listing
   * that carries sizes and times (S3) override this with one paged request stream.
   */
  protected async *listObjectsDeep(dir: string): AsyncGenerator<ObjectInfo> {
    const { directories, files } = await this.listObjects(dir);
    const prefix = dir === "" ? "" : `${dir}/`;
    for (const file of files) {
      const name = prefix + file;
      try {
        const stat = await this.statObject(name);
        yield { name, size: stat.size, modifiedTime: stat.modifiedTime };
      } catch (error) {
        if (!(error instanceof FileNotFoundError)) throw error; // deleted while we walked
      }
    }
    for (const d of directories) yield* this.listObjectsDeep(prefix + d);
  }

  /** `""`/`.`/`/`-terminated forms → the canonical `a/b` (or `""`), validated like a name. */
  protected normalizeDirectory(path: string): string {
    let dir = path;
    while (dir.endsWith("/")) dir = dir.slice(0, -1);
    if (dir === "" || dir === ".") {
      // A bare "/" would be an absolute path: rejected like any other.
      if (path.startsWith("/")) this.validateName(path);
      return "";
    }
    this.validateName(dir);
    return dir;
  }
}

/** Records an error the content source itself raised, so `save()` can pass it on unwrapped. */
async function* tapErrors(
  source: AsyncIterable<Uint8Array>,
  onError: (error: unknown) => void,
): AsyncGenerator<Uint8Array, void, undefined> {
  try {
    yield* source;
  } catch (error) {
    onError(error);
    throw error;
  }
}

function normalizeRange(options: OpenOptions): ByteRange {
  const start = options.start ?? 0;
  const end = options.end;
  if (!Number.isSafeInteger(start) || start < 0) throw new RangeError(`Invalid range start: ${start}`);
  if (end !== undefined && (!Number.isSafeInteger(end) || end < start)) {
    throw new RangeError(`Invalid range end: ${end} (start ${start})`);
  }
  return { start, end };
}

/** Our errors pass through; anything else becomes a {@link StorageError} carrying it as `cause`. */
/** An error of the caller's `beforeWrite` hook, on its way out of the storage unchanged. */
class HookError extends Error {
  constructor(readonly error: unknown) {
    super("the beforeWrite hook failed", { cause: error });
  }
}

/** Runs the caller's `beforeWrite` hook; what it throws is the caller's, not a storage failure. */
async function beforeWrite(options: { beforeWrite?: (name: string) => Promise<void> | void }, name: string) {
  try {
    await options.beforeWrite?.(name);
  } catch (error) {
    throw new HookError(error);
  }
}

function wrapError(error: unknown, operation: string, name: string): unknown {
  if (error instanceof HookError) return error.error;
  if (error instanceof PrismaS3FilesError || error instanceof RangeError) return error;
  return new StorageError(`Could not ${operation} ${JSON.stringify(name)}`, { cause: error, fileName: name });
}

async function guard<T>(operation: string, name: string, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (error) {
    throw wrapError(error, operation, name);
  }
}

/**
 * Django's `filepath_to_uri`: percent-encodes a storage name for a URL path, keeping `/`
 * (the same characters as Python's `quote(path, safe="/~!*()'")`).
 */
export function filepathToUri(name: string): string {
  return name.replaceAll("\\", "/").split("/").map(encodeURIComponent).join("/");
}

/** `baseUrl` (given a trailing `/`, as Django does) joined with the encoded name. */
export function joinBaseUrl(baseUrl: string, name: string): string {
  const base = baseUrl.endsWith("/") ? baseUrl : `${baseUrl}/`;
  return base + filepathToUri(name).replace(/^\/+/, "");
}
