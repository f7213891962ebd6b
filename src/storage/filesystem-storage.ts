import { randomBytes } from "node:crypto";
import { constants as fsConstants } from "node:fs";
import * as fsp from "node:fs/promises";
import * as nodePath from "node:path";
import type { Readable } from "node:stream";
import { FileNotFoundError, StorageError, SuspiciousFileOperationError } from "../errors.js";
import {
  BaseStorage,
  type BaseStorageOptions,
  type ByteRange,
  joinBaseUrl,
  type MoveObjectRequest,
  type ObjectStat,
  type WriteObjectRequest,
} from "./base-storage.js";
import type { ListResult, UrlOptions } from "./storage.js";

/** Options of {@link FileSystemStorage}. */
export interface FileSystemStorageOptions extends BaseStorageOptions {
  /** Root directory of every stored file (Django's `MEDIA_ROOT`); created on the first save. */
  location: string;
  /** URL the root is served under (Django's `MEDIA_URL`); a trailing `/` is added. Without it `url()` throws. */
  baseUrl?: string;
  /** Mode of new files (e.g. `0o644`), applied exactly, regardless of the umask. Default: `0o666` minus the umask. */
  filePermissionsMode?: number;
  /** Mode of new directories (e.g. `0o755`), applied exactly. Default: `0o777` minus the umask. */
  directoryPermissionsMode?: number;
}

/**
 * Default {@link BaseStorageOptions.maxSegmentBytes} of {@link FileSystemStorage}: `NAME_MAX` of
 * ext4, XFS, Btrfs, ZFS and APFS, in bytes. NTFS counts 255 UTF-16 units, and a name of 255
 * UTF-8 bytes never has more, so it fits there too.
 */
export const FILESYSTEM_MAX_SEGMENT_BYTES = 255;

/** Prefix of the temporary files a save writes next to its target; hidden from `listdir()`. */
const TEMP_PREFIX = ".prisma-s3-files-";
/** `link()` failures meaning "this file system has no hard links" rather than a real error. */
const NO_HARD_LINKS = new Set(["EPERM", "ENOTSUP", "EOPNOTSUPP", "ENOSYS", "EXDEV"]);

function errorCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

/**
 * Files in a local directory (Django's `FileSystemStorage`).
 *
 * - Every name is validated and joined under `location`; a name can never leave it, and real
 *   paths are checked too, so a symbolic link inside `location` that points outside is refused
 *   (`location` itself may be a link).
 * - A save writes a temporary file in the target directory and publishes it atomically:
 *   `link()` when creating exclusively (a clash means another available name, as Django's
 *   `O_EXCL` loop), `rename()` with `fileOverwrite`. A failed or aborted save leaves nothing,
 *   and readers never see a half-written file. File systems without hard links fall back to an
 *   exclusive copy.
 * - Content type and metadata are not stored: a file system has nowhere to keep them.
 */
export class FileSystemStorage extends BaseStorage {
  /** Absolute root directory. */
  readonly location: string;
  /** Base URL with a trailing `/`, or `undefined`. */
  readonly baseUrl: string | undefined;
  readonly filePermissionsMode: number | undefined;
  readonly directoryPermissionsMode: number | undefined;
  #realLocation: string | undefined;

  constructor(options: FileSystemStorageOptions) {
    super({ ...options, maxSegmentBytes: options.maxSegmentBytes ?? FILESYSTEM_MAX_SEGMENT_BYTES });
    if (!options.location) throw new TypeError("FileSystemStorage needs a location");
    this.location = nodePath.resolve(options.location);
    this.baseUrl =
      options.baseUrl === undefined
        ? undefined
        : options.baseUrl.endsWith("/")
          ? options.baseUrl
          : `${options.baseUrl}/`;
    this.filePermissionsMode = options.filePermissionsMode;
    this.directoryPermissionsMode = options.directoryPermissionsMode;
  }

  /**
   * Absolute path of `name` under `location` (Django's `path()`): validated, and refused
   * when it would leave `location`.
   */
  path(name: string): string {
    this.validateName(name);
    return this.#join(name);
  }

  protected override reservationScope(): string {
    return `fs:${this.location}`;
  }

  // ---------------------------------------------------------------- paths

