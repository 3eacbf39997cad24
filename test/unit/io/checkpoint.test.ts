import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { PruneLensError } from '../../../src/engine/errors';
import { Checkpoint } from '../../../src/engine/io/checkpoint';
import { encodeFromF32 } from '../../../src/engine/io/dtype';
import { SafetensorsReader } from '../../../src/engine/io/safetensors-reader';
import { writeSafetensors } from '../../../src/engine/io/safetensors-writer';
import { copyOfFixture, editJson, FIXTURE_MODEL } from '../../helpers/fixtures';

function isError(kind: string, pattern: RegExp) {
  return (err: unknown) => {
    assert.ok(err instanceof PruneLensError, `not a PruneLensError: ${String(err)}`);
    assert.equal(err.kind, kind, err.message);
    assert.match(err.message, pattern);
    return true;
  };
}

/** Splits the fixture's tensors over two shards with an index, as large Hugging Face models are saved. */
async function shard(dir: string): Promise<Record<string, string>> {
  const single = path.join(dir, 'model.safetensors');
  const reader = await SafetensorsReader.open(single);
  const names = [...reader.entries.keys()];
  const weightMap: Record<string, string> = {};
  const halves = [names.slice(0, names.length / 2), names.slice(names.length / 2)];
  for (const [i, part] of halves.entries()) {
    const file = `model-0000${i + 1}-of-00002.safetensors`;
    const specs = part.map((name) => ({ name, dtype: reader.entries.get(name)!.dtype, shape: reader.entries.get(name)!.shape }));
    await writeSafetensors(path.join(dir, file), specs, (spec) => reader.readBytes(spec.name));
    for (const name of part) weightMap[name] = file;
  }
  await reader.close();
  fs.rmSync(single);
  fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
  return weightMap;
}

