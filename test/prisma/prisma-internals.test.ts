/**
 * One test per assumption `src/prisma/prisma-internals.ts` makes about Prisma, against the real
 * client of this repository's Prisma version, and, for each, the clear failure when a client
 * lacks it (as a Prisma release that changed it would).
 */
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PrismaS3FilesError } from "../../src/errors.js";
import {
  checkDelegates,
  DB_NULL,
  delegateName,
  fluentDataPath,
  type HookInternals,
  hasComputedFields,
  parentClient,
  prismaVersion,
  skipResultExtensionPass,
} from "../../src/prisma/prisma-internals.js";
import { Prisma } from "../generated/prisma/client.js";
import { fileFields, plainClient } from "./client.js";

const plain = plainClient();
const tag = randomBytes(4).toString("hex");
const VERSION = /^7\.\d+\.\d+/;
let userId: number;

/** The failure every broken assumption gives: its code, what, and the client's version. */
function expectIncompatible(run: () => unknown, what: RegExp): void {
  let error: unknown;
  try {
    run();
  } catch (e) {
    error = e;
  }
  expect(error).toBeInstanceOf(PrismaS3FilesError);
  expect((error as PrismaS3FilesError).code).toBe("PRISMA_INCOMPATIBLE");
  expect((error as Error).message).toMatch(what);
  expect((error as Error).message).toMatch(/Prisma client \(version [^)]+\)/);
}

/** Runs one query through a query hook and returns what the hook saw. */
async function hookParams(run: (client: ReturnType<typeof extended>) => Promise<unknown>): Promise<HookInternals[]> {
  const seen: HookInternals[] = [];
  await run(extended(seen));
  return seen;
}
function extended(seen: HookInternals[]) {
  return plain.$extends({
    query: {
      $allModels: {
        async $allOperations(params) {
          seen.push(params as unknown as HookInternals);
          return params.query(params.args);
        },
      },
    },
  });
}

beforeAll(async () => {
  const user = await plain.user.create({
    data: { email: `internals-${tag}@example.com`, badge: "b", posts: { create: [{ title: "t" }] } },
  });
  userId = user.id;
});
afterAll(async () => {
  await plain.post.deleteMany({ where: { authorId: userId } });
  await plain.user.delete({ where: { id: userId } });
  await plain.$disconnect();
});

describe("Prisma's internals, one assumption each", () => {
  it("DB_NULL is Prisma.DbNull as the generated client's runtime tells it (symbol, namespace, name)", () => {
    const real = Prisma.DbNull as unknown as Record<string | symbol, unknown> & {
      _getNamespace(): string;
      _getName(): string;
    };
    const ours = DB_NULL as typeof real;
    const mark = Symbol.for("prisma.objectEnumValue");
    expect(real[mark]).toBe(true);
    expect(ours[mark]).toBe(true);
    expect(ours._getNamespace()).toBe(real._getNamespace());
    expect(ours._getName()).toBe(real._getName());
    expect(String(ours)).toBe(String(real));
  });

  it("the client reports its version as _clientVersion", () => {
    expect(prismaVersion(plain)).toMatch(VERSION);
    expect(prismaVersion({})).toBe("unknown");
  });

  it("model delegates are named like the model with a lower-case first letter", () => {
    expect(delegateName("User")).toBe("user");
    expect(delegateName("URLRecord")).toBe("uRLRecord");
    checkDelegates(plain, Object.keys(fileFields));
    const { user: _user, ...withoutUser } = Object.fromEntries(
      Object.keys(fileFields).map((m) => [delegateName(m), { findMany() {} }]),
    );
    expectIncompatible(
      () => checkDelegates({ ...withoutUser, _clientVersion: "8.0.0" }, Object.keys(fileFields)),
      /client\.user for model User[\s\S]*version 8\.0\.0/,
    );
  });

  it("query hooks get __internalParams.dataPath on fluent calls, and none on plain calls", async () => {
    const seen = await hookParams((c) => c.user.findUnique({ where: { id: userId } }).posts());
    const fluent = seen.find((p) => p.model === "User")!;
    expect(fluentDataPath(fluent, plain)).toEqual(["select", "posts"]);
    const [plainCall] = await hookParams((c) => c.user.findMany({ where: { id: userId } }));
    expect(fluentDataPath(plainCall!, plain)).toBeUndefined();
    expectIncompatible(() => fluentDataPath({ model: "User" }, { _clientVersion: "8.0.0" }), /__internalParams/);
    expectIncompatible(
      () => fluentDataPath({ model: "User", __internalParams: { dataPath: "select.posts" } }, plain),
      /__internalParams\.dataPath/,
    );
  });

  it("clearing __internalParams.model skips Prisma's result-extension pass", async () => {
    // The hook first, a result extension after it: what `fastReads` documents it breaks.
    const withComputed = (skip: boolean) =>
      plain
        .$extends({
          query: {
            $allModels: {
              async $allOperations(params) {
                const result = await params.query(params.args);
                // After the query, as the binding does: the pass runs once the hooks are done.
                if (skip) skipResultExtensionPass(params as unknown as HookInternals, plain);
                return result;
              },
            },
          },
        })
        .$extends({ result: { user: { shout: { needs: { email: true }, compute: (u) => u.email.toUpperCase() } } } });
    const kept = (await withComputed(false).user.findUnique({ where: { id: userId } })) as { shout?: string };
    expect(kept.shout).toBe(`internals-${tag}@example.com`.toUpperCase());
    const skipped = (await withComputed(true).user.findUnique({ where: { id: userId } })) as { shout?: string };
    expect(skipped.shout).toBeUndefined();
    expectIncompatible(
      () => skipResultExtensionPass({ model: "User", __internalParams: {} }, plain),
      /__internalParams\.model/,
    );
  });

  it("client._extensions.getAllComputedFields tells a result extension's fields", () => {
    const models = Object.keys(fileFields);
    expect(hasComputedFields(plain.$extends({}), models)).toBe(false);
    const computed = plain.$extends({ result: { user: { shout: { needs: { email: true }, compute: () => "" } } } });
    expect(hasComputedFields(computed, models)).toBe(true);
    expectIncompatible(() => hasComputedFields({ _clientVersion: "8.0.0" }, models), /getAllComputedFields/);
  });

  it("client-extension methods see the client they extend as this.$parent", async () => {
    let parent: unknown;
    const client = plain.$extends({
      client: {
        probe() {
          parent = parentClient(this, "$transaction");
        },
      },
    });
    client.probe();
    expect(typeof (parent as { $transaction?: unknown }).$transaction).toBe("function");
    expect(typeof (parent as { user?: { findMany?: unknown } }).user?.findMany).toBe("function");
    expectIncompatible(() => parentClient({ _clientVersion: "8.0.0" }, "$transaction"), /this\.\$parent/);
  });
});
