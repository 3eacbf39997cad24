/**
 * Mixture-of-experts families in llama.cpp, as convert_hf_to_gguf.py writes them: Mixtral as `llama`
 * (src/models/llama.cpp's MoE branch), Qwen2-MoE as `qwen2moe`, Qwen3-MoE as `qwen3moe`, OLMoE as
 * `olmoe`. The router is `ffn_gate_inp` [experts, hidden]; each expert linear is stacked over the
 * experts into one 3-D tensor (`ffn_gate_exps`, `ffn_up_exps`, `ffn_down_exps`, expert j's matrix the
 * j-th slab, so it lines up with router row j; the stacking is the exporter's, see architectures.ts);
 * Qwen2-MoE's shared expert is `ffn_*_shexp` with its sigmoid gate `ffn_gate_inp_shexp`.
 *
 * What the bundled llama.cpp fixes that Hugging Face configs can vary, refused here before any work:
 * - Renormalising the k kept softmax weights is hard-coded per architecture (build_moe_ffn's norm_w):
 *   llama (Mixtral) and qwen3moe always, qwen2moe and olmoe never; it reads no expert_weights_norm key
 *   for these. A norm_topk_prob that disagrees would route the same but weight the experts otherwise.
 * - qwen2moe and qwen3moe build a sparse MLP in every layer: Qwen's dense layers (mlp_only_layers,
 *   decoder_sparse_step > 1) cannot be expressed.
 * - qwen2moe and olmoe size q and o_proj by hidden_size, and olmoe's key norm spans hidden_size values
 *   (no grouped-query attention).
 * - qwen2moe and olmoe always load `output.weight`: a tied checkpoint's embeddings are written again as
 *   the output head (arch.duplicateTiedOutput).
 * Removing experts needs nothing more: the file's expert count and stacked tensors follow config.json
 * (num_local_experts / num_experts), and num_experts_per_tok stays at most that count.
 */
import { PruneLensError } from '../../errors';
import type { ModelConfig } from '../../model/config';
import { LLAMA_BLOCK, type GgufArchitecture } from './gguf-architecture';
import type { GgufValue } from './gguf-writer';

/** LLAMA_MAX_EXPERTS in the bundled llama.cpp (src/llama-hparams.h). */
const LLAMA_MAX_EXPERTS = 1024;

/** The routed MLP's tensors other than the stacked experts. */
const ROUTER = { 'mlp.gate.weight': 'ffn_gate_inp.weight' };
const SHARED_EXPERT = {
  'mlp.shared_expert.gate_proj.weight': 'ffn_gate_shexp.weight',
  'mlp.shared_expert.up_proj.weight': 'ffn_up_shexp.weight',
  'mlp.shared_expert.down_proj.weight': 'ffn_down_shexp.weight',
  'mlp.shared_expert_gate.weight': 'ffn_gate_inp_shexp.weight',
};

const ATTENTION = {
  'input_layernorm.weight': 'attn_norm.weight',
  'self_attn.q_proj.weight': 'attn_q.weight',
  'self_attn.k_proj.weight': 'attn_k.weight',
  'self_attn.v_proj.weight': 'attn_v.weight',
  'self_attn.o_proj.weight': 'attn_output.weight',
  'post_attention_layernorm.weight': 'ffn_norm.weight',
};
const QKV_BIASES = { 'self_attn.q_proj.bias': 'attn_q.bias', 'self_attn.k_proj.bias': 'attn_k.bias', 'self_attn.v_proj.bias': 'attn_v.bias' };
const QK_NORMS = { 'self_attn.q_norm.weight': 'attn_q_norm.weight', 'self_attn.k_norm.weight': 'attn_k_norm.weight' };

/** Refuses what every MoE architecture here shares: renormalisation fixed by the architecture, SwiGLU experts, the expert limit, no dense layers. */
function checkRouting(arch: string, cfg: ModelConfig, where: string, renormalises: boolean): void {
  const moe = cfg.arch.moe;
  if (!moe) throw new Error(`unreachable: ${cfg.modelType} without experts`);
  if (moe.normTopK !== renormalises) {
    throw new PruneLensError(
      'architecture',
      `llama.cpp's ${arch} ${renormalises ? 'always renormalises the top-k routing weights to sum 1' : 'never renormalises the top-k routing weights'}; this config has norm_topk_prob ${moe.normTopK}, so its GGUF would weight the experts differently`,
      where,
    );
  }
  if (moe.experts > LLAMA_MAX_EXPERTS) throw new PruneLensError('architecture', `llama.cpp takes at most ${LLAMA_MAX_EXPERTS} experts per layer; this config has ${moe.experts}`, where);
  const dense = moe.sparse.flatMap((sparse, l) => (sparse ? [] : [l]));
  if (dense.length > 0) {
    throw new PruneLensError(
      'architecture',
      `llama.cpp's ${arch} has a sparse MoE MLP in every layer; layer${dense.length > 1 ? 's' : ''} ${dense.join(', ')} ${dense.length > 1 ? 'are' : 'is'} dense here (mlp_only_layers / decoder_sparse_step), which it cannot express`,
      where,
    );
  }
  if (cfg.arch.activation !== 'silu') throw new PruneLensError('architecture', `llama.cpp's ${arch} computes SwiGLU experts; hidden_act must be "silu"`, where);
}

