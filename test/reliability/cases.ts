import { spawnSync } from 'node:child_process';
import { hostname } from 'node:os';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SafetensorsReader } from '../../src/engine/io/safetensors-reader';
import { writeSafetensors } from '../../src/engine/io/safetensors-writer';
import {
  calibratedPrune,
  errorOf,
  mountTmpfs,
  partialsOf,
  quickPrune,
  remountReadOnly,
  run,
  sha256File,
  waitFor,
  type Case,
  type Work,
} from './harness';

/**
 * Bad inputs and interruptions, each run through the built CLI. Numbers in `issue` refer to the items
 * of the issue that asked for this suite ("1" the source deleted by --overwrite, "3" output inside the
 * source, "5" interrupted runs, ...).
 */

function editConfig(work: Work, edit: (c: Record<string, unknown>) => void): string {
  const file = path.join(work.model, 'config.json');
  const config = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
  edit(config);
  fs.writeFileSync(file, JSON.stringify(config));
  return file;
}

function weights(work: Work): string {
  return path.join(work.model, 'model.safetensors');
}

function header(file: string): { json: Record<string, unknown>; data: Buffer } {
  const bytes = fs.readFileSync(file);
  const n = Number(bytes.readBigUInt64LE(0));
  return { json: JSON.parse(bytes.subarray(8, 8 + n).toString('utf8')) as Record<string, unknown>, data: bytes.subarray(8 + n) };
}