  /** Lexical safe join (Django's `safe_join`); names are validated before they get here. */
  #join(name: string): string {
    const full = nodePath.resolve(this.location, name);
    if (!isInside(this.location, full)) {
      throw new SuspiciousFileOperationError(
        `The joined path ${JSON.stringify(name)} is located outside of the storage`,
      );
    }
    return full;
  }

  async #getRealLocation(): Promise<string> {
    this.#realLocation ??= await fsp.realpath(this.location);
    return this.#realLocation;
  }

  /** Follows symbolic links of an existing path and refuses a target outside `location`. */
  async #realInside(path: string, name: string): Promise<string> {
    const realLocation = await this.#getRealLocation();
    const real = await fsp.realpath(path);
    if (!isInside(realLocation, real)) {
      throw new SuspiciousFileOperationError(
        `The path of ${JSON.stringify(name)} resolves outside of the storage through a symbolic link`,
      );
    }
    return real;
  }

  /** Real path of an existing file inside `location`; {@link FileNotFoundError} otherwise. */
  async #existingFile(name: string): Promise<string> {
    try {
      return await this.#realInside(this.#join(name), name);
    } catch (error) {
      if (errorCode(error) === "ENOENT" || errorCode(error) === "ENOTDIR")
        throw new FileNotFoundError(name, { cause: error });
      throw error;
    }
  }

  /** Real path of `name`'s parent directory (the file itself not followed), or `undefined` if missing. */
  async #parentOf(name: string): Promise<{ dir: string; base: string } | undefined> {
    const full = this.#join(name);
    try {
      const dir = await this.#realInside(nodePath.dirname(full), name);
      return { dir, base: nodePath.basename(full) };
    } catch (error) {
      if (errorCode(error) === "ENOENT" || errorCode(error) === "ENOTDIR") return undefined;
      throw error;
    }
  }

  /**
   * Creates `dir` (and `location`) with the configured mode, never through a link that leaves
   * `location`: the deepest existing ancestor is checked before anything is created below it.
   */
  async #ensureDirectory(dir: string, name: string): Promise<void> {
    await this.#mkdir(this.location);
    let existing = dir;
    while (true) {
      try {
        await fsp.lstat(existing);
        break;
      } catch (error) {
        if (errorCode(error) !== "ENOENT") throw error;
        existing = nodePath.dirname(existing);
      }
    }
    await this.#realInside(existing, name);
    if (existing !== dir) await this.#mkdir(dir);
    // Checked again after creation: a link swapped in meanwhile is still caught.
    await this.#realInside(dir, name);
  }

  async #mkdir(dir: string): Promise<void> {
    const mode = this.directoryPermissionsMode;
    let first: string | undefined;
    try {
      first = await fsp.mkdir(dir, { recursive: true, ...(mode === undefined ? {} : { mode }) });
    } catch (error) {
      if (errorCode(error) === "EEXIST" || errorCode(error) === "ENOTDIR") {
        throw new StorageError(`${dir} exists and is not a directory`, { cause: error, code: "NOT_A_DIRECTORY" });
      }
      throw error;
    }
    if (first === undefined || mode === undefined) return;
    // mkdir's mode goes through the umask; Django sets the umask instead. chmod every directory
    // we created, from the first one down, so the mode is exact.
    const created: string[] = [];
    for (let d = dir; ; d = nodePath.dirname(d)) {
      created.push(d);
      if (d === first || nodePath.dirname(d) === d) break;
    }
    for (const d of created.reverse()) await fsp.chmod(d, mode);
  }

  #relative(full: string): string {
    // Django: the name relative to the root, always with forward slashes.
    return nodePath.relative(this.location, full).split(nodePath.sep).join("/");
  }

  // ---------------------------------------------------------------- primitives

  protected async writeObject(request: WriteObjectRequest): Promise<string> {
    let full = this.#join(request.name);
    await this.#ensureDirectory(nodePath.dirname(full), request.name);
    const temp = nodePath.join(nodePath.dirname(full), `${TEMP_PREFIX}${randomBytes(12).toString("hex")}.tmp`);
    try {
      const mode = this.filePermissionsMode;
      const handle = await fsp.open(temp, "wx", mode ?? 0o666);
      let writeFailed = true;
      try {
        for await (const chunk of request.body) await writeFully(handle, chunk);
        if (mode !== undefined) await handle.chmod(mode);
        writeFailed = false;
      } finally {
        // A close error after a good write may mean lost data (NFS): report it. After a failed
        // write the first error is the one that matters.
        if (writeFailed) await handle.close().catch(() => undefined);
        else await handle.close();
      }
      request.signal?.throwIfAborted();

      if (!request.exclusive) {
        await fsp.rename(temp, full);
        return this.#relative(full);
      }
      while (true) {
        try {
          await publishExclusive(temp, full);
          return this.#relative(full);
        } catch (error) {
          if (errorCode(error) !== "EEXIST") throw error;
          // Taken by another process since the name was picked: the content is safely in the
          // temporary file, so publish it under another available name.
          const next = await request.nextName();
          full = this.#join(next);
          await this.#ensureDirectory(nodePath.dirname(full), next);
        }
      }
    } finally {
      // After link() the temporary name is still there; after rename() it is gone already.
      await fsp.rm(temp, { force: true });
    }
  }

  /**
   * A rename: `link()` to the target then `unlink()` of the source when creating exclusively (a
   * clash means another available name, as in `save()`), `rename()` with `fileOverwrite`. The
   * file keeps its inode, mode and modification time. Only regular files move; the source itself
   * is moved, not what a symbolic link at its place points to.
   */
  protected async moveObject(request: MoveObjectRequest): Promise<string> {
    const parent = await this.#parentOf(request.from);
    const source = parent && nodePath.join(parent.dir, parent.base);
    let isFile = false;
    try {
      isFile = source !== undefined && (await fsp.lstat(source)).isFile();
    } catch (error) {
      if (errorCode(error) !== "ENOENT" && errorCode(error) !== "ENOTDIR") throw error;
    }
    if (!source || !isFile) throw new FileNotFoundError(request.from);

    let full = this.#join(request.name);
    await this.#ensureDirectory(nodePath.dirname(full), request.name);
    if (!request.exclusive) {
      await rethrowMissing(fsp.rename(source, full), request.from);
      return this.#relative(full);
    }
    while (true) {
      try {
        await rethrowMissing(publishExclusive(source, full), request.from);
        break;
      } catch (error) {
        if (errorCode(error) !== "EEXIST") throw error;
        const next = await request.nextName();
        full = this.#join(next);
        await this.#ensureDirectory(nodePath.dirname(full), next);
      }
    }
    try {
      await fsp.unlink(source);
    } catch (error) {
      // The target holds the file already: the move stands, the source name is reported.
      if (errorCode(error) !== "ENOENT") request.leftBehind({ name: request.from, key: source, cause: error });
    }
    return this.#relative(full);
  }

  protected async openObject(name: string, range: ByteRange): Promise<Readable> {
    const real = await this.#existingFile(name);
    let handle: fsp.FileHandle;
    try {
      handle = await fsp.open(real, fsConstants.O_RDONLY | (fsConstants.O_NOFOLLOW ?? 0));
    } catch (error) {
      if (errorCode(error) === "ENOENT") throw new FileNotFoundError(name, { cause: error });
      throw error;
    }
    try {
      const stat = await handle.stat();
      if (!stat.isFile()) throw new FileNotFoundError(name, { cause: new Error(`${name} is not a regular file`) });
    } catch (error) {
      await handle.close().catch(() => undefined);
      throw error;
    }
    // The stream owns the handle and closes it when it ends or is destroyed.
    return handle.createReadStream({ start: range.start, ...(range.end === undefined ? {} : { end: range.end }) });
  }

  protected async statObject(name: string): Promise<ObjectStat> {
    const real = await this.#existingFile(name);
    const stat = await fsp.stat(real);
    if (!stat.isFile()) throw new FileNotFoundError(name, { cause: new Error(`${name} is not a regular file`) });
    return { size: stat.size, modifiedTime: stat.mtime };
  }

  /** Django's `os.path.lexists`: anything at that path counts, a directory or a link too. */
  protected override async objectExists(name: string): Promise<boolean> {
    const parent = await this.#parentOf(name);
    if (!parent) return false;
    try {
      await fsp.lstat(nodePath.join(parent.dir, parent.base));
      return true;
    } catch (error) {
      if (errorCode(error) === "ENOENT" || errorCode(error) === "ENOTDIR") return false;
      throw error;
    }
  }

  /** Removes a file (a link itself, not its target) or an empty directory, like Django. */
  protected async deleteObject(name: string): Promise<void> {
    const parent = await this.#parentOf(name);
    if (!parent) return;
    const target = nodePath.join(parent.dir, parent.base);
    try {
      await fsp.unlink(target);
    } catch (error) {
      const code = errorCode(error);
      if (code === "ENOENT") return;
      if (code !== "EISDIR" && code !== "EPERM") throw error;
      try {
        await fsp.rmdir(target);
      } catch (rmdirError) {
        if (errorCode(rmdirError) === "ENOENT") return;
        // Not a directory after all: the unlink error was the real one.
        throw errorCode(rmdirError) === "ENOTDIR" ? error : rmdirError;
      }
    }
  }

  /** Sorted sub-directories and files; a missing directory lists as empty (as on S3). */
  protected async listObjects(path: string): Promise<ListResult> {
    const result: ListResult = { directories: [], files: [] };
    let dir: string;
    try {
      dir = await this.#realInside(path === "" ? this.location : this.#join(path), path);
    } catch (error) {
      if (errorCode(error) === "ENOENT" || errorCode(error) === "ENOTDIR") return result;
      throw error;
    }
    let entries: import("node:fs").Dirent[];
    try {
      entries = await fsp.readdir(dir, { withFileTypes: true });
    } catch (error) {
      if (errorCode(error) === "ENOENT" || errorCode(error) === "ENOTDIR") return result;
      throw error;
    }
    for (const entry of entries) {
      if (entry.name.startsWith(TEMP_PREFIX)) continue;
      let isDirectory = entry.isDirectory();
      if (entry.isSymbolicLink()) {
        // Like Python's DirEntry.is_dir(): follow the link; a broken one is a file.
        isDirectory = await fsp.stat(nodePath.join(dir, entry.name)).then(
          (s) => s.isDirectory(),
          () => false,
        );
      }
      (isDirectory ? result.directories : result.files).push(entry.name);
    }
    result.directories.sort();
    result.files.sort();
    return result;
  }

  /**
   * `baseUrl` + the percent-encoded name (Django's `filepath_to_uri`). `download`,
   * `contentType` and `expiresIn` cannot be expressed in a static file URL and are ignored.
   */
  protected objectUrl(name: string, _options: UrlOptions): string {
    if (this.baseUrl === undefined) {
      throw new StorageError("This file is not accessible via a URL.", { fileName: name, code: "URL_UNAVAILABLE" });
    }
    return joinBaseUrl(this.baseUrl, name);
  }
}

