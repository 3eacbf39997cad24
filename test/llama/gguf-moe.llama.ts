/**
 * GGUF export of mixture-of-experts models checked in llama.cpp itself (`npm run test:llama`): the
 * trained fixture models/tinystories-moe-379K (Mixtral layout, llama.cpp's `llama` with experts) and
 * small random qwen2_moe, qwen3_moe and olmoe checkpoints, each dense, after removing 25% of the
 * experts by REAP and after Wanda 50% inside the experts, made the way a person makes them
 * (`prunelens prune ... --format hf,gguf`, `prunelens export`), at F32 and F16. llama.cpp must
 * tokenize the evaluation text into PruneLens's ids and score the same windows within 0.5% of
 * PruneLens's perplexity and within TOKEN_TOLERANCE per token.
 *
 * The random checkpoints' matrices (routers included) are scaled up, as in gguf-families.llama.ts, so
 * the per-token NLL spreads (asserted). Top-k routing is discontinuous: where a token's k-th and
 * (k+1)-th router scores nearly tie, rounding (f16 weights, another summation order) can pick the other
 * expert, and that one token's NLL jumps while its neighbours agree to a thousandth. The more the
 * weights are scaled, the larger the jumps: measured at ×4 (first 4 windows, dense), 1 to 26 of 1,020
 * tokens differed by more than 0.1 nats, the largest by 6.0 nats (olmoe F16, a perplexity gap of 0.61%
 * from two tokens); at ×2 (SCALE) at most 3 tokens did, by at most 0.58 nats, with the NLL spread 1.4
 * nats. So up to 1% of the tokens may exceed TOKEN_TOLERANCE's largest difference (OUTLIERS); the
 * perplexity (0.5%) and the mean per-token difference are checked as for dense families. Deliberately
 * wrong mappings (the fixture's gate and up exchanged, or its experts stacked out of the router's order;
 * a qwen2_moe renormalised by PruneLens but not by llama.cpp) fail the same check.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Llama } from 'node-llama-cpp';
import { evaluateModel } from '../../src/engine/evaluate/evaluate-model';
import { llamaPerplexity, llamaTokenize, loadGguf, loadLlama } from '../../src/engine/llamacpp/llama-client';
import { TextTokenizer } from '../../src/engine/text/tokenizer';
import { agreement, disagreements, MIN_SPREAD, scaledCheckpoint, std } from '../helpers/llama-agreement';
import { MOE_CASES } from '../helpers/moe-configs';

const SEQLEN = 256;
const WINDOWS = Number(process.env.PRUNELENS_LLAMA_WINDOWS ?? 4);
const TEXT = path.resolve('data', 'tinystories', 'eval.txt');
const FIXTURE = path.resolve('models', 'tinystories-moe-379K');
/** Multiplies every matrix of the random checkpoints (uniform ±0.15). */
const SCALE = 2;
/** Tokens whose routing may flip at a near-tie (see above): 1% of the targets. */
const OUTLIERS = Math.floor(0.01 * WINDOWS * (SEQLEN - 1));

/** MOE_CASES with what llama.cpp's architectures fix set as they need it (see arch-moe.ts). */
const RANDOM: Record<string, Record<string, unknown>> = {
  // Qwen1.5-MoE's fields (shared expert and its gate, top-4 of 6 not renormalised, q/k/v biases), every layer sparse.
  qwen2_moe: { ...MOE_CASES.qwen2_moe, mlp_only_layers: [] },
  // Qwen3-30B-A3B's fields: head_dim 32 with hidden 64, GQA, q/k norms per head, renormalised top-2 of 8.
  qwen3_moe: MOE_CASES.qwen3_moe!,
  // OLMoE-1B-7B's fields with as many key/value heads as heads (as released); tied here, so output.weight is the embeddings written again.
  olmoe: { ...MOE_CASES.olmoe, num_key_value_heads: 4, tie_word_embeddings: true },
};

function cli(...args: string[]): Record<string, unknown> {
  const r = spawnSync(process.execPath, [path.resolve('dist', 'cli.js'), ...args, '--json'], { encoding: 'utf8' });
  assert.equal(r.status, 0, `prunelens ${args.join(' ')}: ${r.stdout}${r.stderr}`);
  return JSON.parse(r.stdout) as Record<string, unknown>;
}

type Info = Awaited<ReturnType<typeof import('node-llama-cpp').readGgufFileInfo>>;

