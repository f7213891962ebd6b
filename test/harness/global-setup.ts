import type { TestProject } from "vitest/node";
import type { Provider } from "./databases.js";
import { createTestS3, type S3Target } from "./s3.js";

declare module "vitest" {
  export interface ProvidedContext {
    /** The project's database (vitest.config.ts: one project per provider). */
    provider: Provider;
    databaseUrl: string;
    databaseSource: string;
    s3: S3Target;
  }
}

/**
 * The root's setup: starts (or finds) the S3 server once per test run, for every project (a
 * project's context inherits the root's). Each project's database comes from database-setup.ts.
 */
export default async function setup(project: TestProject) {
  const s3 = await createTestS3();
  const { stop: _stop, ...target } = s3;
  project.provide("s3", target);
  return async () => {
    await s3.stop();
  };
}
