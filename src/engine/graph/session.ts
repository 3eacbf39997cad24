import type * as Ort from 'onnxruntime-node';
import { availableParallelism } from 'node:os';
import { PruneLensError } from '../errors';

/** The only module that loads onnxruntime-node; everything else goes through it. */

export const PROVIDERS = ['cpu', 'webgpu', 'cuda'] as const;
export type Provider = (typeof PROVIDERS)[number];

export interface RuntimeSettings {
  provider: Provider;
  /** Intra-op threads for the CPU provider; defaults to every core. */
  threads?: number;
}

export type Feeds = Record<string, Ort.Tensor>;

/**
 * `PRUNELENS_ORT_LOG=verbose` makes ORT print, as each graph is loaded, which execution provider
 * each node was placed on; `npm run bench:gpu` reads those lines to list the operators a GPU
 * provider leaves to the CPU. Runs stay at warnings, or every node of every run would be logged.
 */
const CREATE_LOG_LEVEL = process.env.PRUNELENS_ORT_LOG === 'verbose' ? 0 : 3;
const RUN_OPTIONS: Ort.InferenceSession.RunOptions = { logSeverityLevel: 3 };

let ortModule: typeof Ort | undefined;

function ort(): typeof Ort {
  if (!ortModule) {
    // Read by the native library when it initialises, so it must be set before the first require.
    process.env.ORT_DISABLE_TELEMETRY ??= '1';
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    ortModule = require('onnxruntime-node') as typeof Ort;
  }
  return ortModule;
}

export function isProvider(value: string): value is Provider {
  return (PROVIDERS as readonly string[]).includes(value);
}

/** Providers this ORT build can load here; CUDA needs the opt-in install described in the README. */
export function availableProviders(): Provider[] {
  return ort()
    .listSupportedBackends()
    .filter((b) => b.bundled || b.name === 'cuda')
    .map((b) => b.name)
    .filter(isProvider);
}

export function floatTensor(data: Float32Array, dims: readonly number[]): Ort.Tensor {
  return new (ort().Tensor)('float32', data, dims);
}

export function int64Tensor(data: BigInt64Array, dims: readonly number[]): Ort.Tensor {
  return new (ort().Tensor)('int64', data, dims);
}

export class GraphSession {
  private constructor(
    private readonly session: Ort.InferenceSession,
    readonly provider: Provider,
  ) {}

  /**
   * `arena`: keep ORT's CPU arena, which holds on to a session's largest working set between runs so
   * repeated runs of one shape allocate nothing; without it what a run allocates is freed when it ends.
   */
  static async create(model: Uint8Array, settings: RuntimeSettings, arena = true): Promise<GraphSession> {
    const options: Ort.InferenceSession.SessionOptions = {
      executionProviders: [settings.provider],
      graphOptimizationLevel: 'all',
      executionMode: 'sequential',
      enableCpuMemArena: arena,
      intraOpNumThreads: settings.threads ?? availableParallelism(),
      interOpNumThreads: 1,
      logSeverityLevel: CREATE_LOG_LEVEL,
    };
    try {
      return new GraphSession(await ort().InferenceSession.create(model, options), settings.provider);
    } catch (err) {
      throw new PruneLensError('provider', providerHint(settings.provider, (err as Error).message), `provider ${settings.provider}`);
    }
  }

  /** Runs the graph and returns the requested outputs as float32 arrays owned by the caller. */
  async run(feeds: Feeds, outputs: readonly string[]): Promise<Float32Array[]> {
    return (await this.runShaped(feeds, outputs)).map((o) => o.data);
  }

  /** As `run`, with each output's dimensions. */
  async runShaped(feeds: Feeds, outputs: readonly string[]): Promise<{ data: Float32Array; dims: readonly number[] }[]> {
    const result = await this.session.run(feeds, outputs, RUN_OPTIONS);
    return outputs.map((name) => {
      const tensor = result[name]!;
      const shaped = { data: tensor.data as Float32Array, dims: tensor.dims };
      tensor.dispose();
      return shaped;
    });
  }

  /**
   * Runs the graph writing each output into the tensor given for it, which may wrap a view of a
   * larger array (ORT writes through it in place, and nothing new is allocated for the output).
   */
  async runInto(feeds: Feeds, outputs: Feeds): Promise<void> {
    await this.session.run(feeds, outputs, RUN_OPTIONS);
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

function providerHint(provider: Provider, reason: string): string {
  switch (provider) {
    case 'cuda':
      return `could not start the CUDA execution provider (${reason}). Its binaries are not installed by default: with CUDA 12 and cuDNN 9 installed, run ONNXRUNTIME_NODE_INSTALL=cuda12 node node_modules/onnxruntime-node/script/install (README, "Execution providers and GPUs"), or use provider cpu`;
    case 'webgpu':
      return `could not start the WebGPU execution provider (${reason}); this machine may have no usable GPU adapter. Use provider cpu`;
    case 'cpu':
      return `ONNX Runtime could not create a session: ${reason}`;
  }
}
