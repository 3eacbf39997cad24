/**
 * Gemma 1, 2 and 3 as llama.cpp's `gemma`, `gemma2` and `gemma3` (src/models/gemma*.cpp), with
 * convert_hf_to_gguf.py's conversions: Hugging Face's Gemma RMSNorm multiplies by (1 + w) and llama.cpp
 * by w, so every norm weight is written as w + 1 (q/k norms of Gemma 3 too).
 *
 * What llama.cpp fixes that Hugging Face configs can vary, handled here:
 * - Gemma 2/3 scale queries by 1/√head_dim (by 1/√(hidden/heads) at the 27B's layer count) and never
 *   read query_pre_attn_scalar. Where the config's scale differs, the ratio is folded into the weights
 *   that set the queries' size: Gemma 2's q_proj rows, Gemma 3's q_norm weight (after the norm, rotary
 *   is linear). A released checkpoint's ratio is 1 and its weights are written unchanged.
 * - Which layers slide is one period (p - 1 sliding layers, then a global one); a layer_types list
 *   that no period reproduces (e.g. after removing some layers) is refused.
 * - Gemma 1/2 take the output head from the embeddings; Gemma 2 always applies both soft caps; Gemma 3
 *   has no attention soft cap. Configs that differ are refused.
 * Left as is: Hugging Face rounds the embedding factor √hidden to the checkpoint's dtype where llama.cpp
 * uses it in f32 (at most 0.2% apart for bf16 checkpoints, exact for f32 ones).
 */
import { PruneLensError } from '../../errors';
import type { ModelConfig } from '../../model/config';
import { blockRelative, type GgufArchitecture } from './gguf-architecture';
import type { GgufValue } from './gguf-writer';

const WEIGHTS = {
  'input_layernorm.weight': 'attn_norm.weight',
  'self_attn.q_proj.weight': 'attn_q.weight',
  'self_attn.k_proj.weight': 'attn_k.weight',
  'self_attn.v_proj.weight': 'attn_v.weight',
  'self_attn.o_proj.weight': 'attn_output.weight',
  'mlp.gate_proj.weight': 'ffn_gate.weight',
  'mlp.up_proj.weight': 'ffn_up.weight',
  'mlp.down_proj.weight': 'ffn_down.weight',
};

/** Gemma 2/3's sandwich: post_attention_layernorm is the norm *after* attention, pre_feedforward_layernorm the MLP's input norm. */
const SANDWICH = {
  ...WEIGHTS,
  'post_attention_layernorm.weight': 'post_attention_norm.weight',
  'pre_feedforward_layernorm.weight': 'ffn_norm.weight',
  'post_feedforward_layernorm.weight': 'post_ffw_norm.weight',
};

type Version = 1 | 2 | 3;

function gemma(version: Version): GgufArchitecture {
  const name = version === 1 ? 'gemma' : `gemma${version}`;
  return {
    name,
    blockTensors:
      version === 1
        ? { ...WEIGHTS, 'post_attention_layernorm.weight': 'ffn_norm.weight' }
        : version === 2
          ? SANDWICH
          : { ...SANDWICH, 'self_attn.q_norm.weight': 'attn_q_norm.weight', 'self_attn.k_norm.weight': 'attn_k_norm.weight' },
    interleavedRope: false,
    check: (cfg, where) => check(version, name, cfg, where),
    metadata: (cfg) => metadata(version, name, cfg),
    convert(cfg, hfName, values) {
      const relative = blockRelative(hfName);
      let out = values;
      if (hfName.endsWith('norm.weight')) out = values.map((w) => w + 1);
      const ratio = queryScaleRatio(version, cfg);
      const queries = version === 3 ? relative === 'self_attn.q_norm.weight' : relative === 'self_attn.q_proj.weight';
      if (ratio !== 1 && queries) out = out.map((w) => w * ratio);
      return out;
    },
    // Gemma 3's global layers carry the linear scaling of the 4B and larger releases; local layers never do.
    ropeScaling: version === 3 ? { linear: linearScaling } : undefined,
  };
}

export const GEMMA = gemma(1);
export const GEMMA2 = gemma(2);
export const GEMMA3 = gemma(3);

