// better-sqlite3 ships no types (@types/better-sqlite3 is not a dependency); this covers the part the tests use.
declare module "better-sqlite3" {
  interface Statement {
    readonly reader: boolean;
    run(...params: unknown[]): { changes: number; lastInsertRowid: number | bigint };
    get(...params: unknown[]): unknown;
    all(...params: unknown[]): unknown[];
  }
  interface Options {
    readonly?: boolean;
    fileMustExist?: boolean;
    timeout?: number;
  }
  class Database {
    constructor(filename: string, options?: Options);
    prepare(sql: string): Statement;
    exec(sql: string): this;
    pragma(source: string, options?: { simple?: boolean }): unknown;
    close(): this;
  }

  export type { Options, Statement };
  export default Database;
}
