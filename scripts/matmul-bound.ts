/**
 * The matmul-bound estimate the bench prints beside each measured time: the run's floating-point work
 * in matrix products (counted below from config.json and the settings) divided by the GFLOP/s ORT's
 * own Gemm reaches on this machine (measured first, in the bench's process, on all cores as the CLI
 * runs). It is a floor: it leaves out reading and converting weights, element-wise ops, sorting and
 * session start-up, so small models sit far above it and a run at real sizes should come within 2x.
 *
 * FLOPs are 2 per multiply-add. Per token, a decoder block costs 2 x its linear parameters, plus
 * attention's two T x T products over the window (4 T x heads x head_dim; the graph computes the full
 * square, then masks). Pruning runs every block twice on the calibration windows (statistics, then
 * the pruned block's outputs for the next block). SparseGPT adds, per block, XᵀX for each of the four
 * inputs the taps reduce (2 N n²), and per linear [rows, n] the Cholesky factor of the inverse Hessian
 * (4/3 n³: factor, triangular inverse, product, factor again), fasterprune's updates (rows n²) and its
 * layer loss tr(ΔW H ΔWᵀ) (2 rows n²). Mixture-of-experts layers are left out (their graph runs
 * every expert on every token), so MoE rows show no estimate.
 */
import { OpRegistry } from '../src/engine/graph/op-registry';
import { mat, matmulNT } from '../src/engine/linalg/matrix-ops';
import { blockLinears, linearShapes, type ModelConfig } from '../src/engine/model/config';

/** A product of the size a 1B model's projections have on a 512-token window. */
const PROBE = { tokens: 512, width: 2048 };
const PROBE_RUNS = 6;

/** Best GFLOP/s of ORT's CPU Gemm over a few runs (the first, which builds the session, not counted). */
export async function measureGemmGflops(): Promise<number> {
  const ops = new OpRegistry({ provider: 'cpu' });
  try {
    const a = mat(Float32Array.from({ length: PROBE.tokens * PROBE.width }, (_, i) => ((i * 7919) % 997) / 997 - 0.5), PROBE.tokens, PROBE.width);
    const b = mat(Float32Array.from({ length: PROBE.width * PROBE.width }, (_, i) => ((i * 104729) % 991) / 991 - 0.5), PROBE.width, PROBE.width);
    await matmulNT(ops, a, b);
    let best = Infinity;
    for (let r = 0; r < PROBE_RUNS; r++) {
      const t = performance.now();
      await matmulNT(ops, a, b);
      best = Math.min(best, (performance.now() - t) / 1000);
    }
    return (2 * PROBE.tokens * PROBE.width * PROBE.width) / best / 1e9;
  } finally {
    await ops.release();
  }
}

function blockFlopsPerToken(cfg: ModelConfig, seqlen: number): number {
  const shapes = linearShapes(cfg);
  const linearParams = blockLinears(cfg).reduce((sum, l) => sum + shapes[l][0] * shapes[l][1], 0);
  return 2 * linearParams + 4 * seqlen * cfg.numHeads * cfg.headDim;
}

/** `prunelens eval`: every block and the LM head on every token of the windows. */
export function evalFlops(cfg: ModelConfig, windows: number, seqlen: number): number | undefined {
  if (cfg.arch.moe) return undefined;
  const tokens = windows * seqlen;
  return tokens * (cfg.numLayers * blockFlopsPerToken(cfg, seqlen) + 2 * cfg.vocabSize * cfg.hiddenSize);
}

/**
 * The pruning part of `prunelens prune` (its prune_seconds): calibration, statistics and the method.
 * Counted for Wanda and SparseGPT; undefined for the others (magnitude does no products; ADMM and ALPS
 * iterate until converged, so their count is not known in advance) and for MoE models.
 */
export function pruneFlops(cfg: ModelConfig, method: string, nsamples: number, seqlen: number): number | undefined {
  if (cfg.arch.moe || (method !== 'wanda' && method !== 'sparsegpt')) return undefined;
  const tokens = nsamples * seqlen;
  let perBlock = 2 * tokens * blockFlopsPerToken(cfg, seqlen);
  if (method === 'sparsegpt') {
    const shapes = linearShapes(cfg);
    const q = cfg.numHeads * cfg.headDim;
    // The four tapped inputs: attention's, o_proj's, the MLP's and down_proj's.
    for (const n of [cfg.hiddenSize, q, cfg.hiddenSize, cfg.intermediateSize]) perBlock += 2 * tokens * n * n;
    for (const l of blockLinears(cfg)) {
      const [rows, n] = shapes[l];
      perBlock += (4 / 3) * n ** 3 + 3 * rows * n * n;
    }
  }
  return cfg.numLayers * perBlock;
}

/** "12.3 s (4.1x)": the bound in seconds and how far the measured time is above it. */
export function formatBound(flops: number | undefined, gflops: number, measuredSeconds: number): string {
  if (flops === undefined) return '-';
  const seconds = flops / gflops / 1e9;
  return `${seconds < 10 ? seconds.toFixed(2) : seconds.toFixed(0)} s (${(measuredSeconds / seconds).toFixed(1)}x)`;
}
