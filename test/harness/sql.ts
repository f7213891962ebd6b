/**
 * Raw SQL on the run's database for tests that look under Prisma (journal rows, audit tables,
 * row counts), the same on every provider: `?` placeholders (numbered for PostgreSQL here),
 * identifiers quoted with {@link RawDb.id} (PostgreSQL and SQLite "x", MySQL `x`).
 */
import Database from "better-sqlite3";
import pg from "pg";
import type { Provider } from "./databases.js";
import { mysqlConnection } from "./mysql.js";
import { sqlitePath } from "./sqlite.js";

export interface RawDb {
  readonly provider: Provider;
  /** Runs one statement; its rows (none for a write). */
  query<T = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<T[]>;
  /** Runs one statement; the rows it changed. */
  execute(sql: string, params?: readonly unknown[]): Promise<number>;
  /** `name` quoted as an identifier. */
  id(name: string): string;
  end(): Promise<void>;
}

/** Numbers `?` placeholders `$1`, `$2`, ... (PostgreSQL's form); the tests' SQL has no `?` in literals. */
export function numberPlaceholders(sql: string): string {
  let n = 0;
  return sql.replace(/\?/g, () => `$${++n}`);
}

/** A connection to `provider`'s database at `url`. */
export async function rawDb(provider: Provider, url: string): Promise<RawDb> {
  switch (provider) {
    case "postgresql": {
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      return {
        provider,
        async query<T>(sql: string, params: readonly unknown[] = []) {
          return (await client.query(numberPlaceholders(sql), [...params])).rows as T[];
        },
        async execute(sql, params = []) {
          return (await client.query(numberPlaceholders(sql), [...params])).rowCount ?? 0;
        },
        id: (name) => `"${name.replaceAll('"', '""')}"`,
        end: () => client.end(),
      };
    }
    case "mysql": {
      const conn = await mysqlConnection(url);
      return {
        provider,
        async query<T>(sql: string, params: readonly unknown[] = []) {
          const rows = await conn.query({ sql, bigIntAsNumber: true, insertIdAsNumber: true }, [...params]);
          return (Array.isArray(rows) ? rows : []) as T[];
        },
        async execute(sql, params = []) {
          const result = await conn.query(sql, [...params]);
          return Number((result as { affectedRows?: number }).affectedRows ?? 0);
        },
        id: (name) => `\`${name.replaceAll("`", "``")}\``,
        end: () => conn.end(),
      };
    }
    case "sqlite": {
      const db = new Database(sqlitePath(url), { timeout: 10_000 });
      return {
        provider,
        async query<T>(sql: string, params: readonly unknown[] = []) {
          const statement = db.prepare(sql);
          if (statement.reader) return statement.all(...params) as T[];
          statement.run(...params);
          return [];
        },
        async execute(sql, params = []) {
          return db.prepare(sql).run(...params).changes;
        },
        id: (name) => `"${name.replaceAll('"', '""')}"`,
        async end() {
          db.close();
        },
      };
    }
  }
}
