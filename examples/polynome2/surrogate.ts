import type { Config, IntDimension } from "./problem.js";
import type { Observation } from "./evolution.js";

/**
 * Solves the symmetric positive definite system A x = b by Gaussian
 * elimination with partial pivoting; A is n×n row-major, both are copied.
 */
function solve(a: number[][], b: number[]): number[] {
  const n = b.length;
  const m = a.map((row, i) => [...row, b[i]!]);
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(m[r]![c]!) > Math.abs(m[p]![c]!)) p = r;
    [m[c], m[p]] = [m[p]!, m[c]!];
    const piv = m[c]![c]!;
    if (Math.abs(piv) < 1e-12) continue;
    for (let r = c + 1; r < n; r++) {
      const f = m[r]![c]! / piv;
      if (f === 0) continue;
      for (let k = c; k <= n; k++) m[r]![k]! -= f * m[c]![k]!;
    }
  }
  const x = new Array<number>(n).fill(0);
  for (let r = n - 1; r >= 0; r--) {
    const piv = m[r]![r]!;
    if (Math.abs(piv) < 1e-12) continue;
    let s = m[r]![n]!;
    for (let k = r + 1; k < n; k++) s -= m[r]![k]! * x[k]!;
    x[r] = s / piv;
  }
  return x;
}

/**
 * A separable quadratic response surface, f(x) ≈ w₀ + Σ aᵢxᵢ + Σ bᵢxᵢ²,
 * fitted by ridge regression on dimensions scaled to [-1, 1]. Cheap (2d+1
 * weights; a 21×21 solve for polynome2), fits with fewer points than
 * weights thanks to the ridge, and its maximiser over an integer box is
 * found one dimension at a time.
 */
export class QuadraticSurrogate {
  private w: number[] = [];
  private yMean = 0;
  private yScale = 1;
  constructor(
    private readonly dims: readonly IntDimension[],
    private readonly ridge = 1e-2,
  ) {}
  private scaled(d: IntDimension, v: number): number {
    const half = (d.high - d.low) / 2 || 1;
    return (v - (d.low + half)) / half;
  }
  private features(c: Config): number[] {
    const f = [1];
    for (const d of this.dims) f.push(this.scaled(d, c[d.name]!));
    for (const d of this.dims) f.push(this.scaled(d, c[d.name]!) ** 2);
    return f;
  }
  fit(obs: readonly Observation[]): void {
    const n = obs.length;
    this.yMean = obs.reduce((a, o) => a + o.objective, 0) / n;
    const sd = Math.sqrt(obs.reduce((a, o) => a + (o.objective - this.yMean) ** 2, 0) / n);
    this.yScale = sd > 0 ? sd : 1;
    const p = 1 + 2 * this.dims.length;
    const xtx = Array.from({ length: p }, () => new Array<number>(p).fill(0));
    const xty = new Array<number>(p).fill(0);
    for (const o of obs) {
      const f = this.features(o.config);
      const y = (o.objective - this.yMean) / this.yScale;
      for (let i = 0; i < p; i++) {
        xty[i]! += f[i]! * y;
        for (let j = 0; j < p; j++) xtx[i]![j]! += f[i]! * f[j]!;
      }
    }
    for (let i = 1; i < p; i++) xtx[i]![i]! += this.ridge;
    xtx[0]![0]! += 1e-9;
    this.w = solve(xtx, xty);
  }
  predict(c: Config): number {
    const f = this.features(c);
    let s = 0;
    for (let i = 0; i < f.length; i++) s += f[i]! * this.w[i]!;
    return this.yMean + this.yScale * s;
  }
  /** The integer point the surface rates highest. */
  argmax(): Config {
    const c: Config = {};
    const k = this.dims.length;
    this.dims.forEach((d, i) => {
      const a = this.w[1 + i]!;
      const b = this.w[1 + k + i]!;
      let best = d.low;
      let bestV = -Infinity;
      for (let v = d.low; v <= d.high; v++) {
        const x = this.scaled(d, v);
        const val = a * x + b * x * x;
        if (val > bestV) {
          bestV = val;
          best = v;
        }
      }
      c[d.name] = best;
    });
    return c;
  }
}
