import { PruneLensError } from '../../errors';

/**
 * Rotary embeddings as Hugging Face's modeling_rope_utils.py computes them: each rope type gives the
 * inverse frequencies of the rotated dimensions and a factor that scales cos and sin (yarn's and
 * longrope's attention factor). Tables are computed in float64 per sequence length, since `dynamic`
 * and `longrope` depend on how long the sequence is.
 */
export type Rope =
  | { type: 'default'; theta: number }
  | { type: 'linear'; theta: number; factor: number }
  | { type: 'dynamic'; theta: number; factor: number; maxPositions: number }
  | { type: 'llama3'; theta: number; factor: number; lowFreqFactor: number; highFreqFactor: number; originalMax: number }
  | { type: 'yarn'; theta: number; factor: number; originalMax: number; attentionFactor: number; betaFast: number; betaSlow: number; truncate: boolean }
  | { type: 'longrope'; theta: number; shortFactor: number[]; longFactor: number[]; originalMax: number; attentionFactor: number };

/** Inverse frequencies [dim/2] for a sequence of `seq` positions (0..seq-1). */
export function inverseFrequencies(rope: Rope, dim: number, seq: number): Float64Array {
  const half = dim / 2;
  const plain = (base: number) => Float64Array.from({ length: half }, (_, j) => 1 / Math.pow(base, (2 * j) / dim));
  switch (rope.type) {
    case 'default':
      return plain(rope.theta);
    case 'linear':
      return plain(rope.theta).map((f) => f / rope.factor);
    case 'dynamic': {
      // HF recomputes the base when the longest position seen exceeds max_position_embeddings; the
      // engine runs each window from position 0, so that length is the window's.
      if (seq <= rope.maxPositions) return plain(rope.theta);
      const base = rope.theta * Math.pow((rope.factor * seq) / rope.maxPositions - (rope.factor - 1), dim / (dim - 2));
      return plain(base);
    }
    case 'llama3': {
      const { factor, lowFreqFactor: low, highFreqFactor: high, originalMax } = rope;
      const lowWavelen = originalMax / low;
      const highWavelen = originalMax / high;
      return plain(rope.theta).map((f) => {
        const wavelen = (2 * Math.PI) / f;
        if (wavelen < highWavelen) return f;
        if (wavelen > lowWavelen) return f / factor;
        const smooth = (originalMax / wavelen - low) / (high - low);
        return ((1 - smooth) * f) / factor + smooth * f;
      });
    }
    case 'yarn': {
      const { factor, theta: base, originalMax, betaFast, betaSlow } = rope;
      const correctionDim = (rotations: number) => (dim * Math.log(originalMax / (rotations * 2 * Math.PI))) / (2 * Math.log(base));
      let low = correctionDim(betaFast);
      let high = correctionDim(betaSlow);
      if (rope.truncate) {
        low = Math.floor(low);
        high = Math.ceil(high);
      }
      low = Math.max(low, 0);
      high = Math.min(high, dim - 1);
      if (low === high) high += 0.001;
      return Float64Array.from({ length: half }, (_, j) => {
        const posFreq = Math.pow(base, (2 * j) / dim);
        const ramp = Math.min(1, Math.max(0, (j - low) / (high - low)));
        const extrapolation = 1 - ramp;
        return (1 / (factor * posFreq)) * (1 - extrapolation) + (1 / posFreq) * extrapolation;
      });
    }
    case 'longrope': {
      const factors = seq > rope.originalMax ? rope.longFactor : rope.shortFactor;
      return Float64Array.from({ length: half }, (_, j) => 1 / (factors[j]! * Math.pow(rope.theta, (2 * j) / dim)));
    }
  }
}

/** What multiplies cos and sin. */
export function attentionScaling(rope: Rope): number {
  return rope.type === 'yarn' || rope.type === 'longrope' ? rope.attentionFactor : 1;
}

/** cos and sin [seq, dim] in the rotate-half layout (each half repeats the frequencies). */
export function ropeTables(rope: Rope, dim: number, seq: number): { cos: Float32Array; sin: Float32Array } {
  const half = dim / 2;
  const inv = inverseFrequencies(rope, dim, seq);
  const scale = attentionScaling(rope);
  const cos = new Float32Array(seq * dim);
  const sin = new Float32Array(seq * dim);
  for (let t = 0; t < seq; t++) {
    for (let j = 0; j < half; j++) {
      const angle = t * inv[j]!;
      cos[t * dim + j] = cos[t * dim + j + half] = Math.cos(angle) * scale;
      sin[t * dim + j] = sin[t * dim + j + half] = Math.sin(angle) * scale;
    }
  }
  return { cos, sin };
}

