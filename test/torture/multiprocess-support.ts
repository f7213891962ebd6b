/**
 * The multi-process tests' parent side: a database of their own on the harness's database
 * server (committed migrations plus an audit trigger on the file columns), worker processes
 * (multiprocess-worker.ts) with their event streams, the deletion log, the continuous
 * dangling-key checker and the final orphan count.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import type { S3Client } from "@aws-sdk/client-s3";
import pg from "pg";
import type { Provider } from "../harness/databases.js";
import { MYSQL_MIGRATIONS_DIR, mysqlConnection } from "../harness/mysql.js";
import { migrationFiles } from "../harness/postgres.js";
import { headExists, listUnder } from "../harness/s3.js";
import { type RawDb, rawDb } from "../harness/sql.js";
import { createSqliteDatabase } from "../harness/sqlite.js";
import type { MpConfig, StorageEvent } from "./multiprocess-env.js";
import { privateLocation } from "./multiprocess-env.js";

const WORKER = join(import.meta.dirname, "multiprocess-worker.ts");

// ------------------------------------------------------------------------------ database

/**
 * Every committed change of `User.avatar`/`User.badge`, on PostgreSQL timed at the commit: a
 * deferred constraint trigger runs while the transaction commits (rolled-back changes leave
 * nothing), and `clock_timestamp()` is the time it runs, not the transaction's start.
 */
const AUDIT_SQL_POSTGRESQL = `
CREATE TABLE mp_audit (
  id bigserial PRIMARY KEY,
  email text NOT NULL,
  row_id int NOT NULL,
  col text NOT NULL,
  old_key text,
  new_key text,
  at timestamptz NOT NULL
);
CREATE FUNCTION mp_audit_user() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    IF NEW.avatar IS NOT NULL THEN
      INSERT INTO mp_audit (email, row_id, col, old_key, new_key, at) VALUES (NEW.email, NEW.id, 'avatar', NULL, NEW.avatar, clock_timestamp());
    END IF;
    INSERT INTO mp_audit (email, row_id, col, old_key, new_key, at) VALUES (NEW.email, NEW.id, 'badge', NULL, NEW.badge, clock_timestamp());
  ELSIF TG_OP = 'UPDATE' THEN
    IF NEW.avatar IS DISTINCT FROM OLD.avatar THEN
      INSERT INTO mp_audit (email, row_id, col, old_key, new_key, at) VALUES (NEW.email, NEW.id, 'avatar', OLD.avatar, NEW.avatar, clock_timestamp());
    END IF;
    IF NEW.badge IS DISTINCT FROM OLD.badge THEN
      INSERT INTO mp_audit (email, row_id, col, old_key, new_key, at) VALUES (NEW.email, NEW.id, 'badge', OLD.badge, NEW.badge, clock_timestamp());
    END IF;
  ELSE
    IF OLD.avatar IS NOT NULL THEN
      INSERT INTO mp_audit (email, row_id, col, old_key, new_key, at) VALUES (OLD.email, OLD.id, 'avatar', OLD.avatar, NULL, clock_timestamp());
    END IF;
    INSERT INTO mp_audit (email, row_id, col, old_key, new_key, at) VALUES (OLD.email, OLD.id, 'badge', OLD.badge, NULL, clock_timestamp());
  END IF;
  RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER mp_audit_user AFTER INSERT OR UPDATE OR DELETE ON "User"
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION mp_audit_user();
`;

/**
 * The same audit on MySQL and SQLite, which have no deferred triggers: the time is the
 * statement's (`at_ms`, ms since the epoch), earlier than its commit by the rest of its
 * transaction. Rolled-back changes still leave nothing (the trigger's insert is in the
 * transaction). The audit's dangling check can then miss a deletion sent between a release's
 * statement and its commit (it reads the release as earlier than it was); it flags nothing
 * falsely. The HEAD-based checker (danglingChecker) is unaffected.
 */
