import { fromContainerMetadata, fromInstanceMetadata } from "@aws-sdk/credential-providers";
import { MetadataFixture } from "../test/harness/metadata-fixture.js";
import { type Bench, quantile } from "./lib/report.js";

/** Round trips of the SDK's own providers against the harness's metadata fixture (no added latency). */
const bench: Bench = {
  description: "metadata fixture round-trip time through the SDK's IMDSv2 and ECS providers",
  async run(ctx) {
    const fixture = await MetadataFixture.start();
    const restore = fixture.useEnv();
    try {
      for (const [variant, provider] of [
        ["imds-v2", () => fromInstanceMetadata({ timeout: 1000 })()],
        ["ecs", () => fromContainerMetadata({ timeout: 1000 })()],
      ] as const) {
        for (let i = 0; i < 20; i++) await provider(); // warm-up
        const samples: number[] = [];
        for (let i = 0; i < 300; i++) {
          const t0 = performance.now();
          await provider();
          samples.push((performance.now() - t0) * 1000);
        }
        ctx.report(variant, "fetch_p50_us", Math.round(quantile(samples, 0.5)), "us");
        ctx.report(variant, "fetch_p99_us", Math.round(quantile(samples, 0.99)), "us");
      }
      fixture.resetCounts();
      await fromInstanceMetadata({ timeout: 1000 })();
      ctx.report("imds-v2", "requests_per_fetch", fixture.total, "requests");
    } finally {
      restore();
      await fixture.stop();
    }
  },
};
export default bench;