/** What llama.cpp multiplies queries by (f_attention_scale in gemma2.cpp / gemma3.cpp; gemma.cpp: 1/√head_dim). */
function llamaQueryScale(version: Version, cfg: ModelConfig): number {
  const is27B = (version === 2 && cfg.numLayers === 46) || (version === 3 && cfg.numLayers === 62);
  return 1 / Math.sqrt(is27B ? Math.floor(cfg.hiddenSize / cfg.numHeads) : cfg.headDim);
}

function queryScaleRatio(version: Version, cfg: ModelConfig): number {
  return cfg.arch.queryScale / llamaQueryScale(version, cfg);
}

/** llama.cpp's sliding_window_pattern p (layer l slides when l mod p < p - 1; 0: every layer) that gives these layers, if one does. */
function swaPeriod(version: Version, windows: readonly (number | undefined)[]): number | undefined {
  const matches = (p: number) => windows.every((w, l) => (p === 0 || l % p < p - 1) === (w !== undefined));
  const preferred = version === 2 ? 2 : 6;
  return [preferred, 0, ...windows.map((_, i) => i + 1)].find(matches);
}

function check(version: Version, name: string, cfg: ModelConfig, where: string): void {
  const refuse = (what: string) => {
    throw new PruneLensError('architecture', `llama.cpp's ${name} ${what}`, where);
  };
  if (cfg.arch.activation !== 'gelu_tanh') refuse('computes GeGLU with tanh-approximated GELU; hidden_activation must be "gelu_pytorch_tanh"');
  if (version !== 3 && !cfg.tieWordEmbeddings) refuse('takes the output head from the embeddings; this checkpoint has its own lm_head (tie_word_embeddings false)');
  if (version === 2 && (cfg.arch.attnSoftcap === undefined || cfg.arch.finalSoftcap === undefined)) {
    refuse('always applies attn_logit_softcapping and final_logit_softcapping; this config switches one off (null)');
  }
  if (version === 3 && cfg.arch.attnSoftcap !== undefined) refuse('has no attention-logit soft cap; attn_logit_softcapping must be null');
  const windows = cfg.arch.layers.map((l) => l.window);
  const sizes = new Set(windows.filter((w) => w !== undefined));
  if (sizes.size > 1) refuse(`has one sliding_window for all local layers; these layers use ${[...sizes].join(' and ')}`);
  if (version !== 1 && swaPeriod(version, windows) === undefined) {
    const kinds = windows.map((w) => (w === undefined ? 'global' : 'local')).join(', ');
    refuse(`repeats one pattern of local layers followed by a global one (sliding_window_pattern); these layers (${kinds}) follow none, as after removing layers from such a pattern`);
  }
}

function metadata(version: Version, a: string, cfg: ModelConfig): [string, GgufValue][] {
  const entries: [string, GgufValue][] = [
    [`${a}.attention.key_length`, { type: 'u32', value: cfg.headDim }],
    [`${a}.attention.value_length`, { type: 'u32', value: cfg.headDim }],
  ];
  if (version === 1) return entries;
  const windows = cfg.arch.layers.map((l) => l.window);
  const window = windows.find((w) => w !== undefined);
  if (window !== undefined) entries.push([`${a}.attention.sliding_window`, { type: 'u32', value: window }]);
  if (version === 2 || window !== undefined) entries.push([`${a}.attention.sliding_window_pattern`, { type: 'u32', value: swaPeriod(version, windows)! }]);
  if (version === 2) entries.push([`${a}.attn_logit_softcapping`, { type: 'f32', value: cfg.arch.attnSoftcap! }]);
  if (cfg.arch.finalSoftcap !== undefined) entries.push([`${a}.final_logit_softcapping`, { type: 'f32', value: cfg.arch.finalSoftcap }]);
  const local = cfg.arch.layers.find((l) => l.window !== undefined)?.rope;
  if (version === 3 && local) entries.push([`${a}.rope.freq_base_swa`, { type: 'f32', value: local.theta }]);
  return entries;
}

function linearScaling(cfg: ModelConfig): { metadata: [string, GgufValue][] } {
  const global = cfg.arch.layers.find((l) => l.window === undefined)?.rope ?? cfg.arch.layers[0]!.rope;
  const factor = global.type === 'linear' ? global.factor : 1;
  return {
    metadata: [
      [`${GEMMA3.name}.rope.scaling.type`, { type: 'string', value: 'linear' }],
      [`${GEMMA3.name}.rope.scaling.factor`, { type: 'f32', value: factor }],
    ],
  };
}
