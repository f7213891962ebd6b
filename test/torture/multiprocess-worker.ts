/**
 * A worker process of the multi-process torture tests: `node --import tsx multiprocess-worker.ts`
 * with `MP_CONFIG` (JSON, see MpConfig) and `MP_MODE`:
 *
 * - `model`: random replace / null / copy / recreate / deleteMany / create / badge replace on
 *   `MP_USERS` users of `MP_DOMAIN` (shared with the other workers), `MP_CONCURRENCY` loops, now
 *   and then an explicit `drainFiles`, until "stop" arrives on stdin. Seeded by `MP_SEED`.
 * - `rpc`: runs the JSON commands that arrive on stdin (one a line, concurrently) and answers each.
 *
 * Everything it sees goes to stdout as JSON lines: each operation's outcome, each object stored,
 * each deletion sent (before and after), drains — the parent times its `kill -9`s on them.
 */
import { createInterface } from "node:readline";
import { sweepOrphans, upload } from "../../src/index.js";
// Not exported from the root entry yet (issue #14 plan: it will be).
import { drainFiles } from "../../src/prisma/journal/drain.js";
import { type MpConfig, pdfBytes, pngBytes, processEnv, type StorageEvent } from "./multiprocess-env.js";
import { Rng } from "./support.js";

const config = JSON.parse(process.env.MP_CONFIG ?? "{}") as MpConfig;
const mode = process.env.MP_MODE ?? "model";
const worker = process.env.MP_WORKER ?? "w";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function out(line: Record<string, unknown>) {
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

/** What the worker is doing: a deletion is labelled by it (settle of a write, or a drain). */
let draining = 0;
const emit = (event: StorageEvent) => out({ ...event, phase: draining > 0 ? "drain" : "write" });
const env = await processEnv(config, emit);
const { files, plain } = env;

function errorCode(error: unknown): string {
  const code = (error as { code?: unknown })?.code;
  // A raw query's failure (P2010) says which database error it was: the torture's report names it.
  const cause = (error as { meta?: { driverAdapterError?: { cause?: { originalCode?: unknown } } } })?.meta
    ?.driverAdapterError?.cause?.originalCode;
  if (typeof code === "string") return code === "P2010" && cause !== undefined ? `${code}:${String(cause)}` : code;
  return `${(error as Error)?.name ?? "Error"}: ${String((error as Error)?.message ?? error).slice(0, 200)}`;
}

async function drainNow() {
  draining++;
  out({ e: "drain-start", ts: Date.now() });
  try {
    const report = await drainFiles(plain, env.session, env.options);
    out({ e: "drain-end", ts: Date.now(), deleted: report.deleted, failed: report.failed.length });
    return report;
  } finally {
    draining--;
  }
}

const stdin = createInterface({ input: process.stdin });
let stopping = false;

// ------------------------------------------------------------------------------------- model

async function model() {
  const seed = Number(process.env.MP_SEED ?? "1") >>> 0;
  const rng = new Rng(seed);
  const domain = process.env.MP_DOMAIN ?? "@mp.test";
  const users = Array.from({ length: Number(process.env.MP_USERS ?? "20") }, (_, i) => `u${i}${domain}`);
  const concurrency = Number(process.env.MP_CONCURRENCY ?? "2");
  const drainChance = Number(process.env.MP_DRAIN_CHANCE ?? "0.03");
  /** A copy writes the key it read up to this many ms later (an app reads in one request, writes in the next). */
  const copyDelayMs = Number(process.env.MP_COPY_DELAY_MS ?? "0");
  stdin.on("line", (line) => {
    if (line.trim() === "stop") stopping = true;
  });
  stdin.on("close", () => {
    stopping = true;
  });
  let n = 0;
  const name = (ext: string) => `${worker}-${n++}-${rng.next().toString(36)}.${ext}`;
  const newUser = (email: string) => ({
    email,
    avatar: rng.chance(0.8) ? upload(pngBytes(name("v")), { filename: name("png") }) : null,
    badge: upload(pdfBytes(name("v")), { filename: name("pdf") }),
  });
  const ops = {
    replace: async (email: string) => {
      await files.user.update({
        where: { email },
        data: { avatar: upload(pngBytes(name("v")), { filename: name("png") }) },
        select: { id: true },
      });
    },
    null: async (email: string) => {
      await files.user.update({ where: { email }, data: { avatar: null }, select: { id: true } });
    },
    copy: async (email: string) => {
      const other = await files.user.findUnique({ where: { email: rng.pick(users) }, select: { avatar: true } });
      if (!other?.avatar) return "skipped";
      if (copyDelayMs > 0) await sleep(rng.int(copyDelayMs));
      await files.user.update({ where: { email }, data: { avatar: other.avatar.name }, select: { id: true } });
      return undefined;
    },
    recreate: async (email: string) => {
      try {
        await files.user.delete({ where: { email }, select: { id: true } });
      } catch (error) {
        if (errorCode(error) !== "P2025") throw error;
      }
      await files.user.create({ data: newUser(email), select: { id: true } });
    },
    deleteMany: async () => {
      await files.user.deleteMany({ where: { email: { in: rng.subset(users, 0.15) } } });
    },
    create: async (email: string) => {
      await files.user.create({ data: newUser(email), select: { id: true } });
    },
    badge: async (email: string) => {
      await files.user.update({
        where: { email },
        data: { badge: upload(pdfBytes(name("v")), { filename: name("pdf") }) },
        select: { id: true },
      });
    },
  };
  const weights = { replace: 30, null: 8, copy: 22, recreate: 12, deleteMany: 4, create: 14, badge: 10 } as const;
  const loop = async () => {
    while (!stopping) {
      if (rng.chance(drainChance)) {
        try {
          await drainNow();
          out({ e: "op", kind: "drain", ok: true });
        } catch (error) {
          out({ e: "op", kind: "drain", ok: false, code: errorCode(error) });
        }
        continue;
      }
      const kind = rng.weighted(weights);
      const email = rng.pick(users);
      const started = Date.now();
      out({ e: "op-start", kind, email, ts: started });
      try {
        const result = await ops[kind](email);
        out({ e: "op", kind, email, ok: true, skipped: result === "skipped", ms: Date.now() - started });
      } catch (error) {
        out({ e: "op", kind, email, ok: false, code: errorCode(error), ms: Date.now() - started });
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, loop));
}

// --------------------------------------------------------------------------------------- rpc

type Command = { id: number; cmd: string } & Record<string, unknown>;

async function run(c: Command): Promise<unknown> {
  switch (c.cmd) {
    case "create": {
      const row = await files.user.create({
        data: {
          email: c.email as string,
          avatar: upload(pngBytes(String(c.variant)), { filename: `${c.variant}.png` }),
          badge: upload(pdfBytes(String(c.variant)), { filename: `${c.variant}.pdf` }),
        },
        select: { id: true, avatar: true, badge: true },
      });
      return { id: row.id, avatar: row.avatar?.name ?? null, badge: row.badge.name };
    }
    case "readAvatar": {
      const row = await files.user.findUnique({ where: { email: c.email as string }, select: { avatar: true } });
      return row?.avatar?.name ?? null;
    }
    case "setAvatarKey": {
      await sleep(Number(c.delayMs ?? 0));
      await files.user.update({
        where: { email: c.email as string },
        data: { avatar: c.key as string },
        select: { id: true },
      });
      return null;
    }
    case "recreate": {
      await sleep(Number(c.delayMs ?? 0));
      await files.user.delete({ where: { email: c.email as string }, select: { id: true } });
      const row = await files.user.create({
        data: {
          email: c.email as string,
          avatar: upload(pngBytes(String(c.variant)), { filename: `${c.variant}.png` }),
          badge: upload(pdfBytes(String(c.variant)), { filename: `${c.variant}.pdf` }),
        },
        select: { avatar: true },
      });
      return row.avatar?.name ?? null;
    }
    case "replaceAvatar": {
      const row = await files.user.update({
        where: { email: c.email as string },
        data: { avatar: upload(pngBytes(String(c.variant)), { filename: `${c.variant}.png` }) },
        select: { avatar: true },
      });
      const key = row.avatar?.name ?? null;
      if (c.thenKill) {
        out({ e: "reply", id: c.id, ok: true, result: key, ts: Date.now() });
        process.kill(process.pid, "SIGKILL");
      }
      return key;
    }
    case "createMany": {
      // `count` creates at once; each outcome reported (a failed create is not an error of the command).
      const outcomes = await Promise.allSettled(
        Array.from({ length: Number(c.count) }, (_, i) =>
          files.user.create({
            data: {
              email: `${c.prefix}${i}${c.domain}`,
              avatar: upload(pngBytes(`${c.prefix}${i}`), { filename: `${c.prefix}${i}.png` }),
              badge: upload(pdfBytes(`${c.prefix}${i}`), { filename: `${c.prefix}${i}.pdf` }),
            },
            select: { id: true },
          }),
        ),
      );
      return outcomes.map((o) => (o.status === "fulfilled" ? "ok" : errorCode(o.reason)));
    }
    case "sweep": {
      const report = await sweepOrphans(plain, env.session, { ...env.options, olderThan: Number(c.olderThan ?? 0) });
      return { examined: report.examined, orphans: report.orphans.map((o) => o.key), failed: report.failed.length };
    }
    case "drain": {
      const report = await drainNow();
      return { claimed: report.claimed, deleted: report.deleted, dropped: report.dropped, failed: report.failed };
    }
    default:
      throw new Error(`unknown command ${c.cmd}`);
  }
}

async function rpc() {
  const running = new Set<Promise<void>>();
  await new Promise<void>((resolve) => {
    stdin.on("line", (line) => {
      if (!line.trim()) return;
      const c = JSON.parse(line) as Command;
      if (c.cmd === "exit") {
        stopping = true;
        resolve();
        return;
      }
      const p = run(c).then(
        (result) => out({ e: "reply", id: c.id, ok: true, result, ts: Date.now() }),
        (error: unknown) => out({ e: "reply", id: c.id, ok: false, code: errorCode(error), ts: Date.now() }),
      );
      running.add(p);
      void p.finally(() => running.delete(p));
    });
    stdin.on("close", () => resolve());
  });
  await Promise.all(running);
}

out({ e: "ready", pid: process.pid, ts: Date.now() });
try {
  if (mode === "model") await model();
  else await rpc();
} finally {
  await files.$disconnect();
  await plain.$disconnect();
  await env.session.destroy();
}
out({ e: "bye", ts: Date.now() });
process.exit(0);
