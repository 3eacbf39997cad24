/**
 * Independent float64 forward of Hugging Face mixture-of-experts decoders, written from
 * modeling_mixtral.py, modeling_qwen2_moe.py, modeling_qwen3_moe.py and modeling_olmoe.py: the
 * attention of Mistral / Qwen2 / Qwen3 (q/k norms per head) / OLMoE (q/k norms over the whole
 * projection), and the sparse MoE block routed token by token as the modeling code does: softmax
 * over all experts, torch.topk (ties to the lower index), renormalised when the family does, only
 * the k chosen experts run; Qwen2-MoE's shared expert scaled by sigmoid(shared_expert_gate(x)), and
 * Qwen's dense layers (mlp_only_layers, decoder_sparse_step). Imports nothing from src/.
 */
import { causalAttention, linear, referenceEmbed, rmsNorm, silu, type RefWeights } from './llama-f64';
import { applyRotary, ropeCosSin, type RawConfig } from './rope-f64';

function need(w: RefWeights, name: string): Float64Array {
  const t = w(name);
  if (!t) throw new Error(`reference: missing weight ${name}`);
  return t.data;
}

function swiglu(x: Float64Array, T: number, D: number, F: number, gate: Float64Array, up: Float64Array, down: Float64Array): Float64Array {
  const g = linear(x, T, D, gate, F);
  const u = linear(x, T, D, up, F);
  return linear(g.map((v, i) => silu(v) * u[i]!), T, F, down, D);
}

/** Whether a layer of this config is a sparse MoE layer (Qwen2MoeDecoderLayer's rule; always for Mixtral and OLMoE). */
export function isSparseLayer(cfg: RawConfig, layer: number): boolean {
  if (cfg.model_type !== 'qwen2_moe' && cfg.model_type !== 'qwen3_moe') return true;
  const only: number[] = cfg.mlp_only_layers ?? [];
  return !only.includes(layer) && (layer + 1) % (cfg.decoder_sparse_step ?? 1) === 0;
}

/**
 * Called for each (token, chosen expert) of a sparse layer: the weight it gets, ‖expert output‖₂, and
 * what the expert's linears read: the token's normed input (gate, up) and silu(gate)·up (down).
 */
export type RouteObserver = (layer: number, token: number, expert: number, weight: number, outputNorm: number, input: Float64Array, hidden: Float64Array) => void;

/** The sparse MoE block on one token x [D]; returns its output [D]. */
function moeToken(cfg: RawConfig, w: RefWeights, p: string, x: Float64Array, observe?: (expert: number, weight: number, outputNorm: number, input: Float64Array, hidden: Float64Array) => void): Float64Array {
  const D: number = cfg.hidden_size;
  const mixtral = cfg.model_type === 'mixtral';
  const E: number = mixtral ? cfg.num_local_experts : cfg.num_experts;
  const k: number = cfg.num_experts_per_tok;
  const F: number = cfg.model_type === 'qwen2_moe' || cfg.model_type === 'qwen3_moe' ? cfg.moe_intermediate_size : cfg.intermediate_size;
  const m = mixtral ? `${p}block_sparse_moe.` : `${p}mlp.`;
  const [gn, un, dn] = mixtral ? ['w1', 'w3', 'w2'] : ['gate_proj', 'up_proj', 'down_proj'];
  const logits = linear(x, 1, D, need(w, `${m}gate.weight`), E);
  const max = Math.max(...logits);
  const exps = Array.from(logits, (l) => Math.exp(l - max));
  const total = exps.reduce((a, b) => a + b, 0);
  const probs = exps.map((e) => e / total);
  const order = probs.map((_, j) => j).sort((a, b) => probs[b]! - probs[a]! || a - b);
  const chosen = order.slice(0, k);
  const norm = mixtral || cfg.norm_topk_prob === true ? chosen.reduce((s, j) => s + probs[j]!, 0) : 1;
  const out = new Float64Array(D);
  for (const j of chosen) {
    const e = `${m}experts.${j}.`;
    const g = linear(x, 1, D, need(w, `${e}${gn}.weight`), F);
    const u = linear(x, 1, D, need(w, `${e}${un}.weight`), F);
    const h = g.map((v, i) => silu(v) * u[i]!);
    const y = linear(h, 1, F, need(w, `${e}${dn}.weight`), D);
    for (let i = 0; i < D; i++) out[i] += (probs[j]! / norm) * y[i]!;
    observe?.(j, probs[j]! / norm, Math.hypot(...y), x, h);
  }
  if (cfg.model_type === 'qwen2_moe') {
    const S: number = cfg.shared_expert_intermediate_size;
    const s = `${p}mlp.shared_expert.`;
    const y = swiglu(x, 1, D, S, need(w, `${s}gate_proj.weight`), need(w, `${s}up_proj.weight`), need(w, `${s}down_proj.weight`));
    const g = 1 / (1 + Math.exp(-linear(x, 1, D, need(w, `${p}mlp.shared_expert_gate.weight`), 1)[0]!));
    for (let i = 0; i < D; i++) out[i] += g * y[i]!;
  }
  return out;
}

