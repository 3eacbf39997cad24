import * as fs from 'node:fs';
import * as path from 'node:path';
import { expectedTensorShapes, parseModelConfig } from '../../src/engine/model/config';
import { writeSafetensors } from '../../src/engine/io/safetensors-writer';
import { seededRandom } from './seeded-random';
import { FIXTURE_MODEL } from './fixtures';

/**
 * A small F32 checkpoint of any supported family with random weights: biases and norm weights are
 * random too (not 0 and 1), so a graph that ignored them would fail the comparison.
 */
export async function writeTinyCheckpoint(dir: string, config: Record<string, unknown>, seed: number, rename: (name: string) => string = (n) => n): Promise<Map<string, Float32Array>> {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config));
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) fs.copyFileSync(path.join(FIXTURE_MODEL, f), path.join(dir, f));
  const shapes = expectedTensorShapes(parseModelConfig(config, dir));
  const random = seededRandom(seed);
  const values = new Map<string, Float32Array>();
  for (const [name, shape] of shapes) {
    const v = new Float32Array(shape.reduce((a, b) => a * b, 1));
    const norm = name.endsWith('norm.weight') || /(^|\.)ln_\w+\.weight$/.test(name);
    for (let i = 0; i < v.length; i++) v[i] = norm ? 0.8 + 0.4 * random() : (random() - 0.5) * 0.3;
    values.set(rename(name), v);
  }
  await writeSafetensors(
    path.join(dir, 'model.safetensors'),
    [...shapes].map(([name, shape]) => ({ name: rename(name), dtype: 'F32' as const, shape })),
    (spec) => new Uint8Array(values.get(spec.name)!.buffer),
  );
  return values;
}
