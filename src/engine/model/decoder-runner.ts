import type { Checkpoint } from '../io/checkpoint';
import { buildDecoderBlock, tapOutputName, type TapRequest } from '../graph/decoder-block';
import { buildLmHead } from '../graph/lm-head';
import { GraphSession, floatTensor, int64Tensor, type Feeds, type RuntimeSettings } from '../graph/session';
import { PruneLensError } from '../errors';
import type { ModelConfig } from './config';

/** Where a block's weights come from: the checkpoint on disk, or weights a pruning step has changed. */
export interface BlockWeightSource {
  readBlock(layer: number): Promise<Map<string, Float32Array>>;
}

/** Everything a run needs that is not a decoder block: held once for the whole run. */
interface HeadWeights {
  embed: Float32Array;
  norm: Float32Array;
  /** Shares `embed`'s memory when the embeddings are tied. */
  lmHead: Float32Array;
}

interface PositionFeeds {
  cos: Feeds[string];
  sin: Feeds[string];
  mask: Feeds[string];
}

/**
 * Runs a model one decoder block at a time: one ORT session serves every block (weights are inputs),
 * so any block can run alone on given hidden states and changed weights need no rebuild.
 */
export class DecoderRunner {
  private readonly positions = new Map<number, PositionFeeds>();
  private logitsSession?: GraphSession;

  private constructor(
    readonly config: ModelConfig,
    readonly settings: RuntimeSettings,
    private readonly head: HeadWeights,
    private readonly blockSession: GraphSession,
    private readonly nllSession: GraphSession,
    readonly taps: readonly TapRequest[],
  ) {}

  static async create(checkpoint: Checkpoint, settings: RuntimeSettings, taps: readonly TapRequest[] = []): Promise<DecoderRunner> {
    const config = checkpoint.config;
    const embed = await checkpoint.readF32('model.embed_tokens.weight');
    const head: HeadWeights = {
      embed,
      norm: await checkpoint.readF32('model.norm.weight'),
      lmHead: config.tieWordEmbeddings ? embed : await checkpoint.readF32('lm_head.weight'),
    };
    const blockSession = await GraphSession.create(buildDecoderBlock(config, taps), settings);
    const nllSession = await GraphSession.create(buildLmHead(config, 'nll'), settings);
    return new DecoderRunner(config, settings, head, blockSession, nllSession, taps);
  }

  /** Refuses window lengths the graph would compute wrongly, before any work is done. */
  checkSequenceLength(seqlen: number): void {
    const cfg = this.config;
    if (!Number.isInteger(seqlen) || seqlen < 2) throw new PruneLensError('usage', `seqlen must be an integer of at least 2, got ${seqlen}`);
    if (seqlen > cfg.maxPositionEmbeddings) {
      throw new PruneLensError('usage', `seqlen ${seqlen} exceeds the model's context (max_position_embeddings ${cfg.maxPositionEmbeddings})`);
    }
    // The causal mask has no sliding-window band; within one window the two agree.
    if (cfg.slidingWindow !== undefined && seqlen > cfg.slidingWindow) {
      throw new PruneLensError('usage', `seqlen ${seqlen} exceeds the model's sliding_window (${cfg.slidingWindow}); use seqlen <= ${cfg.slidingWindow}`);
    }
  }

  /** Bytes held for the embeddings, final norm and LM head for the whole run. */
  get headBytes(): number {
    const { embed, norm, lmHead } = this.head;
    return (embed.length + norm.length + (lmHead === embed ? 0 : lmHead.length)) * 4;
  }

  /** Writes the embeddings of `ids` into `out` ([ids.length, D]); an id outside the vocabulary throws. */
  embed(ids: ArrayLike<number>, out: Float32Array): void {
    const d = this.config.hiddenSize;
    for (let t = 0; t < ids.length; t++) {
      const id = ids[t]!;
      if (!(id >= 0 && id < this.config.vocabSize)) throw new RangeError(`token id ${id} is outside the vocabulary (${this.config.vocabSize})`);
      out.set(this.head.embed.subarray(id * d, (id + 1) * d), t * d);
    }
  }

  blockFeeds(weights: Map<string, Float32Array>): Feeds {
    const feeds: Feeds = {};
    for (const [name, data] of weights) feeds[name] = floatTensor(data, this.shapeOf(name));
    return feeds;
  }