function slidingWindow(cfg: RawConfig, layer: number): number | undefined {
  if (cfg.sliding_window === undefined || cfg.sliding_window === null) return undefined;
  if (cfg.model_type === 'mixtral') return cfg.sliding_window;
  if ((cfg.model_type === 'qwen2_moe' || cfg.model_type === 'qwen3_moe') && cfg.use_sliding_window) return layer >= (cfg.max_window_layers ?? 0) ? cfg.sliding_window : undefined;
  return undefined;
}

export function moeBlock(cfg: RawConfig, w: RefWeights, layer: number, hidden: Float64Array, T: number, observe?: RouteObserver): Float64Array {
  const D: number = cfg.hidden_size;
  const nH: number = cfg.num_attention_heads;
  const nKV: number = cfg.num_key_value_heads;
  const hd: number = cfg.head_dim ?? D / nH;
  const eps: number = cfg.rms_norm_eps;
  const p = `model.layers.${layer}.`;
  const bias = (n: string) => w(p + n)?.data;

  const xn = rmsNorm(hidden, T, D, need(w, p + 'input_layernorm.weight'), eps);
  let q = linear(xn, T, D, need(w, p + 'self_attn.q_proj.weight'), nH * hd, bias('self_attn.q_proj.bias'));
  let k = linear(xn, T, D, need(w, p + 'self_attn.k_proj.weight'), nKV * hd, bias('self_attn.k_proj.bias'));
  const v = linear(xn, T, D, need(w, p + 'self_attn.v_proj.weight'), nKV * hd, bias('self_attn.v_proj.bias'));
  if (cfg.model_type === 'qwen3_moe') {
    q = rmsNorm(q, T * nH, hd, need(w, p + 'self_attn.q_norm.weight'), eps);
    k = rmsNorm(k, T * nKV, hd, need(w, p + 'self_attn.k_norm.weight'), eps);
  } else if (cfg.model_type === 'olmoe') {
    q = rmsNorm(q, T, nH * hd, need(w, p + 'self_attn.q_norm.weight'), eps);
    k = rmsNorm(k, T, nKV * hd, need(w, p + 'self_attn.k_norm.weight'), eps);
  }
  const { cos, sin } = ropeCosSin(cfg, T);
  applyRotary(q, T, nH, hd, cos, sin);
  applyRotary(k, T, nKV, hd, cos, sin);
  const attn = causalAttention(q, k, v, T, nH, nKV, hd, { scale: hd ** -0.5, window: slidingWindow(cfg, layer) });
  const o = linear(attn, T, nH * hd, need(w, p + 'self_attn.o_proj.weight'), D, bias('self_attn.o_proj.bias'));
  const h1 = hidden.map((x, i) => x + o[i]!);

  const xn2 = rmsNorm(h1, T, D, need(w, p + 'post_attention_layernorm.weight'), eps);
  let mlp: Float64Array;
  if (isSparseLayer(cfg, layer)) {
    mlp = new Float64Array(T * D);
    for (let t = 0; t < T; t++) mlp.set(moeToken(cfg, w, p, xn2.subarray(t * D, (t + 1) * D), observe && ((j, g, n, input, h) => observe(layer, t, j, g, n, input, h))), t * D);
  } else {
    const F: number = cfg.intermediate_size;
    mlp = swiglu(xn2, T, D, F, need(w, p + 'mlp.gate_proj.weight'), need(w, p + 'mlp.up_proj.weight'), need(w, p + 'mlp.down_proj.weight'));
  }
  return h1.map((x, i) => x + mlp[i]!);
}

/** Logits [T, vocab] for one sequence. */
export function moeLogits(cfg: RawConfig, w: RefWeights, ids: number[], observe?: RouteObserver): Float64Array {
  const T = ids.length;
  let h = referenceEmbed(cfg as never, w, ids);
  for (let l = 0; l < cfg.num_hidden_layers; l++) h = moeBlock(cfg, w, l, h, T, observe);
  const xn = rmsNorm(h, T, cfg.hidden_size, need(w, 'model.norm.weight'), cfg.rms_norm_eps);
  return linear(xn, T, cfg.hidden_size, need(w, cfg.tie_word_embeddings ? 'model.embed_tokens.weight' : 'lm_head.weight'), cfg.vocab_size);
}