function writeHeader(file: string, json: unknown, data: Buffer): void {
  let text = JSON.stringify(json);
  text += ' '.repeat((8 - (text.length % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(Buffer.byteLength(text)));
  fs.writeFileSync(file, Buffer.concat([len, Buffer.from(text), data]));
}

/** A folder that passes for an earlier PruneLens output: prunelens.json and a manifest of exactly its files. */
function fakeOutput(dir: string, files: Record<string, string> = { 'config.json': '{}', 'prunelens.json': '{"format":"prunelens.record"}' }): void {
  fs.mkdirSync(dir, { recursive: true });
  for (const [name, content] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), content);
  writeManifest(dir);
}

function writeManifest(dir: string): void {
  const files: Record<string, number> = {};
  for (const name of fs.readdirSync(dir)) files[name] = fs.statSync(path.join(dir, name)).size;
  const text = (size: number) => `${JSON.stringify({ format: 'prunelens.manifest', version: 1, files: { ...files, 'prunelens-manifest.json': size } })}\n`;
  let size = 0;
  while (Buffer.byteLength(text(size)) !== size) size = Buffer.byteLength(text(size));
  fs.writeFileSync(path.join(dir, 'prunelens-manifest.json'), text(size));
}

/** A pid that is certainly not running: a child that has exited. */
function deadPid(): number {
  return Number(spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout.toString());
}

const usage = (name: string, extra: string[], message: RegExp, where: string): Case => ({
  name: `usage: ${name}`,
  fast: true,
  prepare: (w) => ({ args: quickPrune(w, ...extra), code: 2, message, where }),
});

const configCase = (name: string, edit: (c: Record<string, unknown>) => void, message: RegExp, issue?: string, fast = true): Case => ({
  name: `config: ${name}`,
  issue,
  fast,
  prepare: (w) => ({ args: quickPrune(w), code: 1, message, where: editConfig(w, edit) }),
});

const textCase = (name: string, option: '--calib' | '--eval', content: string | Buffer, file: string, message: RegExp, issue?: string): Case => ({
  name: `text: ${name}`,
  issue,
  fast: true,
  prepare: (w) => {
    const where = w.at(file);
    fs.writeFileSync(where, content);
    const args = option === '--calib' ? calibratedPrune(w, '--calib', where) : quickPrune(w, '--eval', where);
    return { args, code: 1, message, where };
  },
});

const headerCase = (name: string, mutate: (h: { json: Record<string, unknown>; data: Buffer }, file: string) => void, message: RegExp, whereOf = weights): Case => ({
  name: `weights: ${name}`,
  fast: true,
  prepare: (w) => {
    const file = weights(w);
    mutate(header(file), file);
    return { args: quickPrune(w), code: 1, message, where: whereOf(w) };
  },
});

function interrupt(signal: NodeJS.Signals): Case {
  return {
    name: `interrupt: ${signal} while pruning`,
    issue: '5',
    prepare: (w) => ({
      args: calibratedPrune(w),
      code: 130,
      message: /cancelled/,
      during: async (child) => {
        await waitFor('the partial folder', () => partialsOf(w.out).length > 0);
        child.kill(signal);
      },
    }),
  };
}

export const CASES: Case[] = [
  // ---- where the output goes (issue items 1, 2, 3) ----
  {
    name: 'output: runs/base pruned into runs --overwrite (runs is a PruneLens output containing the source)',
    issue: '1',
    fast: true,
    prepare: (w) => {
      const runs = w.at('runs');
      fakeOutput(runs);
      fs.renameSync(w.model, path.join(runs, 'base'));
      w.out = runs;
      return { args: ['prune', path.join(runs, 'base'), '--method', 'magnitude', '--out', runs, '--overwrite', '--json'], code: 1, message: /contains the source/, where: runs };
    },
  },
  {
    name: 'output: runs/base pruned into runs without --overwrite',
    issue: '1',
    fast: true,
    prepare: (w) => {
      const runs = w.at('runs');
      fakeOutput(runs);
      fs.renameSync(w.model, path.join(runs, 'base'));
      return { args: ['prune', path.join(runs, 'base'), '--method', 'magnitude', '--out', runs, '--json'], code: 1, message: /contains the source/, where: runs };
    },
  },
  { name: 'output: the source folder itself', issue: '3', fast: true, prepare: (w) => ({ args: quickPrune(w, '--out', w.model), code: 1, message: /must not be the source/, where: w.model }) },
  { name: 'output: a folder inside the source', issue: '3', fast: true, prepare: (w) => ({ args: quickPrune(w, '--out', path.join(w.model, 'pruned')), code: 1, message: /must not be the source checkpoint or inside it/, where: path.join(w.model, 'pruned') }) },
  { name: 'output: <src>/..pruned (a name starting with two dots, inside the source)', issue: '3', fast: true, prepare: (w) => ({ args: quickPrune(w, '--out', `${w.model}/..pruned`), code: 1, message: /inside it/, where: '..pruned' }) },
  {
    name: 'output: through a link that points into the source',
    issue: '3',
    fast: true,
    prepare: (w) => {
      fs.symlinkSync(w.model, w.at('link'));
      return { args: quickPrune(w, '--out', w.at('link', 'pruned')), code: 1, message: /inside it/, where: path.join(w.model, 'pruned') };
    },
  },
  {
    name: 'output: model given through a link, output inside the real source',
    issue: '3',
    fast: true,
    prepare: (w) => {
      fs.symlinkSync(w.model, w.at('modellink'));
      return { args: ['prune', w.at('modellink'), '--method', 'magnitude', '--out', path.join(w.model, 'x'), '--json'], code: 1, message: /inside it/, where: path.join(w.model, 'x') };
    },
  },
  {
    name: 'output: a link to the source folder given as --out',
    issue: '3',
    fast: true,
    prepare: (w) => {
      fs.symlinkSync(w.model, w.at('outlink'));
      return { args: quickPrune(w, '--out', w.at('outlink'), '--overwrite'), code: 1, message: /symbolic link/, where: w.at('outlink') };
    },
  },
  {
    name: 'output: the parent folder of the source, --overwrite',
    issue: '1',
    fast: true,
    prepare: (w) => ({ args: quickPrune(w, '--out', w.dir, '--overwrite'), code: 1, message: /contains the source/, where: w.dir }),
  },
  {
    name: 'output: a dangling link',
    fast: true,
    prepare: (w) => {
      fs.symlinkSync(w.at('nowhere'), w.out);
      return { args: quickPrune(w), code: 1, message: /symbolic link/, where: w.out };
    },
  },
  { name: 'output: an existing file', fast: true, prepare: (w) => (fs.writeFileSync(w.out, 'mine'), { args: quickPrune(w, '--overwrite'), code: 1, message: /not a folder/, where: w.out }) },
  { name: 'output: a folder of the user, no --overwrite', fast: true, prepare: (w) => (fs.mkdirSync(w.out), fs.writeFileSync(path.join(w.out, 'notes.txt'), 'x'), { args: quickPrune(w), code: 1, message: /not a PruneLens output/, where: w.out }) },
  { name: 'output: a folder of the user, --overwrite', fast: true, prepare: (w) => (fs.mkdirSync(w.out), fs.writeFileSync(path.join(w.out, 'notes.txt'), 'x'), { args: quickPrune(w, '--overwrite'), code: 1, message: /not a PruneLens output/, where: w.out }) },
  { name: 'output: an empty folder of the user, --overwrite', fast: true, prepare: (w) => (fs.mkdirSync(w.out), { args: quickPrune(w, '--overwrite'), code: 1, message: /not a PruneLens output/, where: w.out }) },
  {
    name: 'output: an earlier output without --overwrite',
    fast: true,
    prepare: (w) => (fakeOutput(w.out), { args: quickPrune(w), code: 1, message: /pass --overwrite/, where: w.out }),
  },
  {
    name: 'output: prunelens.json but no manifest (older output), --overwrite',
    fast: true,
    prepare: (w) => (fs.mkdirSync(w.out), fs.writeFileSync(path.join(w.out, 'prunelens.json'), '{}'), { args: quickPrune(w, '--overwrite'), code: 1, message: /prunelens-manifest\.json/, where: w.out }),
  },
  {
    name: 'output: an earlier output plus a file of the user, --overwrite',
    fast: true,
    prepare: (w) => {
      fakeOutput(w.out);
      fs.writeFileSync(path.join(w.out, 'my-notes.md'), 'do not lose me');
      return { args: quickPrune(w, '--overwrite'), code: 1, message: /did not write/, where: path.join(w.out, 'my-notes.md') };
    },
  },
  {
    name: 'output: an earlier output holding a model folder, --overwrite',
    fast: true,
    prepare: (w) => {
      fakeOutput(w.out);
      fs.cpSync(w.model, path.join(w.out, 'base'), { recursive: true });
      return { args: ['prune', path.join(w.out, 'base'), '--method', 'magnitude', '--out', w.out, '--overwrite', '--json'], code: 1, message: /contains the source/, where: w.out };
    },
  },
  {
    name: 'output: an earlier output holding some other sub-folder, --overwrite',
    fast: true,
    prepare: (w) => {
      fakeOutput(w.out);
      fs.mkdirSync(path.join(w.out, 'experiments'));
      return { args: quickPrune(w, '--overwrite'), code: 1, message: /a folder PruneLens did not write/, where: path.join(w.out, 'experiments') };
    },
  },
  {
    name: 'output: an earlier output with a file edited since, --overwrite',
    fast: true,
    prepare: (w) => {
      fakeOutput(w.out, { 'config.json': '{}', 'prunelens.json': '{}', 'prunelens-report.md': '# report' });
      fs.appendFileSync(path.join(w.out, 'prunelens-report.md'), '\nmy own notes');
      return { args: quickPrune(w, '--overwrite'), code: 1, message: /changed since PruneLens wrote it/, where: path.join(w.out, 'prunelens-report.md') };
    },
  },
  {
    name: 'output: an earlier output holding a link, --overwrite',
    fast: true,
    prepare: (w) => {
      fakeOutput(w.out);
      fs.symlinkSync(w.model, path.join(w.out, 'base'));
      return { args: quickPrune(w, '--overwrite'), code: 1, message: /a link PruneLens did not write/, where: path.join(w.out, 'base') };
    },
  },
  {
    name: 'output: the folder holding the calibration text',
    fast: true,
    prepare: (w) => {
      fakeOutput(w.out);
      fs.copyFileSync(w.calibText, path.join(w.out, 'calib.txt'));
      return { args: calibratedPrune(w, '--calib', path.join(w.out, 'calib.txt'), '--overwrite'), code: 1, message: /which this run reads/, where: w.out };
    },
  },
  {
    name: 'output: in use by a live run (lock held)',
    issue: '2',
    fast: true,
    prepare: (w) => {
      fs.writeFileSync(`${w.out}.prunelens-lock`, JSON.stringify({ pid: process.pid, host: hostname(), processStart: null, started: new Date().toISOString() }));
      return { args: quickPrune(w), code: 1, message: new RegExp(`in use by pid ${process.pid}`), where: w.out };
    },
  },
  {
    name: 'output: a stale lock of a dead run is taken over',
    issue: '2',
    prepare: (w) => {
      fs.writeFileSync(`${w.out}.prunelens-lock`, JSON.stringify({ pid: deadPid(), host: hostname(), processStart: null, started: '2020-01-01T00:00:00Z' }));
      return { args: quickPrune(w), code: 0, changes: ['out', 'out.prunelens-lock'], check: () => assertGone(`${w.out}.prunelens-lock`) };
    },
  },
  {
    name: 'output: two prunes to one --out at once: one succeeds, the other is told who holds it',
    issue: '2',
    prepare: (w) => {
      let second: Promise<{ code: number | null; said: string }> | undefined;
      return {
        args: calibratedPrune(w),
        code: 0,
        changes: ['out'],
        during: async () => {
          await waitFor('the first run to lock the output', () => fs.existsSync(`${w.out}.prunelens-lock`));
          second = run(quickPrune(w), { cwd: w.dir }).then((o) => ({ code: o.code, said: `${errorOf(o)?.message ?? ''}` }));
        },
        check: async () => {
          const r = await second!;
          if (r.code !== 1 || !/in use by pid \d+/.test(r.said)) throw new Error(`the second run was not refused: ${r.code} ${r.said}`);
        },
      };
    },
  },
  {
    name: 'output: a folder created at --out during the run is not replaced',
    issue: '2',
    prepare: (w) => ({
      args: calibratedPrune(w),
      code: 1,
      message: /appeared during the run/,
      where: w.out,
      changes: ['out'],
      during: async () => {
        await waitFor('the partial folder', () => partialsOf(w.out).length > 0);
        fs.mkdirSync(w.out);
        fs.writeFileSync(path.join(w.out, 'mine.txt'), 'created by the user meanwhile');
      },
      check: () => {
        if (fs.readFileSync(path.join(w.out, 'mine.txt'), 'utf8') !== 'created by the user meanwhile' || fs.readdirSync(w.out).length !== 1) throw new Error('the folder created meanwhile was touched');
      },
    }),
  },
  {
    name: 'output: an earlier output swapped for a user folder during an --overwrite run is not replaced',
    issue: '2',
    prepare: (w) => {
      fakeOutput(w.out);
      return {
        args: calibratedPrune(w, '--overwrite'),
        code: 1,
        message: /was replaced by another folder during the run|did not write/,
        where: w.out,
        changes: ['out', 'out-old'],
        during: async () => {
          await waitFor('the partial folder', () => partialsOf(w.out).length > 0);
          fs.renameSync(w.out, w.at('out-old'));
          fs.mkdirSync(w.out);
          fs.writeFileSync(path.join(w.out, 'mine.txt'), 'user data');
        },
        check: () => {
          if (!fs.existsSync(path.join(w.out, 'mine.txt'))) throw new Error('the user folder was replaced');
        },
      };
    },
  },
  {
    name: 'output: --overwrite replaces an earlier output that holds only its own files',
    prepare: (w) => {
      fakeOutput(w.out);
      return { args: quickPrune(w, '--overwrite'), code: 0, changes: ['out'], check: () => assertExists(path.join(w.out, 'model.safetensors')) };
    },
  },
  {
    name: 'output: through a linked parent folder (allowed; written at the real place)',
    issue: '3',
    prepare: (w) => {
      fs.mkdirSync(w.at('real'));
      fs.symlinkSync(w.at('real'), w.at('linked'));
      return { args: quickPrune(w, '--out', w.at('linked', 'o')), code: 0, changes: ['real'], check: () => assertExists(w.at('real', 'o', 'model.safetensors')) };
    },
  },
  {
    name: 'output: read-only file system',
    issue: '9',
    mounts: true,
    prepare: (w) => {
      mountTmpfs(w.at('ro'), 4096);
      remountReadOnly(w.at('ro'));
      return { args: quickPrune(w, '--out', w.at('ro', 'o')), code: 1, message: /read-only/, where: w.at('ro') };
    },
  },
  {
    name: 'output: disk too small for the weights',
    issue: '6',
    mounts: true,
    prepare: (w) => {
      mountTmpfs(w.at('small'), 512);
      return { args: quickPrune(w, '--out', w.at('small', 'o')), code: 1, message: /needs about \d+ bytes/, where: w.at('small') };
    },
  },
  // Disk sizes at which, on Linux tmpfs with 4 KiB pages, the run fills the disk while writing (in turn)
  // the weights, the journal, prunelens.json, the report, its figure and the token-loss file.
  ...([[1030, 'weights'], [1090, 'journal'], [1100, 'prunelens.json'], [1104, 'report'], [1110, 'report figure'], [1120, 'token losses']] as const).map(
    ([kib, what]): Case => ({
      name: `output: disk full while writing the ${what} (${kib} KiB)`,
      issue: '6',
      mounts: true,
      prepare: (w) => {
        mountTmpfs(w.at('disk'), kib);
        return { args: quickPrune(w, '--out', w.at('disk', 'o')), code: 1, message: /no space left/, where: w.at('disk') };
      },
    }),
  ),

  // ---- configs (issue item 6) ----
  configCase('model_type "constructor"', (c) => (c.model_type = 'constructor'), /model_type "constructor" is not supported/, '6'),
  configCase('model_type "__proto__"', (c) => (c.model_type = '__proto__'), /model_type "__proto__" is not supported/, '6'),
  configCase('model_type "toString"', (c) => (c.model_type = 'toString'), /model_type "toString" is not supported/, '6'),
  configCase('model_type "hasOwnProperty"', (c) => (c.model_type = 'hasOwnProperty'), /not supported/),
  configCase('model_type missing', (c) => delete c.model_type, /model_type null is not supported/),
  configCase('model_type a number', (c) => (c.model_type = 7), /not supported/),
  configCase('num_hidden_layers 1e9', (c) => (c.num_hidden_layers = 1e9), /num_hidden_layers" is 1000000000, beyond any real model/, '6'),
  configCase('hidden_size 1e9', (c) => (c.hidden_size = 1e9), /hidden_size" is 1000000000/),
  configCase('vocab_size 1e12', (c) => (c.vocab_size = 1e12), /vocab_size" is 1000000000000/),
  configCase('intermediate_size -1', (c) => (c.intermediate_size = -1), /intermediate_size" must be a positive integer/),
  configCase('num_attention_heads 0', (c) => (c.num_attention_heads = 0), /num_attention_heads" must be a positive integer/),
  configCase('num_hidden_layers 2.5', (c) => (c.num_hidden_layers = 2.5), /num_hidden_layers" must be a positive integer/),
  configCase('num_hidden_layers "5"', (c) => (c.num_hidden_layers = '5'), /num_hidden_layers" must be a positive integer/),
  configCase('hidden_size not divisible by heads', (c) => (c.hidden_size = 66), /not divisible/),
  configCase('heads not a multiple of key/value heads', (c) => (c.num_key_value_heads = 3), /multiple of num_key_value_heads/),
  configCase('odd head_dim', (c) => (c.head_dim = 7), /must be even/),
  configCase('hidden_act gelu', (c) => (c.hidden_act = 'gelu'), /hidden_act "gelu" is not supported/),
  configCase('rope_scaling of an unknown type', (c) => (c.rope_scaling = { type: 'fancy', factor: 2 }), /rope_scaling type "fancy" is not supported/),
  configCase('rope_scaling linear without a factor', (c) => (c.rope_scaling = { type: 'linear' }), /rope_scaling "factor" must be a positive number/),
  configCase('rms_norm_eps negative', (c) => (c.rms_norm_eps = -1), /rms_norm_eps" must be a positive number/),
  configCase('fewer layers than the weights hold', (c) => (c.num_hidden_layers = 4), /does not account for/),
  configCase('more layers than the weights hold', (c) => (c.num_hidden_layers = 6), /which no safetensors file holds/),
  configCase('untied embeddings without lm_head', (c) => (c.tie_word_embeddings = false), /lm_head\.weight/),
  {
    name: 'config: not JSON',
    fast: true,
    prepare: (w) => (fs.writeFileSync(path.join(w.model, 'config.json'), '{"model_type": "llama",'), { args: quickPrune(w), code: 1, message: /invalid JSON/, where: path.join(w.model, 'config.json') }),
  },
  {
    name: 'config: an array',
    fast: true,
    prepare: (w) => (fs.writeFileSync(path.join(w.model, 'config.json'), '[]'), { args: quickPrune(w), code: 1, message: /must hold a JSON object/, where: path.join(w.model, 'config.json') }),
  },
  {
    name: 'config: empty file',
    fast: true,
    prepare: (w) => (fs.writeFileSync(path.join(w.model, 'config.json'), ''), { args: quickPrune(w), code: 1, message: /invalid JSON/, where: path.join(w.model, 'config.json') }),
  },
  {
    name: 'config: missing',
    fast: true,
    prepare: (w) => (fs.rmSync(path.join(w.model, 'config.json')), { args: quickPrune(w), code: 1, message: /file not found/, where: path.join(w.model, 'config.json') }),
  },
  {
    name: 'config: a folder named config.json',
    fast: true,
    prepare: (w) => (fs.rmSync(path.join(w.model, 'config.json')), fs.mkdirSync(path.join(w.model, 'config.json')), { args: quickPrune(w), code: 1, message: /cannot read/, where: path.join(w.model, 'config.json') }),
  },

  // ---- weights and checkpoint files ----
  headerCase('truncated data', (_h, f) => fs.truncateSync(f, fs.statSync(f).size - 100), /bytes|truncated|end/),
  headerCase('header length past the file', (_h, f) => {
    const b = fs.readFileSync(f);
    b.writeBigUInt64LE(BigInt(b.length * 2), 0);
    fs.writeFileSync(f, b);
  }, /header/),
  headerCase('header not JSON', (_h, f) => {
    const b = fs.readFileSync(f);
    b.write('{{{{', 8);
    fs.writeFileSync(f, b);
  }, /JSON|header/),
  headerCase('unknown dtype', (h, f) => {
    const name = Object.keys(h.json).find((k) => k !== '__metadata__')!;
    (h.json[name] as { dtype: string }).dtype = 'F128';
    writeHeader(f, h.json, h.data);
  }, /dtype "F128" is not one of the known dtypes/),
  headerCase('data offsets overlap', (h, f) => {
    const names = Object.keys(h.json).filter((k) => k !== '__metadata__');
    (h.json[names[1]!] as { data_offsets: number[] }).data_offsets = [...(h.json[names[0]!] as { data_offsets: number[] }).data_offsets];
    writeHeader(f, h.json, h.data);
  }, /offsets|overlap|gap/),
  headerCase('shape disagrees with the config', (h, f) => {
    const entry = h.json['model.norm.weight'] as { shape: number[]; data_offsets: number[] };
    entry.shape = [32, 2];
    writeHeader(f, h.json, h.data);
  }, /"model\.norm\.weight" has shape \[32, 2\] in model\.safetensors/, (w) => path.join(w.model, 'config.json')),
  headerCase('a NaN in a weight', (h, f) => {
    const entry = h.json['model.layers.0.self_attn.q_proj.weight'] as { data_offsets: number[] };
    h.data.writeFloatLE(NaN, entry.data_offsets[0]! + 40);
    writeHeader(f, h.json, h.data);
  }, /holds NaN at flat index 10/),
  {
    name: 'weights: F64 checkpoint refused before any work',
    issue: '8',
    fast: true,
    prepare: async (w) => {
      const file = weights(w);
      const reader = await SafetensorsReader.open(file);
      const tensors = [...reader.entries.values()];
      const values = new Map<string, Float32Array>();
      for (const t of tensors) values.set(t.name, await reader.readF32(t.name));
      await reader.close();
      fs.rmSync(file);
      await writeSafetensors(file, tensors.map((t) => ({ name: t.name, dtype: 'F64' as const, shape: t.shape })), (spec) => new Uint8Array(Float64Array.from(values.get(spec.name)!).buffer));
      return {
        args: calibratedPrune(w, '--calib', w.calibText),
        code: 1,
        message: /is F64; pruning computes in float32/,
        where: file,
        check: (o) => {
          if (o.seconds > 20) throw new Error(`refused only after ${o.seconds.toFixed(1)} s`);
        },
      };
    },
  },
  {
    name: 'weights: scaled by 1e37 gives a degenerate perplexity and a warning',
    issue: '9',
    prepare: (w) => {
      const f = weights(w);
      const h = header(f);
      for (let i = 0; i + 4 <= h.data.length; i += 4) h.data.writeFloatLE(Math.fround(h.data.readFloatLE(i) * 1e37), i);
      writeHeader(f, h.json, h.data);
      return { args: quickPrune(w), code: 0, message: /as bad as guessing among all 512 tokens/, changes: ['out'] };
    },
  },
  { name: 'weights: model.safetensors missing', fast: true, prepare: (w) => (fs.rmSync(weights(w)), { args: quickPrune(w), code: 1, message: /neither model\.safetensors nor/, where: w.model }) },
  {
    name: 'weights: shard index pointing outside the folder',
    fast: true,
    prepare: (w) => {
      const index = path.join(w.model, 'model.safetensors.index.json');
      fs.writeFileSync(index, JSON.stringify({ weight_map: { 'model.norm.weight': '../elsewhere.safetensors' } }));
      return { args: quickPrune(w), code: 1, message: /not a \.safetensors file in this folder/, where: index };
    },
  },
  {
    name: 'weights: shard index with an empty weight_map',
    fast: true,
    prepare: (w) => {
      const index = path.join(w.model, 'model.safetensors.index.json');
      fs.writeFileSync(index, JSON.stringify({ weight_map: {} }));
      return { args: quickPrune(w), code: 1, message: /"weight_map" is empty/, where: index };
    },
  },
  { name: 'model: path does not exist', fast: true, prepare: (w) => ({ args: ['prune', w.at('nope'), '--json'], code: 1, message: /no such file or folder/, where: w.at('nope') }) },
  {
    name: 'model: an unfinished output (interrupted run) given to info',
    issue: '5',
    fast: true,
    prepare: (w) => {
      const partial = `${w.out}.partial-12345`;
      fs.mkdirSync(partial);
      fs.copyFileSync(weights(w), path.join(partial, 'model.safetensors.partial'));
      return { args: ['info', partial, '--json'], code: 1, message: /unfinished PruneLens output/, where: partial, changes: [] };
    },
  },
  {
    name: 'model: an unfinished output given to eval',
    issue: '5',
    fast: true,
    prepare: (w) => {
      const partial = `${w.out}.partial-12345`;
      fs.mkdirSync(partial);
      fs.copyFileSync(weights(w), path.join(partial, 'model.safetensors.partial'));
      fs.copyFileSync(path.join(w.model, 'tokenizer.json'), path.join(partial, 'tokenizer.json'));
      return { args: ['eval', partial, '--text', w.evalText, '--json'], code: 1, message: /unfinished PruneLens output/, where: partial };
    },
  },
  { name: 'tokenizer: missing', fast: true, prepare: (w) => (fs.rmSync(path.join(w.model, 'tokenizer.json')), { args: quickPrune(w), code: 1, message: /tokenizer/, where: path.join(w.model, 'tokenizer.json') }) },
  { name: 'tokenizer: not JSON', fast: true, prepare: (w) => (fs.writeFileSync(path.join(w.model, 'tokenizer.json'), '{'), { args: quickPrune(w), code: 1, message: /invalid JSON/, where: path.join(w.model, 'tokenizer.json') }) },
  {
    name: 'tokenizer: produces ids beyond vocab_size',
    issue: '6',
    fast: true,
    prepare: (w) => {
      const file = path.join(w.model, 'tokenizer.json');
      const tok = JSON.parse(fs.readFileSync(file, 'utf8')) as { added_tokens: unknown[] };
      tok.added_tokens.push({ id: 9000, content: 'the', single_word: false, lstrip: false, rstrip: false, normalized: false, special: false });
      fs.writeFileSync(file, JSON.stringify(tok));
      return { args: quickPrune(w), code: 1, message: /token id 9000 .*vocab_size is 512/, where: w.evalText };
    },
  },
  {
    name: 'tokenizer: a dangling link',
    fast: true,
    prepare: (w) => {
      const file = path.join(w.model, 'tokenizer.json');
      fs.rmSync(file);
      fs.symlinkSync(w.at('gone.json'), file);
      return { args: quickPrune(w), code: 1, message: /tokenizer/, where: file };
    },
  },

  // ---- texts (issue items 6, 9) ----
  textCase('calibration empty', '--calib', '', 'empty.txt', /empty/),
  textCase('calibration blank', '--calib', ' \n\t\n ', 'blank.txt', /empty/),
  textCase('calibration .jsonl empty', '--calib', '', 'empty.jsonl', /empty/, '6'),
  textCase('calibration .jsonl blank lines', '--calib', '\n\n  \n', 'blank.jsonl', /empty/, '6'),
  textCase('calibration .jsonl with only blank texts', '--calib', '{"text": ""}\n{"text": "  "}\n', 'blanktexts.jsonl', /nothing to calibrate on/, '6'),
  textCase('calibration .jsonl invalid line', '--calib', '{"text": "a"}\n{oops\n', 'bad.jsonl', /line 2 is not valid JSON/),
  textCase('calibration .jsonl line without text', '--calib', '{"content": "a"}\n', 'notext.jsonl', /line 1 has no string "text"/),
  textCase('calibration .jsonl documents all shorter than seqlen', '--calib', '{"text": "Once upon a time."}\n'.repeat(5), 'short.jsonl', /too little calibration text/),
  textCase('calibration invalid UTF-8', '--calib', Buffer.concat([Buffer.from('Once upon a time '.repeat(400)), Buffer.from([0xff, 0xfe, 0xc3])]), 'latin.txt', /not UTF-8 text/, '9'),
  textCase('evaluation invalid UTF-8', '--eval', Buffer.concat([Buffer.from('Once upon a time '.repeat(400)), Buffer.from([0xff, 0xfe, 0xc3])]), 'latin.txt', /not UTF-8 text/, '9'),
  textCase('calibration too short', '--calib', 'Once upon a time there was a cat.', 'short.txt', /too little calibration text/),
  textCase('evaluation empty', '--eval', '', 'empty.txt', /empty/),
  textCase('evaluation shorter than one window', '--eval', 'Once upon a time.', 'short.txt', /fewer than one window/),
  {
    name: 'text: evaluation file missing',
    fast: true,
    prepare: (w) => ({ args: quickPrune(w, '--eval', w.at('missing.txt')), code: 1, message: /file not found/, where: w.at('missing.txt') }),
  },
  {
    name: 'text: calibration file missing',
    fast: true,
    prepare: (w) => ({ args: calibratedPrune(w, '--calib', w.at('missing.txt')), code: 1, message: /not found/, where: w.at('missing.txt') }),
  },
  { name: 'text: calibration is a folder', fast: true, prepare: (w) => (fs.mkdirSync(w.at('calibdir')), { args: calibratedPrune(w, '--calib', w.at('calibdir')), code: 1, message: /folder|cannot read/, where: w.at('calibdir') }) },
  { name: 'text: evaluation is a folder', fast: true, prepare: (w) => (fs.mkdirSync(w.at('evaldir')), { args: quickPrune(w, '--eval', w.at('evaldir')), code: 1, message: /cannot read|folder/, where: w.at('evaldir') }) },

  // ---- usage: absurd numbers are usage errors, exit 2 (issue item 6) ----
  usage('--nsamples 100000000', ['--method', 'wanda', '--nsamples', '100000000'], /--nsamples must be an integer in \[1, 4096\], got "100000000"/, '--nsamples'),
  // Both within their ranges, together 4096 x 131072 tokens: the hidden states alone would need 128 GiB.
  usage('--nsamples 4096 --seqlen 131072', ['--method', 'wanda', '--nsamples', '4096', '--seqlen', '131072'], /GiB of calibration hidden states/, '--nsamples'),
  usage('--nsamples 0', ['--method', 'wanda', '--nsamples', '0'], /--nsamples must be an integer in \[1, 4096\], got "0"/, '--nsamples'),
  usage('--nsamples -1', ['--method', 'wanda', '--nsamples', '-1'], /--nsamples must be an integer in \[1, 4096\], got "-1"/, '--nsamples'),
  usage('--nsamples=-1', ['--method', 'wanda', '--nsamples=-1'], /--nsamples must be an integer in \[1, 4096\], got "-1"/, '--nsamples'),
  usage('--nsamples abc', ['--method', 'wanda', '--nsamples', 'abc'], /--nsamples must be/, '--nsamples'),
  usage('--nsamples 1e400', ['--method', 'wanda', '--nsamples', '1e400'], /--nsamples must be/, '--nsamples'),
  usage('--seqlen 0', ['--seqlen', '0'], /--seqlen must be an integer in \[2, 131072\]/, '--seqlen'),
  usage('--sparsity 1.5', ['--sparsity', '1.5'], /sparsity/, 'sparsity'),
  usage('--sparsity -0.1', ['--sparsity', '-0.1'], /sparsity/, 'sparsity'),
  usage('--sparsity NaN', ['--sparsity', 'NaN'], /--sparsity must be a number/, '--sparsity'),
  usage('--method foo', ['--method', 'foo'], /--method must be one of/, '--method'),
  usage('--nm 5:4', ['--nm', '5:4'], /N:M|nm/i, '5:4'),
  usage('--nm with --sparsity', ['--nm', '2:4', '--sparsity', '0.5'], /give --sparsity or --nm/, '--nm'),
  usage('--nm with OWL', ['--method', 'wanda', '--nm', '2:4', '--allocation', 'owl'], /cannot be combined with the owl allocation/, 'owl'),
  usage('--threads 0', ['--threads', '0'], /--threads must be an integer in \[1, 1024\]/, '--threads'),
  usage('--provider tpu', ['--provider', 'tpu'], /--provider must be one of/, '--provider'),
  usage('--max-windows 0', ['--max-windows', '0'], /--max-windows must be an integer in \[1, 10000000\]/, '--max-windows'),
  usage('--blocksize 0', ['--blocksize', '0'], /--blocksize must be an integer in \[1, 65536\]/, '--blocksize'),
  usage('--percdamp 0', ['--percdamp', '0'], /--percdamp must be a number in \(0, 1\]/, '--percdamp'),
  usage('--owl-lambda 0.7', ['--method', 'wanda', '--allocation', 'owl', '--owl-lambda', '0.7'], /--owl-lambda must be a number in \[0, 0.5\)/, '--owl-lambda'),
  usage('--allocation magic', ['--allocation', 'magic'], /--allocation must be one of/, '--allocation'),
  usage('unknown option', ['--frobnicate'], /unknown option --frobnicate/, '--frobnicate'),
  usage('--include matching nothing', ['--include', 'nothing.*'], /no linear weight matches --include/, '--include'),
  usage('--resume with --structured', ['--structured', 'heads', '--ratio', '0.2', '--resume'], /--resume continues unstructured pruning only/, '--resume'),
  usage('--plan with --sparsity', ['--plan', 'plan.json', '--sparsity', '0.5'], /--plan gives every ratio/, '--plan'),
  {
    name: 'usage: --plan file missing',
    fast: true,
    prepare: (w) => ({ args: quickPrune(w, '--plan', w.at('plan.json')), code: 2, message: /not found/, where: w.at('plan.json') }),
  },
  {
    name: 'usage: --plan not JSON',
    fast: true,
    prepare: (w) => (fs.writeFileSync(w.at('plan.json'), '{'), { args: quickPrune(w, '--plan', w.at('plan.json')), code: 2, message: /invalid JSON/, where: w.at('plan.json') }),
  },
  {
    name: 'usage: --plan for another model',
    fast: true,
    prepare: (w) => {
      const plan = { format: 'prunelens.plan', version: 1, model: { modelType: 'llama', layers: 7, hiddenSize: 64, intermediateSize: 172 }, target: 0.5, allocation: 'manual', method: 'magnitude', parameters: {}, calibration: null, blocks: [], statistics: {} };
      fs.writeFileSync(w.at('plan.json'), JSON.stringify(plan));
      return { args: quickPrune(w, '--plan', w.at('plan.json')), code: 2, message: /layers|model/, where: w.at('plan.json') };
    },
  },

  // ---- interruptions and resume (issue item 5) ----
  interrupt('SIGINT'),
  interrupt('SIGTERM'),
  interrupt('SIGHUP'),
  {
    name: 'interrupt: SIGINT during tokenizing/calibration is honoured',
    issue: '5',
    prepare: (w) => ({
      args: calibratedPrune(w),
      code: 130,
      message: /cancelled/,
      during: async (child) => {
        await waitFor('the lock', () => fs.existsSync(`${w.out}.prunelens-lock`));
        child.kill('SIGINT');
      },
    }),
  },
  {
    name: 'interrupt: SIGKILL leaves a partial that the next run removes, with a message',
    issue: '5',
    prepare: async (w) => {
      await killedRun(w, calibratedPrune(w));
      return { args: calibratedPrune(w), code: 0, message: /removed .*out\.partial-\d+, the unfinished output of an interrupted run/, changes: ['out', ...partialsOf(w.out).map((p) => path.basename(p)), 'out.prunelens-lock'] };
    },
  },
  {
    name: 'interrupt: SIGKILL, then --resume gives the same weights as an uninterrupted run',
    issue: '5',
    prepare: async (w) => {
      const reference = w.at('reference');
      const r = await run(calibratedPrune(w, '--out', reference), { cwd: w.dir });
      if (r.code !== 0) throw new Error(`reference run failed: ${r.stderr}`);
      await killedRun(w, calibratedPrune(w), (p) => fs.existsSync(path.join(p, 'prunelens-resume-hidden-2.bin')));
      return {
        args: calibratedPrune(w, '--resume'),
        code: 0,
        message: /resuming the unfinished output/,
        changes: ['out', ...partialsOf(w.out).map((p) => path.basename(p)), 'out.prunelens-lock'],
        check: () => {
          if (sha256File(path.join(w.out, 'model.safetensors')) !== sha256File(path.join(reference, 'model.safetensors'))) throw new Error('resumed weights differ from the uninterrupted run');
        },
      };
    },
  },
  {
    name: 'interrupt: --resume with other options is refused and keeps the partial',
    issue: '5',
    prepare: async (w) => {
      await killedRun(w, calibratedPrune(w), (p) => fs.existsSync(path.join(p, 'prunelens-resume-hidden-1.bin')));
      return { args: calibratedPrune(w, '--resume', '--sparsity', '0.6'), code: 2, message: /cannot resume: .* different spec/, where: w.out, changes: ['out.prunelens-lock'] };
    },
  },
  {
    name: 'interrupt: --resume with nothing to resume starts over, with a message',
    prepare: (w) => ({ args: quickPrune(w, '--resume'), code: 0, message: /nothing to resume/, changes: ['out'] }),
  },
  {
    name: 'interrupt: SIGINT right after the commit does not turn success into exit 130',
    issue: '9',
    prepare: (w) => ({
      args: quickPrune(w),
      code: 0,
      changes: ['out'],
      during: async (child) => {
        await waitFor('the committed output', () => fs.existsSync(path.join(w.out, 'prunelens-manifest.json')), 600_000);
        child.kill('SIGINT');
      },
      check: (o) => {
        if (!o.stdout.includes('"out"')) throw new Error('no success JSON');
      },
    }),
  },
  {
    name: 'interrupt: a commit killed between its renames is finished by the next run',
    issue: '5',
    prepare: (w) => {
      const pid = deadPid();
      fakeOutput(`${w.out}.previous-${pid}`);
      fakeOutput(`${w.out}.partial-${pid}`, { 'config.json': '{}', 'prunelens.json': '{"new":true}' });
      fs.writeFileSync(`${w.out}.prunelens-lock`, JSON.stringify({ pid, host: hostname(), processStart: null, started: '2020-01-01T00:00:00Z', commit: { partial: `${w.out}.partial-${pid}`, previous: `${w.out}.previous-${pid}` } }));
      return {
        args: quickPrune(w, '--overwrite'),
        code: 0,
        message: /finished the commit of an interrupted run/,
        changes: ['out', `out.previous-${pid}`, `out.partial-${pid}`, 'out.prunelens-lock'],
      };
    },
  },
  {
    name: 'interrupt: an output moved aside by an older interrupted commit is put back',
    issue: '5',
    prepare: (w) => {
      const pid = deadPid();
      fakeOutput(`${w.out}.previous-${pid}`);
      return { args: quickPrune(w), code: 1, message: /restored .*out from .*previous/, where: w.out, changes: ['out', `out.previous-${pid}`], check: () => assertExists(path.join(w.out, 'prunelens.json')) };
    },
  },

  // ---- links and the Hugging Face cache (issue item 4) ----
  {
    name: 'links: a Hugging Face cache snapshot (every file a link into blobs/) prunes end to end',
    issue: '4',
    prepare: (w) => {
      const repo = w.at('hub', 'models--test--stories260K');
      fs.mkdirSync(path.join(repo, 'blobs'), { recursive: true });
      fs.mkdirSync(path.join(repo, 'snapshots', 'abc123'), { recursive: true });
      fs.mkdirSync(path.join(repo, 'refs'));
      fs.writeFileSync(path.join(repo, 'refs', 'main'), 'abc123');
      for (const f of fs.readdirSync(w.model)) {
        const blob = sha256File(path.join(w.model, f));
        fs.copyFileSync(path.join(w.model, f), path.join(repo, 'blobs', blob));
        fs.symlinkSync(path.join('..', '..', 'blobs', blob), path.join(repo, 'snapshots', 'abc123', f));
      }
      return {
        args: ['prune', path.join(repo, 'snapshots', 'abc123'), '--method', 'magnitude', '--eval', w.evalText, '--seqlen', '64', '--max-windows', '2', '--out', w.out, '--json'],
        code: 0,
        changes: ['out'],
        check: async () => {
          for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'model.safetensors']) {
            const stat = fs.lstatSync(path.join(w.out, f));
            if (!stat.isFile()) throw new Error(`${f} is not a plain file in the output`);
          }
          const info = await run(['info', w.out, '--json']);
          if (info.code !== 0) throw new Error(`info cannot open the output: ${info.stdout}`);
        },
      };
    },
  },
  {
    name: 'links: the cache blobs folder as output (--overwrite) is refused',
    issue: '4',
    fast: true,
    prepare: (w) => {
      const repo = w.at('hub', 'models--t');
      fs.mkdirSync(path.join(repo, 'blobs'), { recursive: true });
      fs.mkdirSync(path.join(repo, 'snapshots', 'r'), { recursive: true });
      for (const f of fs.readdirSync(w.model)) {
        fs.copyFileSync(path.join(w.model, f), path.join(repo, 'blobs', f));
        fs.symlinkSync(path.join('..', '..', 'blobs', f), path.join(repo, 'snapshots', 'r', f));
      }
      return { args: ['prune', path.join(repo, 'snapshots', 'r'), '--method', 'magnitude', '--out', path.join(repo, 'blobs'), '--overwrite', '--json'], code: 1, message: /a file of the source checkpoint/, where: path.join(repo, 'blobs') };
    },
  },
  {
    name: 'links: only tokenizer.json a link; the output holds it as a file',
    issue: '4',
    prepare: (w) => {
      const file = path.join(w.model, 'tokenizer.json');
      fs.renameSync(file, w.at('tokenizer-elsewhere.json'));
      fs.symlinkSync(w.at('tokenizer-elsewhere.json'), file);
      return {
        args: quickPrune(w),
        code: 0,
        changes: ['out'],
        check: () => {
          if (!fs.lstatSync(path.join(w.out, 'tokenizer.json')).isFile()) throw new Error('tokenizer.json missing or a link in the output');
        },
      };
    },
  },
];

async function killedRun(w: Work, args: string[], ready: (partial: string) => boolean = () => true): Promise<void> {
  await run(args, {
    cwd: w.dir,
    during: async (child) => {
      await waitFor('the partial folder', () => partialsOf(w.out).some((p) => fs.existsSync(path.join(p, 'prunelens-resume.json')) && ready(p)));
      child.kill('SIGKILL');
    },
  });
  if (partialsOf(w.out).length === 0) throw new Error('the killed run left no partial folder to work with');
}

function assertGone(p: string): void {
  if (fs.existsSync(p)) throw new Error(`${p} is still there`);
}

function assertExists(p: string): void {
  if (!fs.existsSync(p)) throw new Error(`${p} is missing`);
}
