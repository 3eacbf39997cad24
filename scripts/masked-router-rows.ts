/**
 * How often a masked expert is still routed to, for candidate router rows (README, Mixture of experts):
 * on the trained fixture, one expert per layer masked (and one cut), the router inputs of the dense
 * model over 16 calibration windows of 128, each token counted when the candidate's logit beats the
 * k-th largest real one. A one-off measurement in float64 JS (O(tokens x hidden²)), for a small model only.
 *
 *   npx esbuild scripts/masked-router-rows.ts --bundle --platform=node --format=cjs --target=node20 \
 *     --external:onnxruntime-node --outfile=out/masked-router-rows.js && node out/masked-router-rows.js
 */
import { withModelSession } from '../src/engine/model/model-session';
import { drawCalibration } from '../src/engine/calibrate/calibration-data';
import { CalibrationActivations } from '../src/engine/calibrate/activations';
import { BlockRunner } from '../src/engine/model/block-runner';

const masks: Record<number, { removed: number[]; masked: number }> = { 0: { removed: [5], masked: 3 }, 1: { removed: [2], masked: 0 }, 2: { removed: [6], masked: 1 } };
void withModelSession('models/tinystories-moe-379K', { provider: 'cpu' }, async (session) => {
  const cfg = session.checkpoint.config;
  const cal = await drawCalibration(session.tokenizer, { file: 'data/tinystories/calibration.txt', nsamples: 16, seqlen: 128, seed: 0 }, {}, cfg);
  const tap = await BlockRunner.create(cfg, session.runtime, [{ point: 'mlp_in', reduce: 'raw' }]);
  const act = await CalibrationActivations.embed(session.runner, cal);
  const d = cfg.hiddenSize, E = 8, k = 2;
  for (let layer = 0; layer < 3; layer++) {
    const w = await session.checkpoint.readBlock(layer);
    const R = w.get('block_sparse_moe.gate.weight')!;
    const xs: Float32Array[] = [];
    await act.forEach(tap, layer, w, undefined, ([out, x], off) => { act.hidden.set(out!, off); xs.push(Float32Array.from(x!)); });
    const X = new Float32Array(xs.reduce((n, x) => n + x.length, 0)); let o = 0; for (const x of xs) { X.set(x, o); o += x.length; }
    const T = X.length / d;
    const mu = new Float64Array(d); for (let t = 0; t < T; t++) for (let i = 0; i < d; i++) mu[i]! += X[t * d + i]! / T;
    // covariance
    const C = Array.from({ length: d }, () => new Float64Array(d));
    for (let t = 0; t < T; t++) for (let i = 0; i < d; i++) { const a = X[t * d + i]! - mu[i]!; for (let j = 0; j < d; j++) C[i]![j]! += a * (X[t * d + j]! - mu[j]!) / T; }
    for (let i = 0; i < d; i++) C[i]![i]! += 1e-4;
    // solve C v = mu by Gauss
    const A = C.map((r, i) => [...r, mu[i]!]);
    for (let i = 0; i < d; i++) { let p = i; for (let r = i + 1; r < d; r++) if (Math.abs(A[r]![i]!) > Math.abs(A[p]![i]!)) p = r; [A[i], A[p]] = [A[p]!, A[i]!]; for (let r = 0; r < d; r++) if (r !== i) { const f = A[r]![i]! / A[i]![i]!; for (let c = i; c <= d; c++) A[r]![c]! -= f * A[i]![c]!; } }
    const v = Float64Array.from(A, (r, i) => r[d]! / r[i]!);
    const { removed, masked } = masks[layer]!;
    const real = Array.from({ length: E }, (_, j) => j).filter((j) => j !== masked && !removed.includes(j));
    const dot = (a: ArrayLike<number>, t: number) => { let s = 0; for (let i = 0; i < d; i++) s += a[i]! * X[t * d + i]!; return s; };
    const cands: Record<string, (t: number) => number> = {
      'mean -1e4': (t) => -1e4 * dot(mu, t),
      zero: () => 0,
      'fisher -1e4': (t) => -1e4 * dot(v, t),
    };
    const vm = v.reduce((s, x, i) => s + x * mu[i]!, 0);
    for (const L of [10, 20, 30, 1e4]) cands[`fisher mean logit -${L}`] = (t) => -L * dot(v, t) / vm;
    let negMu = 0, negV = 0;
    const res: Record<string, number> = {};
    for (let t = 0; t < T; t++) {
      if (dot(mu, t) <= 0) negMu++; if (dot(v, t) <= 0) negV++;
      const logits = real.map((j) => { let s = 0; for (let i = 0; i < d; i++) s += R[j * d + i]! * X[t * d + i]!; return s; }).sort((a, b) => b - a);
      for (const [name, f] of Object.entries(cands)) if (f(t) > logits[k - 1]!) res[name] = (res[name] ?? 0) + 1;
    }
    console.log(`layer ${layer}: T=${T} mu.x<=0 ${(negMu / T * 100).toFixed(2)}% fisher.x<=0 ${(negV / T * 100).toFixed(2)}%`);
    for (const name of Object.keys(cands)) console.log(`  ${name.padEnd(20)} ${(((res[name] ?? 0) / T) * 100).toFixed(3)}%`);
  }
  await tap.release();
});
