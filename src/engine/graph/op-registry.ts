import { GraphSession, type Feeds, type RuntimeSettings } from './session';

/**
 * Small ONNX graphs (a masked top-k, a matrix product) built on first use and kept for the run, one
 * session per key (after transformers.js's TensorOpRegistry). A key names everything the graph was
 * built from, so two callers asking for the same key get the same graph.
 */
export class OpRegistry {
  private readonly sessions = new Map<string, Promise<GraphSession>>();

  constructor(readonly settings: RuntimeSettings) {}

  async run(key: string, build: () => Uint8Array, feeds: Feeds, outputs: readonly string[]): Promise<Float32Array[]> {
    return (await this.session(key, build)).run(feeds, outputs);
  }

  /** As `run`, writing the outputs into the tensors given (GraphSession.runInto). */
  async runInto(key: string, build: () => Uint8Array, feeds: Feeds, outputs: Feeds): Promise<void> {
    await (await this.session(key, build)).runInto(feeds, outputs);
  }

  private session(key: string, build: () => Uint8Array): Promise<GraphSession> {
    let session = this.sessions.get(key);
    if (!session) {
      // Without arenas: a prune opens these per matrix shape (ALPS several per shape), and each arena would
      // keep its largest run's buffers to the end, adding up to more than the block being pruned. Measured:
      // SparseGPT on TinyLlama-1.1B's shapes peaked at 4,806 MB with arenas and 4,034 without, at the same
      // speed (its large products write in place, see sparsegpt.ts); ALPS on SmolLM-135M's had peaked 960 MB
      // above the memory plan with them.
      session = GraphSession.create(build(), this.settings, false);
      this.sessions.set(key, session);
    }
    return session;
  }

  async release(): Promise<void> {
    const sessions = [...this.sessions.values()];
    this.sessions.clear();
    await Promise.all(sessions.map(async (s) => (await s).release()));
  }
}
