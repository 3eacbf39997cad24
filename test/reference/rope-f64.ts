/**
 * Independent float64 rotary embeddings, transliterated from transformers' modeling_rope_utils.py
 * (the ROPE_INIT_FUNCTIONS and the dynamic_rope_update / longrope_frequency_update decorators), for a
 * freshly loaded model running one forward of positions 0..T-1. Imports nothing from src/.
 */

export type RawConfig = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

function headDimOf(config: RawConfig): number {
  return config.head_dim ?? Math.floor(config.hidden_size / config.num_attention_heads);
}

function arangeOverDim(dim: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < dim; i += 2) out.push(i / dim);
  return out;
}

/** [inv_freq, attention_factor] as `rope_init_fn(config, device, seq_len)` returns them. */
export function ropeInit(config: RawConfig, seqLen: number | undefined): [number[], number] {
  const base: number = config.rope_theta ?? 10000;
  const partial: number = config.partial_rotary_factor ?? 1.0;
  const dim = Math.trunc(headDimOf(config) * partial);
  const scaling = config.rope_scaling;
  const ropeType: string = scaling ? (scaling.rope_type ?? scaling.type) : 'default';
  const defaultInvFreq = () => arangeOverDim(dim).map((e) => 1.0 / base ** e);

  if (ropeType === 'default') return [defaultInvFreq(), 1.0];
  if (ropeType === 'linear') return [defaultInvFreq().map((f) => f / scaling.factor), 1.0];
  if (ropeType === 'dynamic') {
    const maxPos: number = config.max_position_embeddings;
    const factor: number = scaling.factor;
    const len = seqLen !== undefined && seqLen > maxPos ? seqLen : maxPos;
    const b = base * ((factor * len) / maxPos - (factor - 1)) ** (dim / (dim - 2));
    return [arangeOverDim(dim).map((e) => 1.0 / b ** e), 1.0];
  }
  if (ropeType === 'llama3') {
    const invFreq = defaultInvFreq();
    const factor: number = scaling.factor;
    const lowFreqFactor: number = scaling.low_freq_factor;
    const highFreqFactor: number = scaling.high_freq_factor;
    const oldContextLen: number = scaling.original_max_position_embeddings;
    const lowFreqWavelen = oldContextLen / lowFreqFactor;
    const highFreqWavelen = oldContextLen / highFreqFactor;
    return [
      invFreq.map((f) => {
        const wavelen = (2 * Math.PI) / f;
        const llama = wavelen > lowFreqWavelen ? f / factor : f;
        const smooth = (oldContextLen / wavelen - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
        const smoothed = ((1 - smooth) * llama) / factor + smooth * llama;
        const isMedium = !(wavelen < highFreqWavelen) && !(wavelen > lowFreqWavelen);
        return isMedium ? smoothed : llama;
      }),
      1.0,
    ];
  }
  if (ropeType === 'yarn') {
    let factor: number = scaling.factor;
    let attentionFactor: number | undefined = scaling.attention_factor ?? undefined;
    const mscale: number | undefined = scaling.mscale;
    const mscaleAllDim: number | undefined = scaling.mscale_all_dim;
    let originalMax: number;
    if ('original_max_position_embeddings' in scaling) {
      originalMax = scaling.original_max_position_embeddings;
      factor = config.max_position_embeddings / originalMax;
    } else {
      originalMax = config.max_position_embeddings;
    }
    const getMscale = (scale: number, m = 1) => (scale <= 1 ? 1.0 : 0.1 * m * Math.log(scale) + 1.0);
    if (attentionFactor === undefined) {
      attentionFactor = mscale && mscaleAllDim ? getMscale(factor, mscale) / getMscale(factor, mscaleAllDim) : getMscale(factor);
    }
    const betaFast: number = scaling.beta_fast || 32;
    const betaSlow: number = scaling.beta_slow || 1;
    const findCorrectionDim = (numRotations: number) => (dim * Math.log(originalMax / (numRotations * 2 * Math.PI))) / (2 * Math.log(base));
    const truncate: boolean = scaling.truncate ?? true;
    let low = findCorrectionDim(betaFast);
    let high = findCorrectionDim(betaSlow);
    if (truncate) {
      low = Math.floor(low);
      high = Math.ceil(high);
    }
    low = Math.max(low, 0);
    high = Math.min(high, dim - 1);
    const posFreqs = arangeOverDim(dim).map((e) => base ** e);
    if (low === high) high += 0.001;
    const ramp = posFreqs.map((_, i) => Math.min(1, Math.max(0, (i - low) / (high - low))));
    return [
      posFreqs.map((p, i) => {
        const extrapolationFactor = 1 - ramp[i]!;
        return (1.0 / (factor * p)) * (1 - extrapolationFactor) + (1.0 / p) * extrapolationFactor;
      }),
      attentionFactor,
    ];
  }
  if (ropeType === 'longrope' || ropeType === 'su') {
    let factor: number | undefined = scaling.factor;
    let attentionFactor: number | undefined = scaling.attention_factor ?? undefined;
    let originalMax: number;
    if ('original_max_position_embeddings' in config) {
      originalMax = config.original_max_position_embeddings;
      factor = config.max_position_embeddings / originalMax;
    } else {
      originalMax = config.max_position_embeddings;
    }
    if (attentionFactor === undefined) attentionFactor = factor! <= 1.0 ? 1.0 : Math.sqrt(1 + Math.log(factor!) / Math.log(originalMax));
    const ext: number[] = seqLen && seqLen > originalMax ? scaling.long_factor : scaling.short_factor;
    return [arangeOverDim(dim).map((e, i) => 1.0 / (ext[i]! * base ** e)), attentionFactor];
  }
  throw new Error(`reference: rope type ${ropeType}`);
}

/**
 * cos, sin [T][dim] for positions 0..T-1, as the rotary module's forward returns them: dynamic and
 * longrope recompute their frequencies for the sequence's length (max position + 1), the others not.
 */
export function ropeCosSin(config: RawConfig, T: number): { cos: number[][]; sin: number[][] } {
  const ropeType: string = config.rope_scaling ? (config.rope_scaling.rope_type ?? config.rope_scaling.type) : 'default';
  const dynamic = ropeType === 'dynamic' || ropeType === 'longrope' || ropeType === 'su';
  const [invFreq, attentionScaling] = ropeInit(config, dynamic ? T : undefined);
  const cos: number[][] = [];
  const sin: number[][] = [];
  for (let t = 0; t < T; t++) {
    const freqs = invFreq.map((f) => t * f);
    const emb = [...freqs, ...freqs];
    cos.push(emb.map((a) => Math.cos(a) * attentionScaling));
    sin.push(emb.map((a) => Math.sin(a) * attentionScaling));
  }
  return { cos, sin };
}

/**
 * apply_rotary_pos_emb on x [T, nHeads*hd] in place, rotating the first cos[0].length dimensions of
 * each head (rotate_half on that part) and passing the rest through (partial rotary).
 */
export function applyRotary(x: Float64Array, T: number, nHeads: number, hd: number, cos: number[][], sin: number[][]): void {
  const rd = cos[0]!.length;
  const half = rd / 2;
  const tmp = new Float64Array(rd);
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < nHeads; h++) {
      const b = t * nHeads * hd + h * hd;
      for (let i = 0; i < rd; i++) {
        const rot = i < half ? -x[b + i + half]! : x[b + i - half]!;
        tmp[i] = x[b + i]! * cos[t]![i]! + rot * sin[t]![i]!;
      }
      for (let i = 0; i < rd; i++) x[b + i] = tmp[i]!;
    }
  }
}