describe('Hugging Face checkpoint folder', () => {
  it('opens from the folder, its config.json or its safetensors file', async () => {
    for (const where of [FIXTURE_MODEL, path.join(FIXTURE_MODEL, 'config.json'), path.join(FIXTURE_MODEL, 'model.safetensors')]) {
      const ck = await Checkpoint.open(where);
      assert.equal(ck.dir, FIXTURE_MODEL);
      assert.equal(ck.dtype, 'F32');
      assert.equal(ck.bytesOnDisk, fs.statSync(path.join(FIXTURE_MODEL, 'model.safetensors')).size);
      await ck.close();
    }
  });

  it('reads a sharded checkpoint through its index, tensor for tensor the same', async () => {
    const dir = copyOfFixture();
    await shard(dir);
    const sharded = await Checkpoint.open(path.join(dir, 'model.safetensors.index.json'));
    const single = await Checkpoint.open(FIXTURE_MODEL);
    assert.equal(sharded.files.length, 2);
    for (const name of ['model.embed_tokens.weight', 'model.layers.4.mlp.down_proj.weight', 'model.norm.weight']) {
      assert.deepEqual(await sharded.readF32(name), await single.readF32(name));
    }
    await Promise.all([sharded.close(), single.close()]);
  });

  it('refuses a shard index that points outside the folder, at a missing shard, or at the wrong shard', async () => {
    const dir = copyOfFixture();
    const weightMap = await shard(dir);
    const index = path.join(dir, 'model.safetensors.index.json');
    const first = Object.keys(weightMap)[0]!;
    editJson(index, (j) => ((j.weight_map as Record<string, string>)[first] = '../other/model.safetensors'));
    await assert.rejects(Checkpoint.open(dir), isError('checkpoint', /maps to "\.\.\/other\/model\.safetensors", not a \.safetensors file in this folder/));
    editJson(index, (j) => ((j.weight_map as Record<string, string>)[first] = 'model-00009-of-00002.safetensors'));
    await assert.rejects(Checkpoint.open(dir), /model-00009-of-00002\.safetensors/);
    editJson(index, (j) => ((j.weight_map as Record<string, string>)[first] = 'model-00002-of-00002.safetensors'));
    await assert.rejects(Checkpoint.open(dir), isError('checkpoint', new RegExp(`places tensor "${first.replace(/\./g, '\\.')}" in model-00002-of-00002\\.safetensors, which does not hold it`)));
    editJson(index, (j) => (j.weight_map = []));
    await assert.rejects(Checkpoint.open(dir), isError('checkpoint', /missing "weight_map" object/));
  });

  it('refuses a folder without config.json or without weights', async () => {
    const dir = copyOfFixture();
    fs.rmSync(path.join(dir, 'model.safetensors'));
    await assert.rejects(Checkpoint.open(dir), isError('checkpoint', /neither model\.safetensors nor model\.safetensors\.index\.json found/));
    fs.rmSync(path.join(dir, 'config.json'));
    await assert.rejects(Checkpoint.open(dir), isError('config', /config\.json: file not found/));
    fs.writeFileSync(path.join(dir, 'config.json'), '{"model_type": "llama",');
    await assert.rejects(Checkpoint.open(dir), isError('config', /config\.json: invalid JSON/));
    await assert.rejects(Checkpoint.open(path.join(dir, 'nothing-here')), isError('checkpoint', /nothing-here: no such file or folder/));
  });

  it('refuses a config that disagrees with the tensors, naming the tensor and both shapes', async () => {
    const dir = copyOfFixture();
    const config = path.join(dir, 'config.json');
    editJson(config, (j) => (j.intermediate_size = 128));
    await assert.rejects(Checkpoint.open(dir), isError('config', /tensor "model\.layers\.0\.mlp\.gate_proj\.weight" has shape \[172, 64\] in model\.safetensors, but the config implies \[128, 64\]/));
    editJson(config, (j) => Object.assign(j, { intermediate_size: 172, num_hidden_layers: 6 }));
    await assert.rejects(Checkpoint.open(dir), isError('config', /implies tensor "model\.layers\.5\.input_layernorm\.weight" \[64\], which no safetensors file holds/));
    editJson(config, (j) => (j.num_hidden_layers = 4));
    await assert.rejects(Checkpoint.open(dir), isError('config', /9 tensor\(s\) that the config does not account for \("model\.layers\.4\..*is num_hidden_layers or the architecture wrong\?/));
    editJson(config, (j) => Object.assign(j, { num_hidden_layers: 5, tie_word_embeddings: false }));
    await assert.rejects(Checkpoint.open(dir), isError('config', /implies tensor "lm_head\.weight" \[512, 64\]/));
    editJson(config, (j) => Object.assign(j, { tie_word_embeddings: true, model_type: 'falcon' }));
    await assert.rejects(Checkpoint.open(dir), isError('architecture', /model_type "falcon" is not supported; supported: llama, mistral, qwen2/));
  });

  it('refuses NaN or infinite weights, naming the tensor and the index', async () => {
    const dir = copyOfFixture();
    const file = path.join(dir, 'model.safetensors');
    const reader = await SafetensorsReader.open(file);
    const entry = reader.entries.get('model.layers.3.self_attn.v_proj.weight')!;
    await reader.close();
    const fd = fs.openSync(file, 'r+');
    const nan = Buffer.alloc(4);
    nan.writeFloatLE(NaN);
    fs.writeSync(fd, nan, 0, 4, entry.byteOffset + 4 * 17);
    fs.closeSync(fd);
    const ck = await Checkpoint.open(dir);
    await assert.rejects(ck.readBlock(3), isError('weights', /tensor "model\.layers\.3\.self_attn\.v_proj\.weight" holds NaN at flat index 17/));
    await ck.close();
  });
});

/** The fixture with its weights stored as bfloat16, as most published checkpoints are. */
async function bf16Copy(): Promise<string> {
  const dir = copyOfFixture();
  const file = path.join(dir, 'model.safetensors');
  const reader = await SafetensorsReader.open(file);
  const specs = [...reader.entries.values()].map((e) => ({ name: e.name, dtype: 'BF16' as const, shape: e.shape }));
  const bf16 = path.join(dir, 'bf16.safetensors');
  await writeSafetensors(bf16, specs, async (spec) => encodeFromF32('BF16', await reader.readF32(spec.name), spec.name));
  await reader.close();
  fs.renameSync(bf16, file);
  return dir;
}

describe('reading into arrays given back', () => {
  it('reads every block as a fresh read does (float32 and bfloat16), into the previous block\'s arrays', async () => {
    for (const dir of [FIXTURE_MODEL, await bf16Copy()]) {
      const fresh = await Checkpoint.open(dir);
      const recycled = await Checkpoint.open(dir);
      let previous = new Set<Float32Array>();
      for (let layer = 0; layer < fresh.config.numLayers; layer++) {
        const expected = await fresh.readBlock(layer);
        const block = await recycled.readBlock(layer);
        for (const [name, values] of expected) assert.deepEqual(block.get(name), values, `${recycled.dtype} layer ${layer} ${name}`);
        // Every tensor of a Llama block after the first is read into an array of the block before.
        if (layer > 0) assert.equal([...block.values()].filter((v) => previous.has(v)).length, block.size, `layer ${layer}`);
        previous = new Set(block.values());
        recycled.recycle(block.values());
      }
      await Promise.all([fresh.close(), recycled.close()]);
    }
  });

  it('gives each of two reads at the same time its own values', async () => {
    const ck = await Checkpoint.open(await bf16Copy());
    const names = ['model.layers.0.mlp.gate_proj.weight', 'model.layers.1.mlp.gate_proj.weight'];
    const expected = await Promise.all(names.map((n) => ck.readF32(n)));
    ck.recycle(expected.map((v) => new Float32Array(v.length)));
    const both = await Promise.all(names.map((n) => ck.readF32(n)));
    assert.deepEqual(both, expected);
    assert.notDeepEqual(both[0], both[1]);
    await ck.close();
  });

  it('keeps no view into a larger buffer and no more than one block', async () => {
    const ck = await Checkpoint.open(FIXTURE_MODEL);
    const name = 'model.layers.0.mlp.gate_proj.weight';
    const length = (await ck.readF32(name)).length;
    const view = new Float32Array(length + 1).subarray(1);
    ck.recycle([view]);
    assert.notEqual(await ck.readF32(name), view as Float32Array);
    // One block of the fixture holds a few gate_proj-sized arrays, not a thousand.
    const many: Float32Array[] = Array.from({ length: 1000 }, () => new Float32Array(length));
    ck.recycle(many);
    let reused = 0;
    for (let i = 0; i < 1000; i++) if (many.includes(await ck.readF32(name))) reused++;
    assert.ok(reused > 0 && reused < 1000, `${reused} of 1000 arrays were kept`);
    await ck.close();
  });
});
