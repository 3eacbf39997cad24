/**
 * Writes a Hugging Face checkpoint folder of random weights with a real model's shapes, so the bench
 * measures speed and memory at realistic sizes without downloading gigabytes of trained weights.
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { expectedTensorShapes, parseModelConfig } from '../src/engine/model/config';
import { encodeFromF32 } from '../src/engine/io/dtype';
import { writeSafetensors, type TensorSpec } from '../src/engine/io/safetensors-writer';
import { pidAlive } from '../src/engine/process-alive';

export type RandomDType = 'F32' | 'BF16' | 'F16';

const TORCH_DTYPE: Record<RandomDType, string> = { F32: 'float32', BF16: 'bfloat16', F16: 'float16' };

/** The usual Hugging Face initializer_range, so activations stay in a sane range through deep stacks. */
const WEIGHT_STD = 0.02;

/**
 * `tokenizerFrom` is a folder whose tokenizer.json and tokenizer_config.json are copied. The bench
 * passes the embedded stories260K: its 512 ids are valid rows of every larger embedding, so any model
 * can evaluate text tokenized by it, and the shapes under test stay those of the real model.
 */
export async function writeRandomCheckpoint(
  dir: string,
  config: Record<string, unknown>,
  options: { dtype: RandomDType; seed: number; tokenizerFrom: string },
): Promise<void> {
  const shapes = expectedTensorShapes(parseModelConfig(config, path.join(dir, 'config.json')));
  const specs: TensorSpec[] = [...shapes].map(([name, shape]) => ({ name, dtype: options.dtype, shape }));

  await removeAbandonedTemps(dir);
  // Built beside the target and renamed at the end, so an interrupted run never leaves a folder that looks complete.
  const tmp = `${dir}.tmp-${process.pid}`;
  await fsp.rm(tmp, { recursive: true, force: true });
  await fsp.mkdir(tmp, { recursive: true });
  try {
    await fsp.writeFile(path.join(tmp, 'config.json'), randomCheckpointConfigText(config, options.dtype));
    for (const file of ['tokenizer.json', 'tokenizer_config.json']) {
      await fsp.copyFile(path.join(options.tokenizerFrom, file), path.join(tmp, file));
    }
    const random = normalSource(options.seed);
    const file = path.join(tmp, 'model.safetensors');
    await writeSafetensors(file, specs, (spec) => encodeFromF32(spec.dtype, initialValues(spec, random), `${file}: ${spec.name}`), {
      format: 'pt',
    });
    await fsp.rm(dir, { recursive: true, force: true });
    await fsp.rename(tmp, dir);
  } catch (err) {
    await fsp.rm(tmp, { recursive: true, force: true }).catch(() => undefined);
    throw err;
  }
}

/** The config.json text written for `config` stored as `dtype`; comparing it with a cached one spots a stale cache. */
export function randomCheckpointConfigText(config: Record<string, unknown>, dtype: RandomDType): string {
  return JSON.stringify({ ...config, torch_dtype: TORCH_DTYPE[dtype] }, null, 2) + '\n';
}

/** Norm weights start at 1 and biases at 0, as in a freshly initialized transformers model. */
function initialValues(spec: TensorSpec, random: (out: Float32Array, std: number) => void): Float32Array {
  const values = new Float32Array(spec.shape.reduce((a, b) => a * b, 1));
  if (spec.name.endsWith('norm.weight')) values.fill(1);
  else if (!spec.name.endsWith('.bias')) random(values, WEIGHT_STD);
  return values;
}

/**
 * Fills arrays with normal(0, std) samples: Box-Muller over sfc32, a small seeded generator, so the
 * same seed gives the same checkpoint on every machine (Math.random cannot be seeded).
 */
function normalSource(seed: number): (out: Float32Array, std: number) => void {
  let a = 0x9e3779b9;
  let b = 0x243f6a88;
  let c = 0xb7e15162;
  let d = seed >>> 0;
  const next = (): number => {
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return t >>> 0;
  };
  for (let i = 0; i < 16; i++) next(); // the first outputs still carry the seed's bit pattern
  const TWO_PI = 2 * Math.PI;
  return (out, std) => {
    for (let i = 0; i < out.length; i += 2) {
      const u1 = (next() + 1) / 4294967297; // in (0, 1), so the log is finite
      const u2 = next() / 4294967296;
      const r = std * Math.sqrt(-2 * Math.log(u1));
      out[i] = r * Math.cos(TWO_PI * u2);
      if (i + 1 < out.length) out[i + 1] = r * Math.sin(TWO_PI * u2);
    }
  };
}

/** Temp folders of runs that were killed would otherwise pile up gigabytes beside the cache. */
async function removeAbandonedTemps(dir: string): Promise<void> {
  const parent = path.dirname(dir);
  const prefix = `${path.basename(dir)}.tmp-`;
  const names = await fsp.readdir(parent).catch(() => [] as string[]);
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const pid = Number(name.slice(prefix.length));
    if (Number.isSafeInteger(pid) && pid !== process.pid && !pidAlive(pid)) {
      await fsp.rm(path.join(parent, name), { recursive: true, force: true });
    }
  }
}
