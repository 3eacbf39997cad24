import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { PruneLensError } from '../../../src/engine/errors';
import { Checkpoint } from '../../../src/engine/io/checkpoint';
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
