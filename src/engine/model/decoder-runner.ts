import type { Checkpoint } from '../io/checkpoint';
import { buildLmHead, buildProjection } from '../graph/lm-head';
import { GraphSession, floatTensor, int64Tensor, type Feeds, type RuntimeSettings } from '../graph/session';
import { BlockRunner } from './block-runner';
import type { ModelConfig } from './config';
import { topName } from './families/tensor-names';
import { decodeToF32, encodeFromF32, type DType } from '../io/dtype';

/** Everything a run needs that is not a decoder block: held once for the whole run. */
interface HeadWeights {
  embed: Float32Array;
  /** Learned positions (GPT-2, OPT): row p + offset is added to the token at position p of its window. */
  positions?: Float32Array;
  /** The final norm's weight (and bias for LayerNorm); absent where the family has none (OPT-350m). */
  norm?: Float32Array;
  normBias?: Float32Array;
  /** OPT's projections between word_embed_proj_dim and hidden_size. */
  projectIn?: Float32Array;
  projectOut?: Float32Array;
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
  private projectInSession?: GraphSession;

  private constructor(
    readonly config: ModelConfig,
    readonly settings: RuntimeSettings,
    readonly block: BlockRunner,
    private readonly head: HeadWeights,
    private readonly nllSession: GraphSession,
  ) {}

  static async create(checkpoint: Checkpoint, settings: RuntimeSettings): Promise<DecoderRunner> {
    const config = checkpoint.config;
    const { names, finalNorm, norm, projection, positionOffset } = config.arch;
    const read = (module: string | undefined, suffix: 'weight' | 'bias' = 'weight') => checkpoint.readF32(topName(names, module!, suffix));
    const embed = await read(names.embed);
    const head: HeadWeights = {
      embed,
      positions: positionOffset !== undefined ? await read(names.positions) : undefined,
      norm: finalNorm ? await read(names.finalNorm) : undefined,
      normBias: finalNorm && norm === 'layer' ? await read(names.finalNorm, 'bias') : undefined,
      projectIn: projection !== undefined ? await read(names.projectIn) : undefined,
      projectOut: projection !== undefined ? await read(names.projectOut) : undefined,
      lmHead: config.tieWordEmbeddings ? embed : await checkpoint.readF32(`${names.lmHead}.weight`),
      embedScale: embeddingScale(config, checkpoint.dtype),
    };
    const block = await BlockRunner.create(config, settings);
    const nllSession = await GraphSession.create(buildLmHead(config, 'nll'), settings);
    return new DecoderRunner(config, settings, block, head, nllSession);
  }

  /**
   * Writes the embeddings of `ids` into `out` ([ids.length, D]): windows of `seq` tokens laid end to
   * end, each starting at position 0 (learned positions are added per window). An id outside the
   * vocabulary throws. OPT's project_in, a matrix product, runs in ORT.
   */
  async embed(ids: ArrayLike<number>, out: Float32Array, seq: number): Promise<void> {
    const d = this.config.hiddenSize;
    const { projection, positionOffset } = this.config.arch;
    const width = projection ?? d;
    const rows = projection !== undefined ? new Float32Array(ids.length * width) : out;
    for (let t = 0; t < ids.length; t++) {
      const id = ids[t]!;
      if (!(id >= 0 && id < this.config.vocabSize)) throw new RangeError(`token id ${id} is outside the vocabulary (${this.config.vocabSize})`);
      const row = this.head.embed.subarray(id * width, (id + 1) * width);
      if (this.head.embedScale === 1) rows.set(row, t * width);
      else for (let i = 0; i < width; i++) rows[t * width + i] = row[i]! * this.head.embedScale;
    }
    if (projection !== undefined) {
      this.projectInSession ??= await GraphSession.create(buildProjection(projection, d), this.settings);
      const [projected] = await this.projectInSession.run({ x: floatTensor(rows, [ids.length, projection]), w: floatTensor(this.head.projectIn!, [d, projection]) }, ['y']);
      out.set(projected!);
    }
    if (positionOffset !== undefined) {
      const table = this.head.positions!;
      for (let t = 0; t < ids.length; t++) {
        const p = (t % seq) + positionOffset;
        for (let i = 0; i < d; i++) out[t * d + i]! += table[p * d + i]!;
      }
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
    await Promise.all([this.block.release(), this.nllSession.release(), this.logitsSession?.release(), this.projectInSession?.release()]);
  }

  private headFeeds(hidden: Float32Array, batch: number, seq: number): Feeds {
    const { hiddenSize: d, vocabSize: v } = this.config;
    const p = this.config.arch.projection;
    const feeds: Feeds = { hidden: floatTensor(hidden, [batch, seq, d]), 'lm_head.weight': floatTensor(this.head.lmHead, [v, p ?? d]) };
    if (this.head.norm) feeds['norm.weight'] = floatTensor(this.head.norm, [d]);
    if (this.head.normBias) feeds['norm.bias'] = floatTensor(this.head.normBias, [d]);
    if (this.head.projectOut) feeds['project_out.weight'] = floatTensor(this.head.projectOut, [p!, d]);
    return feeds;
  }
}