function checkNoWindow(arch: string, cfg: ModelConfig, where: string): void {
  if (cfg.arch.layers.some((l) => l.window !== undefined)) {
    throw new PruneLensError('architecture', `llama.cpp's ${arch} has no sliding-window attention; this config slides (sliding_window), so its GGUF would compute something else`, where);
  }
}

function checkHiddenSizedAttention(arch: string, cfg: ModelConfig, where: string): void {
  if (cfg.numHeads * cfg.headDim !== cfg.hiddenSize) {
    throw new PruneLensError('architecture', `llama.cpp's ${arch} sizes attention by hidden_size: heads × head_dim must equal ${cfg.hiddenSize}, here ${cfg.numHeads} × ${cfg.headDim}`, where);
  }
}

/** Qwen's expert widths (feed_forward_length stays intermediate_size, the dense width). */
function expertWidths(name: string, cfg: ModelConfig): [string, GgufValue][] {
  const moe = cfg.arch.moe!;
  const entries: [string, GgufValue][] = [[`${name}.expert_feed_forward_length`, { type: 'u32', value: moe.expertWidth }]];
  if (moe.sharedWidth !== undefined) entries.push([`${name}.expert_shared_feed_forward_length`, { type: 'u32', value: moe.sharedWidth }]);
  return entries;
}

/** Mixtral is llama.cpp's `llama` with experts (convert_hf_to_gguf.py's LlamaModel): interleaved rope, renormalised top-k. */
export const MIXTRAL: GgufArchitecture = {
  name: 'llama',
  blockTensors: { ...LLAMA_BLOCK, 'block_sparse_moe.gate.weight': 'ffn_gate_inp.weight' },
  interleavedRope: true,
  check(cfg, where) {
    checkRouting('llama', cfg, where, true);
    checkNoWindow('llama', cfg, where);
  },
};

export const QWEN2_MOE: GgufArchitecture = {
  name: 'qwen2moe',
  // q/k/v biases as Qwen2 has them; no o_proj bias (llama.cpp's qwen2moe loads none).
  blockTensors: { ...ATTENTION, ...QKV_BIASES, ...ROUTER, ...SHARED_EXPERT },
  interleavedRope: false,
  duplicateTiedOutput: true,
  check(cfg, where) {
    checkRouting('qwen2moe', cfg, where, false);
    checkNoWindow('qwen2moe', cfg, where);
    checkHiddenSizedAttention('qwen2moe', cfg, where);
  },
  metadata: (cfg) => expertWidths('qwen2moe', cfg),
};

export const QWEN3_MOE: GgufArchitecture = {
  name: 'qwen3moe',
  // attention_bias also biases o_proj, which llama.cpp's qwen3moe does not load: refused by name.
  blockTensors: { ...ATTENTION, ...QKV_BIASES, ...QK_NORMS, ...ROUTER },
  interleavedRope: false,
  check(cfg, where) {
    checkRouting('qwen3moe', cfg, where, true);
    checkNoWindow('qwen3moe', cfg, where);
  },
  metadata: (cfg) => expertWidths('qwen3moe', cfg),
};

export const OLMOE: GgufArchitecture = {
  name: 'olmoe',
  // q/k norms over the whole projection; no biases (llama.cpp's olmoe adds none).
  blockTensors: { ...ATTENTION, ...QK_NORMS, ...ROUTER },
  interleavedRope: false,
  duplicateTiedOutput: true,
  check(cfg, where) {
    checkRouting('olmoe', cfg, where, false);
    checkHiddenSizedAttention('olmoe', cfg, where);
    if (cfg.numKvHeads !== cfg.numHeads) {
      throw new PruneLensError('architecture', `llama.cpp's olmoe normalises keys over hidden_size values: num_key_value_heads must equal num_attention_heads (${cfg.numHeads}), here ${cfg.numKvHeads}`, where);
    }
  },
};
