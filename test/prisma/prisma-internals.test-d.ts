/**
 * The type-level assumption of the binding (see src/prisma/prisma-internals.ts): the extension
 * arguments it declares (`FilesExtensionArgs`, types.ts) have the shape of Prisma's internal
 * `InternalArgs`, which `$extends` merges into the client's types.
 */
import type { Types } from "@prisma/client/runtime/client";
import { expectTypeOf, test } from "vitest";
import type { FilesExtensionArgs } from "../../src/prisma/types.js";
import type { fileFields } from "../generated/files/index.js";

test("FilesExtensionArgs is one of Prisma's InternalArgs", () => {
  expectTypeOf<FilesExtensionArgs<typeof fileFields>>().toExtend<Types.Extensions.InternalArgs>();
  // And not vacuously: a shape without `result` is not.
  expectTypeOf<{ model: object; query: object; client: object }>().not.toExtend<Types.Extensions.InternalArgs>();
});
