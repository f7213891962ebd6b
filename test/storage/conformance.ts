/**
 * The storage conformance suite (`src/storage/conformance/suite.ts`, shipped as
 * `prisma-s3-files/storage`'s `describeStorageConformance`), bound to Vitest for this
 * repository's backends.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  type ConformanceSetup,
  describeStorageConformance as describeWith,
} from "../../src/storage/conformance/suite.js";

export {
  type ConformanceSetup,
  type ConformanceSetupOptions,
  type ConformanceTarget,
  testBytes,
  UNSAFE_NAMES,
} from "../../src/storage/conformance/suite.js";

/** Registers the conformance suite for one backend, with Vitest. */
export function describeStorageConformance(label: string, setup: ConformanceSetup): void {
  describeWith(label, setup, { describe, it, expect, beforeEach, afterEach });
}