  /**
   * Runs one block on `hidden` ([batch, seq, D]) and returns its output followed by the taps' outputs,
   * in the order the runner was created with.
   */
  async runBlock(weights: Feeds, hidden: Float32Array, batch: number, seq: number): Promise<Float32Array[]> {
    const pos = this.positionFeeds(seq);
    const outputs = ['hidden_out', ...this.taps.map(tapOutputName)];
    return this.blockSession.run(
      { ...weights, hidden: floatTensor(hidden, [batch, seq, this.config.hiddenSize]), cos: pos.cos, sin: pos.sin, mask: pos.mask },
      outputs,
    );
  }

  /** Per-token next-token NLL [batch, seq-1] for final hidden states and the windows' token ids. */
  async nll(hidden: Float32Array, ids: ArrayLike<number>, batch: number, seq: number): Promise<Float32Array> {
    const ids64 = new BigInt64Array(ids.length);
    for (let i = 0; i < ids.length; i++) ids64[i] = BigInt(ids[i]!);
    const [nll] = await this.nllSession.run({ ...this.headFeeds(hidden, batch, seq), ids: int64Tensor(ids64, [batch, seq]) }, ['nll']);
    return nll!;
  }

  /** Full logits [batch*seq, V]; for tests and generation, not for evaluation. */
  async logits(hidden: Float32Array, batch: number, seq: number): Promise<Float32Array> {
    this.logitsSession ??= await GraphSession.create(buildLmHead(this.config, 'logits'), this.settings);
    const [logits] = await this.logitsSession.run(this.headFeeds(hidden, batch, seq), ['logits']);
    return logits!;
  }

  async release(): Promise<void> {
    await Promise.all([this.blockSession.release(), this.nllSession.release(), this.logitsSession?.release()]);
  }

  private headFeeds(hidden: Float32Array, batch: number, seq: number): Feeds {
    const { hiddenSize: d, vocabSize: v } = this.config;
    return {
      hidden: floatTensor(hidden, [batch, seq, d]),
      'norm.weight': floatTensor(this.head.norm, [d]),
      'lm_head.weight': floatTensor(this.head.lmHead, [v, d]),
    };
  }

  private shapeOf(name: string): number[] {
    const { hiddenSize: d, intermediateSize: i, numHeads, numKvHeads, headDim } = this.config;
    const q = numHeads * headDim;
    const kv = numKvHeads * headDim;
    const shapes: Record<string, number[]> = {
      'input_layernorm.weight': [d],
      'post_attention_layernorm.weight': [d],
      'self_attn.q_proj.weight': [q, d],
      'self_attn.q_proj.bias': [q],
      'self_attn.k_proj.weight': [kv, d],
      'self_attn.k_proj.bias': [kv],
      'self_attn.v_proj.weight': [kv, d],
      'self_attn.v_proj.bias': [kv],
      'self_attn.o_proj.weight': [d, q],
      'self_attn.o_proj.bias': [d],
      'mlp.gate_proj.weight': [i, d],
      'mlp.gate_proj.bias': [i],
      'mlp.up_proj.weight': [i, d],
      'mlp.up_proj.bias': [i],
      'mlp.down_proj.weight': [d, i],
      'mlp.down_proj.bias': [d],
    };
    return shapes[name]!;
  }

  /** Rotary tables (computed in float64, like the reference) and the causal mask, cached per length. */
  private positionFeeds(seq: number): PositionFeeds {
    let feeds = this.positions.get(seq);
    if (!feeds) {
      const hd = this.config.headDim;
      const half = hd / 2;
      const cos = new Float32Array(seq * hd);
      const sin = new Float32Array(seq * hd);
      for (let t = 0; t < seq; t++) {
        for (let j = 0; j < half; j++) {
          const angle = t / Math.pow(this.config.ropeTheta, (2 * j) / hd);
          cos[t * hd + j] = cos[t * hd + j + half] = Math.cos(angle);
          sin[t * hd + j] = sin[t * hd + j + half] = Math.sin(angle);
        }
      }
      // Large-negative rather than -Infinity: some GPU softmax kernels turn inf - inf into NaN.
      const mask = new Float32Array(seq * seq);
      for (let i = 0; i < seq; i++) mask.fill(-3.0e38, i * seq + i + 1, (i + 1) * seq);
      feeds = { cos: floatTensor(cos, [seq, hd]), sin: floatTensor(sin, [seq, hd]), mask: floatTensor(mask, [seq, seq]) };
      this.positions.set(seq, feeds);
    }
    return feeds;
  }
}
