import { buildDecoderBlock, tapOutputName, type TapRequest } from '../graph/decoder-block';
import { GraphSession, floatTensor, type Feeds, type RuntimeSettings } from '../graph/session';
import { PruneLensError } from '../errors';
import { blockTensorShapes, type ModelConfig } from './config';

/** Where a block's weights come from: the checkpoint on disk, or a pruned model being written. */
export interface BlockWeightSource {
  readBlock(layer: number): Promise<Map<string, Float32Array>>;
}

interface PositionFeeds {
  cos: Feeds[string];
  sin: Feeds[string];
  mask: Feeds[string];
}

/**
 * Runs decoder blocks: one ORT session serves every layer (weights are inputs), so any block can run
 * alone on given hidden states and changed weights need no rebuild. A runner built with taps also
 * returns what its linears read (see decoder-block.ts).
 */
export class BlockRunner {
  private readonly positions = new Map<number, PositionFeeds>();
  private readonly shapes: Map<string, number[]>;

  private constructor(
    readonly config: ModelConfig,
    private readonly session: GraphSession,
    readonly taps: readonly TapRequest[],
  ) {
    this.shapes = blockTensorShapes(config);
  }

  static async create(config: ModelConfig, settings: RuntimeSettings, taps: readonly TapRequest[] = []): Promise<BlockRunner> {
    return new BlockRunner(config, await GraphSession.create(buildDecoderBlock(config, taps), settings), taps);
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

  feeds(weights: Map<string, Float32Array>): Feeds {
    const feeds: Feeds = {};
    for (const [name, data] of weights) feeds[name] = floatTensor(data, this.shapes.get(name)!);
    return feeds;
  }

  /** Runs one block on `hidden` ([batch, seq, D]); returns its output, then the taps' outputs in order. */
  async run(weights: Feeds, hidden: Float32Array, batch: number, seq: number): Promise<Float32Array[]> {
    const pos = this.positionFeeds(seq);
    const outputs = ['hidden_out', ...this.taps.map(tapOutputName)];
    return this.session.run(
      { ...weights, hidden: floatTensor(hidden, [batch, seq, this.config.hiddenSize]), cos: pos.cos, sin: pos.sin, mask: pos.mask },
      outputs,
    );
  }

  async release(): Promise<void> {
    await this.session.release();
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
