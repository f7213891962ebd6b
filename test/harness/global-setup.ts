import type { TestProject } from "vitest/node";
import { createTestDatabase } from "./postgres.js";
import { createTestS3, type S3Target } from "./s3.js";

declare module "vitest" {
  export interface ProvidedContext {
    databaseUrl: string;
    databaseSource: string;
    s3: S3Target;
  }
}

/** Starts (or finds) PostgreSQL and S3 once per test run; tests read them with `inject()`. */
export default async function setup(project: TestProject) {
  const [db, s3] = await Promise.all([createTestDatabase(), createTestS3()]);
  project.provide("databaseUrl", db.url);
  project.provide("databaseSource", db.source);
  const { stop: _stop, ...target } = s3;
  project.provide("s3", target);
  return async () => {
    await Promise.allSettled([db.drop(), s3.stop()]);
  };
}
