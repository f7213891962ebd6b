import { type ChildProcess, execFile, spawn, spawnSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { accessSync, constants, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { promisify } from "node:util";
import { ListBucketsCommand, S3Client } from "@aws-sdk/client-s3";

/**
 * A throw-away single-node Ceph RADOS Gateway: the real S3 implementation `npm test` runs
 * against where no `S3_*` variables and no Docker daemon are given. One monitor, one OSD on
 * memstore (objects in RAM, nothing on disk but the run's small data directory), radosgw's
 * beast frontend on 127.0.0.1, an S3 user with fixed keys. Every daemon runs in the
 * foreground as our child, on ports picked free for this run, and is stopped by PID at the end;
 * a watchdog kills them should this process die without its teardown (a crash, `kill -9`).
 *
 * Debian 12 ships Ceph 16.2 (Pacific); the packages are installed with apt-get when missing and
 * this process is root (`.ci/run` installs them beforehand).
 */

const run = promisify(execFile);

/** Debian packages with the binaries below. */
export const CEPH_PACKAGES = ["ceph-mon", "ceph-osd", "radosgw", "ceph-common"] as const;
const BINARIES = ["ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "ceph", "ceph-authtool", "monmaptool"];

export const RGW_ACCESS_KEY = "PSFTESTACCESSKEY0001";
export const RGW_SECRET_KEY = "psf-test-secret-key-not-a-secret-000000001";

export interface CephRgw {
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** PIDs of mon, osd and radosgw. */
  pids: number[];
  /** The run's directory (config, keyring, logs); removed by `stop()`. */
  directory: string;
  stop(): Promise<void>;
}

function onPath(binary: string): boolean {
  return (process.env.PATH ?? "").split(delimiter).some((dir) => {
    try {
      accessSync(join(dir, binary), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/** Whether Ceph's binaries are here, installing them with apt-get when we are root and may. */
export function cephAvailable(install = process.env.PSF_RGW_INSTALL !== "0"): boolean {
  if (BINARIES.every(onPath)) return true;
  if (!install || process.getuid?.() !== 0 || !onPath("apt-get")) return false;
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  const steps = [
    ["apt-get", ["update", "-qq"]],
    ["apt-get", ["install", "-y", "-qq", "--no-install-recommends", ...CEPH_PACKAGES]],
  ] as const;
  for (const [cmd, args] of steps) {
    const result = spawnSync(cmd, args, { env, stdio: ["ignore", "ignore", "pipe"], timeout: 300_000 });
    if (result.status !== 0) {
      process.stderr.write(`harness: ${cmd} ${args.join(" ")} failed: ${result.stderr?.toString().slice(-500)}\n`);
      return false;
    }
  }
  return BINARIES.every(onPath);
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** Retries `probe` (true, or a call that resolves, means ready) until it succeeds or the deadline passes. */
async function until(what: string, deadline: number, probe: () => Promise<unknown>, logs: string): Promise<void> {
  for (;;) {
    if (
      await probe().then(
        (ok) => ok !== false,
        () => false,
      )
    )
      return;
    if (Date.now() > deadline) throw new Error(`Ceph RGW: timed out waiting for ${what}${tailLogs(logs)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function tailLogs(dir: string): string {
  let out = "";
  for (const name of ["mon.a.log", "osd.0.log", "client.rgw.a.log", "mon.out", "osd.out", "rgw.out"]) {
    try {
      const text = readFileSync(join(dir, name), "utf8").trimEnd().split("\n").slice(-15).join("\n");
      out += `\n---- ${name}\n${text}`;
    } catch {}
  }
  return out;
}

function config(o: { fsid: string; base: string; monPort: number; port: number; memBytes: number }): string {
  return `[global]
fsid = ${o.fsid}
mon initial members = a
mon host = v1:127.0.0.1:${o.monPort}
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind msgr2 = false
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
auth allow insecure global id reclaim = false
keyring = ${o.base}/keyring
run dir = ${o.base}/run
admin socket = ${o.base}/run/$name.asok
log file = ${o.base}/log/$name.log
crash dir = ${o.base}/log/crash
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon max pg per osd = 1000
mon warn on pool no redundancy = false
mon data avail warn = 1
mon data avail crit = 0
paxos propose interval = 0.05
paxos min wait = 0.01
osd objectstore = memstore
memstore device bytes = ${o.memBytes}

[mon]
mon data = ${o.base}/mon/ceph-$id

[osd]
osd data = ${o.base}/osd/ceph-$id
osd op num shards = 1
osd op num threads per shard = 2

[client.rgw.a]
# Without tcp_nodelay small GETs wait ~40 ms each (Nagle against delayed ACKs).
rgw frontends = beast endpoint=127.0.0.1:${o.port} tcp_nodelay=1
rgw data = ${o.base}/rgw
rgw dns name = localhost
# Deleted objects stay in the (RAM) store until garbage collection, by default 2 hours later: a
# long run (the 1 GiB stream bench, npm run torture) would fill the store first.
rgw gc obj min wait = 30
rgw gc processor period = 30
`;
}

/**
 * Starts a fresh RGW in its own directory under the system temp dir. Fails (after stopping
 * whatever it started) when a daemon does not come up within `timeoutMs`.
 */
export async function startCephRgw(options: { timeoutMs?: number; memBytes?: number } = {}): Promise<CephRgw> {
  const timeoutMs = options.timeoutMs ?? 60_000;
  const base = mkdtempSync(join(tmpdir(), "psf-rgw-"));
  const logs = join(base, "log");
  for (const dir of ["mon", "osd/ceph-0", "rgw", "log", "run"]) mkdirSync(join(base, dir), { recursive: true });
  const [monPort, port] = [await freePort(), await freePort()];
  const conf = join(base, "ceph.conf");
  writeFileSync(conf, config({ fsid: randomUUID(), base, monPort, port, memBytes: options.memBytes ?? 8 * 1024 ** 3 }));

  const children: ChildProcess[] = [];
  let watchdog: ChildProcess | undefined;
  const stop = async () => {
    // Its data is thrown away, so nothing needs a clean shutdown.
    await Promise.all(children.map(killChild));
    watchdog?.kill("SIGKILL");
    rmSync(base, { recursive: true, force: true });
  };
  const daemon = (name: string, cmd: string, args: string[]) => {
    const out = openSync(join(logs, `${name}.out`), "a");
    const child = spawn(cmd, ["-f", "-c", conf, ...args], { stdio: ["ignore", out, out] });
    children.push(child);
    return child;
  };
  const ceph = (...args: string[]) =>
    run("ceph", ["-c", conf, "--connect-timeout", "10", ...args], { timeout: 15_000 });
  const deadline = () => Date.now() + timeoutMs;

  try {
    const keyring = join(base, "keyring");
    const auth = async (args: string[]) => run("ceph-authtool", [keyring, ...args]);
    await auth(["--create-keyring", "--gen-key", "-n", "mon.", "--cap", "mon", "allow *"]);
    await auth([
      ...["--gen-key", "-n", "client.admin", "--cap", "mon", "allow *", "--cap", "osd", "allow *"],
      ...["--cap", "mgr", "allow *", "--cap", "mds", "allow *"],
    ]);
    await auth([
      ...["--gen-key", "-n", "osd.0", "--cap", "mon", "allow profile osd", "--cap", "mgr", "allow profile osd"],
      ...["--cap", "osd", "allow *"],
    ]);
    await auth([
      ...["--gen-key", "-n", "client.rgw.a", "--cap", "mon", "allow rw", "--cap", "osd", "allow rwx"],
      ...["--cap", "mgr", "allow rw"],
    ]);
    const fsid = /fsid = (.+)/.exec(readFileSync(conf, "utf8"))?.[1] as string;
    const monmap = join(base, "monmap");
    await run("monmaptool", ["--create", "--fsid", fsid, "--addv", "a", `[v1:127.0.0.1:${monPort}]`, monmap]);
    await run("ceph-mon", ["-c", conf, "--mkfs", "-i", "a", "--monmap", monmap, "--keyring", keyring]);

    const pids = () => children.map((c) => c.pid as number);
    // Kills the daemons should this process vanish without running stop() (kill -9, a crash);
    // restarted with the new list as each daemon starts.
    const startWatch = () => {
      watchdog?.kill("SIGKILL");
      const [first, ...rest] = pids().map(String);
      watchdog = spawn(
        "sh",
        [
          "-c",
          `while kill -0 ${process.pid} 2>/dev/null; do sleep 1; done; kill -9 "$0" "$@" 2>/dev/null; rm -rf '${base}'`,
          first as string,
          ...rest,
        ],
        { detached: true, stdio: "ignore" },
      );
      watchdog.unref();
    };

    daemon("mon", "ceph-mon", ["-i", "a"]);
    startWatch();
    await until("the monitor", deadline(), () => ceph("mon", "stat"), logs);

    const osdUuid = randomUUID();
    await until("an OSD id", deadline(), () => ceph("osd", "new", osdUuid), logs);
    await run("ceph-osd", ["-c", conf, "-i", "0", "--mkfs", "--osd-uuid", osdUuid]);
    daemon("osd", "ceph-osd", ["-i", "0"]);
    startWatch();
    await until("osd.0 up", deadline(), async () => /^osd\.0 up/m.test((await ceph("osd", "dump")).stdout), logs);

    daemon("rgw", "radosgw", ["-n", "client.rgw.a"]);
    startWatch();
    const endpoint = `http://127.0.0.1:${port}`;
    await until("radosgw", deadline(), async () => (await fetch(`${endpoint}/`)).status < 500, logs);
    await run("radosgw-admin", [
      ...["-c", conf, "user", "create", "--uid=tester", "--display-name=prisma-s3-files tests"],
      `--access-key=${RGW_ACCESS_KEY}`,
      `--secret-key=${RGW_SECRET_KEY}`,
    ]);
    // The new user must be able to sign requests before the run starts.
    const client = new S3Client({
      endpoint,
      region: "us-east-1",
      forcePathStyle: true,
      credentials: { accessKeyId: RGW_ACCESS_KEY, secretAccessKey: RGW_SECRET_KEY },
    });
    try {
      await until("an authenticated ListBuckets", deadline(), () => client.send(new ListBucketsCommand({})), logs);
    } finally {
      client.destroy();
    }
    return {
      endpoint,
      accessKeyId: RGW_ACCESS_KEY,
      secretAccessKey: RGW_SECRET_KEY,
      pids: pids(),
      directory: base,
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

async function killChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGKILL");
  await exited;
}
