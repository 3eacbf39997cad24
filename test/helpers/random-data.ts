import { seededRandom } from './seeded-random';

/** Standard normal samples (Box-Muller over a seeded generator). */
export function normals(count: number, seed: number): Float64Array {
  const random = seededRandom(seed);
  const out = new Float64Array(count);
  for (let i = 0; i < count; i += 2) {
    const r = Math.sqrt(-2 * Math.log(1 - random()));
    const t = 2 * Math.PI * random();
    out[i] = r * Math.cos(t);
    if (i + 1 < count) out[i + 1] = r * Math.sin(t);
  }
  return out;
}

/**
 * Calibration-like inputs: `sequences` of [tokens, cols] whose columns mix a few latent factors of
 * decaying strength, so inputs correlate the way real activations do (and SparseGPT has something
 * to exploit).
 */
export function correlatedInputs(sequences: number, tokens: number, cols: number, seed: number): Float64Array[] {
  const factors = Math.max(2, Math.floor(cols / 2));
  const mixing = normals(factors * cols, seed);
  return Array.from({ length: sequences }, (_, s) => {
    const z = normals(tokens * factors, seed + 1000 + s);
    const x = new Float64Array(tokens * cols);
    for (let t = 0; t < tokens; t++) {
      for (let f = 0; f < factors; f++) {
        const zf = z[t * factors + f]! * Math.pow(0.85, f);
        for (let c = 0; c < cols; c++) x[t * cols + c]! += zf * mixing[f * cols + c]!;
      }
    }
    return x;
  });
}
