/** One measured number, printed as one JSON line with `--json`. */
export interface BenchResult {
  bench: string;
  variant: string;
  metric: string;
  value: number;
  unit: string;
}

export interface BenchContext {
  report(variant: string, metric: string, value: number, unit: string): void;
}

export interface Bench {
  /** What the benchmark measures, one line. */
  description: string;
  /** The variant others are compared with in the table (same metric, same run). */
  baseline?: string;
  run(ctx: BenchContext): Promise<void>;
}

/** The q-quantile (0..1) of `samples` by nearest rank; sorts a copy. */
export function quantile(samples: readonly number[], q: number): number {
  if (samples.length === 0) throw new Error("quantile of no samples");
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank] as number;
}

export function median(samples: readonly number[]): number {
  return quantile(samples, 0.5);
}
