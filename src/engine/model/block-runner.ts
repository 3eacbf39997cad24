import { buildDecoderBlock, tapOutputName, type TapRequest } from '../graph/decoder-block';
import { GraphSession, floatTensor, type Feeds, type RuntimeSettings } from '../graph/session';
import { PruneLensError } from '../errors';
import { blockTensorShapes, type ModelConfig } from './config';
import { ropeTables } from './families/rope';

/** Where a block's weights come from: the checkpoint on disk, or a pruned model being written. */
export interface BlockWeightSource {
  readBlock(layer: number): Promise<Map<string, Float32Array>>;
  /** Takes back a block's weights once nothing uses them, to read the next block into (Checkpoint.recycle). */
  recycle(tensors: Iterable<Float32Array>): void;
}

/** The layer's mask, and its rotary tables where the family rotates. */
type PositionFeeds = Feeds;

/** One layer's weights as graph inputs; the layer picks its rotary tables and mask. */
export interface BlockFeeds {
  layer: number;
  weights: Feeds;
}

/**
 * Runs decoder blocks: one ORT session serves every layer (weights are inputs), so any block can run
 * alone on given hidden states and changed weights need no rebuild. A runner built with taps also
 * returns what its linears read (see decoder-block.ts).
 */
export class BlockRunner {
  private readonly positions = new Map<string, PositionFeeds>();
  /** The outputs of the last run with `reuse`, and the shapes they were for (see `run`). */
  private reusable?: { key: string; outputs: Feeds };
  /** Layers that attend alike (same rotary, same window) share tables: one key per kind. */
  private readonly layerKinds: string[];

  private constructor(
    readonly config: ModelConfig,
    /** One session per kind of MLP (dense, or MoE in a sparse layer): index 0 dense, 1 sparse. */
    private readonly sessions: (GraphSession | undefined)[],
    readonly taps: readonly TapRequest[],
  ) {
    this.layerKinds = config.arch.layers.map((l) => JSON.stringify(l));
  }

  /**
   * Taps on experts (`expert_*`) exist only in sparse layers and `down_in` only in dense ones: each
   * kind of layer gets a session with the taps it has (see `run`).
   */
  static async create(config: ModelConfig, settings: RuntimeSettings, taps: readonly TapRequest[] = []): Promise<BlockRunner> {
    const sparse = config.arch.moe?.sparse ?? [];
    const kinds = [false, true].map((s) => Array.from({ length: config.numLayers }, (_, l) => l).find((l) => (sparse[l] ?? false) === s));
    const sessions = await Promise.all(
      kinds.map(async (layer, kind) => {
        if (layer === undefined) return undefined;
        return GraphSession.create(buildDecoderBlock(config, taps.filter((t) => hasTap(kind === 1, t)), layer), settings);
      }),
    );
    return new BlockRunner(config, sessions, taps);
  }

  private sparse(layer: number): boolean {
    return this.config.arch.moe?.sparse[layer] ?? false;
  }

  /** Refuses window lengths the graph would compute wrongly, before any work is done. */
  checkSequenceLength(seqlen: number): void {
    const cfg = this.config;
    if (!Number.isInteger(seqlen) || seqlen < 2) throw new PruneLensError('usage', `seqlen must be an integer of at least 2, got ${seqlen}`);
    // Dynamic NTK rope exists to run past max_position_embeddings; every other type stops there.
    const dynamic = cfg.arch.layers.every((l) => l.rope.type === 'dynamic');
    if (seqlen > cfg.maxPositionEmbeddings && !dynamic) {
      throw new PruneLensError('usage', `seqlen ${seqlen} exceeds the model's context (max_position_embeddings ${cfg.maxPositionEmbeddings})`);
    }
  }

  feeds(weights: Map<string, Float32Array>, layer: number): BlockFeeds {
    const feeds: Feeds = {};
    const shapes = blockTensorShapes(this.config, layer);
    for (const [name, data] of weights) feeds[name] = floatTensor(data, shapes.get(name)!);
    return { layer, weights: feeds };
  }

