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
    let session = this.sessions.get(key);
    if (!session) {
      session = GraphSession.create(build(), this.settings);
      this.sessions.set(key, session);
    }
    return (await session).run(feeds, outputs);
  }

  async release(): Promise<void> {
    const sessions = [...this.sessions.values()];
    this.sessions.clear();
    await Promise.all(sessions.map(async (s) => (await s).release()));
  }
}
