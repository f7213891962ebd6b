import type { TestProject } from "vitest/node";
import { createDatabase, isProvider } from "./databases.js";

/**
 * A project's setup: a fresh database on the provider the project is named after (vitest.config.ts),
 * with the committed migrations applied; dropped when the run ends. Tests read it with `inject()`.
 */
export default async function setup(project: TestProject) {
  const provider = project.name;
  if (!isProvider(provider)) throw new Error(`database-setup: project ${JSON.stringify(provider)} is not a provider`);
  const db = await createDatabase(provider);
  project.provide("provider", provider);
  project.provide("databaseUrl", db.url);
  project.provide("databaseSource", db.source);
  return async () => {
    await db.drop();
  };
}