  /**
   * Runs one block on `hidden` ([batch, seq, D]); returns its output, then the taps' outputs in order
   * (a tap the layer does not have, see `create`, gives an empty array in its place).
   *
   * `reuse`: the arrays returned are the previous reusing run's when the shapes are the same, so they
   * hold only until the next such run. A pass over the calibration batches then writes every batch's
   * outputs into the same memory: first writes to new memory cost ~4 ns per byte on the 2-core VM (page
   * faults), which for SparseGPT's Gram taps (177 MB per batch on TinyLlama-1.1B) was ~0.7 s a batch.
   */
  async run(feeds: BlockFeeds, hidden: Float32Array, batch: number, seq: number, reuse = false): Promise<Float32Array[]> {
    const pos = this.positionFeeds(feeds.layer, seq);
    const sparse = this.sparse(feeds.layer);
    const present = this.taps.filter((t) => hasTap(sparse, t));
    const outputs = ['hidden_out', ...present.map(tapOutputName)];
    const session = this.sessions[sparse ? 1 : 0]!;
    const inputs = { ...feeds.weights, ...pos, hidden: floatTensor(hidden, [batch, seq, this.config.hiddenSize]) };
    const key = `${sparse}:${batch}:${seq}`;
    let results: Float32Array[];
    if (reuse && this.reusable?.key === key) {
      const into = this.reusable.outputs;
      await session.runInto(inputs, into);
      results = outputs.map((name) => into[name]!.data as Float32Array);
    } else {
      const shaped = await session.runShaped(inputs, outputs);
      results = shaped.map((o) => o.data);
      if (reuse) this.reusable = { key, outputs: Object.fromEntries(outputs.map((name, i) => [name, floatTensor(shaped[i]!.data, shaped[i]!.dims)])) };
    }
    if (present.length === this.taps.length) return results;
    const byName = new Map(outputs.map((name, i) => [name, results[i]!]));
    return [results[0]!, ...this.taps.map((t) => byName.get(tapOutputName(t)) ?? new Float32Array(0))];
  }

  async release(): Promise<void> {
    await Promise.all(this.sessions.map((s) => s?.release()));
  }

  /**
   * The layer's rotary tables (computed in float64, like the reference; none with learned positions) and its mask: causal, and
   * for a sliding-window layer also blind to keys `window` or more positions back. Cached per kind and length.
   */
  private positionFeeds(layer: number, seq: number): PositionFeeds {
    const key = `${seq}:${this.layerKinds[layer]}`;
    let feeds = this.positions.get(key);
    if (!feeds) {
      const attention = this.config.arch.layers[layer]!;
      const rd = this.config.arch.rotaryDim;
      // Large-negative rather than -Infinity: some GPU softmax kernels turn inf - inf into NaN.
      const mask = new Float32Array(seq * seq);
      for (let i = 0; i < seq; i++) {
        mask.fill(-3.0e38, i * seq + i + 1, (i + 1) * seq);
        if (attention.window !== undefined && i - attention.window >= 0) mask.fill(-3.0e38, i * seq, i * seq + i - attention.window + 1);
      }
      feeds = { mask: floatTensor(mask, [seq, seq]) };
      if (rd > 0) {
        const { cos, sin } = ropeTables(attention.rope, rd, seq);
        feeds.cos = floatTensor(cos, [seq, rd]);
        feeds.sin = floatTensor(sin, [seq, rd]);
      }
      this.positions.set(key, feeds);
    }
    return feeds;
  }
}

/** Whether a sparse (MoE) or dense layer's graph has the tap. */
function hasTap(sparse: boolean, tap: TapRequest): boolean {
  return sparse ? tap.point !== 'down_in' : !tap.point.startsWith('expert_');
}
