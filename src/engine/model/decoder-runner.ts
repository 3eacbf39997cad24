import type { Checkpoint } from '../io/checkpoint';
import { buildLmHead } from '../graph/lm-head';
import { GraphSession, floatTensor, int64Tensor, type Feeds, type RuntimeSettings } from '../graph/session';
import { BlockRunner } from './block-runner';
import type { ModelConfig } from './config';
import { decodeToF32, encodeFromF32, type DType } from '../io/dtype';

/** Everything a run needs that is not a decoder block: held once for the whole run. */
interface HeadWeights {
  embed: Float32Array;
  norm: Float32Array;
  /** Shares `embed`'s memory when the embeddings are tied. */
  lmHead: Float32Array;
  /** What multiplies each embedding row (Gemma's √hidden_size), 1 for most families. */
  embedScale: number;
}

/**
 * Gemma's embedding normaliser: √hidden_size cast to the model's dtype before the product, as
 * transformers does (√3072 is 55.43, but 55.5 in bfloat16). The product itself is float32 here.
 */
export function embeddingScale(cfg: ModelConfig, dtype: DType): number {
  if (!cfg.arch.embedScale) return 1;
  const value = Float32Array.of(Math.sqrt(cfg.hiddenSize));
  return dtype === 'F16' || dtype === 'BF16' ? decodeToF32(dtype, encodeFromF32(dtype, value, 'embedding scale'), 'embedding scale')[0]! : value[0]!;
}

/**
 * A whole model run block by block: embeddings in JS (a row copy per token), decoder blocks through
 * a BlockRunner, then the final norm and LM head, which return per-token losses, not logits.
 */
export class DecoderRunner {
  private logitsSession?: GraphSession;

  private constructor(
    readonly config: ModelConfig,
    readonly settings: RuntimeSettings,
    readonly block: BlockRunner,
    private readonly head: HeadWeights,
    private readonly nllSession: GraphSession,
  ) {}

  static async create(checkpoint: Checkpoint, settings: RuntimeSettings): Promise<DecoderRunner> {
    const config = checkpoint.config;
    const embed = await checkpoint.readF32('model.embed_tokens.weight');
    const head: HeadWeights = {
      embed,
      norm: await checkpoint.readF32('model.norm.weight'),
      lmHead: config.tieWordEmbeddings ? embed : await checkpoint.readF32('lm_head.weight'),
      embedScale: embeddingScale(config, checkpoint.dtype),
    };
    const block = await BlockRunner.create(config, settings);
    const nllSession = await GraphSession.create(buildLmHead(config, 'nll'), settings);
    return new DecoderRunner(config, settings, block, head, nllSession);
  }

  /** Writes the embeddings of `ids` into `out` ([ids.length, D]); an id outside the vocabulary throws. */
  embed(ids: ArrayLike<number>, out: Float32Array): void {
    const d = this.config.hiddenSize;
    for (let t = 0; t < ids.length; t++) {
      const id = ids[t]!;
      if (!(id >= 0 && id < this.config.vocabSize)) throw new RangeError(`token id ${id} is outside the vocabulary (${this.config.vocabSize})`);
      const row = this.head.embed.subarray(id * d, (id + 1) * d);
      if (this.head.embedScale === 1) out.set(row, t * d);
      else for (let i = 0; i < d; i++) out[t * d + i] = row[i]! * this.head.embedScale;
    }
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
    await Promise.all([this.block.release(), this.nllSession.release(), this.logitsSession?.release()]);
  }

  private headFeeds(hidden: Float32Array, batch: number, seq: number): Feeds {
    const { hiddenSize: d, vocabSize: v } = this.config;
    return {
      hidden: floatTensor(hidden, [batch, seq, d]),
      'norm.weight': floatTensor(this.head.norm, [d]),
      'lm_head.weight': floatTensor(this.head.lmHead, [v, d]),
    };
  }
}