/**
 * Reads `rope_scaling` (null or absent: plain rotary). `rotaryDim` is the rotated width (head_dim
 * times partial_rotary_factor); `raw` is config.json, for the top-level fields some types read.
 */
export function parseRope(raw: Record<string, unknown>, scaling: unknown, theta: number, rotaryDim: number, where: string): Rope {
  if (scaling === undefined || scaling === null) return { type: 'default', theta };
  if (typeof scaling !== 'object' || Array.isArray(scaling)) throw new PruneLensError('config', `"rope_scaling" must be an object or null, got ${JSON.stringify(scaling)}`, where);
  const s = scaling as Record<string, unknown>;
  // "type" is the field's name before transformers 4.45; Phi-3's first releases called longrope "su".
  const given = Object.hasOwn(s, 'rope_type') ? s.rope_type : s.type;
  const type = given === 'su' ? 'longrope' : given;
  const field = (key: string, fallback?: number): number => {
    const v = Object.hasOwn(s, key) && s[key] !== null ? s[key] : fallback;
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
      throw new PruneLensError('config', `rope_scaling "${key}" must be a positive number for rope type ${JSON.stringify(type)}, got ${JSON.stringify(v ?? null)}`, where);
    }
    return v;
  };
  const maxPositions = typeof raw.max_position_embeddings === 'number' ? raw.max_position_embeddings : 2048;
  switch (type) {
    case 'default':
      return { type: 'default', theta };
    case 'linear':
      return { type: 'linear', theta, factor: field('factor') };
    case 'dynamic':
      return { type: 'dynamic', theta, factor: field('factor'), maxPositions };
    case 'llama3':
      return {
        type: 'llama3',
        theta,
        factor: field('factor'),
        lowFreqFactor: field('low_freq_factor'),
        highFreqFactor: field('high_freq_factor'),
        originalMax: field('original_max_position_embeddings'),
      };
    case 'yarn': {
      let factor = field('factor');
      // As transformers does: with original_max_position_embeddings given, the factor is the context ratio.
      const originalMax = Object.hasOwn(s, 'original_max_position_embeddings') ? field('original_max_position_embeddings') : maxPositions;
      if (Object.hasOwn(s, 'original_max_position_embeddings')) factor = maxPositions / originalMax;
      const mscale = (scale: number, m = 1) => (scale <= 1 ? 1 : 0.1 * m * Math.log(scale) + 1);
      const m = typeof s.mscale === 'number' ? s.mscale : 0;
      const mAll = typeof s.mscale_all_dim === 'number' ? s.mscale_all_dim : 0;
      const attentionFactor = typeof s.attention_factor === 'number' ? field('attention_factor') : m && mAll ? mscale(factor, m) / mscale(factor, mAll) : mscale(factor);
      return {
        type: 'yarn',
        theta,
        factor,
        originalMax,
        attentionFactor,
        betaFast: typeof s.beta_fast === 'number' && s.beta_fast !== 0 ? s.beta_fast : 32,
        betaSlow: typeof s.beta_slow === 'number' && s.beta_slow !== 0 ? s.beta_slow : 1,
        truncate: s.truncate !== false,
      };
    }
    case 'longrope': {
      const list = (key: string): number[] => {
        const v = s[key];
        if (!Array.isArray(v) || v.length !== rotaryDim / 2 || !v.every((x) => typeof x === 'number' && Number.isFinite(x) && x > 0)) {
          throw new PruneLensError('config', `rope_scaling "${key}" must list ${rotaryDim / 2} positive numbers (half the rotary width ${rotaryDim})`, where);
        }
        return v as number[];
      };
      // Phi-3 keeps the pretrained context at the top level and derives the factor from the two lengths.
      const topOriginal = raw.original_max_position_embeddings;
      const originalMax = typeof topOriginal === 'number' ? topOriginal : maxPositions;
      const factor = typeof topOriginal === 'number' ? maxPositions / topOriginal : typeof s.factor === 'number' ? s.factor : 1;
      const attentionFactor =
        typeof s.attention_factor === 'number' ? field('attention_factor') : factor <= 1 ? 1 : Math.sqrt(1 + Math.log(factor) / Math.log(originalMax));
      return { type: 'longrope', theta, shortFactor: list('short_factor'), longFactor: list('long_factor'), originalMax, attentionFactor };
    }
    default:
      throw new PruneLensError(
        'config',
        `rope_scaling type ${JSON.stringify(given ?? null)} is not supported; supported: default, linear, dynamic, llama3, yarn, longrope (su)`,
        where,
      );
  }
}
