/**
 * `npm run bench` runs every benchmark; `npm run bench -- <name> [<name>...]` runs some.
 * Every result is printed as one JSON line as it comes; at the end a Markdown table (variant,
 * metric, value, and the ratio against the benchmark's baseline variant for the same metric in
 * the same run). `--json` prints the JSON lines only.
 * Benchmarks are bench/<name>.bench.ts files whose default export is a `Bench`.
 */
import { readdirSync } from "node:fs";
import { basename, join } from "node:path";
import { pathToFileURL } from "node:url";
import type { Bench, BenchResult } from "./lib/report.js";

const args = process.argv.slice(2);
const json = args.includes("--json");
const wanted = args.filter((a) => !a.startsWith("--"));
const dir = import.meta.dirname;
const available = readdirSync(dir)
  .filter((f) => f.endsWith(".bench.ts"))
  .map((f) => basename(f, ".bench.ts"))
  .sort();
const unknown = wanted.filter((w) => !available.includes(w));
if (unknown.length > 0) {
  console.error(`unknown benchmark(s): ${unknown.join(", ")}; available: ${available.join(", ")}`);
  process.exit(2);
}

const results: BenchResult[] = [];
const baselines = new Map<string, string>();
for (const name of wanted.length > 0 ? wanted : available) {
  const mod = (await import(pathToFileURL(join(dir, `${name}.bench.ts`)).href)) as { default: Bench };
  if (!json) console.error(`# ${name}: ${mod.default.description}`);
  if (mod.default.baseline) baselines.set(name, mod.default.baseline);
  await mod.default.run({
    report(variant, metric, value, unit) {
      const r: BenchResult = { bench: name, variant, metric, value, unit };
      results.push(r);
      console.log(JSON.stringify(r));
    },
  });
}
if (!json) {
  console.log("\n| bench | variant | metric | value | unit | vs baseline |\n|---|---|---|---|---|---|");
  for (const r of results) {
    const base = baselines.get(r.bench);
    const ref = results.find((o) => o.bench === r.bench && o.variant === base && o.metric === r.metric);
    const ratio = ref && ref !== r && ref.value !== 0 ? `${(r.value / ref.value).toPrecision(3)}× ${base}` : "";
    console.log(`| ${r.bench} | ${r.variant} | ${r.metric} | ${r.value} | ${r.unit} | ${ratio} |`);
  }
}
// Benchmarks may leave keep-alive sockets or timers of the libraries they measure.
process.exit(0);