function isInside(root: string, path: string): boolean {
  if (path === root) return true;
  const prefix = root.endsWith(nodePath.sep) ? root : root + nodePath.sep;
  return path.startsWith(prefix);
}

async function writeFully(handle: fsp.FileHandle, chunk: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < chunk.byteLength) {
    const { bytesWritten } = await handle.write(chunk, offset, chunk.byteLength - offset);
    offset += bytesWritten;
  }
}

/** The source vanished between our check and the rename or link: that is a missing source. */
async function rethrowMissing(operation: Promise<void>, name: string): Promise<void> {
  try {
    await operation;
  } catch (error) {
    if (errorCode(error) === "ENOENT") throw new FileNotFoundError(name, { cause: error });
    throw error;
  }
}

/** Publishes `temp` as `target` only if `target` does not exist (EEXIST otherwise). */
async function publishExclusive(temp: string, target: string): Promise<void> {
  try {
    await fsp.link(temp, target);
  } catch (error) {
    if (!NO_HARD_LINKS.has(errorCode(error) ?? "")) throw error;
    // No hard links here (FAT, some network shares): an exclusive copy is still race-safe,
    // though a reader may see the file before the copy completes.
    try {
      await fsp.copyFile(temp, target, fsConstants.COPYFILE_EXCL);
    } catch (copyError) {
      // EEXIST: the file is someone else's, keep it. Otherwise remove our partial copy.
      if (errorCode(copyError) !== "EEXIST") await fsp.rm(target, { force: true }).catch(() => undefined);
      throw copyError;
    }
  }
}
