import * as fs from "node:fs/promises";
import * as os from "node:os";
import * as path from "node:path";
import { Readable } from "node:stream";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { FileNotFoundError, StorageError, SuspiciousFileOperationError } from "../../src/errors.js";
import { FileSystemStorage, type FileSystemStorageOptions } from "../../src/storage/filesystem-storage.js";
import { describeStorageConformance, UNSAFE_NAMES } from "./conformance.js";

const SENTINEL = "outside.txt";

/** Every file below `dir`, relative and `/`-separated, hidden and temporary ones included. */
async function filesBelow(dir: string): Promise<string[]> {
  const out: string[] = [];
  async function visit(current: string): Promise<void> {
    let entries: import("node:fs").Dirent[];
    try {
      entries = await fs.readdir(current, { withFileTypes: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return;
      throw error;
    }
    for (const entry of entries) {
      const full = path.join(current, entry.name);
      if (entry.isDirectory()) await visit(full);
      else out.push(path.relative(dir, full).split(path.sep).join("/"));
    }
  }
  await visit(dir);
  return out.sort();
}

/**
 * A temp root holding `media/` (the storage's location) and a sentinel file next to it, so any
 * write outside `location` shows up as a change of the root.
 */
async function makeRoot(): Promise<{ root: string; location: string; assertRootUntouched: () => Promise<void> }> {
  const root = await fs.mkdtemp(path.join(os.tmpdir(), "prisma-s3-files-fs-"));
  await fs.writeFile(path.join(root, SENTINEL), "sentinel");
  const location = path.join(root, "media");
  return {
    root,
    location,
    assertRootUntouched: async () => {
      const entries = (await fs.readdir(root)).filter((e) => e !== "media" && e !== "elsewhere");
      expect(entries).toEqual([SENTINEL]);
      expect(await fs.readFile(path.join(root, SENTINEL), "utf8")).toBe("sentinel");
    },
  };
}

describeStorageConformance("FileSystemStorage", async ({ fileOverwrite }) => {
  const { root, location, assertRootUntouched } = await makeRoot();
  const storage = new FileSystemStorage({ location, baseUrl: "https://cdn.example.com/media/", fileOverwrite });
  return {
    storage,
    // NAME_MAX of the real file system under the test's temporary directory (ext4, tmpfs, APFS):
    // the storage's default must meet it without being told.
    maxSegmentBytes: 255,
    listAll: () => filesBelow(location),
    teardown: async () => {
      try {
        await assertRootUntouched();
      } finally {
        await fs.rm(root, { recursive: true, force: true });
      }
    },
  };
});

describe("FileSystemStorage specifics", () => {
  let root: string;
  let location: string;
  let assertRootUntouched: () => Promise<void>;
  const make = (options: Partial<FileSystemStorageOptions> = {}) =>
    new FileSystemStorage({ location, baseUrl: "/media/", ...options });

  beforeEach(async () => {
    ({ root, location, assertRootUntouched } = await makeRoot());
  });
  afterEach(async () => {
    await fs.rm(root, { recursive: true, force: true });
  });

  it("writes below location only, creating it on the first save", async () => {
    const storage = make();
    expect(await storage.save("a/b.txt", Buffer.from("x"))).toBe("a/b.txt");
    expect(await fs.readFile(path.join(location, "a", "b.txt"), "utf8")).toBe("x");
    for (const name of UNSAFE_NAMES) {
      await expect(storage.save(name, Buffer.from("evil"))).rejects.toBeInstanceOf(SuspiciousFileOperationError);
    }
    expect(await filesBelow(location)).toEqual(["a/b.txt"]);
    await assertRootUntouched();
  });

  it("its default limit of 255 bytes is the file system's: 256 fail there with ENAMETOOLONG, the default cuts them", async () => {
    const causeCode = (error: unknown): string | undefined => {
      for (let e = error; e; e = (e as { cause?: unknown }).cause) {
        const code = (e as { code?: unknown }).code;
        if (typeof code === "string" && code.startsWith("E")) return code;
      }
      return undefined;
    };
    const at255 = `${"é".repeat(125)}a.txt`;
    const at256 = `${"é".repeat(126)}.txt`;
    expect([Buffer.byteLength(at255), Buffer.byteLength(at256)]).toEqual([255, 256]);

    // Without the limit, the names reach the file system, which takes 255 bytes and no more.
    const unlimited = make({ maxSegmentBytes: Number.POSITIVE_INFINITY });
    expect(await unlimited.save(at255, Buffer.from("255"))).toBe(at255);
    expect(causeCode(await unlimited.save(at256, Buffer.from("256")).catch((e: unknown) => e))).toBe("ENAMETOOLONG");
    const longDir = `${"d".repeat(256)}/x.txt`;
    expect(causeCode(await unlimited.save(longDir, Buffer.from("d")).catch((e: unknown) => e))).toBe("ENAMETOOLONG");

    // With the default, the file name is cut between characters (125 × é + .txt = 254 bytes) and
    // the directory is refused before any I/O.
    const storage = make();
    expect(storage.maxSegmentBytes).toBe(255);
    const cut = await storage.save(at256, Buffer.from("cut"));
    expect(cut).toBe(`${"é".repeat(125)}.txt`);
    expect(await fs.readFile(path.join(location, cut), "utf8")).toBe("cut");
    await expect(storage.save(longDir, Buffer.from("d"))).rejects.toMatchObject({
      code: "NAME_TOO_LONG",
      message: expect.stringContaining("is 256 bytes, too long for this storage's limit of 255 bytes per path segment"),
    });
    expect(await filesBelow(location)).toEqual([at255, cut].sort());
    await assertRootUntouched();
  });

  it("path() joins under location and refuses traversal", () => {
    const storage = make();
    expect(storage.path("a/b c.txt")).toBe(path.join(location, "a", "b c.txt"));
    expect(() => storage.path("../x")).toThrow(SuspiciousFileOperationError);
    expect(() => storage.path("/etc/passwd")).toThrow(SuspiciousFileOperationError);
  });

  it("returns normalised names relative to location", async () => {
    const storage = make();
    expect(await storage.save("./a//b.txt", Buffer.from("x"))).toBe("a/b.txt");
  });

  describe("symbolic links (POSIX)", () => {
    let outsideDir: string;
    beforeEach(async () => {
      outsideDir = path.join(root, "elsewhere");
      await fs.mkdir(outsideDir);
      await fs.writeFile(path.join(outsideDir, "secret.txt"), "secret");
      await fs.mkdir(location);
      await fs.symlink(outsideDir, path.join(location, "link"));
      await fs.symlink(path.join(root, SENTINEL), path.join(location, "file-link.txt"));
    });

    it("refuses to write through a directory link that leaves location", async () => {
      const storage = make();
      await expect(storage.save("link/new.txt", Buffer.from("x"))).rejects.toBeInstanceOf(SuspiciousFileOperationError);
      await expect(storage.save("link/deeper/new.txt", Buffer.from("x"))).rejects.toBeInstanceOf(
        SuspiciousFileOperationError,
      );
      expect(await fs.readdir(outsideDir)).toEqual(["secret.txt"]);
    });

    it("refuses to read, stat, list or delete through links that leave location", async () => {
      const storage = make();
      for (const run of [
        () => storage.open("link/secret.txt"),
        () => storage.read("link/secret.txt"),
        () => storage.size("link/secret.txt"),
        () => storage.modifiedTime("link/secret.txt"),
        () => storage.delete("link/secret.txt"),
        () => storage.listdir("link"),
        () => storage.read("file-link.txt"),
        () => storage.open("file-link.txt", { start: 0, end: 3 }),
      ]) {
        await expect(run()).rejects.toBeInstanceOf(SuspiciousFileOperationError);
      }
      expect(await fs.readFile(path.join(outsideDir, "secret.txt"), "utf8")).toBe("secret");
    });

    it("move refuses sources and targets reached through links that leave location; a file link is not moved", async () => {
      const storage = make();
      await storage.save("inside.txt", Buffer.from("in"));
      await expect(storage.move("link/secret.txt", "stolen.txt")).rejects.toBeInstanceOf(SuspiciousFileOperationError);
      await expect(storage.move("inside.txt", "link/planted.txt")).rejects.toBeInstanceOf(SuspiciousFileOperationError);
      await expect(storage.move("file-link.txt", "moved-link.txt")).rejects.toBeInstanceOf(FileNotFoundError);
      expect(await fs.readdir(outsideDir)).toEqual(["secret.txt"]);
      expect(await filesBelow(location)).toEqual(["file-link.txt", "inside.txt", "link"]);
      await assertRootUntouched();
    });

    it("deleting a link removes the link, not its target", async () => {
      const storage = make();
      await storage.delete("file-link.txt");
      await expect(fs.lstat(path.join(location, "file-link.txt"))).rejects.toMatchObject({ code: "ENOENT" });
      await assertRootUntouched();
    });

    it("overwriting a name that is a link replaces the link, not its target", async () => {
      const storage = make({ fileOverwrite: true });
      expect(await storage.save("file-link.txt", Buffer.from("new"))).toBe("file-link.txt");
      expect((await fs.lstat(path.join(location, "file-link.txt"))).isFile()).toBe(true);
      await assertRootUntouched();
    });

    it("accepts links that stay inside location, and a location that is itself a link", async () => {
      await fs.mkdir(path.join(location, "real"));
      await fs.symlink(path.join(location, "real"), path.join(location, "alias"));
      const aliasRoot = path.join(root, "media-alias");
      await fs.symlink(location, aliasRoot);
      const storage = new FileSystemStorage({ location: aliasRoot });
      expect(await storage.save("alias/x.txt", Buffer.from("inside"))).toBe("alias/x.txt");
      expect(await fs.readFile(path.join(location, "real", "x.txt"), "utf8")).toBe("inside");
      expect(Buffer.from(await storage.read("alias/x.txt")).toString()).toBe("inside");
      await fs.unlink(aliasRoot);
    });
  });

  describe("permissions (POSIX)", () => {
    let previousUmask: number;
    beforeEach(() => {
      previousUmask = process.umask(0o022);
    });
    afterEach(() => {
      process.umask(previousUmask);
    });

    it("applies filePermissionsMode and directoryPermissionsMode exactly, whatever the umask", async () => {
      const storage = make({ filePermissionsMode: 0o660, directoryPermissionsMode: 0o770 });
      await storage.save("d1/d2/f.txt", Buffer.from("x"));
      expect((await fs.stat(path.join(location, "d1/d2/f.txt"))).mode & 0o777).toBe(0o660);
      expect((await fs.stat(path.join(location, "d1/d2"))).mode & 0o777).toBe(0o770);
      expect((await fs.stat(path.join(location, "d1"))).mode & 0o777).toBe(0o770);
      expect((await fs.stat(location)).mode & 0o777).toBe(0o770);
    });

    it("leaves existing directories' modes alone", async () => {
      await fs.mkdir(path.join(location, "existing"), { recursive: true, mode: 0o755 });
      const storage = make({ directoryPermissionsMode: 0o700 });
      await storage.save("existing/new/f.txt", Buffer.from("x"));
      expect((await fs.stat(path.join(location, "existing"))).mode & 0o777).toBe(0o755);
      expect((await fs.stat(path.join(location, "existing/new"))).mode & 0o777).toBe(0o700);
    });

    it("defaults to 0o666 / 0o777 minus the umask", async () => {
      await make().save("d/f.txt", Buffer.from("x"));
      expect((await fs.stat(path.join(location, "d/f.txt"))).mode & 0o777).toBe(0o644);
      expect((await fs.stat(path.join(location, "d"))).mode & 0o777).toBe(0o755);
    });
  });

  it("publishes atomically: a save in progress is invisible until it completes", async () => {
    const storage = make();
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const body = (async function* () {
      yield Buffer.from("first half, ");
      await gate;
      yield Buffer.from("second half");
    })();
    const pending = storage.save("atomic.txt", body);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(await fs.readdir(location)).toHaveLength(1); // only the temporary file
    expect(await storage.exists("atomic.txt")).toBe(false);
    expect(await storage.listdir("")).toEqual({ directories: [], files: [] });
    release();
    expect(await pending).toBe("atomic.txt");
    expect(await fs.readdir(location)).toEqual(["atomic.txt"]);
    expect(await fs.readFile(path.join(location, "atomic.txt"), "utf8")).toBe("first half, second half");
  });

  it("never overwrites across processes: a clash at publish time picks another name", async () => {
    // Separate reservation scopes behave like two processes sharing one directory.
    let scopes = 0;
    class OtherProcess extends FileSystemStorage {
      readonly #scope = `process-${++scopes}`;
      protected override reservationScope(): string {
        return this.#scope;
      }
    }
    const a = new OtherProcess({ location });
    const b = new OtherProcess({ location });
    const saves = Array.from({ length: 20 }, (_, i) =>
      (i % 2 ? a : b).save("shared.txt", Readable.from([Buffer.from(`writer ${i}`)], { objectMode: false })),
    );
    const names = await Promise.all(saves);
    expect(new Set(names).size).toBe(20);
    for (const [i, name] of names.entries()) {
      expect(await fs.readFile(path.join(location, name), "utf8")).toBe(`writer ${i}`);
    }
    expect(await filesBelow(location)).toHaveLength(20);
  });

  it("move is a rename: the same file (inode, mode, mtime) under the new name; a directory does not move", async () => {
    const storage = make({ filePermissionsMode: 0o640 });
    await storage.save("pending/a.txt", Buffer.from("x"));
    const before = await fs.stat(path.join(location, "pending/a.txt"));
    expect(await storage.move("pending/a.txt", "final/deep/a.txt")).toBe("final/deep/a.txt");
    const after = await fs.stat(path.join(location, "final/deep/a.txt"));
    expect([after.ino, after.mode & 0o777, after.mtimeMs, after.nlink]).toEqual([before.ino, 0o640, before.mtimeMs, 1]);
    await expect(storage.move("final", "elsewhere")).rejects.toBeInstanceOf(FileNotFoundError);
    expect(await filesBelow(location)).toEqual(["final/deep/a.txt"]);
  });

  it("move never overwrites across processes: a clash at link time picks another name", async () => {
    const storage = make();
    await storage.save("final.txt", Buffer.from("theirs"));
    await storage.save("mine.txt", Buffer.from("mine"));
    class OtherProcess extends FileSystemStorage {
      protected override reservationScope(): string {
        return "elsewhere";
      }
      // Another process has not seen final.txt yet: its exists() check is stale.
      protected override async objectExists(): Promise<boolean> {
        return false;
      }
    }
    const moved = await new OtherProcess({ location }).move("mine.txt", "final.txt");
    expect(moved).toMatch(/^final_[A-Za-z0-9]{7}\.txt$/);
    expect(await fs.readFile(path.join(location, "final.txt"), "utf8")).toBe("theirs");
    expect(await fs.readFile(path.join(location, moved), "utf8")).toBe("mine");
    expect(await filesBelow(location)).toEqual(["final.txt", moved].sort());
  });

  it("exists counts directories (Django's lexists), size/open do not treat them as files", async () => {
    const storage = make();
    await storage.save("dir/f.txt", Buffer.from("x"));
    expect(await storage.exists("dir")).toBe(true);
    await expect(storage.size("dir")).rejects.toBeInstanceOf(FileNotFoundError);
    await expect(storage.open("dir")).rejects.toBeInstanceOf(FileNotFoundError);
    // A save to a directory's name gets another name.
    expect(await storage.save("dir", Buffer.from("y"))).toMatch(/^dir_[A-Za-z0-9]{7}$/);
  });

  it("a file in the way of a directory is a StorageError", async () => {
    const storage = make();
    await storage.save("blocker", Buffer.from("x"));
    const error = await storage.save("blocker/x.txt", Buffer.from("y")).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StorageError);
    expect(await filesBelow(location)).toEqual(["blocker"]);
  });

  it("delete removes empty directories like Django, and keeps FileNotFoundError's cause", async () => {
    const storage = make();
    await fs.mkdir(path.join(location, "empty"), { recursive: true });
    await storage.delete("empty");
    expect(await storage.exists("empty")).toBe(false);
    const error = await storage.read("missing.txt").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(FileNotFoundError);
    expect(((error as Error).cause as NodeJS.ErrnoException).code).toBe("ENOENT");
  });

  it("url: baseUrl + Django's filepath_to_uri; no baseUrl is a StorageError", async () => {
    expect(await make().url("a b/c?d#e%f.txt")).toBe("/media/a%20b/c%3Fd%23e%25f.txt");
    expect(await make({ baseUrl: "https://cdn.example.com/m" }).url("x.txt")).toBe("https://cdn.example.com/m/x.txt");
    const error = await new FileSystemStorage({ location }).url("x.txt").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StorageError);
    expect((error as Error).message).toMatch(/not accessible via a URL/);
  });

  it("aborting a save after its content was read still leaves nothing", async () => {
    const storage = make();
    const controller = new AbortController();
    const body = (async function* () {
      yield Buffer.from("all of it");
      controller.abort(new Error("late abort"));
    })();
    await expect(storage.save("late.txt", body, { signal: controller.signal })).rejects.toThrow("late abort");
    expect(await filesBelow(location)).toEqual([]);
  });
});
