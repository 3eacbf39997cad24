/**
 * Independent float64 forward of a Hugging Face OPT decoder (modeling_opt.py): embed_tokens, then
 * project_in when word_embed_proj_dim differs from hidden_size, plus learned positions read at
 * position + 2 (OPTLearnedPositionalEmbedding's offset); each layer with q scaled by head_dim^-½ after
 * its bias, and LayerNorms before each half (do_layer_norm_before) or after each residual sum (OPT-350m);
 * fc1, activation_function (ReLU), fc2; the final LayerNorm only with do_layer_norm_before; project_out;
 * the head tied to embed_tokens. Names under `model.decoder.` or `decoder.`. Imports nothing from src/.
 */
import { linear, type RefWeights } from './llama-f64';
import { activation, add, attention, layerNorm, need } from './layernorm-f64';

type Config = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

export function optLogits(cfg: Config, w: RefWeights, ids: number[]): Float64Array {
  const root = w('model.decoder.embed_tokens.weight') ? 'model.decoder.' : 'decoder.';
  const D: number = cfg.hidden_size;
  const P: number = cfg.word_embed_proj_dim ?? D;
  const F: number = cfg.ffn_dim;
  const nH: number = cfg.num_attention_heads;
  const hd = D / nH;
  const before = cfg.do_layer_norm_before !== false;
  const act = activation(cfg.activation_function ?? 'relu');
  const eps = 1e-5;
  const T = ids.length;
  const table = need(w, `${root}embed_tokens.weight`);
  let tokens: Float64Array = new Float64Array(T * P);
  for (let t = 0; t < T; t++) for (let i = 0; i < P; i++) tokens[t * P + i] = table[ids[t]! * P + i]!;
  if (P !== D) tokens = linear(tokens, T, P, need(w, `${root}project_in.weight`), D);
  const positions = need(w, `${root}embed_positions.weight`);
  let h: Float64Array = new Float64Array(T * D);
  for (let t = 0; t < T; t++) for (let i = 0; i < D; i++) h[t * D + i] = tokens[t * D + i]! + positions[(t + 2) * D + i]!;
  const ln = (x: Float64Array, name: string) => layerNorm(x, T, D, need(w, name + '.weight'), need(w, name + '.bias'), eps);
  const lin = (x: Float64Array, inDim: number, name: string, outDim: number) => linear(x, T, inDim, need(w, name + '.weight'), outDim, need(w, name + '.bias'));
  for (let l = 0; l < cfg.num_hidden_layers; l++) {
    const p = `${root}layers.${l}.`;
    const x1 = before ? ln(h, p + 'self_attn_layer_norm') : h;
    const q = lin(x1, D, p + 'self_attn.q_proj', D).map((v) => v * hd ** -0.5);
    const a = attention(q, lin(x1, D, p + 'self_attn.k_proj', D), lin(x1, D, p + 'self_attn.v_proj', D), T, nH, hd, 1);
    h = add(h, lin(a, D, p + 'self_attn.out_proj', D));
    if (!before) h = ln(h, p + 'self_attn_layer_norm');
    const x2 = before ? ln(h, p + 'final_layer_norm') : h;
    h = add(h, lin(lin(x2, D, p + 'fc1', F).map(act), F, p + 'fc2', D));
    if (!before) h = ln(h, p + 'final_layer_norm');
  }
  if (before && cfg._remove_final_layer_norm !== true) h = ln(h, `${root}final_layer_norm`);
  if (P !== D) h = linear(h, T, D, need(w, `${root}project_out.weight`), P);
  return linear(h, T, P, table, cfg.vocab_size);
}