function auditStatements(provider: "mysql" | "sqlite"): string[] {
  const now =
    provider === "mysql"
      ? "ROUND(UNIX_TIMESTAMP(SYSDATE(3)) * 1000)"
      : "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)";
  const insert = (row: "NEW" | "OLD", col: "avatar" | "badge", oldKey: string, newKey: string) =>
    `INSERT INTO mp_audit (email, row_id, col, old_key, new_key, at_ms) VALUES (${row}.email, ${row}.id, '${col}', ${oldKey}, ${newKey}, ${now});`;
  if (provider === "mysql") {
    return [
      "CREATE TABLE mp_audit (id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, email VARCHAR(191) NOT NULL, row_id INT NOT NULL, col VARCHAR(16) NOT NULL, old_key VARCHAR(191) NULL, new_key VARCHAR(191) NULL, at_ms BIGINT NOT NULL) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci",
      `CREATE TRIGGER mp_audit_user_insert AFTER INSERT ON \`User\` FOR EACH ROW BEGIN
  IF NEW.avatar IS NOT NULL THEN ${insert("NEW", "avatar", "NULL", "NEW.avatar")} END IF;
  ${insert("NEW", "badge", "NULL", "NEW.badge")}
END`,
      `CREATE TRIGGER mp_audit_user_update AFTER UPDATE ON \`User\` FOR EACH ROW BEGIN
  IF NOT (NEW.avatar <=> OLD.avatar) THEN ${insert("NEW", "avatar", "OLD.avatar", "NEW.avatar")} END IF;
  IF NOT (NEW.badge <=> OLD.badge) THEN ${insert("NEW", "badge", "OLD.badge", "NEW.badge")} END IF;
END`,
      `CREATE TRIGGER mp_audit_user_delete AFTER DELETE ON \`User\` FOR EACH ROW BEGIN
  IF OLD.avatar IS NOT NULL THEN ${insert("OLD", "avatar", "OLD.avatar", "NULL")} END IF;
  ${insert("OLD", "badge", "OLD.badge", "NULL")}
END`,
    ];
  }
  return [
    "CREATE TABLE mp_audit (id INTEGER PRIMARY KEY AUTOINCREMENT, email TEXT NOT NULL, row_id INTEGER NOT NULL, col TEXT NOT NULL, old_key TEXT, new_key TEXT, at_ms INTEGER NOT NULL)",
    `CREATE TRIGGER mp_audit_user_insert_avatar AFTER INSERT ON "User" WHEN NEW.avatar IS NOT NULL BEGIN ${insert("NEW", "avatar", "NULL", "NEW.avatar")} END`,
    `CREATE TRIGGER mp_audit_user_insert_badge AFTER INSERT ON "User" BEGIN ${insert("NEW", "badge", "NULL", "NEW.badge")} END`,
    `CREATE TRIGGER mp_audit_user_update_avatar AFTER UPDATE ON "User" WHEN NEW.avatar IS NOT OLD.avatar BEGIN ${insert("NEW", "avatar", "OLD.avatar", "NEW.avatar")} END`,
    `CREATE TRIGGER mp_audit_user_update_badge AFTER UPDATE ON "User" WHEN NEW.badge IS NOT OLD.badge BEGIN ${insert("NEW", "badge", "OLD.badge", "NEW.badge")} END`,
    `CREATE TRIGGER mp_audit_user_delete_avatar AFTER DELETE ON "User" WHEN OLD.avatar IS NOT NULL BEGIN ${insert("OLD", "avatar", "OLD.avatar", "NULL")} END`,
    `CREATE TRIGGER mp_audit_user_delete_badge AFTER DELETE ON "User" BEGIN ${insert("OLD", "badge", "OLD.badge", "NULL")} END`,
  ];
}

export interface MpDatabase {
  provider: Provider;
  url: string;
  /** A connection of the test's own (raw SQL: `?` placeholders, `sql.id()` quoting). */
  sql: RawDb;
  /** The audit table's time column: PostgreSQL's `at` (timestamptz), elsewhere `at_ms`. */
  auditAt: string;
  drop(): Promise<void>;
}

/** An audit row's time as a Date (PostgreSQL's timestamptz, or ms since the epoch). */
export function auditTime(value: unknown): Date {
  return value instanceof Date ? value : new Date(Number(value));
}

/**
 * A database of these tests' own on the run's server (the committed migrations, the audit
 * trigger; on SQLite a file of its own): the drains of several processes claim every due journal
 * record, so sharing the run's database would let them bury the records of test files running
 * beside them.
 */