/** A copy of an F32 GGUF file with `edit` applied to the bytes of its tensors (by name, as the file holds them). */
async function tampered(file: string, out: string, edit: (tensor: (name: string) => Buffer) => void): Promise<void> {
  const { readGgufFileInfo } = await import('node-llama-cpp');
  const info: Info = await readGgufFileInfo(file, { logWarnings: false });
  const bytes = fs.readFileSync(file);
  edit((name) => {
    const t = info.tensorInfo!.find((x) => x.name === name);
    assert.ok(t && t.ggmlType === 0, `${name} is an f32 tensor of ${file}`);
    const start = Number(t.fileOffset);
    return bytes.subarray(start, start + 4 * t.dimensions.reduce((a: number, b) => a * Number(b), 1));
  });
  fs.writeFileSync(out, bytes);
}

function exchange(a: Buffer, b: Buffer): void {
  const copy = Buffer.from(a);
  b.copy(a);
  copy.copy(b);
}

describe(`GGUF export of mixture-of-experts models checked in llama.cpp (seqlen ${SEQLEN}, first ${WINDOWS} windows, per-token NLL)`, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'prunelens-gguf-moe-'));
  const text = fs.readFileSync(TEXT, 'utf8');
  let llama: Llama;
  before(async () => {
    llama = await loadLlama();
  });
  after(async () => {
    await llama?.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const models: { name: string; ready: () => Promise<string> }[] = [
    { name: 'tinystories-moe-379K (mixtral)', ready: async () => FIXTURE },
    ...Object.entries(RANDOM).map(([family, config]) => {
      const folder = path.join(dir, `random-${family}`);
      const made = scaledCheckpoint(folder, config, SCALE).then(() => folder);
      return { name: `random ${family}`, ready: () => made };
    }),
  ];
  const common = ['--eval', TEXT, '--seqlen', String(SEQLEN), '--max-windows', '1', '--nsamples', '16', '--overwrite', '--format', 'hf,gguf'];
  for (const model of models) {
    const slug = model.name.split(' ')[0] === 'random' ? model.name.replace(' ', '-') : 'fixture';
    const variants: { name: string; make: (source: string) => { folder: string; f16?: string } }[] = [
      { name: 'dense', make: (source) => ({ folder: source }) },
      { name: '25% of experts removed by REAP', make: (source) => pruned(cli('prune', source, '--structured', 'experts', '--ratio', '0.25', '--metric', 'reap', ...common, '--out', path.join(dir, `${slug}-reap25`))) },
      { name: 'Wanda 50% inside experts', make: (source) => pruned(cli('prune', source, '--method', 'wanda', '--sparsity', '0.5', ...common, '--out', path.join(dir, `${slug}-wanda50`))) },
    ];
    for (const variant of variants) {
      it(`${model.name} ${variant.name}: same token ids; per-token NLL and perplexity as PruneLens's at F32 and F16`, async () => {
        const { folder, f16 } = variant.make(await model.ready());
        const ours = await evaluateModel({ model: folder, textFile: TEXT, seqlen: SEQLEN, maxWindows: WINDOWS, runtime: { provider: 'cpu' } });
        assert.equal(ours.windows, WINDOWS);
        const spread = std(ours.tokenNll);
        assert.ok(spread > MIN_SPREAD, `per-token NLL spread ${spread.toFixed(3)} nats: too uniform to discriminate`);
        const ids = Array.from((await TextTokenizer.load(folder)).encode(text));
        for (const type of ['f32', 'f16'] as const) {
          // The pruned outputs' F16 files are the ones `prune --format hf,gguf` wrote.
          const file = type === 'f16' && f16 ? f16 : path.join(dir, `${path.basename(folder)}-export-${type}.gguf`);
          if (file !== f16) cli('export', folder, '--format', 'gguf', '--type', type, '--out', file, '--overwrite');
          const gguf = await loadGguf(llama, file);
          try {
            assert.deepEqual(llamaTokenize(gguf, text), ids, 'llama.cpp tokenizes the evaluation text differently');
            const theirs = await llamaPerplexity(gguf, Array.from(ours.windowIds), SEQLEN, WINDOWS);
            const a = agreement(ours, theirs);
            console.log(
              `${model.name} ${variant.name} ${type}: PruneLens ${ours.ppl.toFixed(4)}, llama.cpp ${theirs.ppl.toFixed(4)} (${(a.gap * 100).toFixed(3)}%), per-token NLL spread ${spread.toFixed(2)}, difference mean ${a.mean.toFixed(4)} largest ${a.worst.toFixed(4)} nats, ${a.differences.filter((d) => d > 0.1).length} token(s) over 0.1`,
            );
            assert.deepEqual(disagreements(a, type, OUTLIERS), [], `${type}: llama.cpp ${theirs.ppl} vs PruneLens ${ours.ppl}`);
          } finally {
            await gguf.dispose();
          }
        }
      });
    }
  }

  function pruned(result: Record<string, unknown>): { folder: string; f16: string } {
    const gguf = result.gguf as { out: string };
    assert.equal(gguf.out, `${String(result.out)}-f16.gguf`);
    return { folder: String(result.out), f16: gguf.out };
  }

  it('fails where the renormalisation differs: llama.cpp\'s qwen2moe (never renormalising) against PruneLens renormalising the same weights', async () => {
    // Why the export refuses norm_topk_prob true for qwen2_moe: the file could only compute the other routing weights.
    const source = await models.find((m) => m.name === 'random qwen2_moe')!.ready();
    const renormalised = path.join(dir, 'random-qwen2_moe-renormalised');
    fs.cpSync(source, renormalised, { recursive: true });
    const config = JSON.parse(fs.readFileSync(path.join(source, 'config.json'), 'utf8')) as Record<string, unknown>;
    fs.writeFileSync(path.join(renormalised, 'config.json'), JSON.stringify({ ...config, norm_topk_prob: true }));
    const ours = await evaluateModel({ model: renormalised, textFile: TEXT, seqlen: SEQLEN, maxWindows: WINDOWS, runtime: { provider: 'cpu' } });
    const file = path.join(dir, 'random-qwen2_moe-not-renormalised-f32.gguf');
    cli('export', source, '--format', 'gguf', '--type', 'f32', '--out', file, '--overwrite');
    const gguf = await loadGguf(llama, file);
    try {
      const theirs = await llamaPerplexity(gguf, Array.from(ours.windowIds), SEQLEN, WINDOWS);
      const a = agreement(ours, theirs);
      console.log(`wrong mapping (renormalisation) f32: PruneLens ${ours.ppl.toFixed(4)}, llama.cpp ${theirs.ppl.toFixed(4)} (${(a.gap * 100).toFixed(3)}%), difference mean ${a.mean.toFixed(4)} largest ${a.worst.toFixed(4)} nats`);
      assert.notDeepEqual(disagreements(a, 'f32', OUTLIERS), [], 'the check passed a renormalisation llama.cpp does not compute');
    } finally {
      await gguf.dispose();
    }
  });

  it('fails for deliberately wrong mappings of the fixture: gate and up exchanged, experts stacked out of the router\'s order', async () => {
    const ours = await evaluateModel({ model: FIXTURE, textFile: TEXT, seqlen: SEQLEN, maxWindows: WINDOWS, runtime: { provider: 'cpu' } });
    const right = path.join(dir, 'fixture-right-f32.gguf');
    cli('export', FIXTURE, '--format', 'gguf', '--type', 'f32', '--out', right, '--overwrite');
    const layers = [0, 1, 2];
    const wrongs: Record<string, (tensor: (name: string) => Buffer) => void> = {
      // Mixtral's w1 is the gate and w3 the up projection; reading them the other way round.
      'gate and up exchanged': (tensor) => layers.forEach((l) => exchange(tensor(`blk.${l}.ffn_gate_exps.weight`), tensor(`blk.${l}.ffn_up_exps.weight`))),
      // What a renumbering that forgot the router rows would give: experts 0 and 1 of every layer swapped in the stacks only.
      'experts 0 and 1 out of the router\'s order': (tensor) =>
        layers.forEach((l) => {
          for (const linear of ['gate', 'up', 'down']) {
            const stack = tensor(`blk.${l}.ffn_${linear}_exps.weight`);
            const slab = stack.length / 8;
            exchange(stack.subarray(0, slab), stack.subarray(slab, 2 * slab));
          }
        }),
    };
    for (const [name, edit] of Object.entries(wrongs)) {
      const file = path.join(dir, `fixture-${name.replace(/\W+/g, '-')}.gguf`);
      await tampered(right, file, edit);
      const gguf = await loadGguf(llama, file);
      try {
        const theirs = await llamaPerplexity(gguf, Array.from(ours.windowIds), SEQLEN, WINDOWS);
        const a = agreement(ours, theirs);
        console.log(`wrong mapping (${name}) f32: PruneLens ${ours.ppl.toFixed(4)}, llama.cpp ${theirs.ppl.toFixed(4)} (${(a.gap * 100).toFixed(3)}%), difference mean ${a.mean.toFixed(4)} largest ${a.worst.toFixed(4)} nats`);
        assert.notDeepEqual(disagreements(a, 'f32', OUTLIERS), [], `${name}: the check passed a wrong mapping`);
      } finally {
        await gguf.dispose();
      }
    }
  });
});
