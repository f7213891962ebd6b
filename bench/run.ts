/**
 * `npm run bench` runs every benchmark; `npm run bench -- <name> [<name>...]` runs some.
 * `--json` prints one JSON object per result line; otherwise a Markdown table follows the run.
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
for (const name of wanted.length > 0 ? wanted : available) {
  const mod = (await import(pathToFileURL(join(dir, `${name}.bench.ts`)).href)) as { default: Bench };
  if (!json) console.error(`# ${name}: ${mod.default.description}`);
  await mod.default.run({
    report(variant, metric, value, unit) {
      const r: BenchResult = { bench: name, variant, metric, value, unit };
      results.push(r);
      if (json) console.log(JSON.stringify(r));
    },
  });
}
if (!json) {
  console.log("| bench | variant | metric | value | unit |\n|---|---|---|---|---|");
  for (const r of results) console.log(`| ${r.bench} | ${r.variant} | ${r.metric} | ${r.value} | ${r.unit} |`);
}
// Benchmarks may leave keep-alive sockets or timers of the libraries they measure.
process.exit(0);