export async function createMpDatabase(provider: Provider, runUrl: string): Promise<MpDatabase> {
  const name = `psf_mp_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 8)}`;
  if (provider === "sqlite") {
    const created = await createSqliteDatabase("psf-mp");
    const sql = await rawDb(provider, created.url);
    for (const statement of auditStatements(provider)) await sql.execute(statement);
    return {
      provider,
      url: created.url,
      sql,
      auditAt: "at_ms",
      async drop() {
        await sql.end().catch(() => undefined);
        await created.drop();
      },
    };
  }
  const url = new URL(runUrl);
  url.pathname = `/${name}`;
  if (provider === "mysql") {
    const admin = await mysqlConnection(runUrl);
    await admin.query(`CREATE DATABASE \`${name}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`);
    await admin.end();
    const migrate = await mysqlConnection(url.toString());
    for (const file of migrationFiles(MYSQL_MIGRATIONS_DIR)) await migrate.query(readFileSync(file, "utf8"));
    for (const statement of auditStatements(provider)) await migrate.query(statement);
    await migrate.end();
    const sql = await rawDb(provider, url.toString());
    return {
      provider,
      url: url.toString(),
      sql,
      auditAt: "at_ms",
      async drop() {
        await sql.end().catch(() => undefined);
        const admin = await mysqlConnection(runUrl);
        await admin.query(`DROP DATABASE IF EXISTS \`${name}\``);
        await admin.end();
      },
    };
  }
  const admin = new pg.Client({ connectionString: runUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE "${name}"`);
  await admin.end();
  const client = new pg.Client({ connectionString: url.toString() });
  await client.connect();
  for (const file of migrationFiles()) await client.query(readFileSync(file, "utf8"));
  await client.query(AUDIT_SQL_POSTGRESQL);
  await client.end();
  const sql = await rawDb(provider, url.toString());
  return {
    provider,
    url: url.toString(),
    sql,
    auditAt: "at",
    async drop() {
      await sql.end().catch(() => undefined);
      const admin = new pg.Client({ connectionString: runUrl });
      await admin.connect();
      await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      await admin.end();
    },
  };
}

// ------------------------------------------------------------------------------ workers

export type WorkerEvent = StorageEvent | ({ e: string } & Record<string, unknown>);

export class Worker {
  readonly child: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly ready: Promise<void>;
  stderr = "";
  killed = false;
  #next = 1;
  #replies = new Map<number, { resolve: (v: unknown) => void; reject: (e: unknown) => void }>();
  #listeners: ((event: WorkerEvent) => void)[] = [];

  constructor(
    readonly label: string,
    mode: "model" | "rpc",
    config: MpConfig,
    extraEnv: Record<string, string>,
    onEvent: (worker: Worker, event: WorkerEvent) => void,
  ) {
    this.child = spawn(process.execPath, ["--import", "tsx", WORKER], {
      env: {
        ...process.env,
        MP_CONFIG: JSON.stringify(config),
        MP_MODE: mode,
        MP_WORKER: label,
        ...extraEnv,
      },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let readyResolve!: () => void;
    this.ready = new Promise((resolve) => {
      readyResolve = resolve;
    });
    this.child.stderr!.on("data", (chunk: Buffer) => {
      this.stderr = (this.stderr + chunk.toString()).slice(-4000);
    });
    createInterface({ input: this.child.stdout! }).on("line", (line) => {
      let event: WorkerEvent;
      try {
        event = JSON.parse(line) as WorkerEvent;
      } catch {
        return; // a line cut by a kill -9
      }
      if (event.e === "ready") readyResolve();
      if (event.e === "reply") {
        const r = event as unknown as { id: number; ok: boolean; result?: unknown; code?: string };
        const waiting = this.#replies.get(r.id);
        this.#replies.delete(r.id);
        if (r.ok) waiting?.resolve(r.result);
        else waiting?.reject(Object.assign(new Error(`${label}: ${r.code}`), { code: r.code }));
      }
      onEvent(this, event);
      for (const l of this.#listeners) l(event);
    });
    this.exited = new Promise((resolve) => {
      this.child.on("exit", (code, signal) => {
        for (const w of this.#replies.values()) w.reject(new Error(`${label} exited (${code ?? signal})`));
        this.#replies.clear();
        resolve({ code, signal });
      });
    });
    this.child.stdin!.on("error", () => undefined);
  }

  get pid(): number {
    return this.child.pid!;
  }

  send(line: string): void {
    if (this.child.stdin!.writable) this.child.stdin!.write(`${line}\n`);
  }

  /** Runs a command in an `rpc` worker. */
  rpc<T = unknown>(cmd: string, args: Record<string, unknown> = {}): Promise<T> {
    const id = this.#next++;
    return new Promise<T>((resolve, reject) => {
      this.#replies.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.send(JSON.stringify({ id, cmd, ...args }));
    });
  }

  onEvent(listener: (event: WorkerEvent) => void): () => void {
    this.#listeners.push(listener);
    return () => {
      this.#listeners = this.#listeners.filter((l) => l !== listener);
    };
  }

  kill9(): void {
    this.killed = true;
    this.child.kill("SIGKILL");
  }

  /** Ends an `rpc` worker (or a `model` one) and waits for it. */
  async stop(): Promise<void> {
    this.send("stop");
    this.send(JSON.stringify({ cmd: "exit" }));
    const timer = setTimeout(() => this.kill9(), 30_000);
    await this.exited;
    clearTimeout(timer);
  }
}

// ------------------------------------------------------------------------------ deletions

export interface Deletion {
  store: string;
  key: string;
  /** When the deleting process announced it (before sending). */
  start: number;
  by: string;
}

/** Every deletion any process sent (from the storages' events). */
export class DeletionLog {
  readonly deletions: Deletion[] = [];
  record(by: string, event: WorkerEvent) {
    if (event.e !== "del-start") return;
    const { store, keys, ts } = event as Extract<StorageEvent, { e: "del-start" }>;
    for (const key of keys) this.deletions.push({ store, key, start: ts, by });
  }
}

// ------------------------------------------------------------------------------ audit

interface AuditRow {
  email: string;
  row_id: number;
  col: string;
  old_key: string | null;
  new_key: string | null;
  at: unknown;
}

export interface DanglingMoment {
  store: string;
  key: string;
  email: string;
  /** The row held the key from `heldFrom` until `heldUntil` (commit times; null: still holds it). */
  heldFrom: string;
  heldUntil: string | null;
  deletionStart: string;
  deletedBy: string;
}

const storeOfColumn = (col: string) => (col === "badge" ? "private" : "default");

/**
 * Moments a committed row held a key whose deletion had started: from the audit log (when each
 * row held each key, by commit time) and the deletion log (when each deletion was sent). Keys
 * are never reused, so an object deleted once is missing for good.
 */
export async function danglingFromAudit(
  db: MpDatabase,
  domain: string,
  log: DeletionLog,
  slackMs = 2,
): Promise<{ moments: DanglingMoment[]; changes: number }> {
  const rows = await db.sql.query<AuditRow>(
    `SELECT email, row_id, col, old_key, new_key, ${db.auditAt} AS at FROM mp_audit WHERE email LIKE ? ORDER BY ${db.auditAt}, id`,
    [`%${domain}`],
  );
  type Interval = { email: string; from: number; until: number | null };
  const held = new Map<string, Interval[]>();
  const open = new Map<string, Interval>(); // by row, column
  for (const r of rows) {
    const store = storeOfColumn(r.col);
    const slot = `${r.row_id}:${r.col}`;
    const at = auditTime(r.at).getTime();
    if (r.old_key !== null) {
      const i = open.get(slot);
      if (i) i.until = at;
      open.delete(slot);
    }
    if (r.new_key !== null) {
      const i: Interval = { email: r.email, from: at, until: null };
      const id = `${store}:${r.new_key}`;
      held.set(id, [...(held.get(id) ?? []), i]);
      open.set(slot, i);
    }
  }
  const moments: DanglingMoment[] = [];
  for (const d of log.deletions) {
    for (const i of held.get(`${d.store}:${d.key}`) ?? []) {
      if ((i.until ?? Number.POSITIVE_INFINITY) > d.start + slackMs) {
        moments.push({
          store: d.store,
          key: d.key,
          email: i.email,
          heldFrom: new Date(i.from).toISOString(),
          heldUntil: i.until === null ? null : new Date(i.until).toISOString(),
          deletionStart: new Date(d.start).toISOString(),
          deletedBy: d.by,
        });
      }
    }
  }
  return { moments, changes: rows.length };
}

// ------------------------------------------------------------------------------ objects

/** The keys the rows of `domain` hold, by storage name. */
export async function heldKeys(db: MpDatabase, domain: string) {
  const rows = await db.sql.query<{ email: string; avatar: string | null; badge: string }>(
    `SELECT email, avatar, badge FROM ${db.sql.id("User")} WHERE email LIKE ?`,
    [`%${domain}`],
  );
  const keys = { default: new Map<string, string>(), private: new Map<string, string>() };
  for (const r of rows) {
    if (r.avatar !== null) keys.default.set(r.avatar, r.email);
    keys.private.set(r.badge, r.email);
  }
  return keys;
}

export function objectKey(config: MpConfig, store: string, key: string): string {
  return `${store === "private" ? privateLocation(config.location) : config.location}/${key}`;
}

/**
 * Checks, again and again until stopped, that every key a committed row holds has its object: a
 * HEAD per key; a missing one counts only if a row still holds the key after the HEAD answered
 * (keys are never reused, so the row pointed at a missing object then).
 */
export function danglingChecker(db: MpDatabase, s3: S3Client, config: MpConfig, domain: string, intervalMs = 150) {
  let stopped = false;
  let checks = 0;
  const dangling: { store: string; key: string; email: string; at: string }[] = [];
  const checkOnce = async () => {
    const keys = await heldKeys(db, domain);
    const missing: { store: "default" | "private"; key: string }[] = [];
    await Promise.all(
      (["default", "private"] as const).flatMap((store) =>
        [...keys[store].keys()].map(async (key) => {
          if (!(await headExists(s3, config.bucket, objectKey(config, store, key)))) missing.push({ store, key });
        }),
      ),
    );
    if (missing.length > 0) {
      const after = await heldKeys(db, domain);
      for (const m of missing) {
        const email = after[m.store].get(m.key);
        if (email !== undefined && !(await headExists(s3, config.bucket, objectKey(config, m.store, m.key)))) {
          dangling.push({ ...m, email, at: new Date().toISOString() });
        }
      }
    }
    checks++;
  };
  const loop = (async () => {
    while (!stopped) {
      await checkOnce();
      await new Promise((resolve) => setTimeout(resolve, intervalMs));
    }
  })();
  return {
    dangling,
    get checks() {
      return checks;
    },
    checkOnce,
    async stop() {
      stopped = true;
      await loop;
      await checkOnce();
    },
  };
}

/** The journal's records by kind. */
export async function journalKinds(db: MpDatabase): Promise<Record<string, number>> {
  const rows = await db.sql.query<{ kind: string; n: string }>(
    "SELECT kind, count(*) AS n FROM prisma_s3_files_journal GROUP BY kind",
  );
  return Object.fromEntries(rows.map((r) => [r.kind, Number(r.n)]));
}

/** What the bucket holds under the config's locations, minus what the rows of `domain` hold. */
export async function orphansOf(db: MpDatabase, s3: S3Client, config: MpConfig, domain: string) {
  const keys = await heldKeys(db, domain);
  const [d, p] = await Promise.all([
    listUnder(s3, config.bucket, config.location),
    listUnder(s3, config.bucket, privateLocation(config.location)),
  ]);
  const orphans = [
    ...d.filter((k) => !keys.default.has(k)).map((k) => `default:${k}`),
    ...p.filter((k) => !keys.private.has(k)).map((k) => `private:${k}`),
  ];
  const missing = [
    ...[...keys.default.keys()].filter((k) => !d.includes(k)).map((k) => `default:${k}`),
    ...[...keys.private.keys()].filter((k) => !p.includes(k)).map((k) => `private:${k}`),
  ];
  return { orphans, missing, objects: d.length + p.length, held: keys.default.size + keys.private.size };
}
