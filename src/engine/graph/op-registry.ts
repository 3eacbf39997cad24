import { GraphSession, type Feeds, type RuntimeSettings } from './session';

/**
 * Elements per run of a graph that works row by row on a large matrix: it runs over chunks of whole
 * rows through one session that keeps its arena (runInto's `arena`), so the chunks after the first
 * allocate nothing. Run whole, a 14336 x 4096 matrix had ORT allocate ~1.7 GB of intermediates
 * afresh, and first touching new pages costs more than the arithmetic on this machine (Wanda's
 * choice of its mask: 10.5 s, of which 3.4 s compute; in chunks, 1.8 s with tens of MB kept by the
 * arena, and its unsorted TopK, see mask-graphs.ts).
 */
const ROW_CHUNK_ELEMENTS = 1 << 20;

/** [first row, end row) of each chunk of a [rows, cols] matrix: ROW_CHUNK_ELEMENTS at most, one row at least. */
export function rowChunks(rows: number, cols: number): [number, number][] {
  const step = Math.max(1, Math.floor(ROW_CHUNK_ELEMENTS / cols));
  const chunks: [number, number][] = [];
  for (let r0 = 0; r0 < rows; r0 += step) chunks.push([r0, Math.min(r0 + step, rows)]);
  return chunks;
}

/**
 * Small ONNX graphs (a masked top-k, a matrix product) built on first use and kept for the run, one
 * session per key (after transformers.js's TensorOpRegistry). A key names everything the graph was
 * built from, so two callers asking for the same key get the same graph.
 */
export class OpRegistry {
  private readonly sessions = new Map<string, Promise<GraphSession>>();

  constructor(readonly settings: RuntimeSettings) {}

  async run(key: string, build: () => Uint8Array, feeds: Feeds, outputs: readonly string[]): Promise<Float32Array[]> {
    return (await this.session(key, build, false)).run(feeds, outputs);
  }

  /**
   * As `run`, writing the outputs into the tensors given (GraphSession.runInto). `arena`, for a graph
   * run many times on chunks of one bounded size: its session keeps ORT's arena, so the chunks after
   * the first allocate nothing (the key's first call decides).
   */
  async runInto(key: string, build: () => Uint8Array, feeds: Feeds, outputs: Feeds, { arena = false } = {}): Promise<void> {
    await (await this.session(key, build, arena)).runInto(feeds, outputs);
  }

  private session(key: string, build: () => Uint8Array, arena: boolean): Promise<GraphSession> {
    let session = this.sessions.get(key);
    if (!session) {
      // Arenas only where asked: a prune opens these per matrix shape (ALPS several per shape), and each arena
      // would keep its largest run's buffers to the end, adding up to more than the block being pruned. Measured:
      // SparseGPT on TinyLlama-1.1B's shapes peaked at 4,806 MB with arenas and 4,034 without, at the same
      // speed (its large products write in place, see sparsegpt.ts); ALPS on SmolLM-135M's had peaked 960 MB
      // above the memory plan with them.
      session = GraphSession.create(build(), this.settings, arena);
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
