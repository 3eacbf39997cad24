import assert from 'node:assert/strict';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Checkpoint } from '../../../src/engine/io/checkpoint';
import { BlockRunner } from '../../../src/engine/model/block-runner';
import { tapWidth, type TapPoint, type TapRequest } from '../../../src/engine/graph/decoder-block';
import { TextTokenizer } from '../../../src/engine/text/tokenizer';
import { linear, referenceBlock, referenceEmbed, rmsNorm, silu, type RefConfig } from '../../reference/llama-f64';
import { loadF32Tensors } from '../../reference/safetensors-minimal';
import { FIXTURE_MODEL } from '../../helpers/fixtures';

const POINTS: TapPoint[] = ['attn_in', 'o_in', 'mlp_in', 'down_in'];
const TAPS: TapRequest[] = [...POINTS.flatMap((point) => (['raw', 'sum', 'sumsq', 'gram'] as const).map((reduce) => ({ point, reduce }))), { point: 'residual', reduce: 'raw' }];

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  let worst = 0;
  for (let i = 0; i < actual.length; i++) {
    const scale = Math.max(1, Math.abs(expected[i]!));
    worst = Math.max(worst, Math.abs(actual[i]! - expected[i]!) / scale);
  }
  assert.ok(worst < tol, `${what}: worst relative difference ${worst}`);
}

/**
 * The taps expose what every linear reads. Each raw tap is checked by rebuilding the block from it in
 * float64 (a wrong tap cannot reproduce the block's output); the reductions are checked against a
 * float64 reduction of the raw rows.
 */
describe('decoder block taps', () => {
  let checkpoint: Checkpoint;
  let runner: BlockRunner;
  before(async () => {
    checkpoint = await Checkpoint.open(FIXTURE_MODEL);
    runner = await BlockRunner.create(checkpoint.config, { provider: 'cpu' }, TAPS);
  });
  after(async () => {
    await runner.release();
    await checkpoint.close();
  });

  it('returns the inputs of every linear, the residual between the halves, and their column sums, sums of squares and Gram matrices', async () => {
    const cfg = checkpoint.config.raw as unknown as RefConfig;
    const tensors = loadF32Tensors(path.join(FIXTURE_MODEL, 'model.safetensors'));
    const w = (name: string) => tensors.get(name);
    const tokenizer = await TextTokenizer.load(FIXTURE_MODEL);
    const a = Array.from(tokenizer.encode('Once upon a time, a little girl found a shiny stone.')).slice(0, 10);
    const b = Array.from(tokenizer.encode('The big dog barked at the moon all night long.')).slice(0, 10);
    const T = 10;
    const B = 2;
    const layer = 2;
    const D = cfg.hidden_size;
    const input = new Float64Array(B * T * D);
    for (const [s, ids] of [a, b].entries()) {
      const h = referenceEmbed(cfg, w, ids);
      for (let l = 0; l < layer; l++) h.set(referenceBlock(cfg, w, l, h, T));
      input.set(h, s * T * D);
    }
    const outputs = await runner.run(runner.feeds(await checkpoint.readBlock(layer), layer), Float32Array.from(input), B, T);
    const [hiddenOut, ...tapOut] = outputs as [Float32Array, ...Float32Array[]];
    const tap = (point: TapPoint, reduce: string): Float32Array => tapOut[TAPS.findIndex((t) => t.point === point && t.reduce === reduce)]!;
    const p = `model.layers.${layer}.`;
    const N = B * T;

    assertClose(tap('attn_in', 'raw'), rmsNorm(input, N, D, w(p + 'input_layernorm.weight')!.data, cfg.rms_norm_eps), 1e-5, 'attn_in');
    const oIn = Float64Array.from(tap('o_in', 'raw'));
    const afterAttn = linear(oIn, N, tapWidth(checkpoint.config, 'o_in'), w(p + 'self_attn.o_proj.weight')!.data, D);
    for (let i = 0; i < afterAttn.length; i++) afterAttn[i]! += input[i]!;
    assertClose(tap('residual', 'raw'), afterAttn, 1e-5, 'residual after attention');
    const mlpIn = rmsNorm(afterAttn, N, D, w(p + 'post_attention_layernorm.weight')!.data, cfg.rms_norm_eps);
    assertClose(tap('mlp_in', 'raw'), mlpIn, 1e-5, 'mlp_in');
    const F = cfg.intermediate_size;
    const gate = linear(mlpIn, N, D, w(p + 'mlp.gate_proj.weight')!.data, F);
    const up = linear(mlpIn, N, D, w(p + 'mlp.up_proj.weight')!.data, F);
    assertClose(tap('down_in', 'raw'), gate.map((g, i) => silu(g) * up[i]!), 1e-5, 'down_in');
    const out = linear(Float64Array.from(tap('down_in', 'raw')), N, F, w(p + 'mlp.down_proj.weight')!.data, D);
    assertClose(hiddenOut, out.map((v, i) => v + afterAttn[i]!), 1e-5, 'block output from the taps');
    // And the block output is the reference block's, so o_in cannot be off by a compensating error.
    const expected = new Float64Array(N * D);
    for (let s = 0; s < B; s++) expected.set(referenceBlock(cfg, w, layer, input.subarray(s * T * D, (s + 1) * T * D), T), s * T * D);
    assertClose(hiddenOut, expected, 1e-5, 'block output');

    for (const point of POINTS) {
      const raw = tap(point, 'raw');
      const n = tapWidth(checkpoint.config, point);
      assert.equal(raw.length, N * n);
      const sum = new Float64Array(n);
      const sumsq = new Float64Array(n);
      const gram = new Float64Array(n * n);
      for (let r = 0; r < N; r++) {
        for (let i = 0; i < n; i++) {
          const xi = raw[r * n + i]!;
          sum[i]! += xi;
          sumsq[i]! += xi * xi;
          for (let j = 0; j < n; j++) gram[i * n + j]! += xi * raw[r * n + j]!;
        }
      }
      assertClose(tap(point, 'sum'), sum, 1e-5, `${point} sum`);
      assertClose(tap(point, 'sumsq'), sumsq, 1e-5, `${point} sumsq`);
      assertClose(tap(point, 'gram'), gram, 1e-5, `${point} gram`);
    }
  });
});
